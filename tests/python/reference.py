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
