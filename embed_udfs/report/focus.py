"""Which sections the report puts in front of a reader first. One function, so that
an evidence rule (a section's interval against the others') can replace the point
estimates it uses now without touching the pages that call it."""

from __future__ import annotations

from collections.abc import Mapping

from embed_udfs.report.fetchers import Estimate

SECTIONS_IN_FOCUS = 3


def sections_in_focus(
    by_section: Mapping[str, Mapping[int, Estimate]], k: int, limit: int = SECTIONS_IN_FOCUS
) -> tuple[str, ...]:
    """The `limit` weakest sections (never ALL) by their Recall@k point estimate, weakest
    first, ties by name; sections without a figure are left out."""
    figures = {
        section: by_k[k].value
        for section, by_k in by_section.items()
        if section != "ALL" and k in by_k and by_k[k].value is not None
    }
    return tuple(sorted(figures, key=lambda s: (figures[s], s))[:limit])
