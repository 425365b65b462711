"""Measure searches in the database: every sampled query's top-depth list through an
ANN index under one setting, and the exact list by a sequential scan, each query timed
with clock_timestamp() inside one plpgsql loop (no client round trips in the figure).

Everything here is read-only on the searched relation: the queries sit in a temporary
table and the loop in a temporary function, both gone with the session."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from embed_udfs.errors import TuneError
from embed_udfs.jobs.tune.curve import Setting

log = logging.getLogger(__name__)

# pgvector's settings for each index method: the knob and the iterative scan modes it has.
KNOBS = {"hnsw": "ef_search", "ivfflat": "probes"}
ITERATIVE_MODES = {
    "hnsw": ("off", "relaxed_order", "strict_order"),
    "ivfflat": ("off", "relaxed_order"),
}
# operator class suffix -> the operator its index serves, and the distance it is
OPERATORS = {
    "_cosine_ops": ("<=>", "cosine"),
    "_ip_ops": ("<#>", "negative inner product"),
    "_l2_ops": ("<->", "Euclidean (L2)"),
    "_l1_ops": ("<+>", "taxicab (L1)"),
}
COSINE = "<=>"


def operator_for(operator_class: str) -> tuple[str, str]:
    """The ORDER BY operator an index of this operator class serves, and its distance."""
    if operator_class.startswith(("vector_", "halfvec_")):
        for suffix, found in OPERATORS.items():
            if operator_class.endswith(suffix):
                return found
    raise TuneError(
        f"operator class {operator_class} is not one `embed-udfs tune` can measure; it reads "
        "vector or halfvec columns indexed with *_cosine_ops, *_ip_ops, *_l2_ops or *_l1_ops."
    )


@dataclass(frozen=True)
class Gallery:
    """A searched relation: what a list item's id is, the vector expression the index
    is on, the index's predicate (a partial index), and the index itself."""

    relation: sql.Composable
    id_sql: sql.Composable  # an expression over alias g, cast to text
    key_sql: sql.Composable  # the indexed vector expression over alias g
    predicate: sql.Composable  # `true` for a whole-table index
    index_name: str
    index_method: str  # hnsw | ivfflat
    operator_class: str

    @property
    def operator(self) -> str:
        return operator_for(self.operator_class)[0]


def _probe_function(name: str, gallery: Gallery, operator: str, exact: bool) -> sql.Composed:
    distance = sql.SQL("{} {} r.embedding").format(gallery.key_sql, sql.SQL(operator))
    # an exact list breaks ties by id; an index scan can only order by the distance
    order = sql.SQL("{}, 1").format(distance) if exact else distance
    return sql.SQL(
        """
        create or replace function pg_temp.{name}(p_depth integer)
        returns table (out_ord integer, out_ids text[], out_ms double precision)
        language plpgsql as $probe$
        #variable_conflict use_column
        declare
            r record;
            started timestamptz;
        begin
            for r in select q.ord, q.embedding from pg_temp.ann_queries as q order by q.ord loop
                started := clock_timestamp();
                -- relaxed_order scans may return their rows slightly out of order
                out_ids := array(
                    select listed.id from (
                        select {id} as id, {distance} as distance
                        from {relation} as g
                        where {predicate}
                        order by {order}
                        limit p_depth
                    ) as listed
                    order by listed.distance, listed.id
                );
                out_ms := 1000 * extract(epoch from clock_timestamp() - started);
                out_ord := r.ord;
                return next;
            end loop;
        end
        $probe$
        """
    ).format(
        name=sql.Identifier(name),
        id=gallery.id_sql,
        distance=distance,
        relation=gallery.relation,
        predicate=gallery.predicate,
        order=order,
    )


def prepare(conn: psycopg.Connection, gallery: Gallery) -> None:
    """The loops over pg_temp.ann_queries (ord, query_id, positive_id, embedding): the
    index's, the exact one (index scans off, ties by id) and an exact cosine one."""
    conn.execute(_probe_function("ann_probe_index", gallery, gallery.operator, exact=False))
    conn.execute(_probe_function("ann_probe_exact", gallery, gallery.operator, exact=True))
    conn.execute(_probe_function("ann_probe_cosine", gallery, COSINE, exact=True))


def _set(conn: psycopg.Connection, name: str, value: str) -> None:
    conn.execute("select set_config(%s, %s, true)", (name, value))


def _run(
    conn: psycopg.Connection, function: str, depth: int
) -> tuple[list[list[str]], list[float]]:
    rows = conn.execute(
        sql.SQL("select out_ord, out_ids, out_ms from pg_temp.{}(%s) order by out_ord").format(
            sql.Identifier(function)
        ),
        (depth,),
    ).fetchall()
    return [list(ids) for _, ids, _ in rows], [float(ms) for _, _, ms in rows]


def exact(
    conn: psycopg.Connection, depth: int, *, cosine: bool = False
) -> tuple[list[list[str]], list[float]]:
    """Each query's exact top-depth list by a sequential scan (index scans disabled)."""
    for name in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
        _set(conn, name, "off")
    _set(conn, "enable_seqscan", "on")
    lists = _run(conn, "ann_probe_cosine" if cosine else "ann_probe_exact", depth)
    for name in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
        _set(conn, name, "on")
    return lists


def through_index(
    conn: psycopg.Connection, gallery: Gallery, setting: Setting, depth: int
) -> tuple[list[list[str]], list[float]]:
    """Each query's top-depth list through the index under one setting."""
    _set(conn, "enable_seqscan", "off")  # a small gallery would otherwise be scanned whole
    _set(conn, f"{gallery.index_method}.{setting.param}", str(setting.value))
    _set(conn, f"{gallery.index_method}.iterative_scan", setting.iterative_scan)
    try:
        return _run(conn, "ann_probe_index", depth)
    finally:
        _set(conn, "enable_seqscan", "on")
        _set(conn, f"{gallery.index_method}.iterative_scan", "off")


def check_index_used(conn: psycopg.Connection, gallery: Gallery, depth: int) -> None:
    """Refuse to report a curve the index did not produce: the planner must choose it."""
    _set(conn, "enable_seqscan", "off")
    plan = conn.execute(
        sql.SQL(
            "explain (format json) select {id} from {relation} as g where {predicate} "
            "order by {key} {op} (select q.embedding from pg_temp.ann_queries as q "
            "order by q.ord limit 1) limit %s"
        ).format(
            id=gallery.id_sql,
            relation=gallery.relation,
            predicate=gallery.predicate,
            key=gallery.key_sql,
            op=sql.SQL(gallery.operator),
        ),
        (depth,),
    ).fetchone()
    _set(conn, "enable_seqscan", "on")
    text = json.dumps(plan[0] if plan else None)
    if f'"Index Name": "{gallery.index_name.rpartition(".")[2]}"' not in text:
        used = sorted(set(re.findall(r'"Index Name": "([^"]+)"', text))) or ["none"]
        raise TuneError(
            f"the planner does not use index {gallery.index_name} for ORDER BY the indexed "
            f"expression {gallery.operator} a query vector (its plan uses index "
            f"{', '.join(used)}), so its curve cannot be measured. Check that the index is "
            "valid (pg_index.indisvalid) and that its operator class serves that operator."
        )


def norms(conn: psycopg.Connection, tolerance: float = 1e-3) -> tuple[int, int, float, float]:
    """Of the sampled queries: how many, how many have a norm off 1 by more than the
    tolerance (zero vectors included), and the smallest and largest norm."""
    row = conn.execute(
        "select count(*), count(*) filter (where not abs(vector_norm(embedding::vector) - 1) "
        "<= %s), coalesce(min(vector_norm(embedding::vector)), 0), "
        "coalesce(max(vector_norm(embedding::vector)), 0) from pg_temp.ann_queries",
        (tolerance,),
    ).fetchone()
    assert row is not None  # an aggregate always has a row
    return int(row[0]), int(row[1]), float(row[2]), float(row[3])


def query_ids(conn: psycopg.Connection) -> tuple[list[str], list[str | None]]:
    rows = conn.execute(
        "select query_id, positive_id from pg_temp.ann_queries order by ord"
    ).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def grid(method: str, values: Sequence[int], iterative_scans: Sequence[str]) -> list[Setting]:
    """The settings tried on an index of this method (modes it lacks are skipped)."""
    modes = [m for m in iterative_scans if m in ITERATIVE_MODES[method]] or ["off"]
    return [Setting(KNOBS[method], value, mode) for mode in modes for value in values]


# For dbt's check that the tuned setting still holds (macro ann_tuned_recall_shortfalls):
# a query's top k in one space of an (index, space)-partitioned vectors table through
# its HNSW index at ef_search. A dbt test is a single SELECT, planned before it runs,
# so it cannot switch off sequential scans for its own plan; this function plans its
# search when called, with them off, and puts both settings back.
TOP_IDS_FUNCTION = """
create or replace function {schema}.top_ids(
    p_relation regclass, p_space text, p_dim integer, p_query vector, p_ef integer, p_k integer
) returns text[]
language plpgsql as $top$
declare
    seqscan text := current_setting('enable_seqscan');
    ef text := coalesce(current_setting('hnsw.ef_search', true), '40');
    ids text[];
begin
    perform set_config('enable_seqscan', 'off', true);
    perform set_config('hnsw.ef_search', p_ef::text, true);
    execute format(
        'select array_agg(product_id) from (select product_id from %s where space = %L '
        'order by embedding::vector(%s) <=> $1 limit %s) as listed',
        p_relation, p_space, p_dim, p_k
    ) into ids using p_query;
    perform set_config('enable_seqscan', seqscan, true);
    perform set_config('hnsw.ef_search', ef, true);
    return ids;
end
$top$
"""


def create_top_ids(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(sql.SQL(TOP_IDS_FUNCTION).format(schema=sql.Identifier(schema)))
