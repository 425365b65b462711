"""What the HTML report shows, read from the metrics marts: one fetcher per section
of the page, each returning a frozen dataclass (or None when its mart is absent or
empty, so the section is left out). Strings from the data are cleaned here of
escape sequences and control characters; nothing here knows about HTML."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Retrieval:
    """Recall@K per pair, direction and section; the reasons samples are empty when none."""

    k_values: tuple[int, ...]
    # (pair, direction) -> section -> K -> recall
    recall: Mapping[tuple[str, str], Mapping[str, Mapping[int, Estimate]]]
    empty_reasons: tuple[str, ...] = ()


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

    scope: str  # sample or catalog
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
        "select pair, direction, section, k, value, ci_low, ci_high, n "
        "from {} where metric like 'recall_at_%' and gallery_scope = 'sample' "
        "order by pair, direction, section, k",
        contract.RETRIEVAL_METRICS,
    )
    if not rows:
        return Retrieval((), {}, tuple(empty_sample_reasons(conn, "retrieval")))
    recall: dict[tuple[str, str], dict[str, dict[int, Estimate]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for pair, direction, section, k, value, low, high, n in rows:
        recall[pair, direction][section][k] = Estimate(value, low, high, n)
    return Retrieval(tuple(sorted({row[3] for row in rows})), recall)


def fetch_recall_curves(conn: psycopg.Connection) -> RecallCurves | None:
    rows = _query(
        conn,
        "select pair, direction, k, value, ci_low, ci_high, n from {} "
        "where metric like 'recall_at_%' and section = 'ALL' and gallery_scope = 'sample' "
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
    """R@K (ALL) of the same sampled queries against each gallery: the sample and the
    whole catalog, with their sizes."""
    rows = _query(
        conn,
        "select pair, direction, gallery_scope, gallery_size, gallery_is_sample, "
        "search_method, k, value, ci_low, ci_high, n from {} "
        "where metric like 'recall_at_%' and section = 'ALL' "
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
            "select pair, metric, value from {} where section = 'ALL'",
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
