"""What the HTML report shows, read from the metrics marts: one fetcher per section
of the page, each returning a frozen dataclass (or None when its mart is absent or
empty, so the section is left out). Strings from the data are cleaned here of
escape sequences and control characters; nothing here knows about HTML."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import sql

from embed_udfs import __version__, contract
from embed_udfs.config import ProjectConfig
from embed_udfs.errors import EmbedUdfsError
from embed_udfs.report import empty_sample_reasons, random_weight_notice
from embed_udfs.terminal import clean

# rows of a relation whose shape the report does not know (rerank uplift, deltas) shown at most
GENERIC_ROW_LIMIT = 300
HISTORY_RUNS = 20
DELTAS_COLUMNS = (
    "reference",
    "reference_run_id",
    "config_changed",
    "family",
    "pair",
    "direction",
    "gallery_scope",
    "section",
    "metric",
    "reference_value",
    "value",
    "difference",
    "ci_low",
    "ci_high",
    "verdict",
)


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval (either bound may be missing) and its n."""

    value: Any
    low: Any = None
    high: Any = None
    n: Any = None
    # a section's evidence against ALL (fct_retrieval_metrics): its rank weakest-first,
    # whether it is weaker on Holm-corrected evidence, whether it is small
    weakness_rank: Any = None
    is_weaker: Any = None
    is_small: Any = None


@dataclass(frozen=True)
class Retrieval:
    """Recall@K per pair, direction and section; the reasons samples are empty when none."""

    k_values: tuple[int, ...]
    # (pair, direction) -> section -> K -> recall, on the leaf level (the catalog's sections)
    recall: Mapping[tuple[str, str], Mapping[str, Mapping[int, Estimate]]]
    empty_reasons: tuple[str, ...] = ()
    # the levels above the leaf where sections are paths: level -> the same shape as recall
    levels: Mapping[str, Mapping[tuple[str, str], Mapping[str, Mapping[int, Estimate]]]] = field(
        default_factory=dict
    )
    # (level, pair, direction) -> K -> the ALL row's macro average over the level's sections
    macro: Mapping[tuple[str, str, str], Mapping[int, Estimate]] = field(default_factory=dict)


@dataclass(frozen=True)
class RecallCurves:
    """Recall@K over K for ALL sections, per pair and direction."""

    k_values: tuple[int, ...]
    # (pair, direction) -> K -> recall
    recall: Mapping[tuple[str, str], Mapping[int, Estimate]]
    gallery: int  # the largest n, for the chance line K/N


@dataclass(frozen=True)
class GalleryPoint:
    """One gallery the sampled queries were ranked against: its scope, size and search."""

    scope: str  # sample, a tier between (sample_x<m>), or catalog
    size: int
    is_sample: bool  # a catalog no larger than the sample: the sample's own figures
    search_method: str
    recall: Mapping[int, Estimate]  # K -> R@K (ALL sections)


@dataclass(frozen=True)
class GalleryCurves:
    """R@K against gallery size, per pair and direction, smallest gallery first."""

    k_values: tuple[int, ...]
    points: Mapping[tuple[str, str], tuple[GalleryPoint, ...]]


@dataclass(frozen=True)
class HistogramBin:
    low: float
    high: float
    positive_count: int
    negative_count: int
    positive_share: float | None
    negative_share: float | None


@dataclass(frozen=True)
class SimilarityHistogram:
    """One pair's positive and negative cosine similarities in shared bins, and its gaps."""

    pair: str
    bins: tuple[HistogramBin, ...]
    negatives_method: str
    gaps: Mapping[str, float]  # metric -> value, section ALL


@dataclass(frozen=True)
class LabelStructure:
    """ALL-section label metrics: metric -> reduction -> space -> figure."""

    figures: Mapping[str, Mapping[str, Mapping[str, Estimate]]]


@dataclass(frozen=True)
class SpaceComparison:
    metric: str
    reduction: str
    space_a: str
    space_b: str
    difference: Estimate
    a_beats_b: Any
    n_a: Any
    n_b: Any


@dataclass(frozen=True)
class Run:
    run_id: str
    started: datetime


@dataclass(frozen=True)
class MetricHistory:
    """R@k (ALL) of the last runs, oldest first: (pair, direction) -> run id -> figure."""

    k: int
    runs: tuple[Run, ...]
    values: Mapping[tuple[str, str], Mapping[str, Estimate]]


@dataclass(frozen=True)
class Rows:
    """A relation shown as a table as it stands; `truncated` when it holds more rows."""

    relation: contract.Relation
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool = False


@dataclass(frozen=True)
class Product:
    """A catalog product as the gallery shows it; image_uri is as the catalog holds it
    (never printed: it is read, decoded and re-encoded into a thumbnail)."""

    product_id: str
    name: str | None
    section: str | None
    store: str | None
    image_uri: str | None


@dataclass(frozen=True)
class Retrieved:
    """One of the items a query retrieved, in rank order."""

    rank: int
    product: Product
    distance: float | None
    is_positive: bool
    is_duplicate: bool


@dataclass(frozen=True)
class FailedQuery:
    """A query whose positive is not first, with its top items."""

    product: Product
    positive_rank: int | None  # None: beyond max(K)
    dedup_tolerant_rank: int | None
    positive_distance: float | None
    worst_order: int
    retrieved: tuple[Retrieved, ...]


@dataclass(frozen=True)
class FailureGallery:
    """Each section's worst queries: (pair, direction) -> section -> queries, worst first."""

    max_k: int
    per_section: int
    queries: Mapping[tuple[str, str], Mapping[str, tuple[FailedQuery, ...]]]


@dataclass(frozen=True)
class Confusions:
    """Which sections retrieve which: (pair, direction) -> (query section, retrieved
    section) -> (share of the query section's queries, count, the section's queries)."""

    cells: Mapping[tuple[str, str], Mapping[tuple[str, str], tuple[float, int, int]]]
    label_confusions: Rows | None = None  # fct_label_confusions' most frequent per space


@dataclass(frozen=True)
class Move:
    product: Product
    rank_before: int | None
    rank_after: int | None
    rank_change: int
    max_k_before: int
    max_k_after: int


@dataclass(frozen=True)
class RunMoves:
    """The latest run against the pinned baseline: the products that moved most per
    pair and direction (gains and losses, largest first) and the per-section deltas."""

    baseline_run_id: str
    run_id: str
    # (pair, direction) -> "better" / "worse" -> moves
    moves: Mapping[tuple[str, str], Mapping[str, tuple[Move, ...]]]
    n_compared: Mapping[tuple[str, str], Mapping[str, int]]  # -> move -> products
    section_deltas: Rows | None


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, in the order it shows it."""

    database: str
    generated_at: datetime
    version: str
    k_values: tuple[int, ...]
    notice: str | None
    retrieval: Retrieval
    curves: RecallCurves | None
    galleries: GalleryCurves | None
    similarity: tuple[SimilarityHistogram, ...]
    labels: LabelStructure | None
    comparisons: tuple[SpaceComparison, ...]
    rerank: Rows | None
    history: MetricHistory | None
    deltas: Rows | None
    failures: FailureGallery | None = None
    confusions: Confusions | None = None
    moves: RunMoves | None = None


def fetch_report(conn: psycopg.Connection, config: ProjectConfig) -> ReportData:
    if not contract.exists(conn, contract.RETRIEVAL_METRICS):
        raise EmbedUdfsError(
            f"{contract.RETRIEVAL_METRICS} does not exist in this database, so there is nothing "
            "to report. Build the metrics first: `embed-udfs refresh` (or `embed-udfs demo run`)."
        )
    return ReportData(
        database=clean(conn.info.dbname, max_width=None),
        generated_at=datetime.now(timezone.utc),
        version=__version__,
        k_values=tuple(config.eval.k_values),
        notice=random_weight_notice(config),
        retrieval=fetch_retrieval(conn),
        curves=fetch_recall_curves(conn),
        galleries=fetch_gallery_curves(conn),
        similarity=fetch_similarity(conn),
        labels=fetch_label_structure(conn),
        comparisons=fetch_space_comparisons(conn),
        rerank=fetch_rows(conn, contract.RERANK_UPLIFT),
        history=fetch_history(conn, config),
        deltas=fetch_deltas(conn),
        failures=fetch_failures(conn, config),
        confusions=fetch_confusions(conn),
        moves=fetch_moves(conn, config),
    )


def _cleaned(rows: list[tuple]) -> list[tuple]:
    """Rows with every string cleaned, so that no plot label or cell carries a raw
    escape sequence or control character from the data."""
    return [
        tuple(clean(value, max_width=None) if isinstance(value, str) else value for value in row)
        for row in rows
    ]


def _query(
    conn: psycopg.Connection, template: str, relation: contract.Relation, params: Any = None
) -> list[tuple]:
    """Cleaned rows of `template` with its one `{}` filled by the relation's quoted name."""
    query = sql.SQL(template).format(relation.identifier)
    return _cleaned(conn.execute(query, params).fetchall())


def fetch_retrieval(conn: psycopg.Connection) -> Retrieval:
    rows = _query(
        conn,
        "select section_level, pair, direction, section, k, value, ci_low, ci_high, n, "
        "macro_value, n_sections, weakness_rank, is_weaker_than_all, is_small_section "
        "from {} where metric like 'recall_at_%' and gallery_scope = 'sample' "
        "order by section_level, pair, direction, section, k",
        contract.RETRIEVAL_METRICS,
    )
    if not rows:
        return Retrieval((), {}, tuple(empty_sample_reasons(conn, "retrieval")))
    by_level: dict[str, dict[tuple[str, str], dict[str, dict[int, Estimate]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    macro: dict[tuple[str, str, str], dict[int, Estimate]] = defaultdict(dict)
    for (
        level,
        pair,
        direction,
        section,
        k,
        value,
        low,
        high,
        n,
        macro_value,
        n_sections,
        rank,
        weaker,
        small,
    ) in rows:
        by_level[level][pair, direction][section][k] = Estimate(
            value, low, high, n, rank, weaker, small
        )
        if section == "ALL" and macro_value is not None:
            macro[level, pair, direction][k] = Estimate(macro_value, n=n_sections)
    recall = by_level.pop("leaf", {})
    return Retrieval(tuple(sorted({row[4] for row in rows})), recall, (), by_level, macro)


def fetch_recall_curves(conn: psycopg.Connection) -> RecallCurves | None:
    rows = _query(
        conn,
        "select pair, direction, k, value, ci_low, ci_high, n from {} "
        "where metric like 'recall_at_%' and section = 'ALL' and section_level = 'leaf' "
        "and gallery_scope = 'sample' "
        "order by pair, direction, k",
        contract.RETRIEVAL_METRICS,
    )
    if not rows:
        return None
    recall: dict[tuple[str, str], dict[int, Estimate]] = defaultdict(dict)
    for pair, direction, k, value, low, high, n in rows:
        recall[pair, direction][k] = Estimate(value, low, high, n)
    return RecallCurves(
        tuple(sorted({row[2] for row in rows})), recall, max(row[6] for row in rows)
    )


def fetch_gallery_curves(conn: psycopg.Connection) -> GalleryCurves | None:
    """R@K (ALL) of the same sampled queries against each gallery: the sample, the tiers
    between it and the whole catalog, and the whole catalog, with their sizes."""
    rows = _query(
        conn,
        "select pair, direction, gallery_scope, gallery_size, gallery_is_sample, "
        "search_method, k, value, ci_low, ci_high, n from {} "
        "where metric like 'recall_at_%' and section = 'ALL' and section_level = 'leaf' "
        "order by pair, direction, gallery_size, gallery_scope desc, k",
        contract.RETRIEVAL_METRICS,
    )
    if not rows:
        return None
    grouped: dict[tuple[str, str], dict[tuple, dict[int, Estimate]]] = defaultdict(dict)
    for pair, direction, scope, size, is_sample, method, k, value, low, high, n in rows:
        grouped[pair, direction].setdefault((scope, size, bool(is_sample), method), {})[k] = (
            Estimate(value, low, high, n)
        )
    return GalleryCurves(
        tuple(sorted({row[6] for row in rows})),
        {
            key: tuple(
                GalleryPoint(scope, size, is_sample, method, recall)
                for (scope, size, is_sample, method), recall in points.items()
            )
            for key, points in grouped.items()
        },
    )


def fetch_similarity(conn: psycopg.Connection) -> tuple[SimilarityHistogram, ...]:
    if not contract.exists(conn, contract.SIMILARITY_HISTOGRAMS):
        return ()
    rows = _query(
        conn,
        "select pair, bin_low, bin_high, positive_count, negative_count, positive_share, "
        "negative_share, negatives_method from {} order by pair, bin",
        contract.SIMILARITY_HISTOGRAMS,
    )
    gaps: dict[str, dict[str, float]] = defaultdict(dict)
    if rows and contract.exists(conn, contract.EMBEDDING_GAPS):
        for pair, metric, value in _query(
            conn,
            "select pair, metric, value from {} where section = 'ALL' and section_level = 'leaf'",
            contract.EMBEDDING_GAPS,
        ):
            gaps[pair][metric] = value
    by_pair: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_pair[row[0]].append(row[1:])
    return tuple(
        SimilarityHistogram(
            pair,
            tuple(HistogramBin(*row[:6]) for row in bins),
            negatives_method=bins[0][6],
            gaps=gaps.get(pair, {}),
        )
        for pair, bins in sorted(by_pair.items())
    )


def fetch_label_structure(conn: psycopg.Connection) -> LabelStructure | None:
    if not contract.exists(conn, contract.LABEL_METRICS):
        return None
    rows = _query(
        conn,
        "select space, metric, reduction, value, ci_low, ci_high, n from {} "
        "where section = 'ALL' order by metric, reduction, space",
        contract.LABEL_METRICS,
    )
    if not rows:
        return None
    figures: dict[str, dict[str, dict[str, Estimate]]] = defaultdict(lambda: defaultdict(dict))
    for space, metric, reduction, value, low, high, n in rows:
        figures[metric][reduction][space] = Estimate(value, low, high, n)
    return LabelStructure(figures)


def fetch_space_comparisons(conn: psycopg.Connection) -> tuple[SpaceComparison, ...]:
    """Each unordered pair of spaces once (A before B), ALL sections."""
    if not contract.exists(conn, contract.SPACE_COMPARISONS):
        return ()
    rows = _query(
        conn,
        "select metric, reduction, space_a, space_b, difference, ci_low, ci_high, a_beats_b, "
        "n_a, n_b from {} where section = 'ALL' and space_a < space_b "
        "order by metric, reduction, space_a, space_b",
        contract.SPACE_COMPARISONS,
    )
    return tuple(
        SpaceComparison(metric, reduction, a, b, Estimate(d, low, high), verdict, n_a, n_b)
        for metric, reduction, a, b, d, low, high, verdict, n_a, n_b in rows
    )


def fetch_history(conn: psycopg.Connection, config: ProjectConfig) -> MetricHistory | None:
    """R@10 (the largest K when 10 is not configured) of the last HISTORY_RUNS runs."""
    if not contract.exists(conn, contract.METRIC_HISTORY):
        return None
    k_values = config.eval.k_values
    k = 10 if 10 in k_values else max(k_values)
    rows = conn.execute(
        sql.SQL(
            "with runs as (select run_id, min(run_started_at) as started "
            "from {history} group by run_id order by started desc limit %s) "
            "select runs.run_id, runs.started, history.pair, history.direction, history.value, "
            "history.ci_low, history.ci_high, history.n from {history} as history "
            "inner join runs on runs.run_id = history.run_id "
            "where history.family = 'retrieval' and history.section = 'ALL' "
            "and coalesce(history.gallery_scope, 'sample') = 'sample' "
            "and history.metric = %s order by runs.started, history.pair, history.direction"
        ).format(history=contract.METRIC_HISTORY.identifier),
        (HISTORY_RUNS, f"recall_at_{k}"),
    ).fetchall()
    rows = _cleaned(rows)
    if not rows:
        return None
    runs = tuple(dict.fromkeys(Run(run_id, started) for run_id, started, *_ in rows))
    values: dict[tuple[str, str], dict[str, Estimate]] = defaultdict(dict)
    for run_id, _, pair, direction, value, low, high, n in rows:
        values[pair, direction][run_id] = Estimate(value, low, high, n)
    return MetricHistory(k, runs, values)


def fetch_deltas(conn: psycopg.Connection) -> Rows | None:
    """The overall (ALL) rows of fct_metric_deltas, baseline first; moved metrics on top.
    None when the mart is absent; empty rows when it has none yet."""
    if not contract.exists(conn, contract.METRIC_DELTAS):
        return None
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
    return Rows(contract.METRIC_DELTAS, DELTAS_COLUMNS, tuple(_cleaned(rows)))


def fetch_rows(conn: psycopg.Connection, relation: contract.Relation) -> Rows | None:
    """A relation the report does not chart, as it stands, without computed_at; None when
    absent or empty (dbt builds the rerank marts empty when no reranker is configured)."""
    if not contract.exists(conn, relation):
        return None
    cursor = conn.execute(
        sql.SQL("select * from {} limit %s").format(relation.identifier), (GENERIC_ROW_LIMIT + 1,)
    )
    headers = [column.name for column in cursor.description or []]
    rows = _cleaned(cursor.fetchall())
    if not rows:
        return None
    keep = [i for i, h in enumerate(headers) if h != "computed_at"]
    return Rows(
        relation,
        tuple(clean(headers[i], max_width=None) for i in keep),
        tuple(tuple(row[i] for i in keep) for row in rows[:GENERIC_ROW_LIMIT]),
        truncated=len(rows) > GENERIC_ROW_LIMIT,
    )


# the failure gallery: the worst queries shown per section; the run-against-run view:
# the products shown per pair, direction and way they moved
FAILURES_PER_SECTION = 5
MOVES_SHOWN = 10
LABEL_CONFUSIONS_SHOWN = 8  # per text space
SECTION_DELTAS_COLUMNS = (
    "pair",
    "direction",
    "section",
    "reference_value",
    "value",
    "difference",
    "ci_low",
    "ci_high",
    "verdict",
)


def _text(value: Any) -> Any:
    return clean(value, max_width=None) if isinstance(value, str) else value


def _product(product_id: Any, name: Any, section: Any, store: Any, image_uri: Any) -> Product:
    # the URI stays as stored: it is read, never printed
    return Product(_text(product_id), _text(name), _text(section), _text(store), image_uri)


def fetch_failures(
    conn: psycopg.Connection, config: ProjectConfig, per_section: int = FAILURES_PER_SECTION
) -> FailureGallery | None:
    """Each pair's, direction's and section's `per_section` worst failed queries with
    their top items; None when the marts are absent, empty queries when none failed."""
    if not (
        contract.exists(conn, contract.RETRIEVAL_FAILURES)
        and contract.exists(conn, contract.RETRIEVAL_FAILURE_NEIGHBOURS)
    ):
        return None
    queries = conn.execute(
        sql.SQL(
            "select pair, direction, collection_section, worst_order, query_product_id, "
            "query_name, query_store_name, query_image_uri, positive_rank, dedup_tolerant_rank, "
            "positive_distance from {} where is_failure and worst_order <= %s "
            "order by pair, direction, collection_section, worst_order"
        ).format(contract.RETRIEVAL_FAILURES.identifier),
        (per_section,),
    ).fetchall()
    lists: dict[tuple[str, str, str], list[Retrieved]] = defaultdict(list)
    for row in conn.execute(
        sql.SQL(
            "select pair, direction, query_product_id, neighbour_rank, neighbour_product_id, "
            "neighbour_name, neighbour_section, neighbour_store_name, neighbour_image_uri, "
            "distance, is_positive, is_duplicate_of_positive from {} where worst_order <= %s "
            "order by pair, direction, query_product_id, neighbour_rank"
        ).format(contract.RETRIEVAL_FAILURE_NEIGHBOURS.identifier),
        (per_section,),
    ):
        pair, direction, query_id, rank, *product, distance, positive, duplicate = row
        lists[pair, direction, query_id].append(
            Retrieved(rank, _product(*product), distance, bool(positive), bool(duplicate))
        )
    gallery: dict[tuple[str, str], dict[str, list[FailedQuery]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for pair, direction, section, order, query_id, name, store, uri, rank, tolerant, d in queries:
        gallery[_text(pair), _text(direction)][_text(section)].append(
            FailedQuery(
                _product(query_id, name, section, store, uri),
                rank,
                tolerant,
                d,
                order,
                tuple(lists.get((pair, direction, query_id), ())),
            )
        )
    return FailureGallery(
        max(config.eval.k_values),
        per_section,
        {
            key: {section: tuple(items) for section, items in sections.items()}
            for key, sections in gallery.items()
        },
    )


def fetch_confusions(conn: psycopg.Connection) -> Confusions | None:
    if not contract.exists(conn, contract.RETRIEVAL_CONFUSIONS):
        return None
    rows = _query(
        conn,
        "select pair, direction, query_section, retrieved_section, share_of_queries, "
        "n_retrieved, n_queries from {} order by pair, direction, query_section, "
        "retrieved_section",
        contract.RETRIEVAL_CONFUSIONS,
    )
    if not rows:
        return None
    cells: dict[tuple[str, str], dict[tuple[str, str], tuple[float, int, int]]] = defaultdict(dict)
    for pair, direction, query_section, retrieved, share, n, n_queries in rows:
        cells[pair, direction][query_section, retrieved] = (share, n, n_queries)
    label_rows = None
    if contract.exists(conn, contract.LABEL_CONFUSIONS):
        columns = ("space", "section", "neighbour_section", "n_confused", "n_section")
        label_rows = Rows(
            contract.LABEL_CONFUSIONS,
            (*columns, "share_of_section"),
            tuple(
                _query(
                    conn,
                    "select space, section, neighbour_section, n_confused, n_section, "
                    "share_of_section from {} where confusion_rank <= %s "
                    "order by space, confusion_rank",
                    contract.LABEL_CONFUSIONS,
                    (LABEL_CONFUSIONS_SHOWN,),
                )
            ),
        )
    return Confusions(cells, label_rows)


def fetch_moves(
    conn: psycopg.Connection, config: ProjectConfig, shown: int = MOVES_SHOWN
) -> RunMoves | None:
    """The latest run against the pinned baseline; None when there is no baseline or
    no product ranked in both runs."""
    if not contract.exists(conn, contract.RANK_MOVES):
        return None
    rows = conn.execute(
        sql.SQL(
            "select moves.pair, moves.direction, moves.baseline_run_id, moves.run_id, "
            "moves.product_id, failures.query_name, moves.collection_section, "
            "failures.query_store_name, failures.query_image_uri, moves.rank_before, "
            "moves.rank_after, moves.rank_change, moves.max_k_before, moves.max_k_after, "
            "moves.improvement_order, moves.regression_order "
            "from {moves} as moves left join {failures} as failures "
            "on moves.pair = failures.pair and moves.direction = failures.direction "
            "and moves.product_id = failures.query_product_id "
            "where (moves.improvement_order <= %(shown)s and moves.rank_change > 0) "
            "or (moves.regression_order <= %(shown)s and moves.rank_change < 0) "
            "order by moves.pair, moves.direction, moves.rank_change desc, moves.product_id"
        ).format(
            moves=contract.RANK_MOVES.identifier, failures=contract.RETRIEVAL_FAILURES.identifier
        ),
        {"shown": shown},
    ).fetchall()
    counts = conn.execute(
        sql.SQL(
            "select pair, direction, move, count(*), min(baseline_run_id), min(run_id) "
            "from {} group by pair, direction, move"
        ).format(contract.RANK_MOVES.identifier)
    ).fetchall()
    if not counts:
        return None
    moves: dict[tuple[str, str], dict[str, list[Move]]] = defaultdict(
        lambda: {"better": [], "worse": []}
    )
    for pair, direction, _, _, *product, before, after, change, k_before, k_after, _, _ in rows:
        move = Move(_product(*product), before, after, change, k_before, k_after)
        moves[_text(pair), _text(direction)]["better" if change > 0 else "worse"].append(move)
    n_compared: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for pair, direction, move_kind, n, _, _ in counts:
        n_compared[_text(pair), _text(direction)][move_kind] = n
    k_values = config.eval.k_values
    k = 10 if 10 in k_values else max(k_values)
    section_deltas = None
    if contract.exists(conn, contract.METRIC_DELTAS):
        deltas = conn.execute(
            sql.SQL(
                "select {} from {} where reference = 'baseline' and family = 'retrieval' "
                "and gallery_scope = 'sample' "
                "and metric = %s order by pair, direction, section = 'ALL' desc, "
                "verdict = 'no detectable change', difference, section limit %s"
            ).format(
                sql.SQL(", ").join(map(sql.Identifier, SECTION_DELTAS_COLUMNS)),
                contract.METRIC_DELTAS.identifier,
            ),
            (f"recall_at_{k}", GENERIC_ROW_LIMIT),
        ).fetchall()
        section_deltas = Rows(
            contract.METRIC_DELTAS, SECTION_DELTAS_COLUMNS, tuple(_cleaned(deltas))
        )
    return RunMoves(
        _text(counts[0][4]),
        _text(counts[0][5]),
        {key: {m: tuple(v) for m, v in by.items()} for key, by in moves.items()},
        n_compared,
        section_deltas,
    )
