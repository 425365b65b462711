"""macros/exact_search.sql (and the superseded formulations the bench keeps in
bench/sql/exact_search_alternatives.sql) against numpy on planted data: every query's top
max(K) neighbour list (cosine distance, ties by product id) and the
positive's rank, identical, in both directions.

The macros use no dbt context, so they are rendered here with plain Jinja and
run on the embedded server. The planting has exact ties (identical vectors,
some of them a positive's twin), a section with one product, positives far
beyond max(K), and a gallery smaller than max(K).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jinja2
import numpy as np
import psycopg
import pytest
from conftest import PROJECT_DIR
from psycopg import sql

from embed_udfs.db import ConnectionSettings, connection

N, DIM, MAX_K = 150, 8, 10
EXACT_ALTERNATIVES = PROJECT_DIR / "bench" / "sql" / "exact_search_alternatives.sql"
DIRECTIONS = {"text_to_image": ("text", "image"), "image_to_text": ("image", "text")}


def macros() -> jinja2.runtime.TemplateModule:
    """exact_neighbours (macros/exact_search.sql) and the alternatives it superseded."""
    files = (PROJECT_DIR / "macros" / "exact_search.sql", EXACT_ALTERNATIVES)
    text = "\n".join(path.read_text() for path in files)
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).module


def planted(n: int, seed: int = 7) -> tuple[list[str], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    sections = [f"s{s}" for s in rng.integers(0, 4, size=n)]
    sections[0] = "solo"
    base = rng.normal(size=(n, DIM))
    spaces = {
        "text": base + rng.normal(size=(n, DIM)),
        "image": base + rng.normal(size=(n, DIM)),
    }
    # exact ties: a product's twin in the gallery (the positive's twin for
    # product 5 and 6), and a run of products sharing one vector
    for matrix in spaces.values():
        matrix[6] = matrix[5]
        matrix[20:26] = matrix[30]
        matrix[40] = matrix[41]
    unit = {
        k: (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
        for k, m in spaces.items()
    }
    return sections, unit


def reference(
    queries: np.ndarray, gallery: np.ndarray, max_k: int
) -> tuple[np.ndarray, np.ndarray, list[int | None]]:
    """Cosine distances in float64, ties by index (= product id order), the
    positive's rank (None when max_k or more are strictly closer)."""
    q = queries.astype(np.float64) / np.linalg.norm(
        queries.astype(np.float64), axis=1, keepdims=True
    )
    distinct, inverse = np.unique(gallery, axis=0, return_inverse=True)
    g = distinct.astype(np.float64) / np.linalg.norm(
        distinct.astype(np.float64), axis=1, keepdims=True
    )
    distances = 1 - (q @ g.T)[:, inverse.reshape(-1)]  # identical vectors: identical distances
    order = np.arange(len(gallery))
    lists = np.array([np.lexsort((order, d))[:max_k] for d in distances])
    ranks = []
    for i, d in enumerate(distances):
        closer = int((d < d[i]).sum())
        ranks.append(closer + 1 if closer < max_k else None)
    return distances, lists, ranks


def test_planting_has_no_float32_near_ties() -> None:
    """Precondition of exact comparison: pgvector sums in float32, so two
    different distances closer than ~1e-7 could order either way. The planting
    has exact ties and ties by construction only; no near ties in the top
    max(K) or at any positive."""
    sections, spaces = planted(N)
    for query, gallery in DIRECTIONS.values():
        distances, lists, _ = reference(spaces[query], spaces[gallery], MAX_K)
        for i, d in enumerate(distances):
            values = np.unique(np.concatenate([np.sort(d)[: MAX_K + 1], [d[i]]]))
            near = np.abs(d[:, None] - values[None, :])
            assert not ((near > 0) & (near < 1e-6)).any(), (
                f"near tie for query {i}: pick another seed"
            )
    # the planting exercises what it claims
    _, _, ranks = reference(spaces["text"], spaces["image"], MAX_K)
    assert any(r is None for r in ranks) and any(r == 1 for r in ranks)
    assert sections.count("solo") == 1


def _load(
    conn: psycopg.Connection, sections: list[str], spaces: dict[str, np.ndarray], n: int
) -> None:
    for space, matrix in spaces.items():
        table = sql.Identifier(f"eval_{space}_{n}")
        conn.execute(
            sql.SQL(
                "create table {} (product_id text, collection_section text, embedding vector({}))"
                " with (toast_tuple_target = 8160)"
            ).format(table, sql.Literal(DIM))
        )
        conn.execute(
            sql.SQL("alter table {} alter column embedding set storage plain").format(table)
        )
        with conn.cursor().copy(
            sql.SQL(
                "copy {} (product_id, collection_section, embedding) from stdin (format binary)"
            ).format(table)
        ) as copy:
            copy.set_types(["text", "text", "vector"])
            for i, (section, vector) in enumerate(zip(sections[:n], matrix[:n], strict=True)):
                copy.write_row((f"P{i:04d}", section, vector))
        conn.execute(sql.SQL("analyze {}").format(table))


@pytest.fixture(scope="module")
def planted_db(db: ConnectionSettings) -> Iterator[tuple[ConnectionSettings, list[str], dict]]:
    sections, spaces = planted(N)
    with connection(db) as conn:
        conn.execute("create extension if not exists vector")
        _load(conn, sections, spaces, N)
        _load(conn, sections, spaces, 7)  # a gallery smaller than max(K)
        _load(conn, sections, spaces, 0)  # no gallery at all
        conn.commit()
    yield db, sections, spaces


Render = Callable[[str, str, int], list[str]]

FORMULATIONS: dict[str, Render] = {
    # statements to run, the last one the query
    "lateral": lambda q, g, k: [macros().exact_neighbours_per_query(q, g, DIM, k, 25)],
    "lateral, no bound": lambda q, g, k: [macros().exact_neighbours_per_query(q, g, DIM, k, 0)],
    "merge": lambda q, g, k: [macros().exact_neighbours_merge(q, g, DIM, k, 1, 1)],
    "merge, one block": lambda q, g, k: [macros().exact_neighbours_merge(q, g, DIM, k, 512, 1)],
    "blocked": lambda q, g, k: [macros().exact_neighbours(q, g, DIM, k)],
    # blocks of one row; a sample of 20 rows bounds loosely, so many pairs reach the sort
    "blocked, one-row blocks": lambda q, g, k: [macros().exact_neighbours(q, g, DIM, k, 1, 20)],
    # the bound from exactly max(K) rows: ties at the bound must survive it
    "blocked, max(K) sample": lambda q, g, k: [macros().exact_neighbours(q, g, DIM, k, 64, k)],
    "blocked, gallery as a subquery": lambda q, g, k: [
        macros().exact_neighbours(f"(select * from {q})", f"(select * from {g})", DIM, k, 16)
    ],
    "walk": lambda q, g, k: [macros().exact_neighbours_walk(q, g, DIM, k, 1)],
    "walk, one block": lambda q, g, k: [macros().exact_neighbours_walk(q, g, DIM, k, 128)],
    "function": lambda q, g, k: [
        macros().exact_search_function(f"exact_top_k_{g}", g, DIM, k, 25),
        macros().exact_neighbours_parallel(q, g, f"exact_top_k_{g}", DIM, k),
    ],
}


@pytest.mark.parametrize("n", [N, 7])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("formulation", list(FORMULATIONS))
def test_neighbours_and_ranks_match_numpy(
    planted_db, formulation: str, direction: str, n: int
) -> None:
    settings, sections, spaces = planted_db
    query, gallery = DIRECTIONS[direction]
    statements = FORMULATIONS[formulation](f"eval_{query}_{n}", f"eval_{gallery}_{n}", MAX_K)
    with connection(settings) as conn:
        conn.execute(macros().exact_search_settings())  # the pre_hook, in this transaction
        for statement in statements[:-1]:
            conn.execute(statement)
        cursor = conn.execute(statements[-1])
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
        conn.rollback()

    assert columns == [
        "query_product_id",
        "collection_section",
        "neighbour_rank",
        "neighbour_product_id",
        "neighbour_section",
        "distance",
        "is_positive",
        "positive_distance",
        "positive_rank",
    ]
    distances, lists, ranks = reference(spaces[query][:n], spaces[gallery][:n], MAX_K)
    k = min(MAX_K, n)
    assert len(rows) == n * k
    by_query: dict[int, list[dict]] = {}
    for row in rows:
        by_query.setdefault(int(row["query_product_id"][1:]), []).append(row)
    assert sorted(by_query) == list(range(n))
    for i, got in by_query.items():
        got.sort(key=lambda r: r["neighbour_rank"])
        assert [r["neighbour_rank"] for r in got] == list(range(1, k + 1))
        assert [int(r["neighbour_product_id"][1:]) for r in got] == list(lists[i]), f"query {i}"
        assert {r["positive_rank"] for r in got} == {ranks[i]}, f"query {i}"
        for r in got:
            j = int(r["neighbour_product_id"][1:])
            assert r["distance"] == pytest.approx(distances[i, j], abs=1e-6)
            assert r["neighbour_section"] == sections[j]
            assert r["collection_section"] == sections[i]
            assert r["is_positive"] == (j == i)
            assert r["positive_distance"] == pytest.approx(distances[i, i], abs=1e-6)
    # the planted ties and edge cases are really in play
    if n == N:
        assert any(ranks[i] is None for i in by_query)
        twins = [int(r["neighbour_product_id"][1:]) for r in by_query[5]]
        if 6 in twins:  # the positive's twin ties with it and sorts after it
            assert twins.index(6) == twins.index(5) + 1


def test_an_empty_gallery_lists_nothing(planted_db) -> None:
    """No vectors in the gallery space (an empty sample): no rows, no error."""
    settings, _, _ = planted_db
    with connection(settings) as conn:
        conn.execute(macros().exact_search_settings())
        rows = conn.execute(macros().exact_neighbours("eval_text_150", "eval_image_0", DIM, MAX_K))
        assert rows.fetchall() == []
        conn.rollback()
