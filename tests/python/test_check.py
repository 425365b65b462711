"""`embed-udfs check`: ready (exit 0) only when the configuration and the database are,
with a sentence for each problem otherwise (exit 2), and what a refresh would run."""

from __future__ import annotations

import json

import pytest
from conftest import PROJECT_DIR, planted_config, planted_space
from psycopg import sql

from embed_udfs import cli
from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.demo import PRODUCTS_DDL

PLANTED = planted_config(
    [planted_space("t", "text", 4), planted_space("i", "image", 4)],
    [{"name": "p", "text_space": "t", "image_space": "i"}],
)


@pytest.fixture
def on_db(db, monkeypatch):
    """The CLI pointed at the test database (as PG* variables point it at a user's own)."""
    monkeypatch.delenv("EMBED_UDFS_DSN", raising=False)
    for key, value in db.env().items():
        monkeypatch.setenv(key, value)
    with connection(db) as conn:
        conn.execute("drop schema if exists catalog cascade")
        conn.commit()
    return db


def _check(capsys, dbt_vars) -> tuple[int, str, str]:
    code = cli.main(["--project-dir", str(PROJECT_DIR), "--vars", json.dumps(dbt_vars), "check"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ready_when_the_catalog_is_there(on_db, capsys):
    with connection(on_db) as conn:
        conn.execute(PRODUCTS_DDL)
        conn.commit()
    code, out, err = _check(capsys, PLANTED)
    assert code == 0, err
    lines = out.splitlines()
    assert "  t: text, open_clip planted, dim 4" in lines
    assert "  p: t <-> i" in lines
    assert "products: catalog.products, 0 rows" in lines
    assert lines[-1] == "ready"
    assert f"config digest: {load_config(PROJECT_DIR, PLANTED).digest}" in lines
    jobs_line = next(line for line in lines if line.startswith("refresh runs:"))
    assert jobs_line.index("backfill") < jobs_line.index("cluster") < jobs_line.index("dbt build")


def test_each_problem_is_a_sentence_and_the_exit_status_is_2(on_db, capsys, tmp_path):
    missing = str(tmp_path / "nowhere.pt")
    spaces = [
        {**planted_space("t", "text", 4), "pretrained": missing},
        planted_space("i", "image", 4),
    ]
    dbt_vars = planted_config(spaces, PLANTED["embed_pairs"])
    code, out, err = _check(capsys, dbt_vars)
    assert code == 2
    assert "not ready: 2 problem(s)" in out
    assert f"  t: {missing}" in err  # the checkpoint file
    assert "catalog.products does not exist" in err
    assert "Traceback" not in err
    with connection(on_db) as conn:
        conn.execute("create schema catalog")
        conn.execute(sql.SQL("create table catalog.products (product_id text, product_name text)"))
        conn.commit()
    code, _, err = _check(capsys, PLANTED)
    assert code == 2
    assert (
        "catalog.products lacks the column(s) product_description, collection_section, "
        "store_name, image_uri" in err
    )


def test_an_invalid_configuration_is_refused_before_the_database(on_db, capsys):
    code, out, err = _check(capsys, {**PLANTED, "eval_k_values": [1, 5000]})
    assert code == 2
    assert "vars.eval_k_values: the largest K (5000) is not below vars.eval_sample_size" in err
    assert out == ""


def test_a_cluster_column_the_products_table_lacks_is_refused(on_db, capsys):
    with connection(on_db) as conn:
        conn.execute(PRODUCTS_DDL)
        conn.commit()
    code, _, err = _check(capsys, {**PLANTED, "bootstrap_cluster_column": "family_id"})
    assert code == 2
    assert "vars.bootstrap_cluster_column is 'family_id'" in err
    assert "Traceback" not in err
    code, out, err = _check(capsys, {**PLANTED, "bootstrap_cluster_column": "store_name"})
    assert code == 0, err
    code, _, err = _check(capsys, {**PLANTED, "bootstrap_cluster_column": "store name; drop"})
    assert code == 2 and "bootstrap_cluster_column" in err
