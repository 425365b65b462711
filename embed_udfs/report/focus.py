"""Which sections the report puts in front of a reader first, and in what order: the
weakest on evidence (fct_retrieval_metrics.weakness_rank: sections below ALL after Holm's
correction first, then by the adjusted p-value), by point estimate only where a mart
published no rank. The section charts and the failure gallery both order by it."""

from __future__ import annotations

from collections.abc import Mapping

from embed_udfs.report.fetchers import Estimate

SECTIONS_IN_FOCUS = 3


def evidence_order(figure: Estimate | None, section: str) -> tuple:
    """A sort key, weakest first: the mart's rank by evidence; the value where none."""
    if figure is None:
        return (1, 0, 0.0, section)
    if figure.weakness_rank is None:
        return (1, 0, figure.value if figure.value is not None else 0.0, section)
    return (0, figure.weakness_rank, 0.0, section)


def sections_in_focus(
    by_section: Mapping[str, Mapping[int, Estimate]], k: int, limit: int = SECTIONS_IN_FOCUS
) -> tuple[str, ...]:
    """The `limit` weakest sections (never ALL) at Recall@k, weakest on evidence first
    (evidence_order), ties by name; sections without a figure are left out."""
    figures = {
        section: by_k[k]
        for section, by_k in by_section.items()
        if section != "ALL" and k in by_k and by_k[k].value is not None
    }
    return tuple(sorted(figures, key=lambda s: evidence_order(figures[s], s))[:limit])
