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
from embed_udfs.report import MACRO_ROW, MACRO_SHOWN_ABOVE
from embed_udfs.report.fetchers import (
    GENERIC_ROW_LIMIT,
    Confusions,
    Estimate,
    FailedQuery,
    FailureGallery,
    GalleryCurves,
    LabelStructure,
    MetricHistory,
    Product,
    RecallCurves,
    ReportData,
    Retrieval,
    Rows,
    RunMoves,
    SimilarityHistogram,
    SpaceComparison,
    fetch_report,
)
from embed_udfs.report.focus import evidence_order, sections_in_focus
from embed_udfs.report.svg import (
    Interval,
    Series,
    heat_map,
    histogram,
    interval_bars,
    line_chart,
    nice_upper,
)
from embed_udfs.report.thumbnails import DEFAULT_MAX_BYTES, ThumbnailSet, make_thumbnails
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
class Tile:
    """A product in the gallery: its picture (a thumbnail class, or a placeholder with
    the reason) when the side shown is an image, its name when it is a text."""

    product_id: str
    name: str
    section: str
    is_image: bool
    thumb: str | None = None  # the CSS class of its data URI
    reason: str | None = None  # why a placeholder stands in for the picture
    caption: str = ""
    css: str = ""  # "positive", "duplicate": how the tile is outlined


@dataclass(frozen=True)
class GalleryQuery:
    query: Tile
    positive: Tile
    verdict: str  # "positive at rank 14", with a near-duplicate note
    retrieved: tuple[Tile, ...]


@dataclass(frozen=True)
class GallerySection:
    section: str
    summary: str  # e.g. "R@10 0.412 · n 120 · 5 worst of 70 failed queries"
    open: bool  # shown unfolded: a section in focus
    queries: tuple[GalleryQuery, ...]


@dataclass(frozen=True)
class Gallery:
    heading: str
    sections: tuple[GallerySection, ...]


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    lead: str | None = None
    message: str | None = None  # a plain paragraph, e.g. why there is nothing to show
    items: tuple[str, ...] = ()  # a bulleted list under the message
    grids: tuple[Grid, ...] = ()
    table: Table | None = None
    galleries: tuple[Gallery, ...] = ()
    tables: tuple[tuple[str, Table], ...] = ()  # tables under their own headings


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


def write_report(
    conn: psycopg.Connection,
    config: ProjectConfig,
    path: Path,
    *,
    fetch_images: bool = False,
    max_thumbnail_bytes: int = DEFAULT_MAX_BYTES,
) -> Path:
    """Write the report to `path` (parent folders created) and return the resolved path."""
    started = time.perf_counter()
    page = render_report(
        conn, config, fetch_images=fetch_images, max_thumbnail_bytes=max_thumbnail_bytes
    )
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


def render_report(
    conn: psycopg.Connection,
    config: ProjectConfig,
    *,
    fetch_images: bool = False,
    max_thumbnail_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """The whole page as a string. Remote images are read only with `fetch_images`, through
    the backfill's reader and its bounds (config.ingest)."""
    data = fetch_report(conn, config)
    thumbnails = make_thumbnails(
        gallery_image_uris(data),
        config.ingest,
        fetch_remote=fetch_images,
        max_bytes=max_thumbnail_bytes,
    )
    return render(data, thumbnails)


def render(data: ReportData, thumbnails: ThumbnailSet | None = None) -> str:
    """The page for what the fetchers returned: the sections that have something to show."""
    thumbnails = thumbnails if thumbnails is not None else ThumbnailSet()
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
        failures_section(data.failures, data.retrieval, thumbnails),
        confusions_section(data.confusions),
        moves_section(data.moves),
    ]
    template = _environment().get_template("report.html")
    return template.render(
        report=data,
        sections=[s for s in sections if s is not None],
        thumbnails=thumbnails.data_uris,
    )


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
    levels = {"leaf": data.recall, **dict(sorted(data.levels.items(), key=lambda i: i[0]))}
    several = len(levels) > 1
    for pair in sorted({pair for pair, _ in data.recall}):
        for level, recall in levels.items():
            figures = _retrieval_figures(data, recall, pair, level if several else None, sort_k)
            heading = f"pair {pair}" + (f", {level} sections" if several else "")
            grids.append(Grid(tuple(figures), heading=heading))
    levels_lead = (
        " Sections are paths, so each level has its own figures: leaf (the catalog's "
        "sections), then level_1, level_2, ... (their prefixes)."
        if several
        else ""
    )
    return Section(
        "retrieval",
        title,
        lead="Recall@K of every pair in both directions, overall (ALL) and per "
        f"collection_section, weakest sections on evidence (at R@{sort_k}) first under ALL: "
        "a section marked 'weaker' is below ALL after Holm's correction for the number of "
        "sections; the rest follow by how strong that evidence is, and a section marked "
        "'small' has too few queries to read much into. Whiskers are 95% intervals that "
        "resample clusters of queries (near-duplicate groups, or the configured cluster "
        "column); n is the number of queries. Sections with fewer queries than "
        "vars.section_min_queries are folded into `other`; the table's `ALL (macro)` row is "
        "the mean over the sections (n = sections), beside ALL, the mean over queries."
        + levels_lead,
        grids=tuple(grids),
    )


def _retrieval_figures(
    data: Retrieval,
    recall: Mapping[tuple[str, str], Mapping[str, Mapping[int, Estimate]]],
    pair: str,
    level: str | None,
    sort_k: int,
) -> list[Figure]:
    """Both directions of one pair on one level: the chart and its table."""
    k_values = data.k_values
    # both directions of a pair on one scale, zoomed in when recall is low (random weights)
    upper = nice_upper(
        _top(
            by_k.values()
            for (p, _), by_section in recall.items()
            if p == pair
            for by_k in by_section.values()
        )
    )
    figures = []
    for direction, label in DIRECTIONS.items():
        sections = recall.get((pair, direction))
        if not sections:
            continue
        order = sorted(
            (s for s in sections if s != "ALL"),
            key=lambda s: evidence_order(sections[s].get(sort_k), s),
        )
        categories = ["ALL", *order] if "ALL" in sections else order
        series = [
            Series(
                f"R@{k}",
                [_interval(sections[c][k]) if k in sections[c] else None for c in categories],
            )
            for k in k_values
        ]
        where = f"{pair}, {level}" if level else pair
        svg = interval_bars(
            [f"{c}{_evidence_mark(sections[c].get(sort_k))}" for c in categories],
            series,
            title=f"{where}: {label}",
            x_label="Recall@K (share of queries whose positive ranks within K)",
            domain=(0.0, upper),
        )
        rows = [
            [
                c,
                "overall" if c == "ALL" else _evidence_words(sections[c].get(sort_k)),
                next(iter(sections[c].values())).n,
                *(sections[c][k].value if k in sections[c] else None for k in k_values),
                *(_ci(sections[c][k]) if k in sections[c] else None for k in k_values),
            ]
            for c in categories
        ]
        macro = data.macro.get((level or "leaf", pair, direction), {})
        if any(
            k in macro and abs(macro[k].value - sections["ALL"][k].value) > MACRO_SHOWN_ABOVE
            for k in k_values
            if "ALL" in sections and k in sections["ALL"]
        ):
            n_sections = next(iter(macro.values())).n
            values = [macro[k].value if k in macro else None for k in k_values]
            rows.insert(
                1, [MACRO_ROW, "mean over sections", n_sections, *values, *(None for _ in k_values)]
            )
        table = _table(
            [
                "section",
                f"evidence (R@{sort_k})",
                "n",
                *(f"R@{k}" for k in k_values),
                *(f"R@{k} 95% CI" for k in k_values),
            ],
            rows,
        )
        figures.append(Figure(svg, f"{where}, {label}: Recall@K by section", table))
    return figures


def _evidence_mark(figure: Estimate | None) -> str:
    """A short suffix for a chart label: weaker on evidence, small."""
    if figure is None:
        return ""
    marks = [m for m, on in (("weaker", figure.is_weaker), ("small", figure.is_small)) if on]
    return f" ({', '.join(marks)})" if marks else ""


def _evidence_words(figure: Estimate | None) -> str:
    if figure is None or figure.is_weaker is None:
        return ""
    words = "weaker than ALL" if figure.is_weaker else "no evidence"
    return words + (", small section" if figure.is_small else "")


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
    "The same sampled queries ranked against growing galleries: the eval sample itself, "
    "the whole catalog (every product with a vector in the gallery space, after dedup) and, "
    "where the catalog is large enough, galleries between them (sample_x10: the sample and "
    "a fixed draw of the catalog, ten times its size; searched exactly). Recall falls as the "
    "gallery grows, so no figure should be read without its gallery size. Each gallery holds "
    "the smaller ones, so with exact search no query ranks its positive better in a larger one."
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
        grids=(Grid((Figure(svg, f"R@{k} from the sample to the whole catalog", table, True),)),),
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


# ---------------------------------------------------------------- failures, confusions, moves

QUERY_MODALITY = {"text_to_image": "text", "image_to_text": "image"}


def _pair_direction_order(key: tuple[str, str]) -> tuple[str, int, str]:
    """Pairs by name, text → image before image → text, as everywhere on the page."""
    pair, direction = key
    order = list(DIRECTIONS)
    return (pair, order.index(direction) if direction in order else len(order), direction)


def _focus_k(k_values: Sequence[int]) -> int:
    return 10 if 10 in k_values else k_values[-1]


def _gallery_order(
    failures: FailureGallery, retrieval: Retrieval, pair: str, direction: str
) -> tuple[list[str], tuple[str, ...]]:
    """The sections of one pair and direction in the order the gallery lists them (those in
    focus first, then the rest weakest first) and those in focus."""
    sections = failures.queries.get((pair, direction), {})
    by_section = retrieval.recall.get((pair, direction), {})
    k = _focus_k(retrieval.k_values) if retrieval.k_values else 0
    focus = tuple(s for s in sections_in_focus(by_section, k) if s in sections)
    rest = sorted(
        (s for s in sections if s not in focus),
        key=lambda s: evidence_order(by_section.get(s, {}).get(k), s),
    )
    return [*focus, *rest], focus


def gallery_image_uris(data: ReportData) -> list[str | None]:
    """The images the failure gallery shows, the most important first: the sections in
    focus before the rest, each query's own picture before what it retrieved."""
    failures = data.failures
    if failures is None:
        return []
    first: list[str | None] = []
    later: list[str | None] = []
    for pair, direction in sorted(failures.queries, key=_pair_direction_order):
        order, focus = _gallery_order(failures, data.retrieval, pair, direction)
        for section in order:
            target = first if section in focus else later
            for query in failures.queries[pair, direction][section]:
                target.append(query.product.image_uri)
                if QUERY_MODALITY.get(direction) == "text":
                    target.extend(item.product.image_uri for item in query.retrieved)
    return first + later


def _rank_text(rank: int | None, max_k: int) -> str:
    return f"beyond {max_k}" if rank is None else str(rank)


def _tile(
    product: Product, is_image: bool, thumbnails: ThumbnailSet, caption: str = "", css: str = ""
) -> Tile:
    name = product.name or product.product_id
    section = product.section or ""
    if not is_image:
        return Tile(product.product_id, name, section, False, caption=caption, css=css)
    thumb = thumbnails.get(product.image_uri)
    return Tile(
        product.product_id,
        name,
        section,
        True,
        thumb.css_class,
        thumb.reason,
        caption=caption,
        css=css,
    )


def _gallery_query(
    query: FailedQuery, direction: str, max_k: int, thumbnails: ThumbnailSet
) -> GalleryQuery:
    query_is_image = QUERY_MODALITY.get(direction) == "image"
    verdict = f"positive at rank {_rank_text(query.positive_rank, max_k)}"
    if query.dedup_tolerant_rank is not None and (
        query.positive_rank is None or query.dedup_tolerant_rank < query.positive_rank
    ):
        verdict += f"; a near-duplicate of it at rank {query.dedup_tolerant_rank}"
    distance = f" · d {query.positive_distance:.3f}" if query.positive_distance is not None else ""
    retrieved = tuple(
        _tile(
            item.product,
            not query_is_image,
            thumbnails,
            caption=f"#{item.rank}"
            + (f" · d {item.distance:.3f}" if item.distance is not None else "")
            + (" · the positive" if item.is_positive else "")
            + (" · near-duplicate of the positive" if item.is_duplicate else ""),
            css="positive" if item.is_positive else "duplicate" if item.is_duplicate else "",
        )
        for item in query.retrieved
    )
    return GalleryQuery(
        _tile(query.product, query_is_image, thumbnails, caption="query"),
        _tile(
            query.product,
            not query_is_image,
            thumbnails,
            caption=f"positive · rank {_rank_text(query.positive_rank, max_k)}{distance}",
            css="positive",
        ),
        verdict,
        retrieved,
    )


def failures_section(
    data: FailureGallery | None, retrieval: Retrieval, thumbnails: ThumbnailSet
) -> Section | None:
    if data is None:
        return None
    title = "Failure gallery"
    k = _focus_k(retrieval.k_values) if retrieval.k_values else None
    galleries = []
    for pair, direction in sorted(data.queries, key=_pair_direction_order):
        order, focus = _gallery_order(data, retrieval, pair, direction)
        by_section = retrieval.recall.get((pair, direction), {})
        sections = []
        for section in order:
            queries = data.queries[pair, direction][section]
            figure = by_section.get(section, {}).get(k) if k is not None else None
            summary = (
                f"R@{k} {figure.value:.3f} · n {figure.n}"
                if figure is not None and figure.value is not None
                else "no Recall@K figure"
            )
            summary += f" · the {len(queries)} worst quer{'y' if len(queries) == 1 else 'ies'}"
            sections.append(
                GallerySection(
                    section,
                    summary,
                    section in focus,
                    tuple(_gallery_query(q, direction, data.max_k, thumbnails) for q in queries),
                )
            )
        galleries.append(
            Gallery(f"{pair}: {DIRECTIONS.get(direction, direction)}", tuple(sections))
        )
    if not galleries:
        return Section(
            "failures", title, message="Every query's positive is first: there is no failure."
        )
    lead = (
        f"Per pair, direction and section, the {data.per_section} queries whose positive ranks "
        "worst, each with its positive and the rank it got, and the first items it retrieved "
        "instead with their cosine distances (d) and sections. A green outline is the positive, "
        "an amber one a near-duplicate of it (the same duplicate group): such a miss is no real "
        f"error. The weakest sections by R@{k} are unfolded; open any other below them. From "
        f"{contract.RETRIEVAL_FAILURES} and {contract.RETRIEVAL_FAILURE_NEIGHBOURS}."
    )
    items: tuple[str, ...] = ()
    if thumbnails.left_out:
        items = (
            f"{thumbnails.left_out} thumbnail(s) left out: the thumbnails reached the "
            f"report's budget of {thumbnails.max_bytes / 1024 / 1024:.1f} MB "
            "(raise it with --max-thumbnail-mb); the least weak sections lost theirs first.",
        )
    return Section(
        "failures",
        title,
        lead=lead,
        message="Thumbnails:" if items else None,
        items=items,
        galleries=tuple(galleries),
    )


def confusions_section(data: Confusions | None) -> Section | None:
    if data is None:
        return None
    figures = []
    for (pair, direction), cells in sorted(
        data.cells.items(), key=lambda item: _pair_direction_order(item[0])
    ):
        sections = sorted({s for key in cells for s in key})
        values = {key: share for key, (share, _, _) in cells.items()}
        label = DIRECTIONS.get(direction, direction)
        svg = heat_map(
            sections,
            sections,
            values,
            title=f"{pair}: {label}",
            x_label="section of the first item retrieved (by number)",
            y_label="query section",
        )
        table = _table(
            ["query section", "retrieved section", "queries", "of", "share"],
            [
                [query_section, retrieved, n, n_queries, share]
                for (query_section, retrieved), (share, n, n_queries) in sorted(cells.items())
            ],
        )
        figures.append(Figure(svg, f"{pair}, {label}: section of the first item", table))
    tables: tuple[tuple[str, Table], ...] = ()
    if data.label_confusions is not None and data.label_confusions.rows:
        tables = (
            (
                f"Label confusions: the sections 1-NN mixes up most, per text space "
                f"({data.label_confusions.relation})",
                _table(
                    data.label_confusions.columns,
                    ([_plain(v) for v in row] for row in data.label_confusions.rows),
                ),
            ),
        )
    return Section(
        "confusions",
        "Section confusions",
        lead="Which sections retrieve which: for each pair and direction, the share of a "
        "section's queries (rows) whose first item comes from each section (columns, numbered "
        "as the rows). A dark diagonal is good; a dark cell off it is a section the model "
        "takes for another, or two sections that overlap in the catalog. From "
        f"{contract.RETRIEVAL_CONFUSIONS}.",
        grids=(Grid(tuple(figures)),),
        tables=tables,
    )


def moves_section(data: RunMoves | None) -> Section | None:
    if data is None:
        return None
    tables = []
    for (pair, direction), by_move in sorted(
        data.moves.items(), key=lambda item: _pair_direction_order(item[0])
    ):
        counts = data.n_compared.get((pair, direction), {})
        label = DIRECTIONS.get(direction, direction)
        heading = (
            f"{pair}: {label} · of {sum(counts.values()):,} products ranked in both runs, "
            f"{counts.get('better', 0):,} better, {counts.get('worse', 0):,} worse, "
            f"{counts.get('unchanged', 0):,} unchanged"
        )
        rows = []
        for kind in ("better", "worse"):
            for move in by_move.get(kind, ()):
                rows.append(
                    [
                        move.product.name or move.product.product_id,
                        move.product.product_id,
                        move.product.section,
                        f"{_rank_text(move.rank_before, move.max_k_before)} → "
                        f"{_rank_text(move.rank_after, move.max_k_after)}",
                        move.rank_change,
                        kind,
                    ]
                )
        tables.append(
            (heading, _table(["product", "id", "section", "rank", "change", "moved"], rows))
        )
    if data.section_deltas is not None and data.section_deltas.rows:
        tables.append(
            (
                "Per-section deltas against the baseline, with their verdicts",
                _table(
                    data.section_deltas.columns,
                    ([_plain(v) for v in row] for row in data.section_deltas.rows),
                ),
            )
        )
    return Section(
        "moves",
        "Run against the baseline",
        lead=f"What the change since the pinned baseline (run {data.baseline_run_id}) did in "
        f"the latest run ({data.run_id}): per pair and direction the products whose positive "
        "moved most, up and down (rank before → after; a rank beyond max(K) counts as max(K) "
        "+ 1, so a move past the cut-off is never overstated), then every section's Recall "
        f"delta and verdict. From {contract.RANK_MOVES} and {contract.METRIC_DELTAS}.",
        tables=tuple(tables),
    )
