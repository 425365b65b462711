"""`embed-udfs tune --relation` on a user-shaped table: an HNSW index of each operator
class, the consistency checks (operator class against cosine, unit length) with what a
mismatch costs, the curve in the same table, the user's table left exactly as it was,
and each bad input refused with an error that says what to do."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PROJECT_DIR, config_for, planted_config, planted_space, query

from embed_udfs import cli, store
from embed_udfs.db import connection
from embed_udfs.errors import ConfigError, GridBelowDepth, NoAnnIndex, NotAVectorColumn
from embed_udfs.jobs.tune.job import TuneOptions, tune

N = 600
DIM = 16
QUERIES = 60
GRID = (10, 20, 40, 160)


def _config():
    return config_for(
        planted_config(
            [planted_space("t", "text", 8), planted_space("i", "image", 8)],
            [{"name": "p", "text_space": "t", "image_space": "i"}],
            eval_k_values=[1, 5, 10],
            ann_ef_search_grid=list(GRID),
            ann_tuning_queries=QUERIES,
        )
    )


def _checksum(settings, table: str) -> tuple:
    """Every row, every index and the table's definition: what `tune` must not change."""
    return (
        query(
            settings,
            "select count(*), md5(string_agg(id::text || ':' || embedding::text, ',' "
            f"order by id)) from {table}",
        )[0],
        query(
            settings,
            "select indexname, indexdef from pg_indexes where schemaname || '.' || tablename = %s "
            "order by 1",
            (table,),
        ),
        query(
            settings,
            "select n_tup_ins, n_tup_upd, n_tup_del from pg_stat_user_tables "
            "where schemaname || '.' || relname = %s",
            (table,),
        ),
    )


@pytest.fixture(scope="module")
def shop(db):
    """shop.items (id, title, embedding vector(16)): unit vectors, and shop.raw_items with
    the same directions at random lengths (0.2 to 5), as some serving tables hold them."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(N, DIM))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    lengths = rng.uniform(0.2, 5.0, size=(N, 1))
    config = _config()
    with connection(db) as conn:
        store.bootstrap(conn, config)
        conn.execute("create schema shop")
        for table, matrix in (("items", unit), ("raw_items", unit * lengths)):
            conn.execute(
                f"create table shop.{table} (id bigint primary key, title text, "
                f"embedding vector({DIM}))"
            )
            with conn.cursor().copy(f"copy shop.{table} (id, title, embedding) from stdin") as copy:
                for i, row in enumerate(matrix):
                    copy.write_row((i, f"item {i}", "[" + ",".join(map(repr, row.tolist())) + "]"))
            conn.execute(f"analyze shop.{table}")
        conn.execute("create table shop.notes (id bigint primary key, body text)")
        conn.commit()
    return config


def _index(settings, table: str, opclass: str | None, method: str = "hnsw") -> None:
    with connection(settings) as conn:
        conn.execute(f"drop index if exists shop.{table}_ann")
        if opclass:
            options = "(lists = 8)" if method == "ivfflat" else "(m = 8, ef_construction = 16)"
            conn.execute(
                f"create index {table}_ann on shop.{table} using {method} "
                f"(embedding {opclass}) with {options}"
            )
        conn.commit()


def _curve(settings, target: str) -> dict:
    rows = query(
        settings,
        "select search_param, search_value, value, operator_class, consistency_note "
        "from embeddings.ann_tuning where target = %s and metric = 'neighbour_recall' and k = 10",
        (target,),
    )
    return {(r[0], r[1]): r[2:] for r in rows}


def _numpy_agreement(matrix: np.ndarray, ids: list[str], score) -> float:
    """How much of the cosine top 10 the given scoring's top 10 keeps, over the queries."""
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    shares = []
    for q in ids:
        i = int(q)
        cosine = set(np.argsort(-(unit @ unit[i]), kind="stable")[:10])
        other = set(np.argsort(score(matrix, i), kind="stable")[:10])
        shares.append(len(cosine & other) / 10)
    return float(np.mean(shares))


@pytest.mark.parametrize("opclass", ["vector_cosine_ops", "vector_ip_ops", "vector_l2_ops"])
def test_an_hnsw_index_of_each_operator_class_on_unit_vectors(shop, db, opclass):
    _index(db, "items", opclass)
    before = _checksum(db, "shop.items")
    summary = tune(db, shop, relation="shop.items", column="embedding")
    assert _checksum(db, "shop.items") == before
    curve = _curve(db, "shop.items.embedding")
    assert {key[1] for key in curve if key[0] == "ef_search"} == set(GRID)
    assert {row[1] for row in curve.values()} == {opclass}
    # unit vectors: inner product and L2 order exactly like cosine, nothing to report
    assert {row[2] for row in curve.values()} == {None}
    assert summary.targets[0].notes == []
    recalls = [curve["ef_search", ef][0] for ef in GRID]
    assert recalls[-1] >= 0.99 and all(0 < r <= 1 for r in recalls)


def test_inner_product_ops_on_unnormalised_vectors_are_reported_with_their_cost(shop, db):
    _index(db, "raw_items", "vector_ip_ops")
    before = _checksum(db, "shop.raw_items")
    summary = tune(db, shop, relation="shop.raw_items")
    assert _checksum(db, "shop.raw_items") == before
    note = summary.targets[0].notes[0]
    assert "vector_ip_ops" in note and "not unit length" in note
    assert "longer vectors rank first" in note and "vector_cosine_ops" in note
    # the cost it states: the ip top 10's share of the cosine top 10, against numpy's
    matrix = np.array(
        [
            np.array(v.strip("[]").split(","), dtype=float)
            for (v,) in query(db, "select embedding::text from shop.raw_items order by id")
        ]
    )
    sampled = [
        r[0]
        for r in query(
            db,
            "select id::text from shop.raw_items order by md5(id::text), id::text limit %s",
            (QUERIES,),
        )
    ]
    expected = _numpy_agreement(matrix, sampled, lambda m, i: -(m @ m[i]))
    stated = float(note.split("shares ")[1].split(" of")[0])
    assert stated == pytest.approx(expected, abs=0.02)
    assert expected < 0.8, "random lengths should make inner product rank by norm"
    curve = _curve(db, "shop.raw_items.embedding")
    assert all(row[2] == note for row in curve.values())


def test_an_ivfflat_index_gets_the_probes_curve(shop, db):
    _index(db, "items", "vector_cosine_ops", method="ivfflat")
    before = _checksum(db, "shop.items")
    summary = tune(db, shop, relation="shop.items", options=TuneOptions(probes_grid=(1, 2, 4)))
    assert _checksum(db, "shop.items") == before
    curve = _curve(db, "shop.items.embedding")
    probes = sorted(key[1] for key in curve if key[0] == "probes")
    assert probes == [1, 2, 4, 8]  # the grid, and every list (lists = 8): exact
    assert curve["probes", 8][0] == pytest.approx(1.0)
    assert curve["probes", 1][0] < curve["probes", 8][0]
    assert summary.targets[0].chosen is not None


def test_bad_relations_are_refused_with_what_to_do(shop, db, capsys, monkeypatch):
    with pytest.raises(NotAVectorColumn, match="no pgvector column"):
        tune(db, shop, relation="shop.notes")
    with pytest.raises(NotAVectorColumn, match="column title of shop.items is of type text"):
        tune(db, shop, relation="shop.items", column="title")
    _index(db, "items", None)
    with pytest.raises(NoAnnIndex, match=r"no HNSW or IVFFlat index.*create index on shop.items"):
        tune(db, shop, relation="shop.items", column="embedding")
    _index(db, "items", "vector_cosine_ops")
    with pytest.raises(GridBelowDepth, match="below 10"):
        tune(db, shop, TuneOptions(ef_search_grid=(4, 64)), relation="shop.items")
    with pytest.raises(ConfigError, match="above 1000, the largest hnsw.ef_search"):
        tune(db, shop, TuneOptions(ef_search_grid=(64, 1600)), relation="shop.items")
    for bad in (0.0, -1.0, 1.01):
        with pytest.raises(ConfigError, match=r"number in \(0, 1\]"):
            tune(db, shop, TuneOptions(target_recall=bad), relation="shop.items")
    # the command line: one sentence on stderr, exit status 2, no traceback
    monkeypatch.setenv(
        "EMBED_UDFS_DSN", f"host={db.host} port={db.port} user={db.user} dbname={db.dbname}"
    )
    status = cli.main(["--project-dir", str(PROJECT_DIR), "tune", "--relation", "shop.notes"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: shop.notes has no pgvector column")
    assert "Traceback" not in err


def test_iterative_scan_modes_are_measured_beside_the_plain_scan(shop, db):
    _index(db, "items", "vector_cosine_ops")
    modes = ("off", "relaxed_order", "strict_order")
    summary = tune(db, shop, TuneOptions(iterative_scans=modes), relation="shop.items")
    rows = query(
        db,
        "select iterative_scan, search_value, value from embeddings.ann_tuning "
        "where target = 'shop.items.embedding' and metric = 'neighbour_recall' and k = 10",
    )
    assert {(mode, ef) for mode, ef, _ in rows} == {(m, ef) for m in modes for ef in GRID}
    assert all(0 < value <= 1 for *_, value in rows)
    # the tuned setting is a plain scan's: that is what the pre_hook sets
    assert summary.targets[0].chosen.setting.iterative_scan == "off"
    with pytest.raises(ConfigError, match="not one of pgvector's"):
        tune(db, shop, TuneOptions(iterative_scans=("sideways",)), relation="shop.items")
