"""The whole-catalog models that build incrementally: after 1% of the catalog changes
(a text or vector, a section, a product removed, one added) an incremental build
equals a full rebuild row for row, and rewrites only the rows of the products that
changed: the cleaned texts, the model inputs, the near-duplicate search and the
whole-catalog gallery."""

from __future__ import annotations

import random

import numpy as np
import pytest
import yaml
from conftest import PROJECT_DIR, dbt_build, plant, planted_config, planted_space, query

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


def test_space_inputs_recompute_only_what_changed_and_equal_a_full_rebuild(db, catalog, tmp_path):
    """int_space_inputs after 1% of the catalog changes (a text, a section, a store, an
    image, a removed product, a new one): only those products' rows are written, in
    every space, and the table equals a full rebuild; a change to one space's
    configuration recomputes that space's rows and no other."""
    model = "intermediate.int_space_inputs"
    key = "space || '/' || product_id"

    def stamps() -> dict[str, str]:
        return dict(query(db, f"select {key}, xmin::text from {model}"))

    def rows() -> list[tuple]:
        return query(db, f"select * from {model} order by space, product_id")

    dbt_build(db, {}, tmp_path, "+int_space_inputs")
    spaces = {space for (space,) in query(db, f"select distinct space from {model}")}
    assert len(spaces) > 1
    before = stamps()
    dbt_build(db, {}, tmp_path, "int_space_inputs")
    assert stamps() == before, "nothing changed, yet rows were written again"
    with connection(db) as conn:
        conn.execute(
            "update catalog.products set product_description = 'A wool tote, restocked' "
            "where product_id = 'P0107'"
        )
        conn.execute(
            "update catalog.products set collection_section = 'bags' where product_id = 'P0110'"
        )
        conn.execute("update catalog.products set store_name = 'Far' where product_id = 'P0111'")
        conn.execute(
            "update catalog.products set image_uri = 'file:///new.png' where product_id = 'P0112'"
        )
        conn.execute("delete from catalog.products where product_id = 'P0120'")
        conn.execute(
            "insert into catalog.products (product_id, product_name, product_description, "
            "collection_section) values ('P8888', 'Wool Lamp', 'A lamp.', 'lamps')"
        )
        conn.commit()
    dbt_build(db, {}, tmp_path, "+int_space_inputs")
    changed = {"P0107", "P0110", "P0111", "P0112", "P8888"}
    assert set(_rewritten_keys(stamps(), before)) == {f"{s}/{p}" for s in spaces for p in changed}
    incremental = rows()
    assert not any(row[1] == "P0120" for row in incremental)
    run_dbt(
        ["build", "--full-refresh", "--select", "int_space_inputs"],
        db,
        PROJECT_DIR,
        target_path=tmp_path / "target",
        quiet=True,
    )
    assert rows() == incremental
    # one space's prompt changes: its rows, and only its, are computed again
    configured = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    text = next(
        space["name"] for space in configured["embed_spaces"] if space["modality"] == "text"
    )
    prompted = [
        {**space, "prompt": "a catalog photo of "} if space["name"] == text else space
        for space in configured["embed_spaces"]
    ]
    kept = stamps()
    dbt_build(db, {"embed_spaces": prompted}, tmp_path, "+int_space_inputs")
    rewritten = set(_rewritten_keys(stamps(), kept))
    assert rewritten == {k for k in kept if k.startswith(f"{text}/")}
    prompts = query(
        db,
        f"select count(*) from {model} where space = %s and model_input like 'a catalog %%'",
        (text,),
    )
    assert prompts[0][0] == N
    # a table from before the key: built whole once, the same rows, then incremental again
    settled = rows()
    with connection(db) as conn:
        conn.execute(f"alter table {model} drop column input_key")
        conn.commit()
    dbt_build(db, {"embed_spaces": prompted}, tmp_path, "int_space_inputs")
    assert rows() == settled
    again = stamps()
    dbt_build(db, {"embed_spaces": prompted}, tmp_path, "int_space_inputs")
    assert stamps() == again


def _rewritten_keys(now: dict[str, str], since: dict[str, str]) -> list[str]:
    return [k for k, xmin in now.items() if since.get(k) != xmin]


# (model, its key, columns a build stamps and a rebuild cannot reproduce)
VECTOR_MODELS = [
    ("int_dedup_vectors", "space, product_id", "changed_at"),
    ("int_near_duplicate_neighbours", "product_id, neighbour_id", "found_at"),
    ("int_catalog_gallery_vectors", "space, product_id", "changed_at"),
]
DIM = 16


def _vector_rows(db, model: str, key: str, stamp: str) -> dict[tuple, tuple]:
    """Every row by its key, the build stamp left out, vectors as text."""
    names = [c for (c,) in query(db, _columns(model)) if c != stamp]
    listed = ", ".join(f"{name}::text" if name == "embedding" else name for name in names)
    keys = [k.strip() for k in key.split(",")]
    rows = query(db, f"select {listed} from intermediate.{model}")
    return {tuple(row[names.index(k)] for k in keys): row for row in rows}


def _vector_xmins(db, model: str, key: str) -> dict[tuple, str]:
    rows = query(db, f"select {key}, xmin::text from intermediate.{model}")
    return {tuple(row[:-1]): row[-1] for row in rows}


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _near(vector: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at cosine distance about 0.005 from `vector`."""
    return _unit((vector + 0.1 * rng.normal(size=vector.shape) / np.sqrt(DIM))[None])[0]


def test_vector_models_build_incrementally_and_equal_a_full_rebuild(db, tmp_path):
    """The near-duplicate search and the whole-catalog gallery after a 1% change:
    a moved vector, a section change, a removed product and a new near-duplicate."""
    rng = np.random.default_rng(3)
    spaces = [
        {**planted_space("t", "text", DIM), "near_duplicates": True},
        planted_space("i", "image", DIM),
    ]
    variables = planted_config(
        spaces,
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        near_duplicate_max_distance=0.02,
        eval_sample_size=200,
    )
    config = load_config(PROJECT_DIR, overrides=variables)
    ids = [f"P{i:04d}" for i in range(N)]
    base = _unit(rng.normal(size=(N, DIM)))
    text = _unit(base + 0.3 * rng.normal(size=base.shape))
    for i in range(1, N, 20):  # planted near-duplicate pairs (P0000, P0001), (P0020, P0021), ...
        text[i] = _near(text[i - 1], rng)
        base[i] = _near(base[i - 1], rng)
    plant(
        db,
        config,
        [(p, SECTIONS[i % len(SECTIONS)]) for i, p in enumerate(ids)],
        {
            "t": text,
            "i": base,
        },
    )
    selection = [f"+{model}" for model, _, _ in VECTOR_MODELS]
    dbt_build(db, variables, tmp_path, *selection)
    first = {m: _vector_rows(db, m, k, s) for m, k, s in VECTOR_MODELS}
    assert ("P0020", "P0021") in first["int_near_duplicate_neighbours"]
    before = {m: _vector_xmins(db, m, k) for m, k, _ in VECTOR_MODELS}

    moved = _near(text[100], rng)  # P0007's text moves next to P0100's
    added_text, added_image = _near(text[40], rng), _near(base[40], rng)  # P9999 ~ P0040
    with connection(db) as conn:
        store.write_vectors(conn, config, config.space("t"), ["P0007"], ["h7b"], moved[None], "p")
        conn.execute(
            "update catalog.products set collection_section = 'toys' where product_id = 'P0010'"
        )
        conn.execute("delete from catalog.products where product_id = 'P0021'")
        vectors = store.vectors_table(config).as_string(conn)
        conn.execute(f"delete from {vectors} where product_id = 'P0021'")
        conn.execute(
            "insert into catalog.products (product_id, product_name, product_description, "
            "collection_section) values ('P9999', 'product P9999', 'planted', 'lamps')"
        )
        for space, vector in (("t", added_text), ("i", added_image)):
            store.write_vectors(
                conn, config, config.space(space), ["P9999"], ["h9"], vector[None], "p"
            )
        conn.commit()
    dbt_build(db, variables, tmp_path, *selection)
    incremental = {m: _vector_rows(db, m, k, s) for m, k, s in VECTOR_MODELS}

    dedup_rewritten = {
        key
        for key, xmin in _vector_xmins(db, "int_dedup_vectors", "space, product_id").items()
        if before["int_dedup_vectors"].get(key) != xmin
    }
    assert dedup_rewritten == {("t", "P0007"), ("t", "P9999")}
    pairs = incremental["int_near_duplicate_neighbours"]
    assert ("P0007", "P0100") in pairs and ("P0040", "P9999") in pairs
    assert ("P0020", "P0021") not in pairs
    gallery_rewritten = {
        key
        for key, xmin in _vector_xmins(
            db, "int_catalog_gallery_vectors", "space, product_id"
        ).items()
        if before["int_catalog_gallery_vectors"].get(key) != xmin
    }
    # only the changed products and the duplicate groups they joined or left
    assert {p for _, p in gallery_rewritten} <= {"P0007", "P0100", "P0010", "P0020", "P9999"}
    assert ("t", "P0010") in gallery_rewritten
    assert not any(p == "P0021" for _, p in incremental["int_catalog_gallery_vectors"])

    run_dbt(
        ["build", "--full-refresh", "--select", *selection],
        db,
        PROJECT_DIR,
        dbt_vars=variables,
        target_path=tmp_path / "target",
        quiet=True,
    )
    for model, key, stamp in VECTOR_MODELS:
        assert incremental[model] == _vector_rows(db, model, key, stamp), model
