"""What every benchmark shares: a scratch database on the project's server,
dropped afterwards, and a line naming the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from embed_udfs.config import find_project_dir
from embed_udfs.db import ConnectionSettings, resolve_settings

PROJECT_DIR = find_project_dir(Path(__file__).parent)


@contextlib.contextmanager
def scratch_database(keep: bool = False) -> Iterator[ConnectionSettings]:
    """A fresh database on the embedded (or configured) server, dropped on exit."""
    server = resolve_settings(PROJECT_DIR)
    name = f"embed_metrics_bench_{uuid.uuid4().hex[:6]}"
    admin = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**admin) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield server.for_database(name)
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(**admin) as conn:
                conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


def machine() -> str:
    return f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus"
