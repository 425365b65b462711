"""The HTML report: one self-contained file (inline CSS and SVG, no script, no
network) drawn from the metrics marts. Every figure has a table under it,
and every string from the database is cleaned of escape sequences and control
characters, then HTML-escaped."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape as html_escape
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from embed_udfs import __version__, contract
from embed_udfs.config import ProjectConfig
from embed_udfs.errors import EmbedUdfsError
from embed_udfs.report import random_weight_notice
from embed_udfs.report.svg import (
    Interval,
    Series,
    histogram,
    interval_bars,
    line_chart,
    nice_upper,
)
from embed_udfs.terminal import clean

log = logging.getLogger(__name__)

DIRECTIONS = {"text_to_image": "text → image", "image_to_text": "image → text"}
# rows of a relation we do not know the shape of (rerank uplift, deltas) shown at most
GENERIC_ROW_LIMIT = 300
HISTORY_RUNS = 20

CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #1d1f23;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { background: #1f2d3d; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 600; }
header p { margin: 0; color: #c9d3de; font-size: 13px; }
nav { padding: 8px 32px; background: #fff; border-bottom: 1px solid #dde1e6; font-size: 14px; }
nav a { margin-right: 18px; color: #0a5bb5; text-decoration: none; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 32px 48px; }
section { margin-top: 28px; }
h2 { font-size: 20px; font-weight: 600; border-bottom: 2px solid #dde1e6; padding-bottom: 4px; }
h3 { font-size: 16px; font-weight: 600; margin: 18px 0 6px; }
p.lead { color: #444; max-width: 900px; }
.notice { background: #fff7e0; border-left: 4px solid #e6a700; padding: 10px 14px;
  white-space: pre-line; font-size: 14px; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid #dde1e6; border-radius: 6px;
  padding: 12px; flex: 1 1 540px; max-width: calc(50% - 34px); min-width: 300px; }
figure.wide { flex-basis: 100%; max-width: 100%; }
figcaption { font-size: 13px; color: #555; margin-top: 4px; }
svg { display: block; max-width: 100%; height: auto; }
details { margin-top: 6px; font-size: 13px; }
summary { cursor: pointer; color: #0a5bb5; }
table { border-collapse: collapse; margin-top: 6px; font-size: 13px;
  font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e6e8eb; padding: 3px 10px 3px 0; text-align: right; }
th { font-weight: 600; color: #333; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; }
.scroll { overflow-x: auto; max-height: 480px; overflow-y: auto; }
.better { color: #0b7a3b; font-weight: 600; }
.worse { color: #b3261e; font-weight: 600; }
footer { color: #666; font-size: 12px; margin-top: 40px; }
"""


def write_report(conn: psycopg.Connection, config: ProjectConfig, path: Path) -> Path:
    """Write the report to `path` (parent folders created) and return the resolved path."""
    started = time.perf_counter()
    page = render_report(conn, config)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise EmbedUdfsError(
            f"cannot write the HTML report to {path}: {exc.strerror or exc}. "
            "Pass a writable path to --html."
        ) from exc
    log.info("wrote %s (%d KB) in %.2f s", path, len(page) // 1024, time.perf_counter() - started)
    return path.resolve()


def render_report(conn: psycopg.Connection, config: ProjectConfig) -> str:
    """The whole page as a string."""
    if not _exists(conn, contract.RETRIEVAL_METRICS):
        raise EmbedUdfsError(
            f"{contract.RETRIEVAL_METRICS} does not exist in this database, so there is nothing "
            "to report. Build the metrics first: `embed-udfs refresh` (or `embed-udfs demo run`)."
        )
    blocks = [
        ("retrieval", "Retrieval by section", _retrieval(conn)),
        ("curves", "Recall@K curves", _curves(conn)),
        ("similarity", "Positive vs negative similarity", _similarity(conn)),
        ("labels", "Label structure per text space", _labels(conn)),
        ("comparisons", "Space comparisons", _comparisons(conn)),
        ("rerank", "Rerank uplift", _generic(conn, contract.RERANK_UPLIFT, RERANK_LEAD)),
        ("history", "Metric history", _history(conn, config)),
        (
            "deltas",
            "Deltas against the baseline",
            _deltas(conn),
        ),
    ]
    present = [(anchor, title, body) for anchor, title, body in blocks if body]
    nav = "".join(f'<a href="#{anchor}">{escape(title)}</a>' for anchor, title, _ in present)
    sections = "".join(
        f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'
        for anchor, title, body in present
    )
    notice = random_weight_notice(config)
    notice_html = f'<p class="notice">{escape(notice)}</p>' if notice else ""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    database = conn.info.dbname
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Embedding quality report</title>"
        f"<style>{CSS}</style></head><body>"
        "<header><h1>Embedding quality report</h1>"
        f"<p>database {escape(database)} · generated {stamp} · embed-udfs {escape(__version__)}"
        f" · K = {escape(', '.join(str(k) for k in config.eval.k_values))}"
        " · intervals are 95%</p></header>"
        f"<nav>{nav}</nav><main>{notice_html}{sections}"
        "<footer>Every figure is drawn from the tables under it, which are the metrics marts "
        "(schema <code>metrics</code>): query them from psql or a BI tool for more.</footer>"
        "</main></body></html>\n"
    )


# ---------------------------------------------------------------- helpers


def escape(value: object) -> str:
    """Text for the page: escape sequences and control characters removed (line breaks
    kept), then HTML-escaped."""
    return html_escape("\n".join(clean(line, max_width=None) for line in str(value).split("\n")))


def _cleaned(rows: list[tuple]) -> list[tuple]:
    """Rows with every string cleaned, so that no plot label or cell carries a raw
    escape sequence or control character from the data."""
    return [
        tuple(clean(value, max_width=None) if isinstance(value, str) else value for value in row)
        for row in rows
    ]


def _exists(conn: psycopg.Connection, relation: contract.Relation) -> bool:
    """Whether dbt has built the relation (marts added later are optional blocks)."""
    return contract.exists(conn, relation)


def _query(
    conn: psycopg.Connection, template: str, relation: contract.Relation, params: Any = None
) -> list[tuple]:
    """Rows of `template` with its one `{}` filled by the relation's quoted name."""
    query = sql.SQL(template).format(relation.identifier)
    return _cleaned(conn.execute(query, params).fetchall())


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="text">–</td>'
    if isinstance(value, bool):
        return f'<td class="text">{"yes" if value else "no"}</td>'
    if isinstance(value, float):
        return f"<td>{value:.4f}</td>" if abs(value) < 1000 else f"<td>{value:.4g}</td>"
    if isinstance(value, int):
        return f"<td>{value}</td>"
    text = str(value)
    css = {"better": "better", "worse": "worse", "yes": "better", "no": "worse"}.get(text.lower())
    return f'<td class="text{" " + css if css else ""}">{escape(text)}</td>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _figure(svg: str, caption: str, table: str, *, wide: bool = False) -> str:
    return (
        f"<figure{' class=wide' if wide else ''}>{svg}<figcaption>{escape(caption)}</figcaption>"
        f"<details><summary>Table</summary>{table}</details></figure>"
    )


def _top(figures: Any) -> float:
    """The largest upper bound (or value) of (value, low, high, ...) tuples, however nested."""
    top = 0.0
    for item in figures.values() if isinstance(figures, dict) else figures:
        if isinstance(item, tuple):
            value, _, high = item[:3]
            top = max(top, high if high is not None else value if value is not None else 0.0)
        else:
            top = max(top, _top(item))
    return top


def _values(series: Series) -> list[float]:
    return [iv.value for iv in series.values if iv is not None]


def _ci(low: float | None, high: float | None) -> str | None:
    return None if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


# ---------------------------------------------------------------- blocks


def _retrieval(conn: psycopg.Connection) -> str:
    rows = _query(
        conn,
        "select pair, direction, section, k, value, ci_low, ci_high, n "
        "from {} where metric like 'recall_at_%' "
        "order by pair, direction, section, k",
        contract.RETRIEVAL_METRICS,
    )
    if not rows:
        from embed_udfs.report import empty_sample_reasons

        reasons = empty_sample_reasons(conn, "retrieval")
        if reasons:
            return "<p>No retrieval metrics:</p>" + _list(reasons)
        return "<p>No retrieval metrics yet: configure vars.embed_pairs and run a refresh.</p>"
    k_values = sorted({row[3] for row in rows})
    sort_k = 10 if 10 in k_values else k_values[-1]
    figures: dict[tuple[str, str], dict[str, dict[int, tuple]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for pair, direction, section, k, value, low, high, n in rows:
        figures[pair, direction][section][k] = (value, low, high, n)
    parts = [
        '<p class="lead">Recall@K of every pair in both directions, overall (ALL) and per '
        f"collection_section, weakest sections (by R@{sort_k}) first under ALL. Whiskers are "
        "Wilson 95% intervals; n is the number of queries.</p>"
    ]
    for pair in sorted({pair for pair, _ in figures}):
        parts.append(f"<h3>pair {escape(pair)}</h3><div class=grid>")
        # both directions of a pair on one scale, zoomed in when recall is low (random weights)
        upper = nice_upper(
            _top(r for (p, _), s in figures.items() if p == pair for r in s.values())
        )
        for direction in DIRECTIONS:
            sections = figures.get((pair, direction))
            if not sections:
                continue
            order = sorted(
                (s for s in sections if s != "ALL"),
                key=lambda s: (sections[s].get(sort_k, (0.0,))[0] or 0.0, s),
            )
            categories = ["ALL", *order] if "ALL" in sections else order
            series = [
                Series(
                    f"R@{k}",
                    [
                        Interval(*sections[c][k][:3]) if sections[c].get(k) else None
                        for c in categories
                    ],
                )
                for k in k_values
            ]
            svg = interval_bars(
                categories,
                series,
                title=f"{pair}: {DIRECTIONS[direction]}",
                x_label="Recall@K (share of queries whose positive ranks within K)",
                domain=(0.0, upper),
            )
            table = _table(
                [
                    "section",
                    "n",
                    *(f"R@{k}" for k in k_values),
                    *(f"R@{k} 95% CI" for k in k_values),
                ],
                [
                    [
                        c,
                        next(iter(sections[c].values()))[3],
                        *(sections[c].get(k, (None,))[0] for k in k_values),
                        *(
                            _ci(*sections[c][k][1:3]) if k in sections[c] else None
                            for k in k_values
                        ),
                    ]
                    for c in categories
                ],
            )
            parts.append(
                _figure(svg, f"{pair}, {DIRECTIONS[direction]}: Recall@K by section", table)
            )
        parts.append("</div>")
    return "".join(parts)


def _curves(conn: psycopg.Connection) -> str:
    rows = _query(
        conn,
        "select pair, direction, k, value, ci_low, ci_high, n from {} "
        "where metric like 'recall_at_%' and section = 'ALL' order by pair, direction, k",
        contract.RETRIEVAL_METRICS,
    )
    if not rows:
        return ""
    k_values = sorted({row[2] for row in rows})
    curves: dict[str, dict[int, tuple]] = defaultdict(dict)
    for pair, direction, k, value, low, high, n in rows:
        curves[f"{pair} {DIRECTIONS[direction]}"][k] = (value, low, high, n)
    names = sorted(curves)
    gallery = max(row[6] for row in rows)
    chance = Series(
        f"chance, K/N (N = {gallery:,})",
        [Interval(min(k / gallery, 1.0)) for k in k_values],
        colour="#888",
        dashed=True,
    )
    svg = line_chart(
        [
            *(
                Series(
                    name,
                    [
                        Interval(*curves[name][k][:3]) if k in curves[name] else None
                        for k in k_values
                    ],
                )
                for name in names
            ),
            chance,
        ],
        k_values,
        title="Recall@K over K (ALL sections)",
        x_label="K (log scale)",
        y_label="Recall@K",
        log_x=len(k_values) > 1 and min(k_values) > 0,
        domain=(
            0.0,
            nice_upper(max(_top(c.values() for c in curves.values()), *_values(chance))),
        ),
        width=760,
        height=340,
    )
    table = _table(
        ["pair and direction", "n", *(f"R@{k}" for k in k_values)],
        [
            [
                name,
                next(iter(curves[name].values()))[3],
                *(curves[name].get(k, (None,))[0] for k in k_values),
            ]
            for name in names
        ],
    )
    return (
        '<p class="lead">How recall grows with the cut-off, one line per pair and direction; '
        "vertical whiskers are Wilson 95% intervals. With N products in the gallery, chance is "
        "about K/N.</p><div class=grid>"
        + _figure(svg, "Recall@K against K for every pair and direction", table, wide=True)
        + "</div>"
    )


def _similarity(conn: psycopg.Connection) -> str:
    if not _exists(conn, contract.SIMILARITY_HISTOGRAMS):
        return ""
    rows = _query(
        conn,
        "select pair, bin_low, bin_high, positive_count, negative_count, positive_share, "
        "negative_share, negatives_method from {} order by pair, bin",
        contract.SIMILARITY_HISTOGRAMS,
    )
    if not rows:
        return ""
    gaps: dict[str, dict[str, float]] = defaultdict(dict)
    if _exists(conn, contract.EMBEDDING_GAPS):
        for pair, metric, value in _query(
            conn,
            "select pair, metric, value from {} where section = 'ALL'",
            contract.EMBEDDING_GAPS,
        ):
            gaps[pair][metric] = value
    by_pair: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_pair[row[0]].append(row[1:])
    parts = [
        '<p class="lead">Cosine similarity of positive pairs (a product\'s text and its own '
        "image) against negative pairs (its text and other products' images), as shares of each "
        "group so both show despite N − 1 negatives per positive. Well-separated humps mean "
        f"good retrieval; the bins come from {contract.SIMILARITY_HISTOGRAMS}, so a BI tool can "
        "draw the same.</p><div class=grid>"
    ]
    for pair, bins in sorted(by_pair.items()):
        edges = [b[0] for b in bins] + [bins[-1][1]]
        svg = histogram(
            edges,
            [
                Series(
                    "positives (same product)",
                    [Interval(b[4]) if b[4] is not None else None for b in bins],
                ),
                Series(
                    "negatives (other products)",
                    [Interval(b[5]) if b[5] is not None else None for b in bins],
                ),
            ],
            title=f"{pair}: cosine similarity, text vs image",
            x_label="cosine similarity",
            y_label="share of pairs",
        )
        gap = gaps.get(pair, {})
        caption = (
            f"{pair}: {sum(b[2] for b in bins):,} positives, "
            f"{sum(b[3] for b in bins):,} negatives ({bins[0][6]})"
        )
        if "cosine_gap" in gap:
            caption += (
                f"; mean cosine positives {gap.get('cosine_positive_mean', float('nan')):.3f}, "
                f"negatives {gap.get('cosine_negative_mean', float('nan')):.3f}, "
                f"gap {gap['cosine_gap']:.3f}"
            )
        table = _table(
            ["bin", "positives", "negatives", "positive share", "negative share"],
            [[f"[{b[0]:.2f}, {b[1]:.2f})", b[2], b[3], b[4], b[5]] for b in bins if b[2] or b[3]],
        )
        parts.append(_figure(svg, caption, table))
    parts.append("</div>")
    return "".join(parts)


LABEL_TITLES = {
    "nn1_accuracy": ("1-NN section accuracy", (0.0, 1.0)),
    "kmeans_ari": ("KMeans ARI against sections (0 = chance)", None),
    "kmeans_nmi": ("KMeans NMI against sections", (0.0, 1.0)),
    "silhouette_cosine": ("Cosine silhouette of sections (not comparable across spaces)", None),
}


def _labels(conn: psycopg.Connection) -> str:
    if not _exists(conn, contract.LABEL_METRICS):
        return ""
    rows = _query(
        conn,
        "select space, metric, reduction, value, ci_low, ci_high, n from {} "
        "where section = 'ALL' order by metric, reduction, space",
        contract.LABEL_METRICS,
    )
    if not rows:
        return ""
    figures: dict[str, dict[str, dict[str, tuple]]] = defaultdict(lambda: defaultdict(dict))
    for space, metric, reduction, value, low, high, n in rows:
        figures[metric][reduction][space] = (value, low, high, n)
    parts = [
        '<p class="lead">How well each text space separates collection_section, on the label '
        "sample (ALL). Bars are the figures, whiskers their 95% intervals (Wilson for 1-NN, "
        "bootstrap otherwise); series are the PCA sizes KMeans ran on (none = full vectors). "
        "Whether one space beats another is in the next section.</p><div class=grid>"
    ]
    for metric in [m for m in LABEL_TITLES if m in figures] + sorted(
        set(figures) - set(LABEL_TITLES)
    ):
        title, domain = LABEL_TITLES.get(metric, (metric, None))
        reductions = sorted(figures[metric], key=_reduction_order)
        spaces = sorted({s for r in reductions for s in figures[metric][r]})
        series = [
            Series(
                r,
                [
                    Interval(*figures[metric][r][s][:3])
                    if s in figures[metric][r] and figures[metric][r][s][0] is not None
                    else None
                    for s in spaces
                ],
            )
            for r in reductions
        ]
        svg = interval_bars(spaces, series, title=title, x_label=metric, domain=domain)
        table = _table(
            ["space", "reduction", "n", "value", "95% CI"],
            [
                [
                    s,
                    r,
                    figures[metric][r][s][3],
                    figures[metric][r][s][0],
                    _ci(*figures[metric][r][s][1:3]),
                ]
                for r in reductions
                for s in spaces
                if s in figures[metric][r]
            ],
        )
        parts.append(_figure(svg, f"{title}, per text space", table))
    parts.append("</div>")
    return "".join(parts)


def _reduction_order(reduction: str) -> tuple[int, int]:
    if reduction.startswith("pca_") and reduction[4:].isdigit():
        return (0, int(reduction[4:]))
    return (1, 0)


def _comparisons(conn: psycopg.Connection) -> str:
    if not _exists(conn, contract.SPACE_COMPARISONS):
        return ""
    rows = _query(
        conn,
        "select metric, reduction, space_a, space_b, difference, ci_low, ci_high, a_beats_b, "
        "n_a, n_b from {} where section = 'ALL' and space_a < space_b "
        "order by metric, reduction, space_a, space_b",
        contract.SPACE_COMPARISONS,
    )
    if not rows:
        return ""
    by_metric: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_metric[row[0]].append(row[1:])
    parts = [
        '<p class="lead">Paired bootstrap differences A − B on the same resampled products '
        "(ALL). A whisker clear of 0 is a real difference at this n; one that crosses 0 is "
        "not separable.</p><div class=grid>"
    ]
    for metric, items in by_metric.items():
        reductions = sorted({r for r, *_ in items}, key=_reduction_order)
        labels = sorted({f"{a} − {b}" for _, a, b, *_ in items})
        lookup = {(r, f"{a} − {b}"): (d, lo, hi) for r, a, b, d, lo, hi, *_ in items}
        series = [
            Series(
                r,
                [
                    Interval(*lookup[r, label])
                    if (r, label) in lookup and lookup[r, label][0] is not None
                    else None
                    for label in labels
                ],
            )
            for r in reductions
        ]
        svg = interval_bars(
            labels,
            series,
            title=f"{metric}: difference between spaces",
            x_label=f"{metric} A − B",
            width=1100,
            label_chars=64,
        )
        table = _table(
            ["A", "B", "reduction", "n A", "n B", "A − B", "95% CI", "A beats B"],
            [
                [a, b, r, n_a, n_b, d, _ci(lo, hi), verdict]
                for r, a, b, d, lo, hi, verdict, n_a, n_b in items
            ],
        )
        parts.append(_figure(svg, f"{metric}: A − B with paired 95% intervals", table, wide=True))
    parts.append("</div>")
    return "".join(parts)


def _history(conn: psycopg.Connection, config: ProjectConfig) -> str:
    if not _exists(conn, contract.METRIC_HISTORY):
        return ""
    k_values = config.eval.k_values
    k = 10 if 10 in k_values else max(k_values)
    metric = f"recall_at_{k}"
    rows = conn.execute(
        sql.SQL(
            "with runs as (select run_id, min(run_started_at) as started "
            "from {history} group by run_id order by started desc limit %s) "
            "select runs.run_id, runs.started, history.pair, history.direction, history.value, "
            "history.ci_low, history.ci_high, history.n from {history} as history "
            "inner join runs on runs.run_id = history.run_id "
            "where history.family = 'retrieval' and history.section = 'ALL' "
            "and history.metric = %s order by runs.started, history.pair, history.direction"
        ).format(history=contract.METRIC_HISTORY.identifier),
        (HISTORY_RUNS, metric),
    ).fetchall()
    rows = _cleaned(rows)
    if not rows:
        return ""
    runs = list(dict.fromkeys((run_id, started) for run_id, started, *_ in rows))
    values: dict[str, dict[str, tuple]] = defaultdict(dict)
    for run_id, _, pair, direction, value, low, high, n in rows:
        values[f"{pair} {DIRECTIONS.get(direction, direction)}"][run_id] = (value, low, high, n)
    names = sorted(values)
    series = [
        Series(
            name,
            [Interval(*values[name][run][:3]) if run in values[name] else None for run, _ in runs],
        )
        for name in names
    ]
    labels = [started.strftime("%m-%d %H:%M") for _, started in runs]
    svg = line_chart(
        series,
        list(range(1, len(runs) + 1)),
        title=f"R@{k} (ALL) over the last {len(runs)} run(s)",
        x_label="run (start time, UTC)",
        y_label=f"R@{k}",
        x_tick_labels=labels
        if len(runs) <= 8
        else [label if i % max(len(runs) // 8, 1) == 0 else "" for i, label in enumerate(labels)],
        domain=(0.0, nice_upper(_top(values[name].values() for name in names))),
        width=760,
        height=320,
    )
    first = runs[0][0]
    table = _table(
        ["run started", "run id", *names, *(f"Δ {name} vs first shown" for name in names)],
        [
            [
                started.strftime("%Y-%m-%d %H:%M:%S"),
                run_id,
                *(values[name].get(run_id, (None,))[0] for name in names),
                *(_delta(values[name].get(run_id), values[name].get(first)) for name in names),
            ]
            for run_id, started in runs
        ],
    )
    return (
        f'<p class="lead">Every refresh appends its figures to {contract.METRIC_HISTORY}; here '
        f"R@{k} over ALL sections per pair and direction, with Wilson 95% whiskers.</p>"
        "<div class=grid>"
        + _figure(
            svg,
            f"R@{k} per run; the table adds the change since the first run shown",
            table,
            wide=True,
        )
        + "</div>"
    )


def _delta(current: tuple | None, reference: tuple | None) -> float | None:
    if current is None or reference is None or current[0] is None or reference[0] is None:
        return None
    return current[0] - reference[0]


RERANK_LEAD = (
    "Reranking the first-stage candidates: the uplift in each metric against retrieval alone, "
    f"as {contract.RERANK_UPLIFT} holds it."
)
DELTAS_LEAD = (
    "Each metric of the latest run against the pinned baseline and the previous comparable run, "
    f"with the interval of the difference and a verdict, as {contract.METRIC_DELTAS} holds it."
)
DELTAS_COLUMNS = (
    "reference",
    "reference_run_id",
    "config_changed",
    "family",
    "pair",
    "direction",
    "section",
    "metric",
    "reference_value",
    "value",
    "difference",
    "ci_low",
    "ci_high",
    "verdict",
)


def _deltas(conn: psycopg.Connection) -> str:
    """The overall (ALL) rows of fct_metric_deltas, baseline first; moved metrics on top."""
    if not _exists(conn, contract.METRIC_DELTAS):
        return ""
    rows = conn.execute(
        sql.SQL(
            "select {} from {} where section = 'ALL' order by reference = 'previous', "
            "verdict = 'no detectable change', family, pair, direction, metric limit %s"
        ).format(
            sql.SQL(", ").join(map(sql.Identifier, DELTAS_COLUMNS)),
            contract.METRIC_DELTAS.identifier,
        ),
        (GENERIC_ROW_LIMIT,),
    ).fetchall()
    rows = _cleaned(rows)
    lead = DELTAS_LEAD + " Overall (ALL) rows; query it for every section."
    if not rows:
        return f'<p class="lead">{escape(lead)} It has no rows yet: it needs two runs.</p>'
    return f'<p class="lead">{escape(lead)}</p>' + _table(
        DELTAS_COLUMNS, [[_plain(v) for v in row] for row in rows]
    )


def _generic(conn: psycopg.Connection, relation: contract.Relation, lead: str) -> str:
    """A relation this report does not chart: shown as a table when it has rows
    (dbt builds the rerank marts empty when no reranker is configured)."""
    if not _exists(conn, relation):
        return ""
    cursor = conn.execute(
        sql.SQL("select * from {} limit %s").format(relation.identifier), (GENERIC_ROW_LIMIT + 1,)
    )
    headers = [column.name for column in cursor.description or []]
    rows = _cleaned(cursor.fetchall())
    keep = [i for i, h in enumerate(headers) if h != "computed_at"]
    more = (
        f" The first {GENERIC_ROW_LIMIT} rows are shown; query {relation} for all."
        if len(rows) > GENERIC_ROW_LIMIT
        else ""
    )
    if not rows:
        return ""
    return f'<p class="lead">{escape(lead + more)}</p>' + _table(
        [headers[i] for i in keep],
        [[_plain(row[i]) for i in keep] for row in rows[:GENERIC_ROW_LIMIT]],
    )


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def _plain(value: Any) -> Any:
    """Database values as the table cell renders them (decimals as floats, times as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
