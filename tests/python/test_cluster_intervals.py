"""Cluster-robust intervals and the evidence rule, on the real database: the
SQL cluster bootstrap must reproduce the numpy one (same seed, same md5 draws,
same clusters -> the same interval), and the weaker-section flags must follow
Holm's rule computed independently."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from reference import (
    bootstrap_replicates,
    cluster_weights,
    exact_ranks,
    holm,
    se_interval,
    unit,
    weaker_p,
    wilson,
)

from embed_udfs.db import connection

SECTIONS = ["bags", "shoes", "lamps", "toys", "books"]
SEED = 42
REPLICATES = 200
Z = 1.959963984540054


def _vars(**extra) -> dict:
    return planted_config(
        [planted_space("t", "text", 16), planted_space("i", "image", 16)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 5, 10],
        hnsw_ef_search=400,
        retrieval_search="exact",
        eval_sample_size=5000,
        bootstrap_seed=SEED,
        bootstrap_replicates=REPLICATES,
        **extra,
    )


@pytest.fixture(scope="module")
def stores(db, tmp_path_factory):
    """360 products in 72 stores of 5. A store's listings share one quality (how noisy its
    text/image pairs are), so queries come in correlated clusters; the section `lamps` is
    much noisier than the rest (weaker on evidence)."""
    rng = np.random.default_rng(5)
    n, dim = 360, 16
    store_of = np.repeat(np.arange(72), 5)
    sections = np.array([SECTIONS[s % len(SECTIONS)] for s in store_of])
    products = [(f"P{i:04d}", str(sections[i])) for i in range(n)]
    base = rng.normal(size=(n, dim))
    store_quality = rng.gamma(2.0, 0.5, size=72)[store_of][:, None]
    noise = np.where(sections[:, None] == "lamps", 1.2, 0.5) * store_quality
    texts = base + noise * rng.normal(size=(n, dim))
    images = base + noise * rng.normal(size=(n, dim))
    dbt_vars = _vars(bootstrap_cluster_column="store_name")
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})
    with connection(db) as conn:
        for i, (product_id, _) in enumerate(products):
            conn.execute(
                "update catalog.products set store_name = %s where product_id = %s",
                (f"store {store_of[i]:02d}", product_id),
            )
        conn.commit()
    dbt_build(db, dbt_vars, tmp_path_factory.mktemp("stores"))
    return products, store_of, texts, images


def _scores(db, direction: str, metric: str) -> dict[str, tuple[float, float]]:
    rows = query(
        db,
        "select product_id, score, dedup_tolerant_score from metrics.fct_retrieval_scores "
        "where direction = %s and metric = %s and gallery_scope = 'sample'",
        (direction, metric),
    )
    return {r[0]: (float(r[1]), float(r[2])) for r in rows}


def _metrics(db) -> dict[tuple[str, str, str], dict]:
    columns = [
        "value",
        "n",
        "hits",
        "ci_low",
        "ci_high",
        "interval_method",
        "ci_low_independent",
        "ci_high_independent",
        "interval_method_independent",
        "standard_error",
        "n_clusters",
        "difference_standard_error",
        "evidence_standard_error",
        "weaker_p_value",
        "weaker_p_holm",
        "is_weaker_than_all",
        "is_small_section",
        "weakness_rank",
        "dedup_tolerant_ci_low",
        "dedup_tolerant_ci_high",
    ]
    rows = query(
        db,
        f"select direction, section, metric, {', '.join(columns)} "
        "from metrics.fct_retrieval_metrics where gallery_scope = 'sample'",
    )
    return {(r[0], r[1], r[2]): dict(zip(columns, r[3:], strict=True)) for r in rows}


def test_cluster_interval_equals_numpy_on_the_same_draws(db, stores):
    products, store_of, texts, images = stores
    ids = [p for p, _ in products]
    sections = np.array([s for _, s in products])
    clusters = [f"store_name=store {s:02d}" for s in store_of]
    weights = cluster_weights(clusters, SEED, REPLICATES)
    assert (weights[0] == weights[4]).all() and not (weights[0] == weights[5]).all()
    metrics = _metrics(db)
    ranks = {
        "text_to_image": exact_ranks(texts, images),
        "image_to_text": exact_ranks(images, texts),
    }
    for direction in ("text_to_image", "image_to_text"):
        for metric in ("recall_at_1", "recall_at_5", "mrr_at_10", "ndcg_at_10"):
            got = _scores(db, direction, metric)
            scores = np.array([got[p][0] for p in ids])
            if metric == "recall_at_1":
                # the scores themselves are the numpy ranks' (no near-ties in this data)
                assert (scores == (ranks[direction] <= 1)).mean() > 0.99
            overall = bootstrap_replicates(scores, weights)
            for section in [*SECTIONS, "ALL"]:
                rows = np.ones(len(ids), bool) if section == "ALL" else sections == section
                row = metrics[(direction, section, metric)]
                value = float(scores[rows].mean())
                reps = bootstrap_replicates(scores[rows], weights[rows])
                se, low, high = se_interval(value, reps)
                if metric.startswith("recall"):
                    independent = wilson(int(scores[rows].sum()), int(rows.sum()))
                else:
                    sd = float(scores[rows].std(ddof=1)) / np.sqrt(rows.sum())
                    independent = (max(0.0, value - Z * sd), min(1.0, value + Z * sd))
                assert row["value"] == pytest.approx(value, abs=1e-9)
                assert row["standard_error"] == pytest.approx(se, rel=1e-4, abs=1e-7)
                assert row["ci_low_independent"] == pytest.approx(independent[0], abs=1e-9)
                assert row["ci_high_independent"] == pytest.approx(independent[1], abs=1e-9)
                assert row["ci_low"] == pytest.approx(min(low, independent[0]), abs=1e-6)
                assert row["ci_high"] == pytest.approx(max(high, independent[1]), abs=1e-6)
                assert row["n_clusters"] == len({clusters[i] for i in np.flatnonzero(rows)})
                assert row["interval_method"] == (
                    f"cluster bootstrap (store_name), {REPLICATES} replicates, se"
                )
                if section != "ALL":
                    diff_se = float(np.nanstd(reps - overall, ddof=1))
                    assert row["difference_standard_error"] == pytest.approx(
                        diff_se, rel=1e-4, abs=1e-7
                    )


def test_clustered_queries_widen_the_interval(db, stores):
    """Stores share their noise, so the cluster interval is wider than the per-query one."""
    metrics = _metrics(db)
    for direction in ("text_to_image", "image_to_text"):
        row = metrics[(direction, "ALL", "recall_at_1")]
        assert row["ci_high"] - row["ci_low"] > 1.2 * (
            row["ci_high_independent"] - row["ci_low_independent"]
        )


def test_weaker_sections_follow_holm_over_the_sections(db, stores):
    metrics = _metrics(db)
    flagged = set()
    for direction in ("text_to_image", "image_to_text"):
        for metric in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10"):
            overall = metrics[(direction, "ALL", metric)]["value"]
            n_all = metrics[(direction, "ALL", metric)]["n"]
            rows = [metrics[(direction, s, metric)] for s in SECTIONS]
            # the bootstrap's error, floored at what a section drawn like ALL would show
            all_scores = np.array([score for score, _ in _scores(db, direction, metric).values()])
            sd_all = float(all_scores.std(ddof=1))
            floors = [(1 - r["n"] / n_all) * sd_all / np.sqrt(r["n"]) for r in rows]
            ses = [
                max(r["difference_standard_error"], floor)
                for r, floor in zip(rows, floors, strict=True)
            ]
            for r, se in zip(rows, ses, strict=True):
                assert r["evidence_standard_error"] == pytest.approx(se, rel=1e-9, abs=1e-12)
            p = [
                weaker_p(r["value"] - overall, se, r["n_clusters"])
                for r, se in zip(rows, ses, strict=True)
            ]
            adjusted = holm(p)
            for section, row, p_one, p_adj in zip(SECTIONS, rows, p, adjusted, strict=True):
                assert row["weaker_p_value"] == pytest.approx(p_one, abs=1e-9)
                assert row["weaker_p_holm"] == pytest.approx(p_adj, abs=1e-9)
                assert row["is_weaker_than_all"] == (p_adj < 0.05)
                assert row["is_small_section"] == (row["n"] < 30)
                if row["is_weaker_than_all"]:
                    flagged.add(section)
            ranked = sorted(rows, key=lambda r: r["weakness_rank"])
            # flagged sections first, then by the adjusted p-value
            keys = [(not r["is_weaker_than_all"], r["weaker_p_holm"]) for r in ranked]
            assert keys == sorted(keys)
    assert flagged == {"lamps"}


def test_positive_mean_gap_interval_equals_numpy(db, stores):
    products, store_of, texts, images = stores
    sections = np.array([s for _, s in products])
    weights = cluster_weights([f"store_name=store {s:02d}" for s in store_of], SEED, REPLICATES)
    t, v = unit(texts), unit(images)
    cosines = (t * v).sum(axis=1)
    rows = query(
        db,
        "select section, value, ci_low, ci_high, ci_low_independent, ci_high_independent, "
        "interval_method from metrics.fct_embedding_gaps where metric = 'cosine_positive_mean'",
    )
    assert {r[0] for r in rows} == {*SECTIONS, "ALL"}
    for section, value, low, high, low_independent, high_independent, method in rows:
        members = np.ones(len(products), bool) if section == "ALL" else sections == section
        scores = cosines[members]
        assert value == pytest.approx(scores.mean(), abs=2e-6)
        se = float(np.nanstd(bootstrap_replicates(scores, weights[members]), ddof=1))
        sd = float(scores.std(ddof=1)) / np.sqrt(members.sum())
        assert low_independent == pytest.approx(scores.mean() - Z * sd, abs=2e-6)
        assert high_independent == pytest.approx(scores.mean() + Z * sd, abs=2e-6)
        assert low == pytest.approx(min(low_independent, value - Z * se), abs=1e-5)
        assert high == pytest.approx(max(high_independent, value + Z * se), abs=1e-5)
        assert method == f"cluster bootstrap (store_name), {REPLICATES} replicates, se"
