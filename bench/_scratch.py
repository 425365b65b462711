"""What every benchmark shares: a scratch database on the project's server,
dropped afterwards, planted products and vectors, and a line naming the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from psycopg import sql

from embed_udfs import store
from embed_udfs.config import ProjectConfig, find_project_dir
from embed_udfs.db import (
    ConnectionSettings,
    connection,
    drop_database,
    ensure_database,
    resolve_settings,
)
from embed_udfs.store import PRODUCTS_DDL

PROJECT_DIR = find_project_dir(Path(__file__).parent)


@contextlib.contextmanager
def scratch_database(keep: bool = False) -> Iterator[ConnectionSettings]:
    """A fresh database on the embedded (or configured) server, dropped on exit."""
    server = resolve_settings(PROJECT_DIR)
    name = f"embed_metrics_bench_{uuid.uuid4().hex[:6]}"
    settings = server.for_database(name)
    ensure_database(settings)
    try:
        yield settings
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            drop_database(settings)


def machine() -> str:
    return f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus"


def plant(
    settings: ConnectionSettings,
    config: ProjectConfig,
    sections: Sequence[str | None],
    vectors: Mapping[str, np.ndarray],
) -> list[str]:
    """Replace the catalog with one product per section entry and write each space's vectors."""
    ids = [f"P{i:06d}" for i in range(len(sections))]
    with connection(settings) as conn:
        conn.execute(PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("truncate catalog.products")
        conn.execute(sql.SQL("truncate {}").format(store.vectors_table(config)))
        with conn.cursor().copy(
            "copy catalog.products (product_id, product_name, collection_section) from stdin"
        ) as copy:
            for product_id, section in zip(ids, sections, strict=True):
                copy.write_row((product_id, f"product {product_id}", section))
        for space, matrix in vectors.items():
            store.write_vectors(conn, config, config.space(space), ids, ids, matrix, "bench")
        conn.commit()
    return ids
