"""Figures of one search setting from neighbour lists: how much of the exact top-k the
index returns (neighbour recall), and what retrieval metrics read from the index's lists
would report against the same metrics read from the exact lists (the bias)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RECALL_K = 10  # ann_target_recall is a neighbour recall at this depth


@dataclass(frozen=True)
class Setting:
    """One point of the grid: hnsw.ef_search or ivfflat.probes, and the iterative scan."""

    param: str  # ef_search | probes
    value: int
    iterative_scan: str = "off"

    def label(self) -> str:
        text = f"{self.param} {self.value}"
        return text if self.iterative_scan == "off" else f"{text} ({self.iterative_scan})"


def neighbour_recall(
    found: Sequence[Sequence[str]], exact: Sequence[Sequence[str]], k: int
) -> float:
    """Mean over queries of |found top-k ∩ exact top-k| / |exact top-k|."""
    shares = [
        len(set(f[:k]) & set(e[:k])) / len(e[:k]) for f, e in zip(found, exact, strict=True) if e
    ]
    return float(np.mean(shares)) if shares else float("nan")


def retrieval_figures(
    lists: Sequence[Sequence[str]], positives: Sequence[str | None], k_values: Sequence[int]
) -> dict[str, float]:
    """recall_at_K for each K and mrr_at_max(K), with the positive's rank read as its
    position in the list (what the index path of the retrieval metrics does)."""
    max_k = max(k_values)
    ranks = [
        (lst.index(positive) + 1 if positive in lst[:max_k] else None)
        for lst, positive in zip(lists, positives, strict=True)
        if positive is not None
    ]
    if not ranks:
        return {}
    figures = {
        f"recall_at_{k}": float(np.mean([r is not None and r <= k for r in ranks]))
        for k in k_values
    }
    figures[f"mrr_at_{max_k}"] = float(np.mean([1.0 / r if r else 0.0 for r in ranks]))
    return figures


def latency(ms: Sequence[float]) -> tuple[float, float]:
    """p50 and p95 of per-query times in milliseconds."""
    values = np.asarray(ms, dtype=float)
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


@dataclass(frozen=True)
class Point:
    """The figures of one setting for one target."""

    setting: Setting
    recall: Mapping[int, float]  # neighbour recall at 10 and at the list depth
    retrieval: Mapping[str, float]  # index figures (recall_at_K, mrr_at_K)
    p50_ms: float
    p95_ms: float


def chosen(points: Sequence[Point], target_recall: float, k: int = RECALL_K) -> Point | None:
    """The cheapest setting (smallest value, no iterative scan) whose neighbour
    recall@k meets the target; None when no setting in the grid does."""
    meeting = [
        p
        for p in points
        if p.setting.iterative_scan == "off" and p.recall.get(k, float("nan")) >= target_recall
    ]
    return min(meeting, key=lambda p: p.setting.value) if meeting else None
