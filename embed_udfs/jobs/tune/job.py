"""The tuning runs: every configured (pair, direction) gallery through an HNSW index
that this job builds on its own copy of the gallery (schema ann_index), or a user's
table through the index they serve from. Each target's curve replaces its rows in
embeddings.ann_tuning in one transaction."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from tqdm import tqdm

from embed_udfs import contract, store
from embed_udfs.config import AnnConfig, PairConfig, ProjectConfig
from embed_udfs.db import ConnectionSettings, connect
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.errors import (
    ConfigError,
    EmbedUdfsError,
    GridBelowDepth,
    NoAnnIndex,
    NotAVectorColumn,
)
from embed_udfs.jobs.base import Job, JobOptions, JobSummary, int_list, option, progress_bar
from embed_udfs.jobs.tune import curve, probe
from embed_udfs.jobs.tune import store as tune_store
from embed_udfs.jobs.tune.curve import RECALL_K, Point, Setting

log = logging.getLogger(__name__)

# The index the project builds on int_eval_vectors (macros/hnsw.sql) takes pgvector's
# defaults; the copies here are built the same way, so the curve is the project's.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
DIRECTIONS = ("text_to_image", "image_to_text")
EF_SEARCH_MAX = 1000  # pgvector refuses hnsw.ef_search above this


@dataclass(frozen=True)
class TuneOptions:
    """Overrides of vars.ann_* for one run (None: the configured value)."""

    target_recall: float | None = None
    ef_search_grid: tuple[int, ...] | None = None
    probes_grid: tuple[int, ...] | None = None
    iterative_scans: tuple[str, ...] | None = None
    queries: int | None = None

    def apply(self, ann: AnnConfig) -> AnnConfig:
        changes = {k: v for k, v in self.__dict__.items() if v is not None}
        if "iterative_scans" in changes:
            unknown = [
                m for m in changes["iterative_scans"] if m not in probe.ITERATIVE_MODES["hnsw"]
            ]
            if unknown:
                raise ConfigError(
                    f"iterative scan mode {unknown[0]!r} is not one of pgvector's: off, "
                    "relaxed_order, strict_order."
                )
        return check_ann(replace(ann, **changes))


def check_ann(ann: AnnConfig) -> AnnConfig:
    if not 0 < ann.target_recall <= 1:
        raise ConfigError(
            f"the target recall is {ann.target_recall}; it must be a number in (0, 1], e.g. "
            "0.99 (neighbour recall@10): set vars.ann_target_recall or --target-recall."
        )
    if ann.queries < 1:
        raise ConfigError(f"queries per gallery is {ann.queries}; it must be a positive integer.")
    for name, values in (
        ("ann_ef_search_grid", ann.ef_search_grid),
        ("ann_probes_grid", ann.probes_grid),
    ):
        if not values or any(v < 1 for v in values):
            raise ConfigError(f"vars.{name} is {list(values)}; list positive integers.")
    high = [v for v in ann.ef_search_grid if v > EF_SEARCH_MAX]
    if high:
        raise ConfigError(
            f"vars.ann_ef_search_grid has {', '.join(map(str, high))}, above {EF_SEARCH_MAX}, the "
            "largest hnsw.ef_search pgvector accepts. If recall@10 still falls short at "
            f"{EF_SEARCH_MAX}, rebuild the index with a larger m or ef_construction."
        )
    return replace(
        ann,
        ef_search_grid=tuple(sorted(set(ann.ef_search_grid))),
        probes_grid=tuple(sorted(set(ann.probes_grid))),
    )


def list_depth(config: ProjectConfig) -> int:
    """How deep each list goes: the largest K, and at least the 10 of the target recall."""
    return max(config.eval.max_k, RECALL_K)


def check_ef_grid(ann: AnnConfig, depth: int, max_k: int) -> None:
    low = [v for v in ann.ef_search_grid if v < depth]
    if low:
        raise GridBelowDepth(
            f"vars.ann_ef_search_grid has {', '.join(map(str, low))}, below {depth} (the largest "
            f"K, {max_k}, and at least the {RECALL_K} of the target recall): an HNSW scan returns "
            "at most ef_search rows, so such a setting silently truncates every list. Start the "
            f"grid at {depth} or above, e.g. --ef-search {depth},{2 * depth},{4 * depth}."
        )


@dataclass
class TargetSummary:
    """What the tuning found for one target."""

    target: str
    gallery_rows: int = 0
    queries: int = 0
    points: list[Point] = field(default_factory=list)
    exact_p50_ms: float = 0.0
    exact_figures: dict[str, float] = field(default_factory=dict)
    chosen: Point | None = None
    target_recall: float = 0.99
    bias_at_10: float | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None

    def line(self) -> str:
        if self.skipped:
            return f"{self.target}: skipped: {self.skipped}"
        head = f"{self.target} ({self.gallery_rows} rows, {self.queries} queries)"
        if self.chosen is None:
            best = max(self.points, key=lambda p: p.recall.get(RECALL_K, 0.0), default=None)
            text = f"{head}: no setting reaches recall@{RECALL_K} {self.target_recall:g}"
            if best is not None:
                text += (
                    f" (best {best.recall[RECALL_K]:.4f} at {best.setting.label()}); widen the "
                    f"grid (ef_search up to {EF_SEARCH_MAX}) or rebuild the index with a "
                    "larger m or ef_construction"
                )
        else:
            c = self.chosen
            text = (
                f"{head}: {c.setting.label()} reaches recall@{RECALL_K} "
                f"{c.recall[RECALL_K]:.4f} >= {self.target_recall:g}, "
                f"p50 {c.p50_ms:.2f} ms (exact scan {self.exact_p50_ms:.2f} ms)"
            )
            if self.bias_at_10 is not None:
                text += f", R@10 bias {self.bias_at_10:+.4f}"
        for note in self.notes:
            text += f"\n    note: {note}"
        return text


@dataclass(frozen=True)
class TuneSummary:
    targets: tuple[TargetSummary, ...]
    seconds: float

    def lines(self) -> tuple[str, ...]:
        return tuple(t.line() for t in self.targets)


@dataclass(frozen=True)
class Target:
    """One curve to measure: where the queries come from and what they search."""

    kind: str  # space | relation
    name: str
    gallery: probe.Gallery
    fill_queries: sql.Composable  # fills pg_temp.ann_queries
    fill_params: tuple[Any, ...]
    labels: dict[
        str, Any
    ]  # pair, direction, query_space, gallery_space, relation_name, column_name
    index_options: str
    settings: tuple[Setting, ...]
    with_positives: bool


def _measure(
    conn: psycopg.Connection,
    config: ProjectConfig,
    ann: AnnConfig,
    target: Target,
    progress: tqdm,
) -> TargetSummary:
    """Run one target's grid in one transaction and replace its rows."""
    started = time.perf_counter()
    summary = TargetSummary(target.name, target_recall=ann.target_recall)
    depth = list_depth(config)
    k_values = sorted(set(config.eval.k_values) | {RECALL_K})
    gallery = target.gallery
    conn.execute("drop table if exists pg_temp.ann_queries")
    conn.execute(
        sql.SQL("create temporary table ann_queries on commit drop as {}").format(
            target.fill_queries
        ),
        target.fill_params,
    )
    ids, positives = probe.query_ids(conn)
    rows_row = conn.execute(
        sql.SQL("select count(*) from {} as g where {}").format(gallery.relation, gallery.predicate)
    ).fetchone()
    summary.gallery_rows = int(rows_row[0]) if rows_row else 0
    summary.queries = len(ids)
    if not ids or summary.gallery_rows <= depth:
        summary.skipped = (
            f"{summary.gallery_rows} gallery rows and {len(ids)} queries; the curve needs more "
            f"rows than the list depth ({depth})"
        )
        progress.update(len(target.settings))
        conn.rollback()
        return summary
    probe.prepare(conn, gallery)
    probe.check_index_used(conn, gallery, depth)
    note = _consistency(conn, gallery, depth, summary)
    exact_lists, exact_ms = probe.exact(conn, depth)
    exact_p50, exact_p95 = curve.latency(exact_ms)
    summary.exact_p50_ms = exact_p50
    exact_figures = (
        curve.retrieval_figures(exact_lists, positives, k_values) if target.with_positives else {}
    )
    summary.exact_figures = exact_figures
    rows: list[tuple[Any, ...]] = []

    def row(
        setting: Setting,
        metric: str,
        k: int | None,
        value: float | None,
        exact_value: float | None = None,
        bias: float | None = None,
    ) -> tuple[Any, ...]:
        labels = target.labels
        return (
            target.kind,
            target.name,
            labels.get("pair"),
            labels.get("direction"),
            labels.get("query_space"),
            labels.get("gallery_space"),
            labels.get("relation_name"),
            labels.get("column_name"),
            gallery.index_name,
            gallery.index_method,
            gallery.operator_class,
            target.index_options,
            summary.gallery_rows,
            len(ids),
            setting.param,
            setting.value,
            setting.iterative_scan,
            metric,
            k,
            value,
            exact_value,
            bias,
            note,
        )

    baseline = Setting("exact", 0)
    rows.append(row(baseline, "latency_p50_ms", depth, exact_p50, exact_p50))
    rows.append(row(baseline, "latency_p95_ms", depth, exact_p95, exact_p95))
    for name, value in exact_figures.items():
        metric, _, k = name.rpartition("_at_")
        rows.append(row(baseline, metric, int(k), value, value, 0.0))
    for setting in target.settings:
        lists, ms = probe.through_index(conn, gallery, setting, depth)
        recall = {k: curve.neighbour_recall(lists, exact_lists, k) for k in (RECALL_K, depth)}
        figures = (
            curve.retrieval_figures(lists, positives, k_values) if target.with_positives else {}
        )
        p50, p95 = curve.latency(ms)
        summary.points.append(Point(setting, recall, figures, p50, p95))
        rows.append(row(setting, "neighbour_recall", RECALL_K, recall[RECALL_K], 1.0))
        if depth != RECALL_K:
            rows.append(row(setting, "neighbour_recall", depth, recall[depth], 1.0))
        rows.append(row(setting, "latency_p50_ms", depth, p50, exact_p50))
        rows.append(row(setting, "latency_p95_ms", depth, p95, exact_p95))
        for name, value in figures.items():
            metric, _, k = name.rpartition("_at_")
            rows.append(
                row(
                    setting, metric, int(k), value, exact_figures[name], value - exact_figures[name]
                )
            )
        progress.update(1)
    summary.chosen = curve.chosen(summary.points, ann.target_recall)
    if summary.chosen is not None and target.with_positives:
        name = f"recall_at_{RECALL_K}"
        summary.bias_at_10 = summary.chosen.retrieval[name] - exact_figures[name]
    tune_store.replace_target(conn, config, target.name, rows)
    conn.commit()
    summary.seconds = time.perf_counter() - started
    return summary


def _consistency(
    conn: psycopg.Connection, gallery: probe.Gallery, depth: int, summary: TargetSummary
) -> str | None:
    """Whether the index orders like the cosine distance the evaluation uses, on a sample,
    and if not, what the mismatch costs: how much of the exact cosine top-10 the index's
    own exact order keeps. None when they agree."""
    operator, distance = probe.operator_for(gallery.operator_class)
    total, off, low, high = probe.norms(conn)
    unit = off == 0
    if operator == probe.COSINE:
        if unit:
            return None
        note = (
            f"{off} of {total} sampled vectors are not unit length (norms {low:.3g} to "
            f"{high:.3g}); cosine ignores length, so the order is right, but a zero vector has "
            "no cosine distance and the HNSW cosine index skips it: reject them on write"
        )
        summary.notes.append(note)
        return note
    if unit and operator in ("<#>", "<->"):
        return None  # for unit vectors these order exactly like cosine
    agreement = curve.neighbour_recall(
        probe.exact(conn, depth)[0], probe.exact(conn, depth, cosine=True)[0], RECALL_K
    )
    why = (
        "these vectors are not unit length "
        f"({off} of {total} sampled off 1 by more than 0.001, norms {low:.3g} to {high:.3g})"
        if not unit
        else "that distance does not order like cosine even on unit vectors"
    )
    cost = (
        f"its exact top-{RECALL_K} shares {agreement:.3f} of the cosine top-{RECALL_K}, so "
        "neighbours from this index are not the ones the evaluation ranks"
    )
    if operator == "<#>" and not unit:
        why += ": longer vectors rank first whatever their direction"
    note = (
        f"{gallery.index_name} uses {gallery.operator_class} ({distance}) but the evaluation "
        f"uses cosine distance, and {why}; {cost}. Normalise the vectors (then ip and L2 order "
        "like cosine) or index with vector_cosine_ops."
    )
    summary.notes.append(note)
    log.warning("%s", note)
    return note


def _spaces(pair: PairConfig, direction: str) -> tuple[str, str]:
    """The (query space, gallery space) of one direction of a pair."""
    if direction == "text_to_image":
        return pair.text_space, pair.image_space
    return pair.image_space, pair.text_space


def space_targets(conn: psycopg.Connection, config: ProjectConfig, ann: AnnConfig) -> list[Target]:
    """One target per (pair, direction): its gallery space copied into ann_index with
    an HNSW cosine index (built once per gallery space), its query space sampled."""
    vectors = contract.ANN_TUNING_VECTORS
    if not contract.exists(conn, vectors):
        raise EmbedUdfsError(
            f"{vectors} does not exist: dbt builds the galleries. Run `embed-udfs refresh`, or "
            "`dbt build --select +int_ann_tuning_vectors`, then `embed-udfs tune`."
        )
    schema = sql.Identifier(contract.ANN_INDEX_SCHEMA)
    conn.execute(sql.SQL("create schema if not exists {}").format(schema))
    probe.create_top_ids(conn, contract.ANN_INDEX_SCHEMA)
    built: dict[str, str] = {}
    targets = []
    for pair in config.pairs:
        for direction in DIRECTIONS:
            query_space, gallery_space = _spaces(pair, direction)
            dim = config.space(gallery_space).dim
            table = sql.Identifier(contract.ANN_INDEX_SCHEMA, gallery_space)
            if gallery_space not in built:
                built[gallery_space] = _copy_gallery(conn, table, gallery_space, dim)
            fill = sql.SQL(
                "select (row_number() over (order by md5(q.product_id), q.product_id))::int "
                "as ord, q.product_id as query_id, q.product_id as positive_id, "
                "q.embedding::vector({dim}) as embedding "
                "from {vectors} as q where q.space = %s "
                "and exists (select 1 from {table} as g where g.product_id = q.product_id) "
                "order by md5(q.product_id), q.product_id limit %s"
            ).format(dim=sql.Literal(dim), vectors=vectors.identifier, table=table)
            targets.append(
                Target(
                    kind="space",
                    name=f"{pair.name}/{direction}",
                    gallery=probe.Gallery(
                        relation=table,
                        id_sql=sql.SQL("g.product_id"),
                        key_sql=sql.SQL("g.embedding"),
                        predicate=sql.SQL("true"),
                        index_name=built[gallery_space],
                        index_method="hnsw",
                        operator_class="vector_cosine_ops",
                    ),
                    fill_queries=fill,
                    fill_params=(query_space, ann.queries),
                    labels={
                        "pair": pair.name,
                        "direction": direction,
                        "query_space": query_space,
                        "gallery_space": gallery_space,
                    },
                    index_options=f"m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}",
                    settings=tuple(probe.grid("hnsw", ann.ef_search_grid, ann.iterative_scans)),
                    with_positives=True,
                )
            )
    return targets


def catalog_targets(
    conn: psycopg.Connection, config: ProjectConfig, ann: AnnConfig
) -> list[Target]:
    """One target per (pair, direction) whose whole-catalog gallery is searched through
    its own index: the partial HNSW index of the gallery space on
    int_catalog_gallery_vectors (macro index_catalog_gallery builds it only where the
    catalog search takes it), searched through the view int_ann_catalog_gallery, with
    the same sampled queries as the pair's sample target. None where the catalog is
    searched exactly: there is no index to measure."""
    view = contract.ANN_CATALOG_GALLERY
    table = contract.CATALOG_GALLERY_VECTORS
    if not (contract.exists(conn, view) and contract.exists(conn, table)):
        log.info("no whole-catalog gallery yet (%s): its index is not tuned", view)
        return []
    targets = []
    for pair in config.pairs:
        for direction in DIRECTIONS:
            query_space, gallery_space = _spaces(pair, direction)
            found = conn.execute(
                "select c.relname, array_to_string(c.reloptions, ', ') "
                "from pg_index as i join pg_class as c on c.oid = i.indexrelid "
                "join pg_am as am on am.oid = c.relam "
                "join pg_opclass as opc on opc.oid = i.indclass[0] "
                "where i.indrelid = %s::regclass and am.amname = 'hnsw' and i.indisvalid "
                "and opc.opcname = 'vector_cosine_ops' "
                "and pg_get_expr(i.indpred, i.indrelid) = format('(space = %%L::text)', %s::text)",
                (str(table), gallery_space),
            ).fetchone()
            if found is None:
                continue  # searched exactly
            index, options = found
            dim = config.space(gallery_space).dim
            fill = sql.SQL(
                "select (row_number() over (order by md5(q.product_id), q.product_id))::int "
                "as ord, q.product_id as query_id, q.product_id as positive_id, "
                "q.embedding::vector({dim}) as embedding "
                "from {vectors} as q where q.space = %s "
                "and exists (select 1 from {view} as g "
                "where g.space = %s and g.product_id = q.product_id) "
                "order by md5(q.product_id), q.product_id limit %s"
            ).format(
                dim=sql.Literal(dim),
                vectors=contract.ANN_TUNING_VECTORS.identifier,
                view=view.identifier,
            )
            targets.append(
                Target(
                    kind="catalog",
                    name=f"{pair.name}/{direction}/catalog",
                    gallery=probe.Gallery(
                        relation=view.identifier,
                        id_sql=sql.SQL("g.product_id"),
                        # the index's own expression, so the planner can use it
                        key_sql=sql.SQL("(g.embedding)::vector({})").format(sql.Literal(dim)),
                        predicate=sql.SQL("g.space = {}").format(sql.Literal(gallery_space)),
                        index_name=index,
                        index_method="hnsw",
                        operator_class="vector_cosine_ops",
                    ),
                    fill_queries=fill,
                    fill_params=(query_space, gallery_space, ann.queries),
                    labels={
                        "pair": pair.name,
                        "direction": direction,
                        "query_space": query_space,
                        "gallery_space": gallery_space,
                        "relation_name": str(table),
                    },
                    index_options=options
                    or f"m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION} (defaults)",
                    settings=tuple(probe.grid("hnsw", ann.ef_search_grid, ann.iterative_scans)),
                    with_positives=True,
                )
            )
    return targets


def _copy_gallery(conn: psycopg.Connection, table: sql.Identifier, space: str, dim: int) -> str:
    """The space's eval vectors in a table of their own, stored inline, with the HNSW
    cosine index the project builds; returns the index name. Rebuilt on every run."""
    index = f"{space}_hnsw"[:63]
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    conn.execute(
        sql.SQL(
            "create table {} (product_id text primary key, embedding vector({}) not null) "
            "with (toast_tuple_target = 8160)"
        ).format(table, sql.Literal(dim))
    )
    conn.execute(sql.SQL("alter table {} alter column embedding set storage plain").format(table))
    conn.execute(
        sql.SQL(
            "insert into {} select product_id, embedding::vector({}) from {} where space = %s"
        ).format(table, sql.Literal(dim), contract.ANN_TUNING_VECTORS.identifier),
        (space,),
    )
    conn.execute("set maintenance_work_mem = '256MB'")
    conn.execute(
        sql.SQL(
            "create index {} on {} using hnsw (embedding vector_cosine_ops) "
            "with (m = {}, ef_construction = {})"
        ).format(
            sql.Identifier(index), table, sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION)
        )
    )
    conn.execute(sql.SQL("analyze {}").format(table))
    conn.commit()
    return index


def relation_target(
    conn: psycopg.Connection,
    config: ProjectConfig,
    ann: AnnConfig,
    relation_text: str,
    column: str | None = None,
    id_column: str | None = None,
    index: str | None = None,
) -> Target:
    """A user's table as a target: its vector column, the ANN index on it, a sample of
    its own rows as queries. Only reads the table."""
    relation = contract.parse_relation(relation_text, "--relation")
    found = conn.execute("select to_regclass(%s)::oid", (str(relation),)).fetchone()
    if not found or found[0] is None:
        raise EmbedUdfsError(
            f"--relation {relation} does not exist (or this role cannot see it); give "
            "schema.table of the table your index is on."
        )
    oid = found[0]
    columns = conn.execute(
        "select a.attname, t.typname, a.attnum from pg_attribute as a "
        "join pg_type as t on t.oid = a.atttypid "
        "where a.attrelid = %s and a.attnum > 0 and not a.attisdropped order by a.attnum",
        (oid,),
    ).fetchall()
    vector_columns = [name for name, type_name, _ in columns if type_name in ("vector", "halfvec")]
    if column is None:
        if len(vector_columns) != 1:
            raise NotAVectorColumn(
                f"{relation} has "
                + (
                    f"several vector columns ({', '.join(vector_columns)}); name one with --column."
                    if vector_columns
                    else "no pgvector column (vector or halfvec); `tune --relation` measures an "
                    "index on one. Point it at the table your ANN index is on."
                )
            )
        column = vector_columns[0]
    types = {name: (type_name, attnum) for name, type_name, attnum in columns}
    if column not in types or types[column][0] not in ("vector", "halfvec"):
        what = f"is of type {types[column][0]}" if column in types else "does not exist"
        raise NotAVectorColumn(
            f"column {column} of {relation} {what}; `tune --relation` needs a vector or halfvec "
            f"column. Its vector columns: {', '.join(vector_columns) or '(none)'}."
        )
    indexes = [
        candidate
        for candidate in conn.execute(
            "select c.oid::regclass::text, am.amname, opc.opcname, "
            "pg_get_indexdef(i.indexrelid, 1, true), pg_get_expr(i.indpred, i.indrelid), "
            "array_to_string(c.reloptions, ', '), i.indkey[0] "
            "from pg_index as i join pg_class as c on c.oid = i.indexrelid "
            "join pg_am as am on am.oid = c.relam "
            "join pg_opclass as opc on opc.oid = i.indclass[0] "
            "where i.indrelid = %s and am.amname in ('hnsw', 'ivfflat') and i.indisvalid "
            "order by 1",
            (oid,),
        ).fetchall()
        if candidate[6] == types[column][1]
        or (candidate[6] == 0 and re.search(rf"\b{re.escape(column)}\b", candidate[3]))
    ]
    if index is not None:
        chosen = [c for c in indexes if index in (c[0], c[0].rpartition(".")[2])]
        if not chosen:
            raise NoAnnIndex(
                f"{relation}.{column} has no HNSW or IVFFlat index named {index}; its ANN "
                f"indexes: {', '.join(c[0] for c in indexes) or '(none)'}."
            )
        indexes = chosen
    if not indexes:
        raise NoAnnIndex(
            f"{relation}.{column} has no HNSW or IVFFlat index, so there is no approximate "
            f"search to tune. Create the index you serve from, e.g. `create index on {relation} "
            f"using hnsw ({column} vector_cosine_ops)`, then run tune again."
        )
    if len(indexes) > 1:
        raise NoAnnIndex(
            f"{relation}.{column} has several ANN indexes ({', '.join(c[0] for c in indexes)}); "
            "name the one to tune with --index."
        )
    name, method, opclass, key, predicate, options, _ = indexes[0]
    probe.operator_for(opclass)  # an operator class it cannot measure is refused here
    id_sql = _id_expression(conn, oid, relation, id_column, types)
    key_sql = sql.SQL(key)  # the server's own rendering of the indexed expression
    where = sql.SQL(predicate) if predicate else sql.SQL("true")
    fill = sql.SQL(
        "select (row_number() over (order by md5(listed.query_id), listed.query_id))::int as ord, "
        "listed.query_id, null::text as positive_id, listed.embedding from ("
        "select {id} as query_id, {key} as embedding from {relation} as g "
        "where {where} and {key} is not null order by md5({id}), {id} limit %s) as listed"
    ).format(id=id_sql, key=key_sql, relation=relation.identifier, where=where)
    defaults = (
        f"m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}" if method == "hnsw" else "lists=100"
    )
    values = ann.ef_search_grid if method == "hnsw" else ann.probes_grid
    if method == "ivfflat":
        lists = re.search(r"lists=(\d+)", options or "")
        most = int(lists.group(1)) if lists else 100
        # probes beyond the number of lists read the same lists again
        values = tuple(v for v in values if v < most) + (most,)
    return Target(
        kind="relation",
        name=f"{relation}.{column}" + (f"@{name.rpartition('.')[2]}" if index else ""),
        gallery=probe.Gallery(
            relation=relation.identifier,
            id_sql=id_sql,
            key_sql=key_sql,
            predicate=where,
            index_name=name,
            index_method=method,
            operator_class=opclass,
        ),
        fill_queries=fill,
        fill_params=(ann.queries,),
        labels={"relation_name": str(relation), "column_name": column},
        index_options=options or f"{defaults} (defaults)",
        settings=tuple(probe.grid(method, values, ann.iterative_scans)),
        with_positives=False,
    )


def _id_expression(
    conn: psycopg.Connection,
    oid: int,
    relation: contract.Relation,
    id_column: str | None,
    types: dict[str, tuple[str, int]],
) -> sql.Composable:
    """A row's id in the lists: --id-column, else a one-column primary key, else ctid
    (stable while this run reads the table, which it never writes)."""
    if id_column is not None:
        if id_column not in types:
            raise EmbedUdfsError(
                f"--id-column {id_column} is not a column of {relation}; its columns: "
                f"{', '.join(types)}."
            )
        return sql.SQL("g.{}::text").format(sql.Identifier(id_column))
    key = conn.execute(
        "select array_agg(a.attname) from pg_index as i join pg_attribute as a "
        "on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
        "where i.indrelid = %s and i.indisprimary",
        (oid,),
    ).fetchone()
    if key and key[0] and len(key[0]) == 1:
        return sql.SQL("g.{}::text").format(sql.Identifier(key[0][0]))
    return sql.SQL("g.ctid::text")


def tune(
    settings: ConnectionSettings,
    config: ProjectConfig,
    options: TuneOptions | None = None,
    *,
    dbt_vars: dict[str, Any] | None = None,
    relation: str | None = None,
    column: str | None = None,
    id_column: str | None = None,
    index: str | None = None,
) -> TuneSummary:
    """Measure the curve of every configured gallery, or of one user relation. With
    dbt_vars (a dict, maybe empty), dbt first builds the galleries it reads."""
    started = time.perf_counter()
    ann = (options or TuneOptions()).apply(config.ann)
    depth = list_depth(config)
    if relation is None and dbt_vars is not None:
        galleries = (contract.ANN_TUNING_VECTORS, contract.ANN_CATALOG_GALLERY)
        log.info("dbt: the galleries (%s)", ", ".join(map(str, galleries)))
        run_dbt(
            ["build", "--select", *(f"+{g.name}" for g in galleries)]
            + ["--resource-type", "model", "--resource-type", "seed"],
            settings,
            config.project_dir,
            dbt_vars=dbt_vars,
        )
    with connect(settings, application_name="embed-udfs tune") as conn:
        store.bootstrap(conn, config)
        if relation is None:
            check_ef_grid(ann, depth, config.eval.max_k)
            targets = space_targets(conn, config, ann) + catalog_targets(conn, config, ann)
            tune_store.drop_targets_except(conn, config, [t.name for t in targets])
            conn.commit()
        else:
            targets = [relation_target(conn, config, ann, relation, column, id_column, index)]
            if targets[0].gallery.index_method == "hnsw":
                check_ef_grid(ann, depth, config.eval.max_k)
        summaries = []
        total = sum(len(t.settings) for t in targets)
        with progress_bar(total, "tune", "setting") as progress:
            for target in targets:
                progress.set_postfix_str(target.name)
                summaries.append(_measure(conn, config, ann, target, progress))
    return TuneSummary(tuple(summaries), time.perf_counter() - started)


EPILOG = """How good is the approximate search, and what does it cost? For each
configured pair and direction, the gallery's eval vectors are copied into
schema ann_index with the project's HNSW index (vector_cosine_ops, m=16,
ef_construction=64), a deterministic sample of the other space's vectors
(vars.ann_tuning_queries) searches it at every hnsw.ef_search in
vars.ann_ef_search_grid (and each mode of vars.ann_iterative_scans), and each
list is compared with the exact list from a sequential scan:

  neighbour recall@10   share of the exact top 10 the index returned
  recall/mrr bias       R@K and MRR read from the index's lists minus the
                        same from the exact lists (what the index path of
                        metrics.fct_retrieval_metrics overstates)
  latency p50/p95       per query, timed inside the database

The cheapest ef_search whose recall@10 meets vars.ann_target_recall is the
tuned one: when the metrics search through the index (retrieval_search: hnsw,
or auto above exact_search_max_gallery) their pre_hook uses it. Values below
max(largest K, 10) are refused: an HNSW scan returns at most ef_search rows.

Where the whole-catalog gallery (gallery_scope catalog) is searched through its
own HNSW index (retrieval_search: hnsw, or auto above catalog_exact_max_pairs),
that index is measured too, as target PAIR/DIRECTION/catalog, with the same
sampled queries against every catalog product: the catalog search then runs
at its own tuned ef_search, and the catalog rows of fct_retrieval_metrics
carry its bias. Each exact list scans the whole catalog gallery, so this part
costs about queries x catalog products inner products per direction.

--relation SCHEMA.TABLE measures your own serving index instead (HNSW: the
ef_search grid; IVFFlat: vars.ann_probes_grid), with queries sampled from the
table itself, and checks that its operator class orders like the cosine
distance the evaluation uses and that the vectors are unit length (on the
sample), saying what a mismatch costs. It only reads your table.
Results: embeddings.ann_tuning; dbt keeps them as metrics.fct_ann_tuning, one
row per setting, the chosen one marked (analyses/ann_tuning_curve.sql prints it).

examples:
  embed-udfs tune
  embed-udfs tune --ef-search 40,80,160 --target-recall 0.95
  embed-udfs tune --relation public.items --column embedding
  embed-udfs tune --relation public.items --column embedding --index items_embedding_idx \\
      --iterative-scan off --iterative-scan relaxed_order
"""


@dataclass(frozen=True, kw_only=True)
class TuneJobOptions(JobOptions):
    relation: str | None = option(
        flag="--relation",
        metavar="SCHEMA.TABLE",
        help="tune your own table's HNSW or IVFFlat index instead of the configured galleries",
    )
    column: str | None = option(
        flag="--column", help="with --relation: the vector column (default: its only one)"
    )
    id_column: str | None = option(
        flag="--id-column",
        help="with --relation: a row id for the lists (default: a one-column primary key, "
        "else ctid)",
    )
    index: str | None = option(
        flag="--index", help="with --relation: the index to tune, when the column has several"
    )
    ef_search: tuple[int, ...] | None = option(
        flag="--ef-search",
        type=int_list,
        metavar="N,N,...",
        help="hnsw.ef_search values to try (default vars.ann_ef_search_grid)",
    )
    probes: tuple[int, ...] | None = option(
        flag="--probes",
        type=int_list,
        metavar="N,N,...",
        help="ivfflat.probes values to try (default vars.ann_probes_grid)",
    )
    iterative_scan: Sequence[str] | None = option(
        flag="--iterative-scan",
        action="append",
        choices=("off", "relaxed_order", "strict_order"),
        help="pgvector iterative scan modes to try (repeatable; default vars.ann_iterative_scans)",
    )
    target_recall: float | None = option(
        flag="--target-recall",
        type=float,
        help="neighbour recall@10 the chosen setting must reach, in (0, 1] "
        "(default vars.ann_target_recall)",
    )
    queries: int | None = option(
        flag="--queries", type=int, help="queries per gallery (default vars.ann_tuning_queries)"
    )
    build_inputs: bool = option(
        True,
        flag="--no-dbt",
        action="store_false",
        dest="build_inputs",
        help="do not rebuild the galleries first (dbt build --select +int_ann_tuning_vectors "
        "+int_ann_catalog_gallery)",
    )

    def tune_options(self) -> TuneOptions:
        return TuneOptions(
            target_recall=self.target_recall,
            ef_search_grid=self.ef_search,
            probes_grid=self.probes,
            iterative_scans=tuple(self.iterative_scan) if self.iterative_scan else None,
            queries=self.queries,
        )


class TuneJob(Job):
    """Measure every configured gallery's recall/latency curve (when vars.ann_tuning)."""

    name = "tune"
    reads = contract.ANN_TUNING_VECTORS
    also_reads = (contract.ANN_CATALOG_GALLERY,)
    writes = contract.ANN_TUNING
    after = ("backfill",)
    Options = TuneJobOptions
    help = "measure the ANN index's recall/latency curve against exact search, per gallery"
    epilog = EPILOG

    def enabled(self, config: ProjectConfig, options: TuneJobOptions) -> bool:
        # the refresh asks before building the galleries: an off job costs it nothing
        return config.ann.tuning

    def check(self, config: ProjectConfig, options: TuneJobOptions) -> None:
        if options.relation is None and (options.column or options.id_column or options.index):
            raise EmbedUdfsError(
                "--column, --id-column and --index go with --relation SCHEMA.TABLE."
            )

    def run(
        self, settings: ConnectionSettings, config: ProjectConfig, options: TuneJobOptions
    ) -> JobSummary:
        summary = tune(
            settings,
            config,
            options.tune_options(),
            dbt_vars=dict(options.dbt_vars) if options.build_inputs else None,
            relation=options.relation,
            column=options.column,
            id_column=options.id_column,
            index=options.index,
        )
        chosen = sum(t.chosen is not None for t in summary.targets)
        footer = (
            f"tune: {len(summary.targets)} target(s), {chosen} with a setting that meets the "
            f"target, in {summary.seconds:.1f} s; the curve is in embeddings.ann_tuning "
            "(metrics.fct_ann_tuning after `dbt build` or `embed-udfs refresh`)"
        )
        return JobSummary(self.name, summary.lines(), (summary,), (footer,))
