"""The HTML report: one self-contained file (inline CSS and SVG, no script, no
network). The fetchers read the marts, this module turns what they return into
figures and tables, and templates/report.html renders them with autoescape."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import psycopg
from markupsafe import Markup

from embed_udfs import contract
from embed_udfs.config import ProjectConfig
from embed_udfs.errors import EmbedUdfsError
from embed_udfs.report.fetchers import (
    GENERIC_ROW_LIMIT,
    Estimate,
    GalleryCurves,
    LabelStructure,
    MetricHistory,
    RecallCurves,
    ReportData,
    Retrieval,
    Rows,
    SimilarityHistogram,
    SpaceComparison,
    fetch_report,
)
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


# ---------------------------------------------------------------- what the template draws


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""  # the cell's class: "text" left-aligns, "better" / "worse" colour it


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Figure:
    """A chart with its caption and, folded under it, the table it is drawn from."""

    svg: str  # markup from svg.py, which escapes every value it draws
    caption: str
    table: Table
    wide: bool = False


@dataclass(frozen=True)
class Grid:
    """Figures side by side, under an optional heading."""

    figures: tuple[Figure, ...]
    heading: str | None = None


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    lead: str | None = None
    message: str | None = None  # a plain paragraph, e.g. why there is nothing to show
    items: tuple[str, ...] = ()  # a bulleted list under the message
    grids: tuple[Grid, ...] = ()
    table: Table | None = None


# ---------------------------------------------------------------- rendering


def _printable(value: Any) -> Any:
    """Every string the template prints loses escape sequences and control characters
    (line breaks kept) before autoescape; markup made here or in svg.py passes as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return "\n".join(clean(line, max_width=None) for line in value.split("\n"))
    return value


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("embed_udfs.report", "templates"),
        autoescape=True,
        finalize=_printable,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


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
    return render(fetch_report(conn, config))


def render(data: ReportData) -> str:
    """The page for what the fetchers returned: the sections that have something to show."""
    sections = [
        retrieval_section(data.retrieval),
        curves_section(data.curves),
        gallery_section(data.galleries),
        similarity_section(data.similarity),
        labels_section(data.labels),
        comparisons_section(data.comparisons),
        rerank_section(data.rerank),
        history_section(data.history),
        deltas_section(data.deltas),
    ]
    template = _environment().get_template("report.html")
    return template.render(report=data, sections=[s for s in sections if s is not None])


# ---------------------------------------------------------------- helpers


def _cell(value: Any) -> Cell:
    if value is None:
        return Cell("–", "text")
    if isinstance(value, bool):
        return Cell("yes" if value else "no", "text")
    if isinstance(value, float):
        return Cell(f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}")
    if isinstance(value, int):
        return Cell(str(value))
    text = str(value)
    css = {"better": "better", "worse": "worse", "yes": "better", "no": "worse"}.get(text.lower())
    return Cell(text, f"text {css}" if css else "text")


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    return Table(tuple(headers), tuple(tuple(_cell(value) for value in row) for row in rows))


def _plain(value: Any) -> Any:
    """Database values as a cell shows them (decimals as floats, times as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _top(figures: Iterable[Estimate | Iterable[Any]]) -> float:
    """The largest upper bound (or value) of estimates, however nested in iterables."""
    top = 0.0
    for item in figures:
        if isinstance(item, Estimate):
            high = item.high if item.high is not None else item.value
            top = max(top, high if high is not None else 0.0)
        else:
            top = max(top, _top(item))
    return top


def _interval(figure: Estimate) -> Interval:
    return Interval(figure.value, figure.low, figure.high)


def _bar(value: float | None) -> Interval | None:
    return None if value is None else Interval(value)


def _ci(figure: Estimate) -> str | None:
    if figure.low is None or figure.high is None:
        return None
    return f"[{figure.low:.3f}, {figure.high:.3f}]"


def _named(figures: Mapping[tuple[str, str], Any]) -> dict[str, Any]:
    """(pair, direction) keys as one line's name, "pair text → image", in name order."""
    named = {f"{pair} {DIRECTIONS.get(d, d)}": value for (pair, d), value in figures.items()}
    return dict(sorted(named.items()))


def _reduction_order(reduction: str) -> tuple[int, int]:
    if reduction.startswith("pca_") and reduction[4:].isdigit():
        return (0, int(reduction[4:]))
    return (1, 0)


# ---------------------------------------------------------------- sections


def retrieval_section(data: Retrieval) -> Section:
    title = "Retrieval by section"
    if not data.recall:
        if data.empty_reasons:
            return Section(
                "retrieval", title, message="No retrieval metrics:", items=data.empty_reasons
            )
        return Section(
            "retrieval",
            title,
            message="No retrieval metrics yet: configure vars.embed_pairs and run a refresh.",
        )
    k_values = data.k_values
    sort_k = 10 if 10 in k_values else k_values[-1]
    grids = []
    for pair in sorted({pair for pair, _ in data.recall}):
        # both directions of a pair on one scale, zoomed in when recall is low (random weights)
        upper = nice_upper(
            _top(
                by_k.values()
                for (p, _), by_section in data.recall.items()
                if p == pair
                for by_k in by_section.values()
            )
        )
        figures = []
        for direction, label in DIRECTIONS.items():
            sections = data.recall.get((pair, direction))
            if not sections:
                continue
            order = sorted(
                (s for s in sections if s != "ALL"),
                key=lambda s: (_value(sections[s].get(sort_k)), s),
            )
            categories = ["ALL", *order] if "ALL" in sections else order
            series = [
                Series(
                    f"R@{k}",
                    [_interval(sections[c][k]) if k in sections[c] else None for c in categories],
                )
                for k in k_values
            ]
            svg = interval_bars(
                categories,
                series,
                title=f"{pair}: {label}",
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
                        next(iter(sections[c].values())).n,
                        *(sections[c][k].value if k in sections[c] else None for k in k_values),
                        *(_ci(sections[c][k]) if k in sections[c] else None for k in k_values),
                    ]
                    for c in categories
                ],
            )
            figures.append(Figure(svg, f"{pair}, {label}: Recall@K by section", table))
        grids.append(Grid(tuple(figures), heading=f"pair {pair}"))
    return Section(
        "retrieval",
        title,
        lead="Recall@K of every pair in both directions, overall (ALL) and per "
        f"collection_section, weakest sections (by R@{sort_k}) first under ALL. Whiskers are "
        "Wilson 95% intervals; n is the number of queries.",
        grids=tuple(grids),
    )


def _value(figure: Estimate | None) -> float:
    """A figure's value for sorting, 0 when it is missing."""
    return (figure.value or 0.0) if figure is not None else 0.0


def curves_section(data: RecallCurves | None) -> Section | None:
    if data is None:
        return None
    k_values = data.k_values
    curves = _named(data.recall)
    chance = Series(
        f"chance, K/N (N = {data.gallery:,})",
        [Interval(min(k / data.gallery, 1.0)) for k in k_values],
        colour="#888",
        dashed=True,
    )
    top = max(_top(c.values() for c in curves.values()), *(iv.value for iv in chance.values if iv))
    svg = line_chart(
        [
            *(
                Series(name, [_interval(c[k]) if k in c else None for k in k_values])
                for name, c in curves.items()
            ),
            chance,
        ],
        k_values,
        title="Recall@K over K (ALL sections)",
        x_label="K (log scale)",
        y_label="Recall@K",
        log_x=len(k_values) > 1 and min(k_values) > 0,
        domain=(0.0, nice_upper(top)),
        width=760,
        height=340,
    )
    table = _table(
        ["pair and direction", "n", *(f"R@{k}" for k in k_values)],
        [
            [name, next(iter(c.values())).n, *(c[k].value if k in c else None for k in k_values)]
            for name, c in curves.items()
        ],
    )
    return Section(
        "curves",
        "Recall@K curves",
        lead="How recall grows with the cut-off, one line per pair and direction; vertical "
        "whiskers are Wilson 95% intervals. With N products in the gallery, chance is about K/N.",
        grids=(
            Grid((Figure(svg, "Recall@K against K for every pair and direction", table, True),)),
        ),
    )


GALLERY_LEAD = (
    "The same sampled queries ranked against two galleries: the eval sample itself and the "
    "whole catalog (every product with a vector in the gallery space, after dedup). Recall "
    "falls as the gallery grows, so no figure should be read without its gallery size. The "
    "sample's gallery is a subset of the catalog's, so with exact search no query ranks its "
    "positive better against the catalog."
)


def gallery_section(data: GalleryCurves | None) -> Section | None:
    """R@K against gallery size: one line per pair and direction at one K, the table with
    every K, the gallery's size and how it was searched."""
    if data is None or not data.points:
        return None
    k = 10 if 10 in data.k_values else max(data.k_values)
    sizes = sorted({point.size for points in data.points.values() for point in points})
    curves: dict[str, dict[int, Estimate]] = {
        f"{pair} {DIRECTIONS.get(direction, direction)}": {
            point.size: point.recall[k] for point in points if k in point.recall
        }
        for (pair, direction), points in sorted(data.points.items())
    }
    svg = line_chart(
        [
            Series(name, [_interval(c[n]) if n in c else None for n in sizes])
            for name, c in curves.items()
        ],
        sizes,
        title=f"Recall@{k} against gallery size (ALL sections)",
        x_label="products in the gallery (log scale)",
        y_label=f"Recall@{k}",
        x_tick_labels=[f"{n:,}" for n in sizes],
        log_x=len(sizes) > 1,
        domain=(0.0, nice_upper(_top(c.values() for c in curves.values()))),
        width=760,
        height=340,
    )
    rows = []
    for (pair, direction), points in sorted(data.points.items()):
        for point in points:
            scope = point.scope + (" (= sample)" if point.is_sample else "")
            rows.append(
                [
                    f"{pair} {DIRECTIONS.get(direction, direction)}",
                    scope,
                    point.size,
                    point.search_method,
                    *(
                        point.recall[kk].value if kk in point.recall else None
                        for kk in data.k_values
                    ),
                ]
            )
    table = _table(
        [
            "pair and direction",
            "gallery",
            "products",
            "search",
            *(f"R@{kk}" for kk in data.k_values),
        ],
        rows,
    )
    return Section(
        "galleries",
        "Recall against gallery size",
        lead=GALLERY_LEAD,
        grids=(Grid((Figure(svg, f"R@{k} for the sample and the whole catalog", table, True),)),),
    )


def similarity_section(data: Sequence[SimilarityHistogram]) -> Section | None:
    if not data:
        return None
    figures = []
    for pair in data:
        bins = pair.bins
        svg = histogram(
            [b.low for b in bins] + [bins[-1].high],
            [
                Series(
                    "positives (same product)",
                    [
                        Interval(b.positive_share) if b.positive_share is not None else None
                        for b in bins
                    ],
                ),
                Series(
                    "negatives (other products)",
                    [
                        Interval(b.negative_share) if b.negative_share is not None else None
                        for b in bins
                    ],
                ),
            ],
            title=f"{pair.pair}: cosine similarity, text vs image",
            x_label="cosine similarity",
            y_label="share of pairs",
        )
        caption = (
            f"{pair.pair}: {sum(b.positive_count for b in bins):,} positives, "
            f"{sum(b.negative_count for b in bins):,} negatives ({pair.negatives_method})"
        )
        gap = pair.gaps
        if "cosine_gap" in gap:
            caption += (
                f"; mean cosine positives {gap.get('cosine_positive_mean', float('nan')):.3f}, "
                f"negatives {gap.get('cosine_negative_mean', float('nan')):.3f}, "
                f"gap {gap['cosine_gap']:.3f}"
            )
        table = _table(
            ["bin", "positives", "negatives", "positive share", "negative share"],
            [
                [
                    f"[{b.low:.2f}, {b.high:.2f})",
                    b.positive_count,
                    b.negative_count,
                    b.positive_share,
                    b.negative_share,
                ]
                for b in bins
                if b.positive_count or b.negative_count
            ],
        )
        figures.append(Figure(svg, caption, table))
    return Section(
        "similarity",
        "Positive vs negative similarity",
        lead="Cosine similarity of positive pairs (a product's text and its own image) against "
        "negative pairs (its text and other products' images), as shares of each group so both "
        "show despite N − 1 negatives per positive. Well-separated humps mean good retrieval; "
        f"the bins come from {contract.SIMILARITY_HISTOGRAMS}, so a BI tool can draw the same.",
        grids=(Grid(tuple(figures)),),
    )


LABEL_TITLES = {
    "nn1_accuracy": ("1-NN section accuracy", (0.0, 1.0)),
    "kmeans_ari": ("KMeans ARI against sections (0 = chance)", None),
    "kmeans_nmi": ("KMeans NMI against sections", (0.0, 1.0)),
    "silhouette_cosine": ("Cosine silhouette of sections (not comparable across spaces)", None),
}


def labels_section(data: LabelStructure | None) -> Section | None:
    if data is None:
        return None
    figures = []
    metrics = [m for m in LABEL_TITLES if m in data.figures]
    for metric in metrics + sorted(set(data.figures) - set(LABEL_TITLES)):
        title, domain = LABEL_TITLES.get(metric, (metric, None))
        by_reduction = data.figures[metric]
        reductions = sorted(by_reduction, key=_reduction_order)
        spaces = sorted({s for r in reductions for s in by_reduction[r]})
        series = [
            Series(
                r,
                [
                    _interval(by_reduction[r][s])
                    if s in by_reduction[r] and by_reduction[r][s].value is not None
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
                [s, r, figure.n, figure.value, _ci(figure)]
                for r in reductions
                for s in spaces
                if (figure := by_reduction[r].get(s)) is not None
            ],
        )
        figures.append(Figure(svg, f"{title}, per text space", table))
    return Section(
        "labels",
        "Label structure per text space",
        lead="How well each text space separates collection_section, on the label sample (ALL). "
        "Bars are the figures, whiskers their 95% intervals (Wilson for 1-NN, bootstrap "
        "otherwise); series are the PCA sizes KMeans ran on (none = full vectors). Whether one "
        "space beats another is in the next section.",
        grids=(Grid(tuple(figures)),),
    )


def comparisons_section(data: Sequence[SpaceComparison]) -> Section | None:
    if not data:
        return None
    by_metric: dict[str, list[SpaceComparison]] = {}
    for item in data:
        by_metric.setdefault(item.metric, []).append(item)
    figures = []
    for metric, items in by_metric.items():
        reductions = sorted({c.reduction for c in items}, key=_reduction_order)
        lookup = {(c.reduction, f"{c.space_a} − {c.space_b}"): c.difference for c in items}
        labels = sorted({label for _, label in lookup})
        series = [
            Series(
                r,
                [
                    _interval(lookup[r, label])
                    if (r, label) in lookup and lookup[r, label].value is not None
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
                [
                    c.space_a,
                    c.space_b,
                    c.reduction,
                    c.n_a,
                    c.n_b,
                    c.difference.value,
                    _ci(c.difference),
                    c.a_beats_b,
                ]
                for c in items
            ],
        )
        figures.append(Figure(svg, f"{metric}: A − B with paired 95% intervals", table, wide=True))
    return Section(
        "comparisons",
        "Space comparisons",
        lead="Paired bootstrap differences A − B on the same resampled products (ALL). A whisker "
        "clear of 0 is a real difference at this n; one that crosses 0 is not separable.",
        grids=(Grid(tuple(figures)),),
    )


RERANK_LEAD = (
    "Reranking the first-stage candidates: the uplift in each metric against retrieval alone, "
    f"as {contract.RERANK_UPLIFT} holds it."
)


def rerank_section(data: Rows | None) -> Section | None:
    if data is None:
        return None
    more = (
        f" The first {GENERIC_ROW_LIMIT} rows are shown; query {data.relation} for all."
        if data.truncated
        else ""
    )
    return Section(
        "rerank",
        "Rerank uplift",
        lead=RERANK_LEAD + more,
        table=_table(data.columns, ([_plain(v) for v in row] for row in data.rows)),
    )


def history_section(data: MetricHistory | None) -> Section | None:
    if data is None:
        return None
    k, runs = data.k, data.runs
    values = _named(data.values)
    series = [
        Series(name, [_interval(v[run.run_id]) if run.run_id in v else None for run in runs])
        for name, v in values.items()
    ]
    labels = [run.started.strftime("%m-%d %H:%M") for run in runs]
    every = max(len(runs) // 8, 1)
    svg = line_chart(
        series,
        list(range(1, len(runs) + 1)),
        title=f"R@{k} (ALL) over the last {len(runs)} run(s)",
        x_label="run (start time, UTC)",
        y_label=f"R@{k}",
        x_tick_labels=labels
        if len(runs) <= 8
        else [label if i % every == 0 else "" for i, label in enumerate(labels)],
        domain=(0.0, nice_upper(_top(v.values() for v in values.values()))),
        width=760,
        height=320,
    )
    first = runs[0].run_id
    table = _table(
        ["run started", "run id", *values, *(f"Δ {name} vs first shown" for name in values)],
        [
            [
                run.started.strftime("%Y-%m-%d %H:%M:%S"),
                run.run_id,
                *(v[run.run_id].value if run.run_id in v else None for v in values.values()),
                *(_delta(v.get(run.run_id), v.get(first)) for v in values.values()),
            ]
            for run in runs
        ],
    )
    caption = f"R@{k} per run; the table adds the change since the first run shown"
    return Section(
        "history",
        "Metric history",
        lead=f"Every refresh appends its figures to {contract.METRIC_HISTORY}; here R@{k} over "
        "ALL sections per pair and direction, with Wilson 95% whiskers.",
        grids=(Grid((Figure(svg, caption, table, wide=True),)),),
    )


def _delta(current: Estimate | None, reference: Estimate | None) -> float | None:
    if current is None or reference is None or current.value is None or reference.value is None:
        return None
    return current.value - reference.value


DELTAS_LEAD = (
    "Each metric of the latest run against the pinned baseline and the previous comparable run, "
    f"with the interval of the difference and a verdict, as {contract.METRIC_DELTAS} holds it."
    " Overall (ALL) rows; query it for every section."
)


def deltas_section(data: Rows | None) -> Section | None:
    if data is None:
        return None
    title = "Deltas against the baseline"
    if not data.rows:
        return Section(
            "deltas", title, lead=DELTAS_LEAD + " It has no rows yet: it needs two runs."
        )
    return Section(
        "deltas",
        title,
        lead=DELTAS_LEAD,
        table=_table(data.columns, ([_plain(v) for v in row] for row in data.rows)),
    )
