"""Sessions: connections as the application role or the admin role, each checked
for pgvector and registered for vector types, and the sentence for a command the
connected role may not run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import psycopg

from embed_udfs.db.settings import (
    APP_ROLE,
    CLIENT_CHECK_INTERVAL,
    READER_GROUP,
    READER_SCHEMA,
    ConnectionSettings,
)
from embed_udfs.errors import DatabaseError, PgvectorMissing

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 7, 0)


def admin_connect(settings: ConnectionSettings, dbname: str | None = None) -> psycopg.Connection:
    """An autocommit connection as the admin role (the superuser on the embedded server)."""
    admin = settings.as_admin()
    if dbname is not None:
        admin = admin.for_database(dbname)
    try:
        return psycopg.connect(**connect_kwargs(admin), autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseError(_cannot_connect(admin, exc)) from None


def _cannot_connect(settings: ConnectionSettings, exc: Exception) -> str:
    return settings.mask(
        f"cannot connect to {settings.uri} (from {settings.origin}): {exc}".strip()
        + "\nCheck the server is up and the settings are right; `embed-udfs db status` "
        "shows what embed-udfs uses."
    )


def connect_kwargs(
    settings: ConnectionSettings, application_name: str = "embed-udfs"
) -> dict[str, Any]:
    return {
        "application_name": application_name,
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password or None,
        "dbname": settings.dbname,
        "connect_timeout": 10,
    }


def connect(
    settings: ConnectionSettings, *, autocommit: bool = False, application_name: str = "embed-udfs"
) -> psycopg.Connection:
    """Open a connection with pgvector ready (extension created, types registered)."""
    try:
        conn = psycopg.connect(**connect_kwargs(settings, application_name), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise DatabaseError(_cannot_connect(settings, exc)) from exc
    try:
        _check_client(conn)
        ensure_pgvector(conn, settings)
        from pgvector.psycopg import register_vector

        register_vector(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def connection(
    settings: ConnectionSettings, *, autocommit: bool = False
) -> Iterator[psycopg.Connection]:
    conn = connect(settings, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def _check_client(conn: psycopg.Connection) -> None:
    """Have the server end this session's work soon after the client vanishes.

    Set after connecting rather than in the startup options, which a server
    older than PostgreSQL 14 would refuse.
    """
    if conn.info.server_version < 140000:
        return
    try:
        conn.execute(
            "select set_config('client_connection_check_interval', %s, false)",
            (CLIENT_CHECK_INTERVAL,),
        )
    except psycopg.errors.InvalidParameterValue:  # a platform without the check
        if not conn.autocommit:
            conn.rollback()


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def ensure_pgvector(conn: psycopg.Connection, settings: ConnectionSettings) -> str:
    """Create the vector extension if needed; refuse a server without a recent pgvector."""
    row = conn.execute(
        "select default_version, installed_version from pg_available_extensions "
        "where name = 'vector'"
    ).fetchone()
    if row is None:
        raise PgvectorMissing(
            f"the server at {settings.uri} (from {settings.origin}) has no pgvector extension. "
            "Install pgvector on that server (https://github.com/pgvector/pgvector#installation, "
            f"version {'.'.join(map(str, MIN_PGVECTOR))} or newer), or unset EMBED_UDFS_DSN and "
            "PGHOST to use the embedded server, which ships it."
        )
    default_version, installed_version = row
    version = installed_version or default_version
    if _version_tuple(version) < MIN_PGVECTOR:
        raise PgvectorMissing(
            f"the server at {settings.uri} has pgvector {version}; embed-metrics needs "
            f"{'.'.join(map(str, MIN_PGVECTOR))} or newer (HNSW iterative scans, vector sums). "
            "Upgrade it (ALTER EXTENSION vector UPDATE after installing the new version)."
        )
    if installed_version is None:
        conn.execute("create extension if not exists vector")
    if not conn.autocommit:
        conn.commit()
    return version


# How to run as the role that owns the project's schemas, by where the settings came from.
_RUN_AS_OWNER = {
    "EMBED_UDFS_DSN": "unset EMBED_UDFS_DSN (the embedded server runs it as "
    f"{APP_ROLE}) or point it at the role that owns the project's schemas",
    "PG* variables": "set PGUSER to the role that owns the project's schemas",
    "embedded": f"run it as {APP_ROLE}, the role `embed-udfs db env` exports",
}


def privilege_message(settings: ConnectionSettings, exc: psycopg.Error, command: str) -> str:
    """One sentence for a command the connected role may not run: who that role is, what
    it may do, and how to run the command as the owner instead."""
    from embed_udfs.terminal import clean

    refused = clean(exc.diag.message_primary or str(exc).splitlines()[0], max_width=200)
    role = f"role {clean(settings.user)!r} (from {settings.origin})"
    fix = _RUN_AS_OWNER.get(settings.origin, _RUN_AS_OWNER["EMBED_UDFS_DSN"])
    if _is_member(settings, READER_GROUP):
        return (
            f"{role} is a read-only reader: it may select from the {READER_SCHEMA} schema only, "
            f"and `embed-udfs {command}` needs more (the server said: {refused}). Run "
            f"`embed-udfs {command}` as the application role: {fix}."
        )
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        what = "may only read (its sessions are read-only)"
    else:
        what = "lacks a privilege"
    return (
        f"{role} {what}, and `embed-udfs {command}` needs more (the server said: {refused}). "
        f"Run it as the role that owns the project's schemas: {fix}."
    )


def _is_member(settings: ConnectionSettings, group: str) -> bool:
    """Whether the settings' role is in `group`; False when that cannot be asked."""
    try:
        with psycopg.connect(**connect_kwargs(settings), autocommit=True) as conn:
            row = conn.execute(
                "select pg_has_role(current_user, %s, 'member') from pg_roles where rolname = %s",
                (group, group),
            ).fetchone()
    except psycopg.Error as exc:
        log.debug("cannot ask whether %s is in %s: %s", settings.user, group, exc)
        return False
    return bool(row and row[0])
