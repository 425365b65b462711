"""The whole-catalog gallery scope on planted data: the sampled queries ranked against
the sample and against every product in the catalog, each checked against numpy, and the
rule that a larger gallery holding the sample never ranks a positive better."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from reference import recall_at, unit, wilson

K_VALUES = [1, 5, 10, 50]
SECTIONS = ["bags", "shoes", "lamps", "toys"]
N_PRODUCTS = 900
SAMPLE = 240
DIM = 24
RANKED = ("int_text_to_image_neighbours+", "int_image_to_text_neighbours+")


def _vars(**extra) -> dict:
    settings = {
        "eval_k_values": K_VALUES,
        "hnsw_ef_search": 400,
        "retrieval_search": "exact",
        "eval_sample_size": SAMPLE,
        **extra,
    }
    return planted_config(
        [planted_space("t", "text", DIM), planted_space("i", "image", DIM)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        **settings,
    )


def _numpy_ranks(queries: np.ndarray, gallery: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """1 + gallery items strictly closer (cosine) than each query's positive (a gallery row)."""
    sims = unit(queries) @ unit(gallery).T
    own = sims[np.arange(len(queries)), positive]
    return 1 + (sims > own[:, None]).sum(axis=1)


@pytest.fixture(scope="module")
def planted(db, tmp_path_factory):
    """Section clusters with noisy text/image pairs; the sample is a quarter of the catalog."""
    rng = np.random.default_rng(23)
    sections = rng.choice(SECTIONS, size=N_PRODUCTS)
    products = [(f"P{i:05d}", str(s)) for i, s in enumerate(sections)]
    centres = {s: rng.normal(size=DIM) * 1.2 for s in SECTIONS}
    base = np.stack([centres[s] + rng.normal(size=DIM) for _, s in products])
    texts = base + 1.0 * rng.normal(size=base.shape)
    images = base + 1.0 * rng.normal(size=base.shape)
    dbt_vars = _vars()
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})
    dbt_build(db, dbt_vars, tmp_path_factory.mktemp("gallery"))
    sampled = {p for (p,) in query(db, "select product_id from intermediate.int_eval_sample")}
    return products, texts, images, sampled


def _expected(products, texts, images, sampled):
    """numpy ranks per (scope, direction): {product_id: rank} for the sampled queries."""
    ids = np.array([p for p, _ in products])
    in_sample = np.array([p in sampled for p in ids])
    q_index = np.flatnonzero(in_sample)
    out = {}
    for direction, (q, g) in {
        "text_to_image": (texts, images),
        "image_to_text": (images, texts),
    }.items():
        # sample: the sampled products' other modality; catalog: every product's
        sample_ranks = _numpy_ranks(q[q_index], g[q_index], np.arange(len(q_index)))
        catalog_ranks = _numpy_ranks(q[q_index], g, q_index)
        out[("sample", direction)] = dict(zip(ids[q_index], sample_ranks, strict=True))
        out[("catalog", direction)] = dict(zip(ids[q_index], catalog_ranks, strict=True))
    return out


def test_both_galleries_match_numpy(db, planted):
    products, texts, images, sampled = planted
    assert len(sampled) == SAMPLE
    expected = _expected(products, texts, images, sampled)
    section_of = dict(products)
    sizes = {
        (scope, direction): (size, is_sample)
        for scope, direction, size, is_sample in query(
            db,
            "select distinct gallery_scope, direction, gallery_size, gallery_is_sample "
            "from metrics.fct_retrieval_metrics",
        )
    }
    for direction in ("text_to_image", "image_to_text"):
        assert sizes[("sample", direction)] == (SAMPLE, False)
        assert sizes[("catalog", direction)] == (N_PRODUCTS, False)
    ranks = query(
        db,
        "select gallery_scope, direction, product_id, positive_rank, gallery_size "
        "from metrics.fct_retrieval_ranks",
    )
    assert len(ranks) == 2 * 2 * SAMPLE
    for scope, direction, product_id, rank, _ in ranks:
        want = int(expected[(scope, direction)][product_id])
        assert rank == (want if want <= max(K_VALUES) else None), (scope, direction, product_id)
    metrics = {
        (r[0], r[1], r[2], r[3]): r[4:]
        for r in query(
            db,
            "select gallery_scope, direction, section, metric, value, n, hits, "
            "ci_low_independent, ci_high_independent, search_method "
            "from metrics.fct_retrieval_metrics",
        )
    }
    for (scope, direction), by_product in expected.items():
        for section in [*SECTIONS, "ALL"]:
            rows = np.array([r for p, r in by_product.items() if section in ("ALL", section_of[p])])
            for k in K_VALUES:
                value, n, hits, ci_low, ci_high, method = metrics[
                    (scope, direction, section, f"recall_at_{k}")
                ]
                assert method == "exact"
                assert n == len(rows)
                assert hits == int((rows <= k).sum())
                assert value == pytest.approx(recall_at(rows, k), abs=1e-12)
                # the independent-query interval; the published one resamples clusters
                assert (ci_low, ci_high) == pytest.approx(wilson(hits, n), abs=1e-9)
    # the planting is not trivial, and the bigger gallery is measurably harder
    t2i = np.array(list(expected[("sample", "text_to_image")].values()))
    t2i_catalog = np.array(list(expected[("catalog", "text_to_image")].values()))
    assert 0.1 < recall_at(t2i, 1) < 0.9
    assert recall_at(t2i_catalog, 10) < recall_at(t2i, 10)


def test_catalog_never_ranks_a_positive_better_than_the_sample(db, planted):
    """The rule: the sample's gallery is a subset of the catalog's and the positive is in
    both, so every item strictly closer in the sample is strictly closer in the catalog:
    rank(catalog) >= rank(sample) per query, hence R@K(catalog) <= R@K(sample) per section."""
    rows = query(
        db,
        "select s.direction, s.product_id, s.positive_rank, c.positive_rank "
        "from metrics.fct_retrieval_ranks as s "
        "join metrics.fct_retrieval_ranks as c using (pair, direction, product_id) "
        "where s.gallery_scope = 'sample' and c.gallery_scope = 'catalog'",
    )
    assert len(rows) == 2 * SAMPLE
    worse = 0
    for _, _, sample_rank, catalog_rank in rows:
        if sample_rank is None:
            assert catalog_rank is None
        elif catalog_rank is not None:
            assert catalog_rank >= sample_rank
            worse += catalog_rank > sample_rank
    assert worse > SAMPLE // 4, "the catalog should push many positives down"
    recalls = query(
        db,
        "select s.value, c.value from metrics.fct_retrieval_metrics as s "
        "join metrics.fct_retrieval_metrics as c using (pair, direction, section, metric) "
        "where s.gallery_scope = 'sample' and c.gallery_scope = 'catalog' "
        "and s.metric like 'recall_at_%%'",
    )
    assert recalls and all(c <= s for s, c in recalls)


def test_history_and_deltas_carry_the_scope(db, planted):
    rows = query(
        db,
        "select gallery_scope, min(gallery_size), max(gallery_size), count(*) "
        "from metrics.fct_metric_history where family = 'retrieval' group by gallery_scope",
    )
    got = {scope: (low, high) for scope, low, high, _ in rows}
    assert got == {"sample": (SAMPLE, SAMPLE), "catalog": (N_PRODUCTS, N_PRODUCTS)}
    other = query(
        db,
        "select distinct gallery_scope from metrics.fct_metric_history where family <> 'retrieval'",
    )
    assert other == [("sample",)]


def test_catalog_over_budget_takes_the_index(db, planted, tmp_path):
    """Past vars.catalog_exact_max_pairs the catalog is searched through its own HNSW
    index; the sample's figures stay exact and unchanged."""
    products, texts, images, sampled = planted
    before = query(
        db,
        "select direction, section, metric, value from metrics.fct_retrieval_metrics "
        "where gallery_scope = 'sample' order by 1, 2, 3",
    )
    dbt_vars = _vars(retrieval_search="auto", catalog_exact_max_pairs=1000)
    dbt_build(db, dbt_vars, tmp_path, "int_catalog_gallery_vectors+")
    indexes = query(
        db,
        "select count(*) from pg_indexes where schemaname = 'intermediate' "
        "and tablename = 'int_catalog_gallery_vectors' and indexdef like '%%hnsw%%'",
    )
    assert indexes == [(2,)]
    methods = dict(
        query(
            db,
            "select distinct gallery_scope, search_method from metrics.fct_retrieval_metrics",
        )
    )
    assert methods == {"sample": "exact", "catalog": "hnsw"}
    after = query(
        db,
        "select direction, section, metric, value from metrics.fct_retrieval_metrics "
        "where gallery_scope = 'sample' order by 1, 2, 3",
    )
    assert after == before
    # ef_search 400 over 900 items: the index finds (almost) every true neighbour
    expected = _expected(products, texts, images, sampled)
    ranks = query(
        db,
        "select direction, product_id, positive_rank from metrics.fct_retrieval_ranks "
        "where gallery_scope = 'catalog'",
    )
    agree = sum(
        rank == (int(expected[("catalog", d)][p]) if expected[("catalog", d)][p] <= 50 else None)
        for d, p, rank in ranks
    )
    assert agree / len(ranks) >= 0.98


def test_catalog_no_larger_than_the_sample_is_copied_and_says_so(db, planted, tmp_path):
    dbt_vars = _vars(eval_sample_size=5000)
    dbt_build(db, dbt_vars, tmp_path, "int_eval_candidates+")
    rows = query(
        db,
        "select s.value, c.value, c.gallery_size, c.gallery_is_sample "
        "from metrics.fct_retrieval_metrics as s "
        "join metrics.fct_retrieval_metrics as c using (pair, direction, section, metric) "
        "where s.gallery_scope = 'sample' and c.gallery_scope = 'catalog'",
    )
    assert rows
    for sample_value, catalog_value, size, is_sample in rows:
        assert catalog_value == sample_value
        assert size == N_PRODUCTS
        assert is_sample is True


def test_scorecard_and_report_show_both_galleries_with_sizes(db, planted):
    from embed_udfs import report
    from embed_udfs.db import connection
    from embed_udfs.report.html import render_report

    config = config_for(_vars())
    with connection(db) as conn:
        card = report.scorecard(conn, config)
        page = render_report(conn, config)
    # the figures as the marts hold them now (an earlier test may have rebuilt the sample)
    figures = {
        scope: (size, value)
        for scope, size, value in query(
            db,
            "select gallery_scope, gallery_size, value from metrics.fct_retrieval_metrics "
            "where section = 'ALL' and metric = 'recall_at_10' and direction = 'text_to_image'",
        )
    }
    sampled = query(db, "select count(*) from intermediate.int_eval_sample")[0][0]
    assert figures["sample"][0] == sampled and figures["catalog"][0] == N_PRODUCTS
    lines = [line for line in card.splitlines() if "text_to_image" in line]
    for scope, (size, value) in figures.items():
        line = next(line for line in lines if f" {scope} " in line)
        assert f"{size:,}" in line and f"{value:.3f}" in line, line
    assert "Recall against gallery size" in page
    assert f"{N_PRODUCTS:,}" in page and f"{sampled:,}" in page
