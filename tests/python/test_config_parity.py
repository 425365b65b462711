"""One configuration, validated once: embed_udfs.config refuses each bad configuration
with one sentence, and dbt's on-run-start guard (macros/config_guard.sql) checks only
that the vars it reads are the ones validated, by the same digest."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from conftest import PROJECT_DIR, query
from psycopg import sql

from embed_udfs.config import DIGEST_VAR, check_text_fields, digested_vars, load_config, stamp_vars
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.demo import PRODUCTS_DDL
from embed_udfs.errors import ConfigError, DbtError

HOSTILE = "x'; drop table catalog.products; --"


def _space(name: str, modality: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "modality": modality,
        "backend": "open_clip",
        "family": "planted",
        "model": "planted",
        "dim": 8,
        **extra,
    }


def _spaces(*spaces: dict[str, Any], pairs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "embed_spaces": list(spaces),
        "embed_pairs": pairs if pairs is not None else [_pair()],
    }


def _pair(**extra: Any) -> dict[str, Any]:
    return {"name": "p", "text_space": "t", "image_space": "i", **extra}


GOOD = _spaces(_space("t", "text"), _space("i", "image"))

# (case, vars over the project's, the sentence that refuses them)
CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "hostile space name",
        _spaces(_space(HOSTILE, "text"), _space("i", "image"), pairs=[]),
        f"vars.embed_spaces[0].name is '{HOSTILE}'; names reach SQL, so they must match "
        "^[a-z][a-z0-9_]*$.",
    ),
    (
        "upper-case pair name",
        _spaces(_space("t", "text"), _space("i", "image"), pairs=[_pair(name="Clip")]),
        "vars.embed_pairs[0].name is 'Clip'; names reach SQL, so they must match "
        "^[a-z][a-z0-9_]*$.",
    ),
    (
        "text field that is not an identifier",
        _spaces(_space("t", "text", text_fields=["product_name", "1; --"]), _space("i", "image")),
        "vars.embed_spaces[0].text_fields[1] is '1; --'; names reach SQL",
    ),
    (
        "relation without a schema",
        {"products_relation": "products"},
        "vars.products_relation is 'products'; it must be schema.table, and names reach SQL",
    ),
    (
        "sample size that is not a number",
        {"eval_sample_size": "abc"},
        "vars.eval_sample_size is 'abc'; it must be an integer of at least 2.",
    ),
    (
        "ef_search given as a word",
        {"hnsw_ef_search": "lots"},
        "vars.hnsw_ef_search is 'lots'; it must be a positive integer.",
    ),
    (
        "a boolean K",
        {"eval_k_values": [True]},
        "vars.eval_k_values[0] is True; it must be a positive integer.",
    ),
    (
        "a gallery tier of one sample (it would be the sample itself)",
        {"gallery_tiers": [10, 1]},
        "vars.gallery_tiers[1] is 1; it must be an integer of at least 2.",
    ),
    (
        "a negative seed",
        {"eval_seed": -1},
        "vars.eval_seed is -1; it must be a non-negative integer.",
    ),
    (
        "section cap given as a word other than auto",
        {"eval_section_cap": "half"},
        "vars.eval_section_cap is 'half'; use a positive integer, auto or null.",
    ),
    (
        "a zero section cap",
        {"eval_section_cap": 0},
        "vars.eval_section_cap is 0; use a positive integer, auto or null.",
    ),
    (
        "a section cap factor below 1 (auto would cap every section below the median)",
        {"eval_section_cap_factor": 0.5},
        "vars.eval_section_cap_factor is 0.5; it must be a number of at least 1.",
    ),
    (
        "K not below the sample size",
        {"eval_sample_size": 50, "eval_k_values": [1, 50], "hnsw_ef_search": 100},
        "vars.eval_k_values: the largest K (50) is not below vars.eval_sample_size (50); a "
        "gallery of n products ranks every positive within n",
    ),
    (
        "ef_search below the largest K",
        {"hnsw_ef_search": 20},
        "vars.hnsw_ef_search (20) is below the largest K (50); an HNSW scan returns at most "
        "ef_search rows",
    ),
    (
        "unknown retrieval_search",
        {"retrieval_search": "fast"},
        "vars.retrieval_search is 'fast'; use one of auto, hnsw, exact.",
    ),
    (
        "unknown text variant",
        _spaces(_space("t", "text", text_variant="cleanest"), _space("i", "image")),
        "vars.embed_spaces[0].text_variant is 'cleanest'; use one of raw, clean, "
        "clean_no_boilerplate.",
    ),
    (
        "unknown modality",
        _spaces(_space("t", "audio"), _space("i", "image"), pairs=[]),
        "vars.embed_spaces[0].modality is 'audio'; use one of text, image.",
    ),
    (
        "zero dim",
        _spaces(_space("t", "text", dim=0), _space("i", "image"), pairs=[]),
        "vars.embed_spaces[0].dim is 0; it must be a positive integer.",
    ),
    (
        "repeated space name",
        _spaces(_space("t", "text"), _space("t", "image"), pairs=[]),
        "vars.embed_spaces: space names must be unique; repeated: t.",
    ),
    (
        "pair with an unknown space",
        _spaces(_space("t", "text"), _space("i", "image"), pairs=[_pair(image_space="nope")]),
        "vars.embed_pairs[0].image_space is 'nope', which is not a configured space; "
        "known spaces: t, i.",
    ),
    (
        "pair with the modalities swapped",
        _spaces(_space("t", "text"), _space("i", "image"), pairs=[_pair(text_space="i")]),
        "vars.embed_pairs[0].text_space is 'i', whose modality is image; it must name a space "
        "of modality text.",
    ),
    (
        "pair across dimensions",
        _spaces(_space("t", "text"), _space("i", "image", dim=16)),
        "vars.embed_pairs[0]: 't' has dim 8 but 'i' has dim 16; vectors of different "
        "dimensions cannot be compared.",
    ),
    (
        "pair across model families",
        _spaces(_space("t", "text", family="minilm"), _space("i", "image")),
        "vars.embed_pairs[0]: pair 'p' retrieves across model families: 't' is 'minilm' and "
        "'i' is 'planted'.",
    ),
    (
        "target recall of zero",
        {"ann_target_recall": 0},
        "vars.ann_target_recall is 0; it must be a number in (0, 1], e.g. 0.99 (neighbour "
        "recall@10).",
    ),
    (
        "target recall above one",
        {"ann_target_recall": "1.5"},
        "vars.ann_target_recall is '1.5'; it must be a number in (0, 1]",
    ),
    (
        "target recall given as a word",
        {"ann_target_recall": "high"},
        "vars.ann_target_recall is 'high'; it must be a number.",
    ),
]

TEXT_FIELD_CASE = (
    _spaces(_space("t", "text", text_fields=["product_name", "colour"]), _space("i", "image")),
    "vars.embed_spaces[0].text_fields[1] is 'colour', which is not a column of "
    "catalog.products; its columns: collection_section, image_uri, product_description, "
    "product_id, product_name, store_name.",
)

# Overrides whose digest dbt must compute as Python does: nested spaces with quotes and
# non-ASCII text, floats, nulls, booleans, a comma-separated host list.
DIGEST_CASES: list[dict[str, Any]] = [
    {},
    {
        **_spaces(
            _space("t", "text", prompt="l'article « été » : ", family="o'brien"),
            _space("i", "image", family="o'brien", pretrained=None),
        ),
        "near_duplicate_max_distance": 0.035,
        "eval_section_cap": None,
        "eval_dedup": False,
        "image_allowed_hosts": "images.lan, cdn.lan:8080",
        "run_label": "new prompt",
    },
]


@pytest.fixture(scope="module")
def catalog(db):
    """A products table with rows, which no refused configuration may touch."""
    with connection(db) as conn:
        conn.execute(PRODUCTS_DDL)
        conn.execute(
            "insert into catalog.products (product_id, product_name, collection_section) "
            "select 'p' || i, 'product ' || i, 'section' from generate_series(1, 5) as i"
        )
        # dbt creates the schemas of the selected models before its on-run-start hooks
        for schema in ("staging", "intermediate", "metrics"):
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        conn.commit()
    return db


def _python_message(overrides: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as refused:
        load_config(PROJECT_DIR, overrides=overrides)
    return str(refused.value)


def _snapshot(settings) -> list[tuple]:
    return query(
        settings,
        "select n.nspname, c.relname, c.relkind from pg_class as c "
        "join pg_namespace as n on n.oid = c.relnamespace "
        "where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') "
        "union all select nspname, '', 'schema' from pg_namespace order by 1, 2",
    )


def test_each_bad_configuration_is_refused_with_its_sentence():
    for case, overrides, expected in CASES:
        message = _python_message(overrides)
        assert message.startswith(f"{PROJECT_DIR / 'dbt_project.yml'}: "), case
        assert expected in message, case
        assert "Traceback" not in message and "\n" not in message, case


def test_the_good_configuration_passes(catalog):
    config = load_config(PROJECT_DIR, overrides=GOOD)
    with connection(catalog) as conn:
        check_text_fields(conn, config)
    assert [space.name for space in config.spaces] == ["t", "i"]


def test_text_fields_must_be_columns_of_the_products_relation(catalog):
    overrides, expected = TEXT_FIELD_CASE
    config = load_config(PROJECT_DIR, overrides=overrides)  # a column check needs the database
    with connection(catalog) as conn, pytest.raises(ConfigError) as refused:
        check_text_fields(conn, config)
    assert str(refused.value).split(": ", 1)[1] == expected


def test_the_digest_is_md5_of_the_rendered_vars_as_sorted_json():
    """Computed here from the YAML, independently of embed_udfs.config's own code path."""
    import yaml

    raw = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    raw.update(GOOD)
    values = {name: raw.get(name) for name in digested_vars()}
    expected = hashlib.md5(json.dumps(values, sort_keys=True).encode()).hexdigest()
    assert load_config(PROJECT_DIR, overrides=GOOD).digest == expected
    # one changed value, however deep, changes it
    changed = _spaces(_space("t", "text", dim=16), _space("i", "image", dim=16))
    assert load_config(PROJECT_DIR, overrides=changed).digest != expected


def test_dbt_computes_the_same_digest(catalog, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("EMBED_METRICS_TEST_EF", "64")
    cases = [*DIGEST_CASES, {"hnsw_ef_search": "{{ env_var('EMBED_METRICS_TEST_EF') }}"}]
    for overrides in cases:
        python = load_config(PROJECT_DIR, overrides=overrides).digest
        assert _dbt_digest(catalog, tmp_path, capfd, overrides) == python, overrides


def test_dbt_runs_validated_vars_and_refuses_vars_changed_after_validation(
    catalog, tmp_path, capfd
):
    before = _snapshot(catalog)
    stamped = stamp_vars(PROJECT_DIR, GOOD)
    assert stamped[DIGEST_VAR]["md5"] == load_config(PROJECT_DIR, overrides=GOOD).digest
    for changed in ({"eval_seed": 7}, {"embed_pairs": []}, {"image_max_bytes": 10}):
        with pytest.raises(DbtError, match=r"The vars changed after validation: run `embed-udfs"):
            _run(catalog, tmp_path, {**stamped, **changed}, validate=False)
        assert _snapshot(catalog) == before
    _run(catalog, tmp_path, stamped, validate=False)  # unchanged: the guard lets it run
    _run(catalog, tmp_path, GOOD)  # what every embed-udfs command does
    assert query(catalog, "select count(*) from staging.stg_catalog__products") == [(5,)]


def test_plain_dbt_runs_with_a_notice_that_nothing_validated_the_vars(catalog, tmp_path, capfd):
    capfd.readouterr()
    _run(catalog, tmp_path, GOOD, validate=False, quiet=False)
    out = capfd.readouterr().out
    assert "these vars were not validated (dbt was run directly)" in out
    assert "`embed-udfs check`" in out


def test_a_hostile_space_name_is_refused_before_dbt_and_changes_nothing(catalog, tmp_path):
    overrides, expected = CASES[0][1], CASES[0][2]
    before = _snapshot(catalog)
    with pytest.raises(ConfigError) as refused:
        _run(catalog, tmp_path, overrides)
    assert expected in str(refused.value)
    assert _snapshot(catalog) == before
    assert query(catalog, "select count(*) from catalog.products") == [(5,)]


def test_a_jinja_value_is_rendered_before_it_is_checked(monkeypatch):
    """`env_var` in a var is rendered (as dbt renders it), then the rendered value checked."""
    monkeypatch.setenv("EMBED_METRICS_TEST_EF", "20")
    overrides = {**GOOD, "hnsw_ef_search": "{{ env_var('EMBED_METRICS_TEST_EF') }}"}
    assert "vars.hnsw_ef_search (20) is below the largest K (50)" in _python_message(overrides)
    monkeypatch.setenv("EMBED_METRICS_TEST_EF", "64")
    assert load_config(PROJECT_DIR, overrides=overrides).eval.ef_search == 64
    monkeypatch.delenv("EMBED_METRICS_TEST_EF")
    default = {**GOOD, "hnsw_ef_search": "{{ env_var('EMBED_METRICS_TEST_EF', 80) }}"}
    assert load_config(PROJECT_DIR, overrides=default).eval.ef_search == 80
    assert "Env var required but not provided: 'EMBED_METRICS_TEST_EF'" in _python_message(
        overrides
    )


def test_the_renderer_offers_env_var_and_nothing_else():
    for template in ("{{ range(3) | list }}", "{{ var('eval_seed') }}", "{{ ''.__class__ }}"):
        message = _python_message({"run_label": template})
        assert "vars.run_label" in message and "does not render" in message, template


def _run(settings, tmp_path, dbt_vars, *, validate: bool = True, quiet: bool = True) -> None:
    run_dbt(
        ["run", "--select", "stg_catalog__products"],
        settings,
        PROJECT_DIR,
        dbt_vars=dbt_vars,
        target_path=tmp_path / "target",
        quiet=quiet,
        validate=validate,
    )


def _dbt_digest(settings, tmp_path, capfd, overrides: dict[str, Any]) -> str:
    """The digest dbt's guard computes for the project's vars with `overrides` on top."""
    capfd.readouterr()
    run_dbt(
        ["run-operation", "print_config_digest", "--args", json.dumps({"names": digested_vars()})],
        settings,
        PROJECT_DIR,
        dbt_vars=overrides,
        target_path=tmp_path / "target",
        quiet=True,
        validate=False,
    )
    (digest,) = re.findall(r"^config digest: ([0-9a-f]{32})$", capfd.readouterr().out, re.M)
    return digest
