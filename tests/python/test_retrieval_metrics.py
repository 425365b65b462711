"""Known-answer tests of the retrieval and gap marts, on the real database,
each checked against the numpy reference on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from reference import (
    exact_ranks,
    gaps,
    mrr_at,
    ndcg_at,
    rank_bounds,
    recall_at,
    section_purity_at,
    top_k,
    wilson,
)

from embed_udfs.db import connection
from embed_udfs.errors import ConfigError

K_VALUES = [1, 5, 10, 50]
# the rank models and everything after them (the eval sample stays as built)
RANKED = ("int_text_to_image_neighbours+", "int_image_to_text_neighbours+")
SECTIONS = ["bags", "shoes", "lamps", "toys", "books"]


def _vars(search: str = "exact", sample_size: int = 5000, dim: int = 32) -> dict:
    return planted_config(
        [planted_space("t", "text", dim), planted_space("i", "image", dim)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=K_VALUES,
        hnsw_ef_search=400,
        retrieval_search=search,
        eval_sample_size=sample_size,
    )


def _products(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    # imbalanced: section j gets a share proportional to j + 1
    weights = np.arange(1, len(SECTIONS) + 1) / sum(range(1, len(SECTIONS) + 1))
    sections = rng.choice(SECTIONS, size=n, p=weights)
    return [(f"P{i:05d}", str(s)) for i, s in enumerate(sections)]


def _metrics(settings, pair: str = "planted") -> dict[tuple[str, str, str], tuple]:
    rows = query(
        settings,
        "select direction, section, metric, value, n, hits, "
        "ci_low_independent, ci_high_independent "
        "from metrics.fct_retrieval_metrics where pair = %s and gallery_scope = 'sample'",
        (pair,),
    )
    return {(r[0], r[1], r[2]): r[3:] for r in rows}


def _sql_ranks(settings, direction: str) -> dict[str, int | None]:
    rows = query(
        settings,
        "select product_id, positive_rank from metrics.fct_retrieval_ranks "
        "where direction = %s and gallery_scope = 'sample'",
        (direction,),
    )
    return dict(rows)


@pytest.fixture(scope="module")
def clustered(db, tmp_path_factory):
    """Section clusters with noisy text/image pairs: a spread of ranks, no trivial answer."""
    rng = np.random.default_rng(11)
    products = _products(400, rng)
    centres = {s: rng.normal(size=32) * 1.5 for s in SECTIONS}
    base = np.stack([centres[s] + rng.normal(size=32) for _, s in products])
    texts = base + 1.2 * rng.normal(size=base.shape)
    images = base + 1.2 * rng.normal(size=base.shape)
    dbt_vars = _vars("exact")
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})
    dbt_build(db, dbt_vars, tmp_path_factory.mktemp("clustered"))
    return products, texts, images


def test_planted_clusters_match_numpy_per_section(db, clustered):
    products, texts, images = clustered
    metrics = _metrics(db)
    sections = np.array([s for _, s in products])
    ids = [p for p, _ in products]
    for direction, (q, g) in {
        "text_to_image": (texts, images),
        "image_to_text": (images, texts),
    }.items():
        low, high = rank_bounds(q, g)
        assert (high - low).sum() <= 10, "too many near-ties for an exact comparison"
        sql_ranks = _sql_ranks(db, direction)
        for i, product_id in enumerate(ids):
            rank = sql_ranks[product_id]
            if low[i] > max(K_VALUES):
                assert rank is None, product_id
            else:
                assert rank is not None and low[i] <= rank <= high[i], (product_id, rank, low[i])
        ranks = exact_ranks(q, g)
        assert 0.2 < recall_at(ranks, 1) < 0.95, "planted data should not be trivial"
        for section in [*SECTIONS, "ALL"]:
            rows = ranks if section == "ALL" else ranks[sections == section]
            for k in K_VALUES:
                # the independent-query interval is Wilson's
                value, n, hits, ci_low, ci_high = metrics[(direction, section, f"recall_at_{k}")]
                assert n == len(rows)
                assert hits == int((rows <= k).sum())
                assert value == pytest.approx(recall_at(rows, k), abs=1e-12)
                expected_low, expected_high = wilson(hits, n)
                assert ci_low == pytest.approx(expected_low, abs=1e-9)
                assert ci_high == pytest.approx(expected_high, abs=1e-9)
            value, n, *_ = metrics[(direction, section, "mrr_at_50")]
            assert value == pytest.approx(mrr_at(rows, 50), abs=1e-9)


def test_gaps_match_numpy_per_section(db, clustered):
    products, texts, images = clustered
    sections = np.array([s for _, s in products])
    rows = query(db, "select section, metric, value, n from metrics.fct_embedding_gaps")
    got = {(s, m): (v, n) for s, m, v, n in rows}
    for section in [*SECTIONS, "ALL"]:
        members = np.ones(len(products), bool) if section == "ALL" else sections == section
        expected = gaps(texts, images, members)
        for metric, value in expected.items():
            assert got[(section, metric)][0] == pytest.approx(value, abs=2e-5), (section, metric)
            assert got[(section, metric)][1] == members.sum()


def test_gaps_do_not_depend_on_row_order(db, clustered, tmp_path):
    """pgvector sums vectors in single precision, so a sum's last bits follow
    the order of its rows. The gap sums run in product_id order: the eval
    sample stored in reverse order gives bit-identical figures, so a rerun on
    the same data moves nothing against the previous run."""

    def figures() -> list[tuple]:
        return query(
            db,
            "select pair, section_level, section, metric, value::text, ci_low::text, "
            "ci_high::text from metrics.fct_embedding_gaps order by 1, 2, 3, 4",
        )

    before = figures()
    with connection(db) as conn:
        conn.execute(
            "create temp table reversed as select * from intermediate.int_eval_vectors "
            "order by product_id desc, space desc"
        )
        conn.execute("truncate intermediate.int_eval_vectors")
        conn.execute("insert into intermediate.int_eval_vectors select * from reversed")
        conn.commit()
    dbt_build(db, _vars("exact"), tmp_path, "fct_embedding_gaps")
    assert figures() == before


def test_neighbour_lists_match_numpy_and_the_ranks(db, clustered):
    """The exact top max(K) lists are numpy's, and the ranks are counted in them."""
    products, texts, images = clustered
    ids = np.array([p for p, _ in products])
    for direction, (q, g) in {
        "text_to_image": (texts, images),
        "image_to_text": (images, texts),
    }.items():
        expected = top_k(q, g, max(K_VALUES))
        rows = query(
            db,
            "select query_product_id, array_agg(neighbour_product_id order by neighbour_rank), "
            "bool_or(is_duplicate_of_positive) "
            "from intermediate.int_retrieval_neighbours where direction = %s group by 1",
            (direction,),
        )
        assert len(rows) == len(products)
        listed = [neighbours for _, neighbours, _ in sorted(rows)]  # ids sort in row order
        agree = sum(got == list(ids[expected[i]]) for i, got in enumerate(listed))
        # float32 in pgvector against float64 here: a near-tie may swap two neighbours
        assert agree >= len(products) - 10, agree
        assert not any(dup for *_, dup in rows)  # one product per group in this sample
        mismatched = query(
            db,
            "select count(*) from metrics.fct_retrieval_ranks as r "
            "left join lateral (select count(*) filter (where n.distance < r.positive_distance) "
            "  as c from intermediate.int_retrieval_neighbours as n where n.pair = r.pair "
            "  and n.direction = r.direction and n.query_product_id = r.product_id) as l on true "
            "where r.direction = %s and r.gallery_scope = 'sample' "
            "and r.positive_rank is distinct from "
            "  case when l.c < 50 then l.c + 1 end",
            (direction,),
        )
        assert mismatched == [(0,)]


def test_ndcg_and_section_purity_match_numpy_per_section(db, clustered):
    products, texts, images = clustered
    metrics = _metrics(db)
    sections = np.array([s for _, s in products])
    for direction, (q, g) in {
        "text_to_image": (texts, images),
        "image_to_text": (images, texts),
    }.items():
        ranks = exact_ranks(q, g)
        purity = section_purity_at(top_k(q, g, 10), sections, 10)
        # sections are clear but not perfect: some queries have neighbours elsewhere
        assert purity.mean() > 0.5 and (purity < 1).sum() >= 20
        for section in [*SECTIONS, "ALL"]:
            rows = np.ones(len(ranks), bool) if section == "ALL" else sections == section
            value, n, hits, ci_low, ci_high = metrics[(direction, section, "ndcg_at_10")]
            assert n == rows.sum() and hits is None
            assert value == pytest.approx(ndcg_at(ranks[rows], 10), abs=1e-9)
            assert ci_low <= value <= ci_high
            value, n, *_ = metrics[(direction, section, "section_purity_at_10")]
            # a near-tie at the 10th place may swap one neighbour of one query
            assert value == pytest.approx(purity[rows].mean(), abs=1.5 / (10 * rows.sum()))


def test_hnsw_agrees_with_exact_within_tolerance(db, clustered, tmp_path):
    """The default HNSW path: recall within 0.02 of the exact figures."""
    exact = _metrics(db)
    dbt_build(db, _vars("hnsw"), tmp_path, *RANKED)
    retrieved = query(db, "select distinct n_retrieved from metrics.fct_retrieval_ranks")
    assert retrieved == [(max(K_VALUES),)]  # the index's top max(K), not a full scan
    approximate = _metrics(db)
    for key, (value, *_) in exact.items():
        assert approximate[key][0] == pytest.approx(value, abs=0.02), key


def test_auto_search_is_exact_up_to_the_configured_gallery_size(db, clustered, tmp_path):
    def examined() -> set[int]:
        # exact examines the whole gallery per query, the index max(K) neighbours
        return {
            n for (n,) in query(db, "select distinct n_retrieved from metrics.fct_retrieval_ranks")
        }

    dbt_build(db, _vars("exact"), tmp_path, *RANKED)
    exact = _metrics(db)
    dbt_build(db, _vars("auto"), tmp_path, *RANKED)
    assert examined() == {400}  # 400 products <= exact_search_max_gallery
    assert _metrics(db) == exact
    dbt_build(db, {**_vars("auto"), "exact_search_max_gallery": 100}, tmp_path, *RANKED)
    assert examined() == {max(K_VALUES)}
    with pytest.raises(ConfigError, match="retrieval_search"):
        config_for(_vars("approximate"))


def test_auto_search_decides_on_the_sample_as_drawn(db, clustered, tmp_path):
    """400 products drawn against a configured 100000: auto takes the exact path."""
    configured = {**_vars("auto", sample_size=100000), "exact_search_max_gallery": 10000}
    dbt_build(db, configured, tmp_path, "int_eval_sample", *RANKED)
    assert query(db, "select count(*) from intermediate.int_eval_sample") == [(400,)]
    retrieved = query(db, "select distinct n_retrieved from metrics.fct_retrieval_ranks")
    assert retrieved == [(400,)]  # every gallery item examined, not the index's max(K)


def test_identical_vectors_give_perfect_recall_and_gap_one_minus_negative(db, tmp_path):
    rng = np.random.default_rng(3)
    products = _products(200, rng)
    vectors = rng.normal(size=(200, 16))
    dbt_vars = _vars("exact", dim=16)
    plant(db, config_for(dbt_vars), products, {"t": vectors, "i": vectors})
    dbt_build(db, dbt_vars, tmp_path)
    metrics = _metrics(db)
    # sections under vars.section_min_queries are reported together, as `other`
    minimum = config_for(dbt_vars).sections.min_queries
    sizes = {s: sum(1 for _, t in products if t == s) for _, s in products}
    sections = {s for s, n in sizes.items() if n >= minimum}
    sections |= {"other"} if min(sizes.values()) < minimum else set()
    assert {section for _, section, _ in metrics} == {*sections, "ALL"}
    for direction in ("text_to_image", "image_to_text"):
        for section in [*sections, "ALL"]:
            assert metrics[(direction, section, "recall_at_1")][0] == 1.0
            assert metrics[(direction, section, "mrr_at_50")][0] == pytest.approx(1.0)
    gap_rows = dict(
        query(db, "select metric, value from metrics.fct_embedding_gaps where section = 'ALL'")
    )
    expected_negative = gaps(vectors, vectors, np.ones(200, bool))["cosine_negative_mean"]
    assert gap_rows["cosine_positive_mean"] == pytest.approx(1.0, abs=1e-6)
    assert gap_rows["cosine_gap"] == pytest.approx(1 - expected_negative, abs=1e-5)
    # for unit vectors the squared euclidean gap is exactly twice the cosine gap
    assert gap_rows["sq_euclidean_gap"] == pytest.approx(2 * gap_rows["cosine_gap"], abs=1e-5)


def test_shuffled_pairs_give_chance_recall(db, tmp_path):
    rng = np.random.default_rng(5)
    n = 600
    products = _products(n, rng)
    texts = rng.normal(size=(n, 32))
    images = texts[rng.permutation(n)]
    dbt_vars = _vars("exact")
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})
    dbt_build(db, dbt_vars, tmp_path)
    metrics = _metrics(db)
    ranks = exact_ranks(texts, images)
    for k in K_VALUES:
        value = metrics[("text_to_image", "ALL", f"recall_at_{k}")][0]
        chance = k / n
        assert abs(value - chance) <= 4 * np.sqrt(chance * (1 - chance) / n) + 1 / n, (k, value)
        assert value == pytest.approx(recall_at(ranks, k), abs=1.5 / n)


def test_sample_is_balanced_and_capped(db, tmp_path):
    rng = np.random.default_rng(8)
    products = _products(500, rng)
    vectors = rng.normal(size=(500, 16))
    dbt_vars = _vars("exact", sample_size=100, dim=16)
    plant(db, config_for(dbt_vars), products, {"t": vectors, "i": vectors})
    dbt_build(db, dbt_vars, tmp_path)
    counts = dict(
        query(
            db, "select collection_section, count(*) from intermediate.int_eval_sample group by 1"
        )
    )
    assert sum(counts.values()) == 100
    assert max(counts.values()) - min(counts.values()) <= 1  # 5 sections x 20 each
    first = query(db, "select product_id from intermediate.int_eval_sample order by 1")
    dbt_build(db, dbt_vars, tmp_path, "int_eval_sample")
    assert query(db, "select product_id from intermediate.int_eval_sample order by 1") == first


def test_history_appends_every_run(db, clustered, tmp_path):
    runs_before = query(db, "select count(distinct run_id) from metrics.fct_metric_history")[0][0]
    dbt_build(db, _vars("exact"), tmp_path, "fct_metric_history")
    runs = query(
        db,
        "select run_id from metrics.fct_metric_history group by run_id "
        "order by max(run_started_at) desc",
    )
    assert len(runs) == runs_before + 1
    latest = query(
        db,
        "select gallery_scope, pair, direction, section, metric, value "
        "from metrics.fct_metric_history "
        "where run_id = %s and family = 'retrieval' order by 1, 2, 3, 4, 5",
        (runs[0][0],),
    )
    current = query(
        db,
        "select gallery_scope, pair, direction, section, metric, value "
        "from metrics.fct_retrieval_metrics order by 1, 2, 3, 4, 5",
    )
    assert latest == current
