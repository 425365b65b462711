"""The table `embed-udfs tune` writes beside embeddings.vectors: one row per (target,
search setting, metric). A target is a (pair, direction) gallery of the configured
spaces (the sample's, kind space, or the whole catalog's, kind catalog) or a user's
relation; each run replaces its target's rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from embed_udfs import contract
from embed_udfs.config import ProjectConfig

TARGET_KINDS = ("space", "catalog", "relation")
COLUMNS = (
    "target_kind",
    "target",
    "pair",
    "direction",
    "query_space",
    "gallery_space",
    "relation_name",
    "column_name",
    "index_name",
    "index_method",
    "operator_class",
    "index_options",
    "gallery_rows",
    "queries",
    "search_param",
    "search_value",
    "iterative_scan",
    "metric",
    "k",
    "value",
    "exact_value",
    "bias",
    "consistency_note",
)


def tuning_table(config: ProjectConfig) -> sql.Composable:
    return contract.ANN_TUNING.resolve(config).identifier


def bootstrap(conn: psycopg.Connection, config: ProjectConfig) -> None:
    """Create the tuning table if it does not exist (idempotent; the caller commits)."""
    relation = contract.ANN_TUNING.resolve(config)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(relation.schema)))
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                target_kind text not null,
                target text not null,
                pair text,
                direction text,
                query_space text,
                gallery_space text,
                relation_name text,
                column_name text,
                index_name text not null,
                index_method text not null,
                operator_class text not null,
                index_options text,
                gallery_rows bigint not null,
                queries integer not null,
                search_param text not null,
                search_value integer not null,
                iterative_scan text not null,
                metric text not null,
                k integer not null,
                value double precision,
                exact_value double precision,
                bias double precision,
                consistency_note text,
                tuned_at timestamptz not null default now(),
                primary key (target, search_param, search_value, iterative_scan, metric, k)
            )
            """
        ).format(relation.identifier)
    )
    # the kinds' check, replaced where a table from before the catalog targets has its own
    found = conn.execute(
        "select conname, pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = %s::regclass and contype = 'c' "
        "and pg_get_constraintdef(oid) like '%%target_kind%%'",
        (str(relation),),
    ).fetchall()
    if not any(all(f"'{kind}'" in check for kind in TARGET_KINDS) for _, check in found):
        for name, _ in found:
            conn.execute(
                sql.SQL("alter table {} drop constraint {}").format(
                    relation.identifier, sql.Identifier(name)
                )
            )
        conn.execute(
            sql.SQL("alter table {} add check (target_kind in ({}))").format(
                relation.identifier, sql.SQL(", ").join(map(sql.Literal, TARGET_KINDS))
            )
        )


def replace_target(
    conn: psycopg.Connection, config: ProjectConfig, target: str, rows: Sequence[Sequence[Any]]
) -> None:
    """Replace one target's rows (the caller commits: a reader sees the old curve or the new)."""
    table = tuning_table(config)
    conn.execute(sql.SQL("delete from {} where target = %s").format(table), (target,))
    with conn.cursor().copy(
        sql.SQL("copy {} ({}) from stdin").format(
            table, sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
    ) as copy:
        for row in rows:
            copy.write_row(row)


def drop_targets_except(
    conn: psycopg.Connection, config: ProjectConfig, keep: Sequence[str]
) -> int:
    """Forget the configured-space targets, the sample's and the catalog's, no longer
    measured (a removed pair, or a catalog now searched exactly)."""
    cursor = conn.execute(
        sql.SQL(
            "delete from {} where target_kind in ('space', 'catalog') and not (target = any(%s))"
        ).format(tuning_table(config)),
        (list(keep),),
    )
    return cursor.rowcount
