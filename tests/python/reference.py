"""Independent numpy references for every metric formula, written from the
evaluation protocol (docs/evaluation-protocol.md), not from the SQL."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# pgvector accumulates in float32; numpy here in float64. Gallery items whose
# similarity is within TIE_EPS of the positive's may fall either side.
TIE_EPS = 1e-5


def unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def rank_bounds(queries: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each query's positive (same row) = 1 + gallery items strictly closer.

    Returns (low, high): equal except where near-ties make float32 rounding decide.
    """
    sims = unit(queries) @ unit(gallery).T
    positive = np.diag(sims)[:, None]
    low = 1 + (sims > positive + TIE_EPS).sum(axis=1)
    high = 1 + (sims > positive - TIE_EPS).sum(axis=1) - 1  # the positive itself is within eps
    return low, high


def exact_ranks(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    sims = unit(queries) @ unit(gallery).T
    return 1 + (sims > np.diag(sims)[:, None]).sum(axis=1)


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ranks <= k))


def mrr_at(ranks: np.ndarray, max_k: int) -> float:
    return float(np.mean(np.where(ranks <= max_k, 1.0 / ranks, 0.0)))


def wilson(hits: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def gaps(
    texts: np.ndarray, images: np.ndarray, members: Sequence[bool] | np.ndarray
) -> dict[str, float]:
    """Positive vs negative means over the full N x N matrix, for anchors in `members`."""
    t, v = unit(texts), unit(images)
    members = np.asarray(members, dtype=bool)
    cos = t @ v.T
    sq = ((t[:, None, :] - v[None, :, :]) ** 2).sum(axis=2)
    off_diagonal = ~np.eye(len(t), dtype=bool)
    rows = members[:, None] & off_diagonal
    positive_cos = np.diag(cos)[members].mean()
    negative_cos = cos[rows].mean()
    positive_sq = np.diag(sq)[members].mean()
    negative_sq = sq[rows].mean()
    return {
        "cosine_positive_mean": positive_cos,
        "cosine_negative_mean": negative_cos,
        "cosine_gap": positive_cos - negative_cos,
        "sq_euclidean_positive_mean": positive_sq,
        "sq_euclidean_negative_mean": negative_sq,
        "sq_euclidean_gap": negative_sq - positive_sq,
    }


def top_k(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """Each query's k nearest gallery rows by cosine (ties by row index): indices, (n, k)."""
    sims = unit(queries) @ unit(gallery).T
    # lexsort's last key is the primary one: similarity descending, then the index
    order = np.lexsort((np.broadcast_to(np.arange(sims.shape[1]), sims.shape), -sims), axis=1)
    return order[:, :k]


def ndcg_at(
    ranks: np.ndarray, k: int, duplicate_ranks: Sequence[Sequence[int]] | None = None
) -> float:
    """Mean nDCG@k with one relevant item (the positive at `ranks`, 0 = beyond):
    DCG = 1/log2(1 + rank), ideal 1. With `duplicate_ranks` (per query, the ranks of
    the positive's duplicates) each duplicate within k adds 0.5/log2(1 + rank),
    capped at 1 (the graded, dedup-tolerant twin)."""
    scores = []
    for q, rank in enumerate(ranks):
        dcg = 1.0 / math.log2(1 + rank) if 0 < rank <= k else 0.0
        if duplicate_ranks is not None:
            dcg += sum(0.5 / math.log2(1 + r) for r in duplicate_ranks[q] if r <= k)
            dcg = min(1.0, dcg)
        scores.append(dcg)
    return float(np.mean(scores))


def section_purity_at(neighbours: np.ndarray, sections: np.ndarray, k: int) -> np.ndarray:
    """Per query, the share of its first k neighbours (indices) in its own section."""
    return (sections[neighbours[:, :k]] == sections[:, None]).mean(axis=1)


# The Poisson(1) CDF thresholds the SQL inverts (macro poisson_one): draws above 8 count as 9.
_POISSON_CDF = np.cumsum([math.exp(-1) / math.factorial(j) for j in range(9)])


def hash_uniform(key: str) -> float:
    """A uniform in [0, 1) from the first 52 bits of md5(key), as the SQL draws it."""
    import hashlib

    return int(hashlib.md5(key.encode()).hexdigest()[:13], 16) / 2.0**52


def cluster_weights(clusters: Sequence[str], seed: int, replicates: int) -> np.ndarray:
    """(len(clusters), B) Poisson(1) multiplicities from md5(seed:cluster:b): every row of a
    cluster shares its cluster's draw."""
    drawn: dict[str, np.ndarray] = {}
    for cluster in set(clusters):
        u = np.array([hash_uniform(f"{seed}:{cluster}:{b}") for b in range(1, replicates + 1)])
        drawn[cluster] = np.searchsorted(_POISSON_CDF, u, side="right").astype(np.float64)
    return np.stack([drawn[c] for c in clusters])


def bootstrap_replicates(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted means of `scores` under each column of `weights` (nan where a resample is empty)."""
    totals = weights.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, (weights * scores[:, None]).sum(axis=0) / totals, np.nan)


def se_interval(
    value: float, replicates: np.ndarray, z: float = 1.959963984540054
) -> tuple[float, float, float]:
    """(standard error, low, high): value +/- z sd of the replicates, clipped to [0, 1]."""
    se = float(np.nanstd(replicates, ddof=1))
    return se, max(0.0, value - z * se), min(1.0, value + z * se)


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def weaker_p(difference: float, se: float, clusters: int) -> float:
    """One-sided p-value of "the section is not below ALL", written from the protocol: the
    bootstrap standard error scaled by sqrt(G / (G - 1)), the t statistic on G - 1 degrees
    of freedom turned into a normal deviate by z = t (1 - 1/(4 df)) / sqrt(1 + t^2/(2 df))."""
    if clusters < 2:
        return 1.0
    if se > 0:
        t = difference / (se * math.sqrt(clusters / (clusters - 1)))
        df = clusters - 1
        return normal_cdf(t * (1 - 1 / (4 * df)) / math.sqrt(1 + t * t / (2 * df)))
    return 0.0 if difference < 0 else 1.0


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = len(p)
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adjusted
    return out
