"""Runs and deltas on the real database: dim_runs tells configurations apart,
and fct_metric_deltas matches a numpy computation of two runs with a planted
change, with the unpaired normal interval computed here independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from reference import (
    bootstrap_replicates,
    cluster_weights,
    exact_ranks,
    holm,
    normal_cdf,
    recall_at,
    se_interval,
    wilson,
)

from embed_udfs import runs
from embed_udfs.db import connection

SECTIONS = ["bags", "shoes", "lamps", "toys"]
Z = 1.959963984540054
REPLICATES = 20


def _vars(**overrides) -> dict:
    return planted_config(
        [planted_space("t", "text", 16), planted_space("i", "image", 16)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 10],
        retrieval_search="exact",
        label_pca_dims=["none"],
        bootstrap_replicates=REPLICATES,
        **overrides,
    )


def _planted(noise: float, seed: int = 5, n: int = 240):
    rng = np.random.default_rng(seed)
    products = [(f"P{i:04d}", SECTIONS[i % len(SECTIONS)]) for i in range(n)]
    base = rng.normal(size=(n, 16))
    texts = base + noise * rng.normal(size=base.shape)
    images = base + noise * rng.normal(size=base.shape)
    return products, texts, images


def _hashes(db) -> list[tuple[str, str]]:
    return query(db, "select run_id, config_hash from metrics.dim_runs order by run_started_at")


def test_config_hash_changes_with_the_configuration_only(db, tmp_path):
    dbt_vars = _vars()
    products, texts, images = _planted(1.0)
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})
    dbt_build(db, {**dbt_vars, "run_label": "first"}, tmp_path / "a", "+dim_runs")
    dbt_build(db, {**dbt_vars, "run_label": "again"}, tmp_path / "b", "+dim_runs")
    changed_seed = {**dbt_vars, "eval_seed": 7}
    dbt_build(db, changed_seed, tmp_path / "c", "+dim_runs")
    recipe = _vars()
    recipe["embed_spaces"][0]["text_variant"] = "raw"
    dbt_build(db, recipe, tmp_path / "d", "+dim_runs")
    (first, a), (again, b), (_, c), (_, d) = _hashes(db)
    assert a == b, "a rerun with nothing changed must keep its hash"
    assert len({a, c, d}) == 3, "a new seed and a new recipe each change the hash"
    labels = dict(query(db, "select run_id, run_label from metrics.dim_runs"))
    assert (labels[first], labels[again]) == ("first", "again")
    digest = query(db, "select config_digest from metrics.dim_runs where run_id = %s", (first,))
    assert "model_ref planted" in digest[0][0] and "eval_seed 42" in digest[0][0]


def _recall_interval(ranks: np.ndarray, ids: list[str], k: int) -> tuple[float, float]:
    """A run's published interval: the cluster bootstrap (every planted product is its own
    near-duplicate group, so its own cluster), never narrower than Wilson's."""
    hits = (ranks <= k).astype(np.float64)
    replicates = bootstrap_replicates(hits, cluster_weights(ids, 42, REPLICATES))
    _, low, high = se_interval(float(hits.mean()), replicates)
    wilson_low, wilson_high = wilson(int(hits.sum()), len(hits))
    return min(low, wilson_low), max(high, wilson_high)


def _recall_delta(old_ranks: np.ndarray, new_ranks: np.ndarray, ids: list[str], k: int) -> tuple:
    """Difference, 95% interval and two-sided p-value, from each run's interval."""
    old_low, old_high = _recall_interval(old_ranks, ids, k)
    new_low, new_high = _recall_interval(new_ranks, ids, k)
    se = math.hypot((old_high - old_low) / (2 * Z), (new_high - new_low) / (2 * Z))
    difference = recall_at(new_ranks, k) - recall_at(old_ranks, k)
    low, high = difference - Z * se, difference + Z * se
    return difference, low, high, 2 * normal_cdf(-abs(difference) / se)


def _verdict(difference: float, p_holm: float) -> str:
    if p_holm >= 0.05:
        return "no detectable change"
    return "better" if difference > 0 else "worse"


def _deltas(db, reference: str) -> dict[tuple, tuple]:
    rows = query(
        db,
        "select family, pair, direction, section, metric, difference, ci_low, ci_high, verdict, "
        "reference_run_id, config_changed from metrics.fct_metric_deltas where reference = %s "
        "and gallery_scope = 'sample'",
        (reference,),
    )
    return {r[:5]: r[5:] for r in rows}


def test_deltas_against_the_baseline_and_the_previous_run(db, tmp_path):
    dbt_vars = _vars()
    config = config_for(dbt_vars)
    products, noisy_texts, noisy_images = _planted(1.6)
    plant(db, config, products, {"t": noisy_texts, "i": noisy_images})
    dbt_build(db, dbt_vars, tmp_path / "old")
    with connection(db) as conn:
        pinned = runs.set_baseline(conn, config, "latest")
        assert runs.show_baseline(conn, config) == pinned

    # the planted change: less noise between a product's text and image
    _, texts, images = _planted(0.5)
    plant(db, config, products, {"t": texts, "i": images})
    dbt_build(db, dbt_vars, tmp_path / "new")

    old_ranks, new_ranks = exact_ranks(noisy_texts, noisy_images), exact_ranks(texts, images)
    ids = [p for p, _ in products]
    deltas = _deltas(db, "baseline")
    for k in (1, 10):
        difference, low, high, p = _recall_delta(old_ranks, new_ranks, ids, k)
        verdict = _verdict(difference, p)  # ALL is a family of one
        got = deltas[("retrieval", "planted", "text_to_image", "ALL", f"recall_at_{k}")]
        assert got[0] == pytest.approx(difference, abs=1e-12)
        assert got[1] == pytest.approx(low, abs=1e-6)
        assert got[2] == pytest.approx(high, abs=1e-6)
        assert got[3] == verdict == "better"
        assert got[4] == pinned.run_id and got[5] is False
    # the sections, the other direction: verdicts by Holm over the four sections
    sections = np.array([s for _, s in products])
    image_old, image_new = exact_ranks(noisy_images, noisy_texts), exact_ranks(images, texts)
    figures = {}
    for section in SECTIONS:
        members = sections == section
        section_ids = [i for i, m in zip(ids, members, strict=True) if m]
        figures[section] = _recall_delta(image_old[members], image_new[members], section_ids, 1)
    adjusted = dict(zip(SECTIONS, holm([f[3] for f in figures.values()]), strict=True))
    for section, (difference, low, high, _) in figures.items():
        got = deltas[("retrieval", "planted", "image_to_text", section, "recall_at_1")]
        assert got[:3] == pytest.approx((difference, low, high), abs=1e-6)
        assert got[3] == _verdict(difference, adjusted[section])

    # the same data again: the previous run is identical, nothing moved
    dbt_build(db, dbt_vars, tmp_path / "same")
    previous = _deltas(db, "previous")
    assert previous, "the rerun has a previous comparable run"
    with_interval = [v for v in previous.values() if v[1] is not None]
    assert with_interval
    moved = {key: v[:4] for key, v in previous.items() if abs(v[0]) > 1e-12}
    assert not moved, f"identical data moved these figures: {moved}"
    assert {v[3] for v in previous.values()} == {"no detectable change"}
    # against the baseline the planted change is still there
    assert (
        _deltas(db, "baseline")[("retrieval", "planted", "text_to_image", "ALL", "recall_at_10")][3]
        == "better"
    )

    # pin the good run, bring the noise back: Recall@10 is flagged by the seed's warn row
    with connection(db) as conn:
        runs.set_baseline(conn, config, "latest")
    plant(db, config, products, {"t": noisy_texts, "i": noisy_images})
    result = dbt_build(db, dbt_vars, tmp_path / "worse")
    flagged = [r for r in result.result if r.node.name.startswith("no_regression_against_baseline")]
    assert sorted(r.status for r in flagged) == ["pass", "warn"]
    assert (
        _deltas(db, "baseline")[("retrieval", "planted", "text_to_image", "ALL", "recall_at_10")][3]
        == "worse"
    )

    with connection(db) as conn:
        with pytest.raises(runs.BaselineError, match="no run 'nosuch'"):
            runs.set_baseline(conn, config, "nosuch")
        assert runs.clear_baseline(conn, config)
        assert runs.show_baseline(conn, config) is None
