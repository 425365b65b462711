"""Write, audit, publish: a refresh builds the marts where BI does not read them,
tests them there, and only then swaps the whole set in at once.

The marts and seeds of the `metrics` schema are built into `metrics__staging`
(dbt var `metrics_staging: true`, read by macros/generate_schema_name.sql), every
test runs there, and one short transaction renames `metrics` to
`metrics__previous`, renames the staging schema to `metrics` and grants the
readers' access again. PostgreSQL takes DDL in a transaction, so a reader sees
the old set or the new one, never a mix; a run killed before the commit leaves
`metrics` untouched. Renaming a schema takes no lock on its tables, so the swap
does not wait for readers; the old set is dropped afterwards, in its own
transaction, and only if no reader still holds it (else the next refresh does).
Every statement of the publish that may wait for a lock runs under a short
lock_timeout: a waiting DROP would otherwise queue new queries behind it.

Incremental marts (the metric history) keep their rows across swaps: before the
final build their published tables are copied into the staging schema, dbt
appends this run's rows to the copy, and the copy is what gets published. A run
that never publishes leaves nothing behind in the history, so the history gains
exactly one entry per published run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from embed_udfs.db import ConnectionSettings, admin_connect, connection
from embed_udfs.errors import EmbedUdfsError, PublishBlocked
from embed_udfs.retry import Backoff, RetriesExhausted, retry_call
from embed_udfs.roles import READER_GROUP, grant_reader_access

log = logging.getLogger(__name__)

PUBLISHED = "metrics"
STAGING = "metrics__staging"
PREVIOUS = "metrics__previous"
# The dbt var that sends the `metrics` models and seeds to STAGING.
STAGING_VARS = {"metrics_staging": True}
# pg_advisory_lock key: one refresh at a time stages and publishes per database.
_LOCK_KEY = 0x656D6264_6D657472  # "embdmetr"
# How long one statement of the publish waits for a lock before it gives up and
# is tried again; a statement waiting for a lock queues the queries behind it.
LOCK_TIMEOUT_S = 3.0
# How long the publish keeps trying for its locks before it fails, naming who
# holds them: the refresh's work stays in STAGING meanwhile.
PUBLISH_PATIENCE = Backoff(first_delay_s=1.0, max_delay_s=10.0, deadline_s=60.0)
_LOCK_NOT_AVAILABLE = "55P03"


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


def clear_staging(settings: ConnectionSettings, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
    """Drop what a killed run left in the staging schema, and the previous set unless
    a reader still holds it (the publish tries again)."""
    with connection(settings, autocommit=True) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(STAGING)))
        _drop_previous(conn, Backoff(max_attempts=1), lock_timeout_s)


def _is_lock_timeout(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) == _LOCK_NOT_AVAILABLE


def _with_lock_timeout(conn: psycopg.Connection, lock_timeout_s: float) -> None:
    conn.execute(
        sql.SQL("set local lock_timeout = {}").format(sql.Literal(f"{lock_timeout_s * 1000:.0f}"))
    )


def _drop_previous(conn: psycopg.Connection, patience: Backoff, lock_timeout_s: float) -> bool:
    """Drop the previous set (autocommit conn); False if readers hold it past `patience`."""

    def drop() -> None:
        with conn.transaction():
            _with_lock_timeout(conn, lock_timeout_s)
            # cascade: views others made on the old tables go with them (docs/security.md)
            conn.execute(
                sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(PREVIOUS))
            )

    try:
        retry_call(drop, patience, _is_lock_timeout)
    except RetriesExhausted:
        return False
    return True


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


def publish(
    settings: ConnectionSettings,
    *,
    patience: Backoff = PUBLISH_PATIENCE,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> None:
    """Swap the tested staging schema in as `metrics`, in one short transaction, then
    drop the previous set if no reader holds it any more.

    Raises PublishBlocked, naming the sessions in the way, when the locks it needs
    are not free within `patience`; nothing is published then.
    """
    started = time.monotonic()
    with connection(settings, autocommit=True) as conn:
        if not _schema_exists(conn, STAGING):
            raise EmbedUdfsError(f"nothing to publish: schema {STAGING} does not exist.")
        # A reader kept the set before last open through the last publish: its name
        # is needed for the swap.
        if _schema_exists(conn, PREVIOUS) and not _drop_previous(conn, patience, lock_timeout_s):
            raise PublishBlocked(_blocked(settings, PREVIOUS, time.monotonic() - started))

        def swap() -> None:
            with conn.transaction():
                _with_lock_timeout(conn, lock_timeout_s)
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
                has_readers = conn.execute(
                    "select 1 from pg_roles where rolname = %s", (READER_GROUP,)
                ).fetchone()
                if has_readers:
                    # grants and default privileges belong to the schema, not its name
                    grant_reader_access(
                        conn, settings.dbname, settings.user, embedded=bool(settings.admin_user)
                    )

        try:
            retry_call(swap, patience, _is_lock_timeout)
        except RetriesExhausted:
            raise PublishBlocked(
                _blocked(settings, PUBLISHED, time.monotonic() - started)
            ) from None
        log.info("published %s as %s", STAGING, PUBLISHED)
        # New queries read the new tables now; only transactions that read the old
        # ones before the swap hold them, and the next refresh drops them instead.
        if not _drop_previous(conn, Backoff(max_attempts=1), lock_timeout_s):
            log.warning(
                "%s is left in place for the next refresh: %s",
                PREVIOUS,
                "; ".join(_holders(settings, [PREVIOUS])) or "a reader held it",
            )


def _holders(settings: ConnectionSettings, schemas: Sequence[str]) -> list[str]:
    """Sessions holding a lock on a table in `schemas`, oldest transaction first; if
    none, the sessions of the database with a transaction open."""
    # The admin role sees every session's transaction start (the app role does not).
    with admin_connect(settings, settings.dbname) as conn:
        rows = conn.execute(
            """
            select a.pid, a.usename, a.application_name, now() - a.xact_start as open_for
            from pg_stat_activity as a
            where a.datname = current_database()
                and a.pid <> pg_backend_pid()
                and a.pid in (
                    select l.pid
                    from pg_locks as l
                    inner join pg_class as c on l.relation = c.oid
                    inner join pg_namespace as n on c.relnamespace = n.oid
                    where l.granted and n.nspname = any(%s)
                )
            order by a.xact_start nulls last, a.pid
            """,
            (list(schemas),),
        ).fetchall()
        if not rows:
            rows = conn.execute(
                """
                select pid, usename, application_name, now() - xact_start
                from pg_stat_activity
                where datname = current_database() and pid <> pg_backend_pid()
                    and xact_start is not null
                order by xact_start
                limit 5
                """
            ).fetchall()
    return [_describe(*row) for row in rows]


def _describe(pid: int, role: str | None, app: str | None, open_for: Any) -> str:
    opened = f"transaction open for {_duration(open_for.total_seconds())}" if open_for else ""
    return ", ".join(
        part for part in (f"pid {pid}", f"role {role}", f"application_name {app!r}", opened) if part
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _blocked(settings: ConnectionSettings, schema: str, waited_s: float) -> str:
    if schema == PREVIOUS:
        what = (
            f"{PREVIOUS} (the set before the last publish) could not be dropped to make way "
            f"for the swap in {waited_s:.0f} s: transactions opened before the last publish "
            "still hold its tables."
        )
        holders = _holders(settings, [PREVIOUS])
    else:
        what = f"the swap could not get its locks in {waited_s:.0f} s."
        holders = _holders(settings, [PUBLISHED, STAGING, PREVIOUS])
    who = (
        "Held by:\n" + "\n".join(f"  {holder}" for holder in holders)
        if holders
        else "The sessions that held them have ended since."
    )
    return (
        f"nothing was published: {what}\n{who}\n"
        f"`{PUBLISHED}` keeps the previous figures; the new ones are in `{STAGING}` until the "
        "next refresh. Let those transactions end (commit or roll back, or as an admin "
        "`select pg_terminate_backend(PID)`), then run the refresh again."
    )
