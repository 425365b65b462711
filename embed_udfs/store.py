"""The tables of the data contract: their DDL (the products table included),
the checks every vector passes at the door, and the binary-COPY writes of
vectors and errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from embed_udfs import contract
from embed_udfs.config import ProjectConfig, SpaceConfig
from embed_udfs.jobs.rerank import store as rerank_store
from embed_udfs.jobs.tune import store as tune_store

log = logging.getLogger(__name__)

# As dbt's int_vectors_validated: a stored vector further from unit length is invalid.
NORM_TOLERANCE = 1e-3


def products_ddl(relation: str = "catalog.products") -> sql.Composed:
    """The products table of the data contract: one row per product_id."""
    schema, table = _split(relation)
    return sql.SQL(
        """
        create schema if not exists {schema};
        create table if not exists {table} (
            product_id text primary key,
            product_name text,
            product_description text,
            collection_section text,
            store_name text,
            image_uri text
        );
        """
    ).format(schema=sql.Identifier(schema), table=sql.Identifier(schema, table))


PRODUCTS_COLUMNS = (
    "product_id",
    "product_name",
    "product_description",
    "collection_section",
    "store_name",
    "image_uri",
)


def _split(relation: str) -> tuple[str, str]:
    parsed = contract.parse_relation(relation)
    return parsed.schema, parsed.name


PRODUCTS_DDL = products_ddl()

# The comment `embed-udfs demo load` puts on the products table; dbt reads it
# (stg_catalog__origin) so that the thresholds shipped for the demo enforce there only.
DEMO_CATALOG_COMMENT = "embed-metrics demo catalog, written by `embed-udfs demo load`"


def mark_catalog(conn: psycopg.Connection, relation: str, comment: str) -> None:
    """Say on the products table where its rows came from (the demo, or a user's file)."""
    schema, table = _split(relation)
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("comment on table {} is {}").format(
                    sql.Identifier(schema, table), sql.Literal(comment)
                )
            )
    except psycopg.errors.InsufficientPrivilege:
        # a table of the user's that another role owns: it has no demo mark either
        log.info("could not comment on %s (not its owner); left as it is", relation)


def vectors_table(config: ProjectConfig) -> sql.Composable:
    return contract.VECTORS.resolve(config).identifier


def errors_table(config: ProjectConfig) -> sql.Composable:
    return contract.BACKFILL_ERRORS.resolve(config).identifier


def assignments_table(config: ProjectConfig) -> sql.Composable:
    """KMeans assignments written by `embed-udfs cluster`."""
    return contract.CLUSTER_ASSIGNMENTS.resolve(config).identifier


def runs_table(config: ProjectConfig) -> sql.Composable:
    """One row per KMeans run (space, reduction, seed), beside the assignments."""
    return contract.cluster_runs(config).identifier


def claims_table(config: ProjectConfig) -> sql.Composable:
    """Rows a backfill worker is embedding right now, beside the vectors table."""
    return contract.backfill_claims(config).identifier


def bootstrap(conn: psycopg.Connection, config: ProjectConfig) -> None:
    """Create the embeddings schema and tables if they do not exist (idempotent)."""
    vectors_schema, _ = _split(config.vectors_relation)
    errors_schema, _ = _split(config.backfill_errors_relation)
    for schema in {vectors_schema, errors_schema}:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                space text not null,
                product_id text not null,
                embedding vector not null,
                input_hash text not null,
                model_ref text not null,
                embedded_at timestamptz not null default now(),
                primary key (space, product_id)
            )
            """
        ).format(vectors_table(config))
    )
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                space text not null,
                product_id text not null,
                input_hash text not null,
                reason text not null,
                detail text,
                model_ref text,
                occurred_at timestamptz not null default now(),
                transient boolean not null default false,
                primary key (space, product_id, input_hash)
            )
            """
        ).format(errors_table(config))
    )
    # Tables made before failures were told apart: every old row counts as permanent.
    # Checked first, because ALTER TABLE locks the table even when it changes nothing.
    has_column = conn.execute(
        "select 1 from pg_attribute where attrelid = to_regclass(%s) and attname = 'transient'",
        (config.backfill_errors_relation,),
    ).fetchone()
    if not has_column:
        conn.execute(
            sql.SQL(
                "alter table {} add column if not exists transient boolean not null default false"
            ).format(errors_table(config))
        )
    # A claim belongs to the database session that made it: when that session
    # is gone (the worker was killed or lost its connection) the claim is void.
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                space text not null,
                product_id text not null,
                input_hash text not null,
                backend_pid integer not null,
                backend_start timestamptz not null,
                claimed_at timestamptz not null default now(),
                primary key (space, product_id)
            )
            """
        ).format(claims_table(config))
    )
    # what `embed-udfs cluster` writes, so that dbt finds its sources from the start
    schema, _ = _split(config.labels.cluster_assignments_relation)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                space text not null,
                reduction text not null,
                dims integer not null,
                seed integer not null,
                product_id text not null,
                cluster integer not null,
                primary key (space, reduction, seed, product_id)
            )
            """
        ).format(assignments_table(config))
    )
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                space text not null,
                reduction text not null,
                dims integer not null,
                seed integer not null,
                n_products integer not null,
                n_clusters integer not null,
                explained_variance double precision not null,
                inertia double precision not null,
                n_iter integer not null,
                clustered_at timestamptz not null default now(),
                primary key (space, reduction, seed)
            )
            """
        ).format(runs_table(config))
    )
    rerank_store.bootstrap(conn, config)  # what `embed-udfs rerank` writes
    tune_store.bootstrap(conn, config)  # what `embed-udfs tune` writes
    conn.commit()


def _valid(config: ProjectConfig) -> sql.Composed:
    """A stored vector `v` counts as done only if it would pass validation: one that
    was corrupted in place, or that dbt holds stale (int_vectors_validated: the latest
    rejection for its product is of another input and came after it), is embedded
    again although its input hash matches."""
    return sql.SQL(
        """
        vector_dims(v.embedding) = %(dim)s
        and abs(vector_norm(v.embedding) - 1) <= %(tolerance)s
        and not exists (
            select 1 from {errors} as e
            where e.space = v.space
                and e.product_id = v.product_id
                and e.input_hash <> v.input_hash
                and e.occurred_at > v.embedded_at
                and e.occurred_at = (
                    select max(latest.occurred_at) from {errors} as latest
                    where latest.space = v.space and latest.product_id = v.product_id
                )
        )
        """
    ).format(errors=errors_table(config))


def claim(
    conn: psycopg.Connection,
    config: ProjectConfig,
    space: SpaceConfig,
    product_ids: Sequence[str],
    input_hashes: Sequence[str],
) -> set[str]:
    """Claim rows for this session; return the product ids it now owns.

    A row is skipped when its vector is already stored with the same hash, or
    when a live session holds it. Claims of sessions that are gone are taken
    over. The connection must be in autocommit mode so that claims are seen.
    """
    claimed = conn.execute(
        sql.SQL(
            """
            insert into {claims} as c
                (space, product_id, input_hash, backend_pid, backend_start, claimed_at)
            select %(space)s, w.product_id, w.input_hash, pg_backend_pid(), me.backend_start, now()
            from unnest(%(ids)s::text[], %(hashes)s::text[]) as w (product_id, input_hash)
            cross join (
                select backend_start from pg_stat_activity where pid = pg_backend_pid()
            ) as me
            where not exists (
                select 1 from {vectors} as v
                where v.space = %(space)s
                    and v.product_id = w.product_id
                    and v.input_hash = w.input_hash
                    and {valid}
            )
            on conflict (space, product_id) do update set
                input_hash = excluded.input_hash,
                backend_pid = excluded.backend_pid,
                backend_start = excluded.backend_start,
                claimed_at = excluded.claimed_at
            where not exists (
                select 1 from pg_stat_activity as a
                where a.pid = c.backend_pid and a.backend_start = c.backend_start
            )
            returning product_id
            """
        ).format(claims=claims_table(config), vectors=vectors_table(config), valid=_valid(config)),
        {
            "space": space.name,
            "ids": list(product_ids),
            "hashes": list(input_hashes),
            "dim": space.dim,
            "tolerance": NORM_TOLERANCE,
        },
    ).fetchall()
    owned = {product_id for (product_id,) in claimed}
    if not owned:
        return owned
    # A worker that finished a row between our snapshot and our claim has
    # released it: look again with a fresh snapshot and give those back.
    done = conn.execute(
        sql.SQL(
            """
            delete from {claims} as c
            using {vectors} as v
            where c.space = %(space)s and c.product_id = any(%(ids)s)
                and v.space = c.space and v.product_id = c.product_id
                and v.input_hash = c.input_hash and {valid}
            returning c.product_id
            """
        ).format(claims=claims_table(config), vectors=vectors_table(config), valid=_valid(config)),
        {"space": space.name, "ids": list(owned), "dim": space.dim, "tolerance": NORM_TOLERANCE},
    ).fetchall()
    return owned - {product_id for (product_id,) in done}


def release_claims(
    conn: psycopg.Connection, config: ProjectConfig, space: SpaceConfig, product_ids: Sequence[str]
) -> None:
    """Drop the claims of rows that are written (in the same transaction as the write)."""
    conn.execute(
        sql.SQL("delete from {} where space = %s and product_id = any(%s)").format(
            claims_table(config)
        ),
        (space.name, list(product_ids)),
    )


@dataclass(frozen=True)
class Rejection:
    product_id: str
    input_hash: str
    reason: str
    detail: str = ""
    transient: bool = False  # could not connect / timed out: the next run tries again


def check_vectors(space: SpaceConfig, vectors: np.ndarray) -> list[str | None]:
    """Per row: None if the vector may be stored, else why not.

    NaN or infinite values, the wrong dimension and zero vectors are refused:
    pgvector rejects NaN outright, and a zero vector has no cosine distance
    (the HNSW cosine index silently skips it).
    """
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {vectors.shape}")
    n, dim = vectors.shape
    if dim != space.dim:
        reason = f"wrong dimension: {dim}, space {space.name!r} has {space.dim}"
        return [reason] * n
    finite = np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0), axis=1)
    reasons: list[str | None] = []
    for ok, norm in zip(finite, norms, strict=True):
        if not ok:
            reasons.append("non-finite vector: NaN or infinity in the model output")
        elif norm == 0:
            reasons.append("zero vector: its cosine distance is undefined")
        else:
            reasons.append(None)
    return reasons


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


def write_vectors(
    conn: psycopg.Connection,
    config: ProjectConfig,
    space: SpaceConfig,
    product_ids: Sequence[str],
    input_hashes: Sequence[str],
    vectors: np.ndarray,
    model_ref: str,
) -> list[Rejection]:
    """Validate, L2-normalise and upsert vectors with binary COPY; return the rejected rows.

    The caller commits: a chunk of vectors and its rejections land together.
    """
    reasons = check_vectors(space, vectors)
    keep = [i for i, reason in enumerate(reasons) if reason is None]
    rejected = [
        Rejection(product_ids[i], input_hashes[i], reason)
        for i, reason in enumerate(reasons)
        if reason is not None
    ]
    if keep:
        unit = normalise(vectors[keep].astype(np.float64))
        conn.execute(
            "create temp table if not exists _incoming_vectors "
            "(product_id text, embedding vector, input_hash text) on commit delete rows"
        )
        with conn.cursor().copy(
            "copy _incoming_vectors (product_id, embedding, input_hash) from stdin (format binary)"
        ) as copy:
            copy.set_types(["text", "vector", "text"])
            for row, i in enumerate(keep):
                copy.write_row((product_ids[i], unit[row], input_hashes[i]))
        conn.execute(
            sql.SQL(
                """
                insert into {} (space, product_id, embedding, input_hash, model_ref, embedded_at)
                select %s, product_id, embedding, input_hash, %s, clock_timestamp()
                from _incoming_vectors
                on conflict (space, product_id) do update set
                    embedding = excluded.embedding,
                    input_hash = excluded.input_hash,
                    model_ref = excluded.model_ref,
                    embedded_at = excluded.embedded_at
                """
            ).format(vectors_table(config)),
            (space.name, model_ref),
        )
        conn.execute("truncate _incoming_vectors")
        forget_errors(conn, config, space, [product_ids[i] for i in keep])
    write_rejections(conn, config, space, rejected, model_ref)
    return rejected


def write_rejections(
    conn: psycopg.Connection,
    config: ProjectConfig,
    space: SpaceConfig,
    rejections: Sequence[Rejection],
    model_ref: str,
) -> None:
    """Record rejected inputs, one row per (space, product, input hash)."""
    if not rejections:
        return
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                """
                insert into {} (
                    space, product_id, input_hash, reason, detail, model_ref, transient
                )
                values (%s, %s, %s, %s, %s, %s, %s)
                on conflict (space, product_id, input_hash) do update set
                    reason = excluded.reason,
                    detail = excluded.detail,
                    model_ref = excluded.model_ref,
                    transient = excluded.transient,
                    occurred_at = now()
                """
            ).format(errors_table(config)),
            [
                (
                    space.name,
                    r.product_id,
                    r.input_hash,
                    r.reason,
                    r.detail or None,
                    model_ref,
                    r.transient,
                )
                for r in rejections
            ],
        )


def forget_errors(
    conn: psycopg.Connection, config: ProjectConfig, space: SpaceConfig, product_ids: Sequence[str]
) -> None:
    """Drop the recorded errors of rows that are now embedded (a transient failure that passed)."""
    conn.execute(
        sql.SQL("delete from {} where space = %s and product_id = any(%s)").format(
            errors_table(config)
        ),
        (space.name, list(product_ids)),
    )


def requeue_errors(
    conn: psycopg.Connection,
    config: ProjectConfig,
    space: SpaceConfig,
    reasons: Sequence[str] = (),
) -> int:
    """Forget recorded errors so that the next backfill tries those rows again.

    With reasons, only errors whose reason contains one of them (case-insensitive).
    The caller commits. Returns how many were re-queued.
    """
    escaped = (r.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for r in reasons)
    patterns = [f"%{r}%" for r in escaped]
    deleted = conn.execute(
        sql.SQL(
            "delete from {} where space = %s and (cardinality(%s::text[]) = 0 "
            "or reason ilike any(%s::text[]))"
        ).format(errors_table(config)),
        (space.name, patterns, patterns),
    )
    return deleted.rowcount


def clear_stale_claims(conn: psycopg.Connection, config: ProjectConfig) -> int:
    """Delete the claims of sessions that are gone (crashed or killed runs); the caller commits."""
    deleted = conn.execute(
        sql.SQL(
            """
            delete from {} as c
            where not exists (
                select 1 from pg_stat_activity as a
                where a.pid = c.backend_pid and a.backend_start = c.backend_start
            )
            """
        ).format(claims_table(config))
    )
    return deleted.rowcount


def invalid_vectors(
    conn: psycopg.Connection, config: ProjectConfig, space: SpaceConfig
) -> dict[str, str]:
    """product_id -> why its stored vector fails validation (wrong dimension, zero,
    not unit length, NaN): such rows are embedded again whatever their hash."""
    rows = conn.execute(
        sql.SQL(
            """
            select product_id, case
                when vector_dims(embedding) <> %(dim)s then 'wrong dimension'
                when vector_norm(embedding) = 'NaN'::float8 then 'non-finite vector'
                when vector_norm(embedding) = 0 then 'zero vector'
                else 'not unit length'
            end
            from {}
            where space = %(space)s and (
                vector_dims(embedding) <> %(dim)s
                or vector_norm(embedding) = 'NaN'::float8
                or abs(vector_norm(embedding) - 1) > %(tolerance)s
            )
            """
        ).format(vectors_table(config)),
        {"space": space.name, "dim": space.dim, "tolerance": NORM_TOLERANCE},
    ).fetchall()
    return {product_id: f"stored vector invalid: {why}" for product_id, why in rows}
