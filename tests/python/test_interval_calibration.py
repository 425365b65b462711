"""Calibration of the published intervals and of the evidence rule, on simulated catalogs
whose truth is known (bench/interval_calibration.py holds the simulation and its slow
version). Queries come in clusters with intra-cluster correlation 0.5: the 95% cluster
bootstrap interval must cover the true mean in at least 93% of catalogs, the
independent-query interval clearly less often; with every section equal, the Holm-corrected
rule must flag no section in at least 95% of catalogs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

import interval_calibration  # noqa: E402
from reference import holm, weaker_p  # noqa: E402

CATALOGS = 300


def test_cluster_interval_covers_the_truth_and_the_independent_one_does_not():
    result = interval_calibration.coverage(CATALOGS, seed=1, clusters=80, icc=0.5)
    assert result.queries_mean > 300
    assert result.cluster >= 0.93, result
    assert result.independent <= 0.85, result
    assert result.cluster - result.independent >= 0.1, result


def test_without_clustering_the_two_intervals_agree():
    """ICC ~ 0: the cluster interval is not needlessly wide (it is never below Wilson's)."""
    result = interval_calibration.coverage(100, seed=2, clusters=80, icc=0.0001)
    assert result.cluster >= 0.93 and result.independent >= 0.9, result
    assert result.cluster_width < 1.25 * result.independent_width, result


def test_equal_sections_are_flagged_in_under_five_percent_of_catalogs():
    with_holm, uncorrected = interval_calibration.false_flags(200, seed=3)
    assert with_holm <= 0.05, with_holm
    # looking at 12 sections without a correction flags one far more often
    assert uncorrected >= 3 * max(with_holm, 0.02), (with_holm, uncorrected)


def test_the_bench_rule_is_the_reference_rule():
    rng = np.random.default_rng(0)
    for _ in range(50):
        difference, se, clusters = rng.normal(), rng.uniform(0, 1), int(rng.integers(1, 40))
        assert interval_calibration.weaker_p(difference, se, clusters) == pytest.approx(
            weaker_p(difference, se, clusters), abs=1e-12
        )
    p = rng.uniform(size=12)
    assert interval_calibration.holm(p) == pytest.approx(holm(p), abs=1e-12)


def test_holm_reference_on_a_worked_example():
    # p = 0.01, 0.04, 0.03, 0.005 with m = 4: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1
    # running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
