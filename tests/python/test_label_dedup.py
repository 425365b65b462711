"""1-NN label accuracy never counts a product's own duplicates: with the
sample not deduplicated, two copies of one listing (same text, same vector)
are not each other's nearest neighbour. Checked against numpy on the same rows."""

from __future__ import annotations

import numpy as np
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from reference import unit

from embed_udfs.db import connection


def test_nn1_excludes_the_products_own_duplicate_group(db, tmp_path):
    rng = np.random.default_rng(3)
    sections = ["bags"] * 20 + ["shoes"] * 20
    products = [(f"P{i:03d}", s) for i, s in enumerate(sections)]
    vectors = rng.normal(size=(len(products), 8))
    # P000 (bags) and P020 (shoes): one listing twice, with the same vector
    vectors[20] = vectors[0]
    dbt_vars = planted_config(
        [planted_space("t", "text", 8)], [], eval_dedup=False, retrieval_search="exact"
    )
    plant(db, config_for(dbt_vars), products, {"t": vectors})
    with connection(db) as conn:
        conn.execute(
            "update catalog.products set product_name = 'twin listing', "
            "product_description = 'the same words' where product_id in ('P000', 'P020')"
        )
        conn.commit()
    dbt_build(db, dbt_vars, tmp_path, "+int_label_neighbours")

    groups = dict(
        query(db, "select product_id, duplicate_group_id from intermediate.int_label_vectors")
    )
    assert len(groups) == len(products), "the sample should keep both copies"
    assert groups["P000"] == groups["P020"]
    neighbours = dict(
        query(db, "select product_id, neighbour_product_id from intermediate.int_label_neighbours")
    )
    assert neighbours["P000"] != "P020" and neighbours["P020"] != "P000"

    ids = [p for p, _ in products]
    sims = unit(vectors) @ unit(vectors).T
    group = np.array([groups[i] for i in ids])
    sims[group[:, None] == group[None, :]] = -np.inf  # own group, itself included
    expected = {ids[i]: ids[j] for i, j in enumerate(sims.argmax(axis=1))}
    assert neighbours == expected
