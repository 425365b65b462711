"""numpy references for the rerank marts, written from the evaluation protocol:
rank = 1 + candidates strictly better than the positive, and the paired Poisson
bootstrap with the md5 draws that the dbt models document."""

from __future__ import annotations

import hashlib
import math

import numpy as np

POISSON_CDF = np.cumsum([np.exp(-1) / math.factorial(k) for k in range(9)])


def poisson_weights(product_id: str, replicates: int, seed: int = 42) -> np.ndarray:
    """Poisson(1) multiplicities of a product in replicates 1..B, from md5(seed:id:b)."""
    draws = []
    for b in range(1, replicates + 1):
        digest = hashlib.md5(f"{seed}:{product_id}:{b}".encode()).hexdigest()
        u = int(digest[:13], 16) / 2.0**52
        draws.append(int(np.searchsorted(POISSON_CDF, u, side="right")))
    return np.array(draws, dtype=np.float64)


def rank_among(values: np.ndarray, target: float, higher_is_better: bool) -> int:
    """1 + the number of values strictly better than target."""
    better = values > target if higher_is_better else values < target
    return 1 + int(better.sum())


def paired_interval(differences: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """2.5th and 97.5th percentiles (linear interpolation) of the weighted mean difference
    over bootstrap replicates; weights is (queries, replicates)."""
    totals = weights.sum(axis=0)
    keep = totals > 0
    replicate_means = (weights * differences[:, None]).sum(axis=0)[keep] / totals[keep]
    return float(np.percentile(replicate_means, 2.5)), float(np.percentile(replicate_means, 97.5))
