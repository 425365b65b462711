"""Bad configuration is refused before any work: the message comes from the
configuration, and dbt is never invoked (a tripwire on dbtRunner.invoke)."""

from __future__ import annotations

import json

import pytest
from conftest import PROJECT_DIR

from embed_udfs import cli
from embed_udfs.config import load_config
from embed_udfs.errors import ConfigError
from embed_udfs.jobs.cluster import refresh_clusters
from embed_udfs.pipeline import refresh


@pytest.fixture
def no_dbt(monkeypatch):
    """Fail the test if anything invokes dbt."""
    from dbt.cli.main import dbtRunner

    def tripwire(self, args, **kwargs):
        raise AssertionError(f"dbt was invoked: {args}")

    monkeypatch.setattr(dbtRunner, "invoke", tripwire)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ('{eval_sample_size: "abc"}', "vars.eval_sample_size is 'abc'; it must be an integer"),
        ('{hnsw_ef_search: "lots"}', "vars.hnsw_ef_search is 'lots'; it must be a positive"),
        ("{eval_k_values: [true]}", "vars.eval_k_values[0] is True; it must be a positive"),
        ("{eval_k_values: [0]}", "vars.eval_k_values[0] is 0; it must be a positive"),
        (
            "{eval_sample_size: 50, eval_k_values: [1000], hnsw_ef_search: 1000}",
            "the largest K (1000) is not below vars.eval_sample_size (50)",
        ),
    ],
)
@pytest.mark.parametrize("command", [["refresh"], ["cluster"], ["backfill"]])
def test_wrong_vars_are_refused_by_the_config_before_dbt(
    no_dbt, capsys, overrides, message, command
):
    code = cli.main(["--project-dir", str(PROJECT_DIR), "--vars", overrides, *command])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "Traceback" not in err


def test_an_unknown_space_is_refused_before_dbt(no_dbt, db):
    config = load_config(PROJECT_DIR)
    with pytest.raises(ConfigError, match="unknown space 'nope'; the spaces in"):
        refresh(db, config, options={"space": ["minilm_text", "nope"]})
    with pytest.raises(ConfigError, match="unknown space 'nope'; the spaces in"):
        refresh_clusters(db, config, spaces=["nope"])


@pytest.mark.integration  # the CLI resolves the server before it reads --space
@pytest.mark.parametrize("command", ["refresh", "backfill", "cluster"])
def test_the_cli_refuses_an_unknown_space_before_dbt(no_dbt, command, capsys):
    assert cli.main(["--project-dir", str(PROJECT_DIR), command, "--space", "nope"]) == 2
    assert "unknown space 'nope'; the spaces in" in capsys.readouterr().err


@pytest.fixture
def no_database(monkeypatch):
    """Fail the test if anything resolves or connects to a database (and so runs a job)."""
    from embed_udfs import db

    def tripwire(*args, **kwargs):
        raise AssertionError("the database was reached")

    for name in ("resolve_settings", "connect", "admin_connect", "start_embedded"):
        monkeypatch.setattr(db, name, tripwire)


HOSTILE_TEXT = [
    "{{ run_query('drop table catalog.products') }}",
    "{% do run_query('select pg_sleep(60)') %}",
    "before {# hidden #} after",
    "red\x1b[31m label\x07",
    "two\nlines",
]


@pytest.mark.parametrize("label", HOSTILE_TEXT)
def test_a_label_dbt_would_render_is_refused_before_any_work(no_dbt, no_database, capsys, label):
    code = cli.main(["--project-dir", str(PROJECT_DIR), "refresh", "--label", label])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --label is ") and err.count("\n") == 1  # one line
    assert "Traceback" not in err
    assert "\x1b" not in err and "\x07" not in err


@pytest.mark.parametrize("key", ["run_label", "git_revision", "hnsw_ef_search"])
@pytest.mark.parametrize("command", [["refresh"], ["cluster"], ["rerank"], ["tune"], ["backfill"]])
def test_vars_dbt_would_render_are_refused_before_any_work(
    no_dbt, no_database, capsys, key, command
):
    overrides = json.dumps({key: "{{ run_query('select 1') }}"})
    code = cli.main(["--project-dir", str(PROJECT_DIR), "--vars", overrides, *command])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: --vars {key} is ") and "Jinja syntax" in err
    assert "Traceback" not in err


def test_a_plain_label_still_reaches_dbt(no_dbt, no_database, capsys):
    """The tripwires fire for a good label: the refusal above is the check, not the wiring."""
    with pytest.raises(AssertionError, match="database was reached|dbt was invoked"):
        cli.main(["--project-dir", str(PROJECT_DIR), "refresh", "--label", "new prompt"])
