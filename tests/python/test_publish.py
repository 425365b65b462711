"""Write, audit, publish: a refresh tests the marts in a staging schema and swaps them
in whole. A failed test or a SIGKILL mid-build leaves `metrics` exactly as it was;
the history gains one entry per published run; readers see the new set."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import psycopg
import pytest
from conftest import PROJECT_DIR, config_for, plant, planted_config, planted_space, query

from embed_udfs import roles
from embed_udfs.errors import DbtError
from embed_udfs.pipeline import refresh
from embed_udfs.store import vectors_table

N = 120
SECTIONS = ["bags", "shoes", "lamps"]


def _vars() -> dict:
    return planted_config(
        [planted_space("t", "text", 8), planted_space("i", "image", 8)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 5, 50],
        label_pca_dims=["none"],
        label_kmeans_seeds=[0],
    )


def _plant(db, seed: int) -> None:
    rng = np.random.default_rng(seed)
    products = [(f"P{i:03d}", SECTIONS[i % len(SECTIONS)]) for i in range(N)]
    base = rng.normal(size=(N, 8))
    plant(db, config_for(_vars()), products, {"t": base + rng.normal(size=(N, 8)), "i": base})


def _published(db) -> dict[str, tuple[int, str]]:
    """Every table in `metrics` with its row count and a digest of its rows."""
    tables = [
        name
        for (name,) in query(
            db, "select tablename from pg_tables where schemaname = 'metrics' order by 1"
        )
    ]
    return {
        name: query(
            db,
            f"select count(*), md5(coalesce(string_agg(t::text, ',' order by t::text), '')) "
            f'from metrics."{name}" as t',
        )[0]
        for name in tables
    }


def _runs(db) -> int:
    return query(db, "select count(distinct run_id) from metrics.fct_metric_history")[0][0]


@pytest.fixture(scope="module")
def published(db):
    reader = f"reader_{uuid.uuid4().hex[:8]}"
    roles.create_reader(db, reader)
    _plant(db, seed=1)
    refresh(db, config_for(_vars()), dbt_vars=_vars(), options={"skip_backfill": True})
    yield reader
    roles.drop_reader(db, reader)


def test_a_refresh_publishes_a_tested_set_with_one_history_entry(db, published):
    assert _runs(db) == 1
    assert {"fct_retrieval_metrics", "fct_metric_history"} <= set(_published(db))
    leftovers = "select nspname from pg_namespace where nspname like 'metrics\\_\\_%%'"
    assert query(db, leftovers, ()) == []


def test_a_failing_test_publishes_nothing(db, published):
    before = _published(db)
    # 40 image vectors left: a gallery smaller than K=50, whose recall@50 would be 1.0
    with psycopg.connect(**_conninfo(db), autocommit=True) as conn:
        conn.execute(
            f"delete from {vectors_table(config_for(_vars())).as_string(conn)} "
            "where space = 'i' and product_id >= 'P040'"
        )
    with pytest.raises(DbtError, match="assert_largest_k_below_gallery_size"):
        refresh(db, config_for(_vars()), dbt_vars=_vars(), options={"skip_backfill": True})
    assert _published(db) == before
    _plant(db, seed=1)  # the next tests start from the full catalog again


def test_sigkill_during_the_final_build_leaves_the_published_set(db, published, tmp_path):
    before = _published(db)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(dataclasses.asdict(db)), json.dumps(_vars())],
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "child.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        # the final build has begun once the staging schema holds a retrieval mart
        deadline = time.monotonic() + 600
        while not query(db, "select to_regclass('metrics__staging.fct_retrieval_ranks')")[0][0]:
            assert child.poll() is None, (tmp_path / "child.log").read_text()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert _published(db) == before and _runs(db) == 1
    # the next refresh (once the killed run's sessions are gone) publishes as usual
    refresh(db, config_for(_vars()), dbt_vars=_vars(), options={"skip_backfill": True})
    assert _runs(db) == 2
    history = query(db, "select run_id, count(*) from metrics.fct_metric_history group by 1")
    assert len({n for _, n in history}) == 1  # the same figures per run, none doubled


def test_a_reader_sees_the_new_set_after_a_refresh(db, published):
    own = query(db, "select count(*), max(run_id) from metrics.fct_metric_history")
    with psycopg.connect(**_conninfo(db, user=published), autocommit=True) as conn:
        seen = conn.execute("select count(*), max(run_id) from metrics.fct_metric_history")
        assert seen.fetchall() == own
        assert conn.execute("select count(*) from metrics.fct_retrieval_metrics").fetchone()[0]


def _conninfo(db, user: str | None = None) -> dict:
    return {"host": db.host, "port": db.port, "user": user or db.user, "dbname": db.dbname}


_CHILD = """
import json, sys
from embed_udfs.config import load_config
from embed_udfs.db import ConnectionSettings
from embed_udfs.pipeline import refresh
settings = ConnectionSettings(**json.loads(sys.argv[1]))
dbt_vars = json.loads(sys.argv[2])
config = load_config(overrides=dbt_vars)
refresh(settings, config, dbt_vars=dbt_vars, options={"skip_backfill": True})
"""
