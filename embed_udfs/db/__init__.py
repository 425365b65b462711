"""The database: where it is (settings), the embedded server (server), sessions on it
(session) and what it must hold before any work: the database, pgvector, the roles and
the BI readers (bootstrap). Each layer imports only the ones before it.

With no DSN configured, embed-udfs and dbt share an embedded PostgreSQL with
pgvector, kept in <project>/.embed_metrics/pgdata: its socket directory is
private to the server's user, and everything runs as the application role,
never as the superuser. EMBED_UDFS_DSN or the standard PG* variables point both
at the user's own server instead, as the user they name.
"""

from __future__ import annotations

from embed_udfs.db.bootstrap import (
    close_maintenance_databases,
    create_reader,
    drop_database,
    drop_reader,
    ensure_database,
    ensure_roles,
    grant_reader_access,
    list_readers,
    prepare_database,
    reader_settings,
    resolve_settings,
)
from embed_udfs.db.server import (
    MAINTENANCE_DATABASES,
    PG_HBA,
    embedded_status,
    is_private_dir,
    read_listen,
    set_listen,
    start_embedded,
    stop_embedded,
)
from embed_udfs.db.session import (
    MIN_PGVECTOR,
    admin_connect,
    connect,
    connect_kwargs,
    connection,
    ensure_pgvector,
    privilege_message,
)
from embed_udfs.db.settings import (
    APP_ROLE,
    CLIENT_CHECK_INTERVAL,
    DEFAULT_DATABASE,
    DEFAULT_PORT,
    EMBEDDED_DIR,
    MASK,
    MAX_SOCKET_PATH,
    READER_GROUP,
    READER_SCHEMA,
    SUPERUSER,
    ConnectionSettings,
    Listen,
    embedded_datadir,
    environment_settings,
    mask_secrets,
    parse_listen,
)

__all__ = [
    "APP_ROLE",
    "CLIENT_CHECK_INTERVAL",
    "ConnectionSettings",
    "DEFAULT_DATABASE",
    "DEFAULT_PORT",
    "EMBEDDED_DIR",
    "Listen",
    "MAINTENANCE_DATABASES",
    "MASK",
    "MAX_SOCKET_PATH",
    "MIN_PGVECTOR",
    "PG_HBA",
    "READER_GROUP",
    "READER_SCHEMA",
    "SUPERUSER",
    "admin_connect",
    "close_maintenance_databases",
    "connect",
    "connect_kwargs",
    "connection",
    "create_reader",
    "drop_database",
    "drop_reader",
    "embedded_datadir",
    "embedded_status",
    "ensure_database",
    "ensure_pgvector",
    "ensure_roles",
    "environment_settings",
    "grant_reader_access",
    "is_private_dir",
    "list_readers",
    "mask_secrets",
    "parse_listen",
    "prepare_database",
    "privilege_message",
    "read_listen",
    "reader_settings",
    "resolve_settings",
    "set_listen",
    "start_embedded",
    "stop_embedded",
]
