"""The roles of the embedded server and the read-only logins BI tools use; they live
in embed_udfs.db.bootstrap, and this module keeps their old import path."""

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
from embed_udfs.db.settings import APP_ROLE, READER_GROUP, READER_SCHEMA, SUPERUSER

__all__ = [
    "APP_ROLE",
    "READER_GROUP",
    "READER_SCHEMA",
    "SUPERUSER",
    "close_maintenance_databases",
    "create_reader",
    "drop_database",
    "drop_reader",
    "ensure_database",
    "ensure_roles",
    "grant_reader_access",
    "list_readers",
    "prepare_database",
    "reader_settings",
    "resolve_settings",
]
