"""Fixtures: the real embedded PostgreSQL + pgvector, one fresh database per
test module, and helpers to plant products and vectors and to run dbt.

Also the test tiers: every test is marked `unit`, `integration` or `slow`
(see pytest_collection_modifyitems), and a unit test that reaches a database fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from psycopg import sql

from embed_udfs import store
from embed_udfs.config import ProjectConfig, find_project_dir, load_config
from embed_udfs.db import (
    ConnectionSettings,
    connection,
    drop_database,
    ensure_database,
    resolve_settings,
)
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.store import PRODUCTS_DDL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PROJECT_DIR = find_project_dir(Path(__file__).parent)

TIERS = ("unit", "integration", "slow")
# Fixtures that need the database; a test using one (directly or through another
# fixture) is an integration test.
DATABASE_FIXTURES = {"server", "db"}
# Fixtures that train the demo models or run a full refresh with real encoders.
SLOW_FIXTURES = {"demo_models"}
# Modules whose tests take minutes each: the whole demo pipeline, model training.
SLOW_MODULES = {"test_pipeline.py", "test_demo_training.py", "test_own_catalog_flow.py"}
# Modules that start or reach a server of their own, without the fixtures above.
INTEGRATION_MODULES = {"test_access.py", "test_backfill_resilience.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test one tier unless it names one itself: slow (also integration),
    integration (needs the database), or unit (no database, seconds)."""
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        module = item.path.name
        if fixtures & SLOW_FIXTURES or module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.integration)
        elif fixtures & DATABASE_FIXTURES or module in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _unit_tests_stay_off_the_database(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test in the unit tier that connects to a database is misfiled: say so."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            f"{request.node.nodeid} is in the unit tier but connects to a database: "
            "use the `db` fixture, or mark it `integration`"
        )

    import psycopg

    monkeypatch.setattr(psycopg, "connect", refuse)
    monkeypatch.setattr(psycopg.Connection, "connect", refuse)
    try:
        import psycopg2  # dbt-postgres connects with it
    except ImportError:
        return
    monkeypatch.setattr(psycopg2, "connect", refuse)


@pytest.fixture(scope="session")
def server() -> ConnectionSettings:
    """The embedded server (or the user's, through EMBED_UDFS_DSN / PGHOST)."""
    return resolve_settings(PROJECT_DIR)


@pytest.fixture(scope="module")
def db(server: ConnectionSettings) -> Iterator[ConnectionSettings]:
    """A fresh database for one test module, made and dropped by the admin role.

    The code under test connects as `server.user` (the application role on the
    embedded server), exactly as the CLI does.
    """
    settings = server.for_database(f"embed_metrics_test_{uuid.uuid4().hex[:8]}")
    ensure_database(settings)
    yield settings
    drop_database(settings)


def planted_config(
    spaces: Sequence[Mapping[str, Any]], pairs: Sequence[Mapping[str, Any]], **eval_vars: Any
) -> dict[str, Any]:
    """dbt --vars for planted spaces (backend never runs: vectors are written directly)."""
    return {"embed_spaces": list(spaces), "embed_pairs": list(pairs), **eval_vars}


def planted_space(name: str, modality: str, dim: int, family: str = "planted") -> dict[str, Any]:
    return {
        "name": name,
        "modality": modality,
        "backend": "open_clip",
        "family": family,
        "model": "planted",
        "dim": dim,
        "text_variant": "clean",
    }


def plant(
    settings: ConnectionSettings,
    config: ProjectConfig,
    products: Sequence[tuple[str, str | None]],
    vectors: Mapping[str, np.ndarray],
) -> None:
    """Replace the catalog with (product_id, section) rows and write each space's vectors."""
    with connection(settings) as conn:
        conn.execute(PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("truncate catalog.products")
        conn.execute(sql.SQL("truncate {}").format(store.vectors_table(config)))
        conn.execute(sql.SQL("truncate {}").format(store.errors_table(config)))
        with conn.cursor().copy(
            "copy catalog.products (product_id, product_name, product_description, "
            "collection_section) from stdin"
        ) as copy:
            for product_id, section in products:
                copy.write_row((product_id, f"product {product_id}", "planted", section))
        ids = [p for p, _ in products]
        for space, matrix in vectors.items():
            store.write_vectors(
                conn, config, config.space(space), ids, [f"h{i}" for i in ids], matrix, "planted"
            )
        conn.commit()


def dbt_build(
    settings: ConnectionSettings, dbt_vars: Mapping[str, Any], tmp_path: Path, *select: str
) -> Any:
    args = ["build"] + (["--select", *select] if select else [])
    return run_dbt(
        args, settings, PROJECT_DIR, dbt_vars=dbt_vars, target_path=tmp_path / "target", quiet=True
    )


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The demo's trained checkpoints in the project dir, as `embed-udfs demo` leaves them:
    trained on the first use (about two minutes of CPU), then read from the cache."""
    from embed_udfs import demo
    from embed_udfs.demo.training import ensure_demo_models

    images = tmp_path_factory.mktemp("demo_images")
    products = demo.generate_catalog(images, n_products=2400, seed=7)
    return ensure_demo_models(PROJECT_DIR, products)


def query(settings: ConnectionSettings, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
    with connection(settings) as conn:
        return conn.execute(statement, params).fetchall()


def config_for(dbt_vars: Mapping[str, Any]) -> ProjectConfig:
    return load_config(PROJECT_DIR, overrides=dbt_vars)
