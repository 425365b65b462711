"""How deep the neighbour lists go, per pair and direction: a reranker makes
the lists it rescores vars.rerank_candidates deep; every other pair and
direction stays at max(K). Each list is numpy's top items at its depth."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query

N, DIM, MAX_K, CANDIDATES = 60, 8, 5, 12


def _vars(search: str) -> dict:
    return planted_config(
        [
            planted_space("t", "text", DIM),
            planted_space("t2", "text", DIM),
            planted_space("i", "image", DIM),
        ],
        [
            {"name": "reranked", "text_space": "t", "image_space": "i"},
            {"name": "plain", "text_space": "t2", "image_space": "i"},
        ],
        eval_k_values=[1, MAX_K],
        hnsw_ef_search=40,
        retrieval_search=search,
        rerank_candidates=CANDIDATES,
        rerankers=[
            {
                "name": "one_way",
                "backend": "open_clip",
                "model": "embed-metrics-tiny-clip",
                "pairs": ["reranked"],
                "directions": ["text_to_image"],
            }
        ],
    )


@pytest.fixture(scope="module")
def vectors(db) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    products = [(f"P{i:03d}", f"s{i % 3}") for i in range(N)]
    spaces = {name: rng.normal(size=(N, DIM)) for name in ("t", "t2", "i")}
    plant(db, config_for(_vars("exact")), products, spaces)
    return {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in spaces.items()}


@pytest.mark.parametrize("search", ["exact", "hnsw"])
def test_only_reranked_lists_go_rerank_candidates_deep(db, vectors, tmp_path, search) -> None:
    dbt_build(db, _vars(search), tmp_path, "+int_retrieval_neighbours")
    depths = dict(
        ((pair, direction), (depth, n_queries))
        for pair, direction, depth, n_queries in query(
            db,
            "select pair, direction, max(neighbour_rank), count(distinct query_product_id)"
            " from intermediate.int_retrieval_neighbours group by 1, 2",
        )
    )
    assert depths == {
        ("reranked", "text_to_image"): (CANDIDATES, N),
        ("reranked", "image_to_text"): (MAX_K, N),
        ("plain", "text_to_image"): (MAX_K, N),
        ("plain", "image_to_text"): (MAX_K, N),
    }
    if search == "hnsw":
        return  # the index's lists are approximate; the exact ones are numpy's
    spaces = {
        ("reranked", "text_to_image"): ("t", "i"),
        ("reranked", "image_to_text"): ("i", "t"),
        ("plain", "text_to_image"): ("t2", "i"),
        ("plain", "image_to_text"): ("i", "t2"),
    }
    for (pair, direction), (query_space, gallery_space) in spaces.items():
        rows = query(
            db,
            "select query_product_id, array_agg(neighbour_product_id order by neighbour_rank)"
            " from intermediate.int_retrieval_neighbours where pair = %s and direction = %s"
            " group by 1",
            (pair, direction),
        )
        distances = 1 - vectors[query_space] @ vectors[gallery_space].T
        depth = depths[(pair, direction)][0]
        for query_id, listed in rows:
            d = distances[int(query_id[1:])]
            expected = [f"P{j:03d}" for j in np.lexsort((np.arange(N), d))[:depth]]
            assert listed == expected, (pair, direction, query_id)
