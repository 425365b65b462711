"""Write, audit, publish: a refresh builds the marts where BI does not read them,
tests them there, and only then swaps the whole set in at once.

The marts and seeds of the `metrics` schema are built into `metrics__staging`
(dbt var `metrics_staging: true`, read by macros/generate_schema_name.sql), every
test runs there, and one transaction renames `metrics` away, renames the staging
schema to `metrics`, drops the old one and grants the readers' access again.
PostgreSQL takes DDL in a transaction, so a reader sees the old set or the new
one, never a mix; a run killed before the commit leaves `metrics` untouched.

Incremental marts (the metric history) keep their rows across swaps: before the
final build their published tables are copied into the staging schema, dbt
appends this run's rows to the copy, and the copy is what gets published. A run
that never publishes leaves nothing behind in the history, so the history gains
exactly one entry per published run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.errors import EmbedUdfsError
from embed_udfs.roles import READER_GROUP, grant_reader_access

log = logging.getLogger(__name__)

PUBLISHED = "metrics"
STAGING = "metrics__staging"
PREVIOUS = "metrics__previous"
# The dbt var that sends the `metrics` models and seeds to STAGING.
STAGING_VARS = {"metrics_staging": True}
# pg_advisory_lock key: one refresh at a time stages and publishes per database.
_LOCK_KEY = 0x656D6264_6D657472  # "embdmetr"


@contextmanager
def publishing_lock(settings: ConnectionSettings) -> Iterator[None]:
    """Hold the refresh lock for the duration; a second refresh waits for the first.

    A session-level advisory lock, so a killed run releases it with its connection.
    """
    with connection(settings) as conn:
        conn.autocommit = True
        locked = conn.execute("select pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
        if not (locked and locked[0]):
            log.info("another refresh is staging marts in this database; waiting for it")
            conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    found = conn.execute("select 1 from pg_namespace where nspname = %s", (schema,))
    return found.fetchone() is not None


def clear_staging(settings: ConnectionSettings) -> None:
    """Drop what a killed run left in the staging schema."""
    with connection(settings) as conn:
        for schema in (STAGING, PREVIOUS):
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        conn.commit()


def incremental_marts(project_dir: Path) -> list[str]:
    """Tables of the `metrics` schema that dbt builds incrementally, from the manifest
    the refresh's dbt invocations have just written (target/manifest.json)."""
    path = project_dir / "target" / "manifest.json"
    if not path.is_file():
        raise EmbedUdfsError(
            f"{path} is missing; it is written by every dbt invocation of a refresh. "
            "Run `dbt parse` in the project, then the refresh again."
        )
    nodes = json.loads(path.read_text())["nodes"].values()
    return sorted(
        node.get("alias") or node["name"]
        for node in nodes
        if node["resource_type"] == "model"
        and node["config"].get("materialized") == "incremental"
        and node["schema"] in (PUBLISHED, STAGING)
    )


def carry_history(settings: ConnectionSettings, tables: Sequence[str]) -> None:
    """Copy the published rows of each incremental mart into the staging schema, so
    that dbt appends to the history instead of starting it again."""
    with connection(settings) as conn:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(STAGING)))
        for table in tables:
            published = sql.Identifier(PUBLISHED, table)
            staged = sql.Identifier(STAGING, table)
            exists = conn.execute("select to_regclass(%s)", (f"{PUBLISHED}.{table}",)).fetchone()
            if not exists or exists[0] is None:
                continue
            conn.execute(sql.SQL("drop table if exists {}").format(staged))
            conn.execute(
                sql.SQL("create table {} (like {} including all)").format(staged, published)
            )
            conn.execute(sql.SQL("insert into {} select * from {}").format(staged, published))
            log.info("carried %s into %s", published.as_string(conn), STAGING)
        conn.commit()


def publish(settings: ConnectionSettings) -> None:
    """Swap the tested staging schema in as `metrics`, in one transaction."""
    with connection(settings) as conn:
        if not _schema_exists(conn, STAGING):
            raise EmbedUdfsError(f"nothing to publish: schema {STAGING} does not exist.")
        # The swap waits for readers' open transactions on the old tables, then
        # is instant; their next query sees the new set.
        if _schema_exists(conn, PUBLISHED):
            conn.execute(
                sql.SQL("alter schema {} rename to {}").format(
                    sql.Identifier(PUBLISHED), sql.Identifier(PREVIOUS)
                )
            )
        conn.execute(
            sql.SQL("alter schema {} rename to {}").format(
                sql.Identifier(STAGING), sql.Identifier(PUBLISHED)
            )
        )
        # cascade: views others made on the old tables go with them (README)
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(PREVIOUS)))
        has_readers = conn.execute(
            "select 1 from pg_roles where rolname = %s", (READER_GROUP,)
        ).fetchone()
        if has_readers:
            # grants and default privileges belong to the schema, not its name
            grant_reader_access(
                conn, settings.dbname, settings.user, embedded=bool(settings.admin_user)
            )
        conn.commit()
    log.info("published %s as %s", STAGING, PUBLISHED)
