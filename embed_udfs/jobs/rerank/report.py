"""The scorecard's rerank block: per reranker, pair and direction, the ALL
uplift with its paired interval, the stage-1 ceiling, wins and losses, and the
sections the reranker helps and hurts most (from metrics.fct_rerank_uplift)."""

from __future__ import annotations

import psycopg

from embed_udfs.terminal import clean

HEADLINE = "recall_at_1"
TOP_SECTIONS = 3


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def rerank_scorecard(conn: psycopg.Connection) -> str:
    """The rerank block, or "" when no reranker has been evaluated."""
    exists = conn.execute("select to_regclass('metrics.fct_rerank_uplift')").fetchone()
    if exists is None or exists[0] is None:
        return ""
    rows = conn.execute(
        "select reranker, pair, direction, section, metric, n, before, after, difference, "
        "ci_low, ci_high, n_improved, n_worsened, stage1_ceiling, n_not_reranked, n_candidates "
        "from metrics.fct_rerank_uplift where metric = %s or metric like 'mrr_at_%%' "
        "order by reranker, pair, direction, section",
        (HEADLINE,),
    ).fetchall()
    if not rows:
        return ""
    lines = [
        "\nrerank: stage-2 uplift over the stage-1 candidates "
        "(after - before, 95% paired bootstrap interval)"
    ]
    groups: dict[tuple[str, str, str], dict[tuple[str, str], tuple]] = {}
    for reranker, pair, direction, section, metric, *rest in rows:
        kind = "recall" if metric == HEADLINE else "mrr"
        groups.setdefault((reranker, pair, direction), {})[(section, kind)] = (metric, *rest)
    for (reranker, pair, direction), figures in groups.items():
        if ("ALL", "recall") not in figures:
            continue
        _, n, before, after, diff, low, high, wins, losses, ceiling, kept, k = figures[
            ("ALL", "recall")
        ]
        mrr = figures.get(("ALL", "mrr"))
        lines.append(
            f"  {clean(reranker)} on {clean(pair)} {direction} (n = {n}, top {k} candidates): "
            f"R@1 {before:.3f} -> {after:.3f} = {_signed(diff)} [{low:+.3f}, {high:+.3f}]"
            + (
                f"; {mrr[0].replace('mrr_at_', 'MRR@')} {_signed(mrr[4])} "
                f"[{mrr[5]:+.3f}, {mrr[6]:+.3f}]"
                if mrr
                else ""
            )
        )
        lines.append(
            f"    stage-1 ceiling {ceiling:.3f}; R@1 wins {wins}, losses {losses}"
            + (f"; {kept} queries kept in stage-1 order (unscored pairs)" if kept else "")
        )
        sections = sorted(
            (diff, section, n)
            for (section, kind), (_, n, _, _, diff, *_) in figures.items()
            if kind == "recall" and section != "ALL"
        )
        helped = [s for s in reversed(sections) if s[0] > 0][:TOP_SECTIONS]
        hurt = [s for s in sections if s[0] < 0][:TOP_SECTIONS]
        for label, chosen in (("helps most", helped), ("hurts most", hurt)):
            text = ", ".join(f"{clean(section)} {_signed(d)} (n={m})" for d, section, m in chosen)
            lines.append(f"    {label}: {text or 'none'}")
    return "\n".join(lines)
