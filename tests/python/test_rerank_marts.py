"""Known answers for the two-stage retrieval marts, on the real database: the
stage-1 candidates against numpy, and oracle, inverted-oracle, constant and
random scores written straight into embeddings.rerank_scores, each checked
against numpy on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from reference import bootstrap_replicates, holm, normal_cdf
from rerank_reference import paired_interval, poisson_weights, rank_among

from embed_udfs.db import connection

SECTIONS = ["bags", "shoes", "lamps"]
CANDIDATES = 20
REPLICATES = 50
# history follows every mart; these tests build only the rerank marts
RERANKED = ("stg_rerank__scores+", "--exclude", "fct_metric_history+")


def _vars() -> dict:
    return planted_config(
        [planted_space("t", "text", 16), planted_space("i", "image", 16)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 5, 10],
        hnsw_ef_search=40,
        retrieval_search="exact",
        rerank_candidates=CANDIDATES,
        bootstrap_replicates=REPLICATES,
        rerankers=[
            {
                "name": "planted_scores",
                "backend": "open_clip",
                "model": "embed-metrics-tiny-clip",
                "pairs": ["planted"],
            }
        ],
    )


@pytest.fixture(scope="module")
def planted(db, tmp_path_factory):
    """Noisy section clusters: some positives fall outside the top 20 (ceiling < 1)."""
    rng = np.random.default_rng(21)
    n = 150
    sections = rng.choice(SECTIONS, size=n)
    products = [(f"P{i:03d}", str(s)) for i, s in enumerate(sections)]
    centres = {s: rng.normal(size=16) * 1.5 for s in SECTIONS}
    base = np.stack([centres[s] + rng.normal(size=16) for _, s in products])
    texts = base + 1.3 * rng.normal(size=base.shape)
    images = base + 1.3 * rng.normal(size=base.shape)
    dbt_vars = _vars()
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})
    dbt_build(db, dbt_vars, tmp_path_factory.mktemp("rerank"))
    return products, texts, images


def _candidates(db) -> dict[tuple[str, str], list[tuple]]:
    rows = query(
        db,
        "select direction, query_product_id, candidate_product_id, stage1_rank, "
        "stage1_distance, is_positive from intermediate.int_rerank_candidates "
        "order by direction, query_product_id, stage1_rank",
    )
    lists: dict[tuple[str, str], list[tuple]] = {}
    for direction, query_id, *rest in rows:
        lists.setdefault((direction, query_id), []).append(tuple(rest))
    return lists


def _write_scores(db, expression: str) -> None:
    """Scores computed in SQL from each candidate row, as a reranker would write them."""
    with connection(db) as conn:
        conn.execute("truncate embeddings.rerank_scores, embeddings.rerank_errors")
        conn.execute(
            "insert into embeddings.rerank_scores (reranker, pair, direction, query_product_id, "
            "candidate_product_id, score, scorer_ref, input_hash) "
            f"select reranker, pair, direction, query_product_id, candidate_product_id, "
            f"{expression}, 'planted', 'planted' from intermediate.int_rerank_candidates"
        )
        conn.commit()


def _ranks(db) -> dict[tuple[str, str], tuple]:
    rows = query(
        db,
        "select direction, query_product_id, stage1_rank, stage2_rank, is_positive_retrieved, "
        "is_reranked, n_candidates from metrics.fct_rerank_ranks",
    )
    return {(r[0], r[1]): r[2:] for r in rows}


def test_candidates_are_the_numpy_top_k_and_agree_with_the_strict_ranks(db, planted):
    products, texts, images = planted
    lists = _candidates(db)
    ids = [p for p, _ in products]
    strict = dict(
        ((d, p), r)
        for d, p, r in query(
            db,
            "select direction, product_id, positive_rank from metrics.fct_retrieval_ranks "
            "where gallery_scope = 'sample'",
        )
    )
    t = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    v = images / np.linalg.norm(images, axis=1, keepdims=True)
    near_ties = 0
    for direction, (q, g) in {"text_to_image": (t, v), "image_to_text": (v, t)}.items():
        distances = 1 - q @ g.T
        for i, query_id in enumerate(ids):
            rows = lists[(direction, query_id)]
            assert [r[1] for r in rows] == list(range(1, CANDIDATES + 1))
            expected = np.argsort(distances[i], kind="stable")[:CANDIDATES]
            got = [ids.index(r[0]) for r in rows]
            if got != list(expected):
                # only a float32 near-tie at the cut may swap the last places
                near_ties += 1
                assert abs(distances[i][expected[-1]] - distances[i][got[-1]]) < 1e-5
            np.testing.assert_allclose([r[2] for r in rows], distances[i][got], atol=1e-5)
            positive = [r for r in rows if r[3]]
            if positive:
                stage1 = rank_among(np.array([r[2] for r in rows]), positive[0][2], False)
                query_rank = strict[(direction, query_id)]
                assert query_rank == stage1 or stage1 > 10  # strict ranks stop at max(K) = 10
    assert near_ties <= 3
    ranks = _ranks(db)
    retrieved = [key for key, r in ranks.items() if r[2]]
    assert 0.3 * len(ranks) < len(retrieved) < len(ranks), "the ceiling must be below 1"


def _uplift(db) -> dict[tuple[str, str, str], tuple]:
    rows = query(
        db,
        "select direction, section, metric, n, before, after, difference, ci_low, ci_high, "
        "n_improved, n_worsened, n_unchanged, stage1_ceiling, n_not_reranked, p_holm, verdict "
        "from metrics.fct_rerank_uplift",
    )
    return {(r[0], r[1], r[2]): r[3:] for r in rows}


def test_oracle_lifts_recall_at_1_to_the_stage1_ceiling(db, planted, tmp_path):
    _write_scores(db, "case when is_positive then 1.0 else -stage1_rank end")
    dbt_build(db, _vars(), tmp_path, *RERANKED)
    ranks = _ranks(db)
    for _stage1, stage2, retrieved, reranked, _ in ranks.values():
        assert reranked
        assert stage2 == (1 if retrieved else None)
    uplift = _uplift(db)
    for direction in ("text_to_image", "image_to_text"):
        rows = [r for (d, _), r in ranks.items() if d == direction]
        ceiling = np.mean([r[2] for r in rows])
        n, before, after, *_ = uplift[(direction, "ALL", "recall_at_1")]
        assert n == len(rows)
        assert after == ceiling  # exactly
        assert uplift[(direction, "ALL", "recall_at_1")][9] == ceiling
        assert before == np.mean([r[0] == 1 for r in rows])


def test_inverted_oracle_puts_every_retrieved_positive_last(db, planted, tmp_path):
    _write_scores(db, "case when is_positive then -1000.0 else -stage1_rank end")
    dbt_build(db, _vars(), tmp_path, *RERANKED)
    for stage1, stage2, retrieved, _, n_candidates in _ranks(db).values():
        assert stage2 == (n_candidates if retrieved else None)
        assert (stage1 is None) == (not retrieved)


def test_constant_scores_give_rank_one_and_outside_positives_never_hit(db, planted, tmp_path):
    _write_scores(db, "0.5")
    dbt_build(db, _vars(), tmp_path, *RERANKED)
    ranks = _ranks(db)
    for _stage1, stage2, retrieved, _, _ in ranks.values():
        assert stage2 == (1 if retrieved else None)
    uplift = _uplift(db)
    for direction in ("text_to_image", "image_to_text"):
        rows = [r for (d, _), r in ranks.items() if d == direction]
        for k in (1, 5, 10):
            after = uplift[(direction, "ALL", f"recall_at_{k}")][2]
            assert after == np.mean([r[2] for r in rows])  # every retrieved positive, no other


def test_random_scores_uplift_matches_numpy_per_section(db, planted, tmp_path):
    products, *_ = planted
    # a deterministic pseudo-random score per (query, candidate)
    _write_scores(
        db,
        "('x' || substr(md5(direction || query_product_id || candidate_product_id), 1, 8))"
        "::bit(32)::integer::float8",
    )
    dbt_build(db, _vars(), tmp_path, *RERANKED)
    section_of = dict(products)
    scores = {
        (d, q, c): s
        for d, q, c, s in query(
            db,
            "select direction, query_product_id, candidate_product_id, score "
            "from embeddings.rerank_scores",
        )
    }
    lists = _candidates(db)
    uplift = _uplift(db)
    weights = {p: poisson_weights(p, REPLICATES) for p, _ in products}
    tested: dict[tuple[str, str, bool], dict[str, tuple[float, float]]] = {}
    for direction in ("text_to_image", "image_to_text"):
        per_query = {}
        for (d, query_id), rows in lists.items():
            if d != direction:
                continue
            distances = np.array([r[2] for r in rows])
            values = np.array([scores[(d, query_id, r[0])] for r in rows])
            positive = [i for i, r in enumerate(rows) if r[3]]
            if positive:
                p = positive[0]
                per_query[query_id] = (
                    rank_among(distances, distances[p], False),
                    rank_among(values, values[p], True),
                )
            else:
                per_query[query_id] = (None, None)
        for section in [*SECTIONS, "ALL"]:
            members = [q for q in per_query if section in ("ALL", section_of[q])]
            for metric in ("recall_at_1", "recall_at_5", "recall_at_10", f"mrr_at_{CANDIDATES}"):

                def value(rank, metric=metric):
                    if rank is None:
                        return 0.0
                    if metric.startswith("mrr"):
                        return 1.0 / rank
                    return float(rank <= int(metric.rsplit("_", 1)[1]))

                before = np.array([value(per_query[q][0]) for q in members])
                after = np.array([value(per_query[q][1]) for q in members])
                row = uplift[(direction, section, metric)]
                n, got_before, got_after, difference, ci_low, ci_high = row[:6]
                assert n == len(members)
                assert got_before == pytest.approx(before.mean(), abs=1e-12)
                assert got_after == pytest.approx(after.mean(), abs=1e-12)
                assert difference == pytest.approx(after.mean() - before.mean(), abs=1e-12)
                assert row[6:9] == (
                    int((after > before).sum()),
                    int((after < before).sum()),
                    int((after == before).sum()),
                )
                assert row[9] == pytest.approx(
                    np.mean([per_query[q][0] is not None for q in members]), abs=1e-12
                )
                member_weights = np.stack([weights[q] for q in members])
                low, high = paired_interval(after - before, member_weights)
                assert ci_low == pytest.approx(low, abs=1e-5), (direction, section, metric)
                assert ci_high == pytest.approx(high, abs=1e-5), (direction, section, metric)
                replicates = bootstrap_replicates(after - before, member_weights)
                se = float(np.nanstd(replicates, ddof=1))
                difference = float(after.mean() - before.mean())
                if se > 0:
                    p = 2 * normal_cdf(-abs(difference) / se)
                else:
                    p = 1.0 if difference == 0 else 0.0
                tested.setdefault((direction, metric, section == "ALL"), {})[section] = (
                    difference,
                    p,
                )
    # the verdict rule: Holm over the sections of one direction and metric (ALL alone)
    for (direction, metric, _), family in tested.items():
        sections = list(family)
        adjusted = holm([family[s][1] for s in sections])
        for section, p_holm in zip(sections, adjusted, strict=True):
            row = uplift[(direction, section, metric)]
            assert row[11] == pytest.approx(p_holm, abs=1e-6), section
            difference = family[section][0]
            expected = (
                "no evidence" if p_holm >= 0.05 else ("better" if difference > 0 else "worse")
            )
            assert row[12] == expected
    moved = uplift[("text_to_image", "ALL", "recall_at_1")]
    assert moved[6] > 0 and moved[7] > 0, "random scores should both help and hurt"


def test_scorecard_block_shows_the_all_uplift_ceiling_and_sections(db, planted):
    from embed_udfs.jobs.rerank.report import rerank_scorecard

    # the marts as the previous test left them (random scores)
    uplift = _uplift(db)
    with connection(db) as conn:
        block = rerank_scorecard(conn)
    n, before, after, difference, low, high, wins, losses, _, ceiling, *_ = uplift[
        ("text_to_image", "ALL", "recall_at_1")
    ]
    assert (
        f"planted_scores on planted text_to_image (n = {n}, top {CANDIDATES} candidates): "
        f"R@1 {before:.3f} -> {after:.3f} = {difference:+.3f} [{low:+.3f}, {high:+.3f}]"
    ) in block
    assert f"stage-1 ceiling {ceiling:.3f}; R@1 wins {wins}, losses {losses}" in block
    best = max(
        (row[3], section)
        for (d, section, metric), row in uplift.items()
        if d == "text_to_image" and metric == "recall_at_1" and section != "ALL"
    )
    if best[0] > 0:
        assert f"helps most: {best[1]} {best[0]:+.3f}" in block
