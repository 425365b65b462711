"""The terminal scorecard: per-section retrieval and gap figures from the
metrics marts, weakest sections on evidence first (small ones marked), plus
where to query the tables."""

from __future__ import annotations

from collections import defaultdict

import psycopg
from psycopg import sql

from embed_udfs import contract
from embed_udfs.config import ProjectConfig
from embed_udfs.terminal import clean

SCORECARD_METRICS = ("recall_at_1", "recall_at_10")
LEAF_LEVEL = "leaf"
MACRO_ROW = "ALL (macro)"
# the macro average is shown where it differs from the micro one by more than rounding
MACRO_SHOWN_ABOVE = 0.0005


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def _level_order(level: str) -> tuple[int, int]:
    """leaf first (the catalog's own sections), then level_1, level_2, ..."""
    if level == LEAF_LEVEL:
        return (0, 0)
    return (1, int(level.rsplit("_", 1)[-1]) if level.rsplit("_", 1)[-1].isdigit() else 0)


def scorecard(conn: psycopg.Connection, config: ProjectConfig) -> str:
    """One table per pair and section level: a row per section, R@1, R@10 and MRR both
    ways, cosine gap, n; the ALL row's macro average (over sections) beneath it."""
    mrr = f"mrr_at_{config.eval.max_k}"
    metrics = (*SCORECARD_METRICS, mrr)
    rows = conn.execute(
        sql.SQL(
            "select pair, section_level, direction, section, metric, value, n, macro_value, "
            "n_sections, weakness_rank, is_weaker_than_all, is_small_section "
            "from {} where metric = any(%s) and gallery_scope = 'sample'"
        ).format(contract.RETRIEVAL_METRICS.identifier),
        (list(metrics),),
    ).fetchall()
    gaps = conn.execute(
        sql.SQL(
            "select pair, section_level, section, value, macro_value, n_sections from {} "
            "where metric = 'cosine_gap'"
        ).format(contract.EMBEDDING_GAPS.identifier)
    ).fetchall()
    if not rows:
        if not config.pairs:
            return (
                "No retrieval metrics yet: configure vars.embed_pairs and run `embed-udfs refresh`."
            )
        reasons = empty_sample_reasons(conn, "retrieval")
        if reasons:
            return "No retrieval metrics:\n" + "\n".join(
                f"  not evaluable: {reason}" for reason in reasons
            )
        return "No retrieval metrics yet for the configured pairs: run `embed-udfs refresh`."
    table: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    sizes: dict[tuple[str, str, str], int] = {}
    # the weakest-first order and marks come from t2i R@10's evidence (fct_retrieval_metrics)
    evidence: dict[tuple[str, str, str], tuple[int | None, bool | None, bool | None]] = {}
    for (
        pair,
        level,
        direction,
        section,
        metric,
        value,
        n,
        macro,
        n_sections,
        rank,
        weaker,
        small,
    ) in rows:
        pair, section = clean(pair), clean(section)  # both come from the data
        short = {"text_to_image": "t2i", "image_to_text": "i2t"}[direction]
        table[pair, level][section][f"{short} {metric}"] = value
        sizes[pair, level, section] = n
        if short == "t2i" and metric == "recall_at_10":
            evidence[pair, level, section] = (rank, weaker, small)
        if section == "ALL" and macro is not None and abs(macro - value) > MACRO_SHOWN_ABOVE:
            table[pair, level][MACRO_ROW][f"{short} {metric}"] = macro
            sizes[pair, level, MACRO_ROW] = n_sections
    for pair, level, section, value, macro, n_sections in gaps:
        pair, section = clean(pair), clean(section)
        if (pair, level) not in table:
            continue
        table[pair, level][section]["gap"] = value
        if section == "ALL" and macro is not None and abs(macro - value) > MACRO_SHOWN_ABOVE:
            table[pair, level][MACRO_ROW]["gap"] = macro
            sizes.setdefault((pair, level, MACRO_ROW), n_sections)

    columns = [f"{d} {m}" for d in ("t2i", "i2t") for m in metrics] + ["gap"]
    headers = [c.replace("recall_at_", "R@").replace(mrr, "MRR") for c in columns]
    several_levels = len({level for _, level in table}) > 1
    width = 16
    if several_levels:  # paths are long: as wide as the longest, within reason
        width = min(48, max(width, *(len(s) + 1 for sections in table.values() for s in sections)))
    lines = []
    for pair, level in sorted(table, key=lambda key: (key[0], _level_order(key[1]))):
        sections = table[pair, level]
        order = sorted(
            (s for s in sections if s not in ("ALL", MACRO_ROW)),
            key=lambda s: _evidence_key(evidence.get((pair, level, s)), sections[s], s),
        )
        where = f"pair {pair}, {level} sections" if several_levels else f"pair {pair}"
        lines.append(
            f"\n{where}  (gallery: the eval sample; n = queries per direction; weakest sections "
            "on evidence first: "
            "* weaker than ALL after Holm's correction, ~ small section)"
        )
        lines.append(f"  {'section':<{width}}{'n':>6}  " + "  ".join(f"{h:>9}" for h in headers))
        shown = ["ALL", *([MACRO_ROW] if MACRO_ROW in sections else []), *order]
        for section in shown:
            values = sections[section]
            _, weaker, small = evidence.get((pair, level, section), (None, None, None))
            mark = ("*" if weaker else " ") + ("~" if small else " ")
            lines.append(
                f"{mark}{section:<{width}}{sizes.get((pair, level, section), 0):>6}  "
                + "  ".join(f"{_fmt(values.get(c)):>9}" for c in columns)
            )
    if any(MACRO_ROW in sections for sections in table.values()):
        lines.append(
            f"\n{MACRO_ROW}: the mean over the level's sections (n = sections), where it differs "
            "from ALL, the mean over queries; `other` holds the sections with fewer than "
            f"{config.sections.min_queries} queries (vars.section_min_queries)."
        )
    lines.extend(gallery_scorecard(conn, metrics))
    not_evaluable = empty_sample_reasons(conn, "retrieval")
    if not_evaluable:
        lines.append("")
        lines.extend(f"not evaluable: {reason}" for reason in not_evaluable)
    return "\n".join(lines)


def _evidence_key(
    evidence: tuple[int | None, bool | None, bool | None] | None,
    values: dict[str, float],
    section: str,
) -> tuple:
    """The mart's weakest-first rank by evidence; by t2i R@10 where none was published."""
    rank = evidence[0] if evidence else None
    if rank is None:
        return (1, 0, values.get("t2i recall_at_10", 0.0), section)
    return (0, rank, 0.0, section)


def gallery_scorecard(conn: psycopg.Connection, metrics: tuple[str, ...]) -> list[str]:
    """Lines of R@K (ALL) against gallery size: the same sampled queries ranked against the
    eval sample, the tiers between it and the whole catalog (sample_x<m>) and the whole
    catalog, each with its gallery size and search."""
    rows = conn.execute(
        sql.SQL(
            "select pair, direction, gallery_scope, gallery_size, gallery_is_sample, "
            "search_method, metric, value from {} where section = 'ALL' and section_level = 'leaf' "
            "and metric = any(%s) "
            "order by pair, direction, gallery_size, gallery_scope desc"
        ).format(contract.RETRIEVAL_METRICS.identifier),
        (list(metrics),),
    ).fetchall()
    if not rows:
        return []
    figures: dict[tuple, dict[str, float]] = defaultdict(dict)
    for pair, direction, scope, size, is_sample, method, metric, value in rows:
        figures[clean(pair), direction, scope, size, is_sample, method][metric] = value
    headers = [m.replace("recall_at_", "R@").replace("mrr_at_", "MRR@") for m in metrics]
    width = max(12, *(len(key[0]) + 2 for key in figures))  # pair names come from the config
    scope_width = max(9, *(len(key[2]) + 2 for key in figures))
    lines = [
        "\nR@K against gallery size (ALL; the same sampled queries, a larger gallery is harder)",
        f"  {'pair':<{width}}{'direction':<15}{'gallery':<{scope_width}}{'products':>10}  "
        + "  ".join(f"{h:>7}" for h in headers)
        + "  search",
    ]
    for (pair, direction, scope, size, is_sample, method), values in figures.items():
        note = "  (the sample's own gallery: the catalog is no larger)" if is_sample else ""
        lines.append(
            f"  {pair:<{width}}{direction:<15}{scope:<{scope_width}}{size:>10,}  "
            + "  ".join(f"{_fmt(values.get(m)):>7}" for m in metrics)
            + f"  {method}{note}"
        )
    return lines


def empty_sample_reasons(conn: psycopg.Connection, purpose: str) -> list[str]:
    """Why each empty sample of this purpose ('retrieval' or 'label') is empty, from the mart."""
    if not contract.exists(conn, contract.EVAL_SAMPLE_SIZES):
        return []
    rows = conn.execute(
        sql.SQL(
            "select empty_reason from {} where purpose = %s and is_empty order by scope"
        ).format(contract.EVAL_SAMPLE_SIZES.identifier),
        (purpose,),
    ).fetchall()
    # reasons quote section and space names; long ones are kept whole
    return [clean(reason, max_width=1000) for (reason,) in rows]


LABEL_METRICS = (
    ("nn1_accuracy", "none", "1-NN acc"),
    ("kmeans_ari", "pca_64", "ARI pca64"),
    ("kmeans_nmi", "pca_64", "NMI pca64"),
    ("silhouette_cosine", "none", "silhouette"),
)


def label_scorecard(conn: psycopg.Connection) -> str:
    """One row per text space: how well it separates the sections (ALL), with 95% intervals.

    Silhouette is shown per space but never ranked across spaces.
    """
    if not contract.exists(conn, contract.LABEL_METRICS):
        return ""
    rows = conn.execute(
        sql.SQL(
            "select space, metric, reduction, value, ci_low, ci_high, n from {} "
            "where section = 'ALL'"
        ).format(contract.LABEL_METRICS.identifier)
    ).fetchall()
    empty = [f"  not evaluable: {reason}" for reason in empty_sample_reasons(conn, "label")]
    if not rows:
        return "\n".join(["\nNo label metrics:", *empty]) if empty else ""
    figures = {(clean(space), metric, reduction): rest for space, metric, reduction, *rest in rows}
    spaces = sorted({key[0] for key in figures})
    lines = ["\nlabel structure: does each text space separate collection_section? (ALL, 95% CI)"]
    header = "  ".join(f"{title:>21}" for _, _, title in LABEL_METRICS)
    lines.append(f"  {'space':<28}{'n':>6}  {header}")
    for space in spaces:
        cells, n = [], 0
        for metric, reduction, _ in LABEL_METRICS:
            figure = figures.get((space, metric, reduction))
            if figure is None or figure[0] is None:
                cells.append(f"{'-':>21}")
                continue
            value, low, high, n = figure
            n = int(n)
            interval = f"[{low:.2f},{high:.2f}]" if low is not None else ""
            cells.append(f"{value:>7.3f} {interval:>13}")
        lines.append(f"  {space:<28}{n:>6}  " + "  ".join(cells))
    lines.extend(_chance_lines(conn))
    lines.append("  fct_space_comparisons says which differences are real at this n.")
    lines.extend(empty)
    return "\n".join(lines)


def _chance_lines(conn: psycopg.Connection) -> list[str]:
    """What a label-blind neighbour scores beside each space's 1-NN accuracy, and a
    warning naming vars.eval_section_cap when one section dominates the sample."""
    rows = conn.execute(
        sql.SQL(
            "select space, value, kappa, chance_level, majority_share, majority_section, "
            "is_dominated, n from {} "
            "where metric = 'nn1_accuracy' and section = 'ALL' order by space"
        ).format(contract.LABEL_METRICS.identifier)
    ).fetchall()
    lines = []
    if rows:
        lines.append(
            "  1-NN beside a label-blind neighbour: chance = sum of squared section shares, "
            "kappa = (1-NN - chance) / (1 - chance)"
        )
    dominated = None
    for space, value, kappa, chance, majority, section, is_dominated, n in rows:
        if chance is None:
            continue
        lines.append(
            f"  {clean(space):<28}1-NN {value:.3f}  chance {chance:.3f}  "
            f"majority {majority:.3f} ({clean(section)})  kappa {_fmt(kappa).strip()}"
        )
        if is_dominated:
            dominated = (clean(section), majority, int(n))
    if dominated:
        section, share, n = dominated
        rest = n - round(share * n)
        lines.append(
            f"  warning: section {section} holds {share:.0%} of the label sample, so the "
            "figures above mostly describe it; vars.eval_section_cap balances the sample "
            f"(e.g. --vars '{{eval_section_cap: {max(rest, 1)}}}' caps it at the other "
            "sections' total)."
        )
    return lines


def thresholds_notice(conn: psycopg.Connection) -> str | None:
    """Say when the floors shipped for the demo only warn because this is another catalog."""
    if not contract.exists(conn, contract.METRIC_THRESHOLDS):
        return None
    row = conn.execute(
        sql.SQL("select count(*) filter (where is_relaxed), count(*) from {}").format(
            contract.METRIC_THRESHOLDS.identifier
        )
    ).fetchone()
    relaxed = int(row[0]) if row else 0
    if not relaxed:
        return None
    return (
        f"Thresholds: {relaxed} error floor(s) in seeds/metric_thresholds.csv were set for the "
        "demo catalog (scope demo), so on this catalog they only warn. Set floors of your own "
        "(scope any) and run `embed-udfs refresh` to enforce them; "
        f"{contract.METRIC_THRESHOLDS} lists what is in force."
    )


def random_weight_notice(config: ProjectConfig) -> str | None:
    """Say plainly when CLIP spaces run on random weights, and how to load real ones."""
    random_spaces = [
        s.name for s in config.spaces if s.backend == "open_clip" and s.pretrained is None
    ]
    if not random_spaces:
        return None
    return (
        f"Note: the open_clip spaces {', '.join(random_spaces)} use RANDOM weights (no weights "
        "can be downloaded here), so their cross-modal figures sit at chance, about K/N.\n"
        "To load real weights, set `pretrained:` on those spaces in dbt_project.yml to a "
        "checkpoint path (e.g. /models/open_clip_pytorch_model.bin) or, with network access, a "
        "pretrained tag (e.g. model: ViT-B-32, pretrained: laion2b_s34b_b79k, dim: 512), or run "
        "once with --vars. A new model or weights should be a new space name."
    )


WHERE_TO_LOOK = (
    (contract.RETRIEVAL_METRICS, "R@K, MRR, n, 95% CI by section"),
    (contract.EMBEDDING_GAPS, "cosine and squared-euclidean gaps per section"),
    (contract.RETRIEVAL_RANKS, "the positive's rank for every query"),
    (contract.REJECTED_INPUTS, "inputs and vectors refused, with the reason"),
    (contract.PIPELINE_STEPS, "rows cleaning, dedup and sampling removed, why"),
    (contract.LABEL_METRICS, "1-NN, silhouette, ARI/NMI per text space"),
    (contract.SPACE_COMPARISONS, "does text space A beat B? paired bootstrap"),
)


def where_to_look(uri: str) -> str:
    lines = [
        f"{'Tables:' if i == 0 else '':<9}{str(relation):<31}({what})"
        for i, (relation, what) in enumerate(WHERE_TO_LOOK)
    ]
    return f"Connect: psql '{uri}'\n" + "\n".join(lines)
