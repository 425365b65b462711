"""The publish never makes BI wait: a reader's long transaction neither lets a killed
refresh block every new query nor makes a publish hang. The swap gives up, naming
the reader, and publishes nothing; once the reader is gone, the next one succeeds.

The sets swapped here are one-table schemas made by hand; test_publish.py
publishes the real marts."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from conftest import PROJECT_DIR, query

from embed_udfs import publish, roles
from embed_udfs.db import connection
from embed_udfs.errors import PublishBlocked
from embed_udfs.retry import Backoff

# How long an answer may take before the test calls it a hang.
PROMPT_S = 15.0


def _stage(db, label: str) -> None:
    """A staging schema holding one table with one row: `label`."""
    with connection(db, autocommit=True) as conn:
        conn.execute("drop schema if exists metrics__staging cascade")
        conn.execute("create schema metrics__staging")
        conn.execute(
            "create table metrics__staging.fct_figures as select %s::text as label", (label,)
        )


def _label(db, schema: str = "metrics") -> str:
    return query(db, f"select label from {schema}.fct_figures")[0][0]


def _schemas(db) -> set[str]:
    return {
        name
        for (name,) in query(db, "select nspname from pg_namespace where nspname like 'metrics%%'")
    }


def _promptly(fn: Callable[[], Any], seconds: float = PROMPT_S) -> Any:
    """fn()'s result, or a test failure if it has not returned within `seconds`."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still waiting after {seconds:.0f} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture(scope="module")
def reader(db) -> Iterator[str]:
    name = f"reader_{uuid.uuid4().hex[:8]}"
    roles.create_reader(db, name)
    _stage(db, "v0")
    publish.publish(db)
    yield name
    roles.drop_reader(db, name)


@pytest.fixture
def long_reader(db, reader) -> Iterator[psycopg.Connection]:
    """A reader's transaction left open after reading `metrics` (a BI session that
    never commits): it holds AccessShare on the published table."""
    conn = psycopg.connect(
        host=db.host, port=db.port, user=reader, dbname=db.dbname, application_name="long-report"
    )
    conn.execute("select label from metrics.fct_figures").fetchall()
    try:
        yield conn
    finally:
        conn.close()


def _new_reader_query(db, reader: str) -> str:
    """What a fresh BI session reads, with a statement_timeout of 10 s."""
    with psycopg.connect(
        host=db.host,
        port=db.port,
        user=reader,
        dbname=db.dbname,
        autocommit=True,
        options="-c statement_timeout=10s",
    ) as conn:
        return conn.execute("select label from metrics.fct_figures").fetchone()[0]


def test_a_killed_publish_does_not_block_new_readers(db, reader, long_reader, tmp_path):
    _stage(db, "v1")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(dataclasses.asdict(db))],
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "child.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    holder = long_reader.info.backend_pid
    waiting = (
        "select count(*) from pg_stat_activity "
        "where datname = current_database() and %s = any(pg_blocking_pids(pid))"
    )
    try:
        # the publish has reached a lock the long reader holds
        deadline = time.monotonic() + 60
        while not query(db, waiting, (holder,))[0][0]:
            assert child.poll() is None, (tmp_path / "child.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the publish never waited for the reader"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    started = time.monotonic()
    assert _new_reader_query(db, reader) in {"v0", "v1"}
    assert time.monotonic() - started < 10
    # once the long transaction ends, a publish goes through and clears up
    long_reader.commit()
    _stage(db, "v3")
    _promptly(lambda: publish.publish(db))
    assert _label(db) == "v3" == _new_reader_query(db, reader)
    assert _schemas(db) == {"metrics"}


def test_a_publish_held_up_by_a_reader_gives_up_and_says_who(db, reader, long_reader):
    # The swap itself does not wait for the reader: the new set is published, and
    # the old one, still read, is left for later.
    _stage(db, "v4")
    _promptly(lambda: publish.publish(db))
    assert _label(db) == "v4" == _new_reader_query(db, reader)
    assert "metrics__previous" in _schemas(db)
    # Starting a refresh does not wait for it either.
    _promptly(lambda: publish.clear_staging(db))
    assert "metrics__previous" in _schemas(db)

    # The next publish needs that name: it tries for its patience, then gives up.
    _stage(db, "v5")
    patience = Backoff(first_delay_s=0.2, max_delay_s=0.5, deadline_s=2.0)
    with pytest.raises(PublishBlocked) as blocked:
        _promptly(lambda: publish.publish(db, patience=patience, lock_timeout_s=0.5))
    message = str(blocked.value)
    assert message.startswith("nothing was published")
    assert f"pid {long_reader.info.backend_pid}" in message
    assert f"role {reader}" in message and "'long-report'" in message
    if db.admin_user:  # the embedded server's superuser sees every session's start
        assert "transaction open for" in message
    assert "`metrics` keeps the previous figures" in message and "metrics__staging" in message
    assert _label(db) == "v4" and _label(db, "metrics__staging") == "v5"

    long_reader.rollback()
    _promptly(lambda: publish.publish(db))
    assert _label(db) == "v5" == _new_reader_query(db, reader)
    assert _schemas(db) == {"metrics"}


@pytest.mark.parametrize("session", ["embed-udfs", "libpq"])
def test_the_server_ends_the_work_of_a_killed_client(db, session, tmp_path):
    """A session of embed-udfs (on any server), and any session of the embedded
    server (dbt's among them), is ended within seconds of its client's death, not
    when its statement would have ended."""
    if session == "libpq" and not db.admin_user:
        pytest.skip("the server-wide setting is the embedded server's")
    tag = f"vanishing-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(
        [sys.executable, "-c", _SLEEPER, json.dumps(dataclasses.asdict(db)), session, tag],
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "child.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    sleeping = (
        "select count(*) from pg_stat_activity where query like %s and state = 'active' "
        "and pid <> pg_backend_pid()"
    )
    try:
        deadline = time.monotonic() + 60
        while not query(db, sleeping, (f"%{tag}%",))[0][0]:
            assert child.poll() is None, (tmp_path / "child.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the session never started its statement"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10
    while query(db, sleeping, (f"%{tag}%",))[0][0]:
        assert time.monotonic() < deadline, "the server still runs the dead client's statement"
        time.sleep(0.2)


_SLEEPER = """
import json, sys
import psycopg
from embed_udfs.db import ConnectionSettings, connect
settings = ConnectionSettings(**json.loads(sys.argv[1]))
if sys.argv[2] == "libpq":
    conn = psycopg.connect(host=settings.host, port=settings.port, user=settings.user,
                           dbname=settings.dbname)
else:
    conn = connect(settings)
conn.execute(f"select pg_sleep(120) -- {sys.argv[3]}")
"""


# Two refreshes' publishes in a row, each as `refresh` calls it: whichever waits for
# the long reader, it waits long enough to be killed while it waits.
_CHILD = """
import json, sys
from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.publish import publish
settings = ConnectionSettings(**json.loads(sys.argv[1]))
publish(settings)
with connection(settings, autocommit=True) as conn:
    conn.execute("create schema metrics__staging")
    conn.execute("create table metrics__staging.fct_figures as select 'v2'::text as label")
publish(settings)
"""
