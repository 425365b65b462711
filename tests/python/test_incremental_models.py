"""The whole-catalog models that build incrementally: after 1% of the catalog changes
(a text, a section, a product removed, one added) an incremental build equals a full
rebuild row for row, and rewrites only the rows of the products that changed."""

from __future__ import annotations

import random

import pytest
from conftest import PROJECT_DIR, dbt_build, query

from embed_udfs import store
from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt

N = 400
SECTIONS = ["bags", "shoes", "lamps", "toys"]
WORDS = ["red", "blue", "leather", "canvas", "wool", "vintage", "tote", "lamp", "free shipping"]
# (model, its key): the incremental whole-catalog models
INCREMENTAL = [("int_product_texts_cleaned", "product_id")]


def _rows(db, model: str, key: str) -> dict[str, tuple]:
    """Every row of the model by its key, every column but none of the system ones."""
    rows = query(db, f"select * from intermediate.{model} order by {key}")
    names = [c for (c,) in query(db, _columns(model))]
    index = names.index(key)
    return {row[index]: row for row in rows}


def _columns(model: str) -> str:
    return (
        "select column_name from information_schema.columns where table_schema = "
        f"'intermediate' and table_name = '{model}' order by ordinal_position"
    )


def _rewritten(db, model: str, key: str, since: dict[str, str]) -> set[str]:
    """Keys whose row another transaction wrote since `since` (key -> xmin)."""
    now = dict(query(db, f"select {key}, xmin::text from intermediate.{model}"))
    return {k for k, xmin in now.items() if since.get(k) != xmin}


@pytest.fixture(scope="module")
def catalog(db):
    pick = random.Random(9)
    config = load_config(PROJECT_DIR)
    rows = [
        (
            f"P{i:04d}",
            f"{' '.join(pick.sample(WORDS, 3)).title()} {i}",
            f"A {pick.choice(WORDS)} piece, free shipping. {i}",
            SECTIONS[i % len(SECTIONS)],
            pick.choice(["Shop4U", "Corner Shop", None]),
        )
        for i in range(N)
    ]
    with connection(db) as conn:
        conn.execute(store.PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("truncate catalog.products")
        with conn.cursor().copy(
            "copy catalog.products (product_id, product_name, product_description, "
            "collection_section, store_name) from stdin"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
    return rows


def test_incremental_build_equals_full_rebuild_after_a_one_percent_change(db, catalog, tmp_path):
    selection = [f"+{model}" for model, _ in INCREMENTAL]
    dbt_build(db, {}, tmp_path, *selection)
    before = {
        model: dict(query(db, f"select {key}, xmin::text from intermediate.{model}"))
        for model, key in INCREMENTAL
    }
    # 1% of 400: a text, a section, a store, a removed product and a new one
    with connection(db) as conn:
        conn.execute(
            "update catalog.products set product_description = 'Brand new wool tote' "
            "where product_id = 'P0007'"
        )
        conn.execute(
            "update catalog.products set collection_section = 'toys' where product_id = 'P0010'"
        )
        conn.execute(
            "update catalog.products set store_name = 'Elsewhere' where product_id = 'P0011'"
        )
        conn.execute("delete from catalog.products where product_id = 'P0020'")
        conn.execute(
            "insert into catalog.products (product_id, product_name, product_description, "
            "collection_section) values ('P9999', 'Canvas Lamp', 'A lamp.', 'lamps')"
        )
        conn.commit()
    changed = {"P0007", "P0010", "P0011", "P9999"}
    dbt_build(db, {}, tmp_path, *selection)
    incremental = {model: _rows(db, model, key) for model, key in INCREMENTAL}
    for model, key in INCREMENTAL:
        assert _rewritten(db, model, key, before[model]) == changed, model
        assert "P0020" not in incremental[model] and "P9999" in incremental[model]
        assert incremental[model]["P0010"][1] == "toys"
    run_dbt(
        ["build", "--full-refresh", "--select", *selection],
        db,
        PROJECT_DIR,
        target_path=tmp_path / "target",
        quiet=True,
    )
    for model, key in INCREMENTAL:
        full = _rows(db, model, key)
        assert len(full) == N
        assert incremental[model] == full, model
