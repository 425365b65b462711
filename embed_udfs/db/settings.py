"""Where the database is: the connection settings (the embedded server's, or the
user's own from EMBED_UDFS_DSN or the PG* variables), the roles' names, and the
masking of passwords in anything shown.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from embed_udfs.errors import DatabaseError

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
READER_GROUP = "embed_metrics_reader"  # holds the readers' privileges; cannot log in
READER_SCHEMA = "metrics"  # the one schema readers may select from


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


def _port(value: object, where: str) -> int:
    text = str(value)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DatabaseError(f"{where}: the port {text!r} is not a number from 1 to 65535")
    return int(text)


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


def environment_settings() -> ConnectionSettings | None:
    """The user's own server: EMBED_UDFS_DSN, else PGHOST and friends; None for neither
    (the embedded server). The user is the one they give (libpq's default, the OS user,
    when they give none)."""
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
    return None
