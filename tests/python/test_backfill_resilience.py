"""The backfill under stress: killed mid-run, two workers on overlapping
shards, a dropped connection, remote images, CUDA out-of-memory splits."""

from __future__ import annotations

import http.server
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psycopg
import pytest
import torch
from conftest import PROJECT_DIR, dbt_build, query
from loopback import loopback_limits
from PIL import Image

from embed_udfs import demo, store
from embed_udfs.config import load_config
from embed_udfs.db import connection, stop_embedded
from embed_udfs.errors import ConfigError
from embed_udfs.jobs.backfill import BackfillOptions, backfill_space, read_image_bytes
from embed_udfs.jobs.backfill.loader import forward
from embed_udfs.jobs.base import Shard
from embed_udfs.retry import DB_RECONNECT

SPACE = "minilm_text"


@pytest.fixture(scope="module")
def catalog(db, tmp_path_factory):
    """A demo catalog with dbt's model inputs built; returns the rows to embed."""
    products = demo.generate_catalog(tmp_path_factory.mktemp("images"), n_products=900, seed=5)
    with connection(db) as conn:
        demo.load_catalog(conn, products)
        store.bootstrap(conn, load_config(PROJECT_DIR))
    dbt_build(db, {}, tmp_path_factory.mktemp("dbt"), "+int_space_inputs")
    rows = query(
        db,
        "select count(*) from intermediate.int_space_inputs "
        "where space = %s and model_input is not null",
        (SPACE,),
    )[0][0]
    return rows


def _reset(db) -> None:
    with connection(db) as conn:
        conn.execute(
            "truncate embeddings.vectors, embeddings.backfill_errors, embeddings.backfill_claims"
        )
        conn.commit()


def _cli(db, *args: str) -> subprocess.Popen:
    env = {**os.environ, **db.env(), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "embed_udfs.cli",
            "--project-dir",
            str(PROJECT_DIR),
            "backfill",
            "--space",
            SPACE,
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _embedded(stdout: str) -> int:
    return int(re.search(r"embedded (\d+)", stdout).group(1))


def _count(db) -> int:
    return query(db, "select count(*) from embeddings.vectors where space = %s", (SPACE,))[0][0]


def test_sigkill_mid_run_then_rerun_finishes_without_redoing_chunks(db, catalog):
    _reset(db)
    worker = _cli(db, "--chunk-size", "32", "--batch-size", "16")
    deadline = time.monotonic() + 120
    while _count(db) < 64 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = dict(
        query(
            db, "select product_id, embedded_at from embeddings.vectors where space = %s", (SPACE,)
        )
    )
    assert 0 < len(before) < catalog, "the run must be killed mid-way for this test to mean much"
    assert len(before) % 32 == 0, "only whole chunks are committed"

    rerun = _cli(db, "--chunk-size", "32")
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert _embedded(stdout) == catalog - len(before)  # nothing committed was embedded again
    after = dict(
        query(
            db, "select product_id, embedded_at from embeddings.vectors where space = %s", (SPACE,)
        )
    )
    assert len(after) == catalog
    assert all(after[p] == t for p, t in before.items())  # completed chunks were not redone
    duplicates = query(
        db, "select count(*) - count(distinct (space, product_id)) from embeddings.vectors"
    )[0][0]
    assert duplicates == 0
    assert query(db, "select count(*) from embeddings.backfill_claims")[0][0] == 0


def test_two_workers_on_overlapping_shards_do_no_duplicate_work(db, catalog):
    _reset(db)
    everything = _cli(db, "--chunk-size", "16", "--batch-size", "16")
    half = _cli(db, "--chunk-size", "16", "--batch-size", "16", "--shard", "0/2")
    try:
        out_all, err_all = everything.communicate(timeout=300)
        out_half, err_half = half.communicate(timeout=300)
    finally:  # a worker left running would hold claims in the tests that follow
        for worker in (everything, half):
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert everything.returncode == 0, err_all
    assert half.returncode == 0, err_half
    assert _embedded(out_all) + _embedded(out_half) == catalog  # each row embedded once
    assert _count(db) == catalog


def test_connection_drop_mid_run_is_retried_and_the_run_completes(db, catalog, server):
    _reset(db)
    config = load_config(PROJECT_DIR)

    def drop_writer_connection(chunk: int, rows: int) -> None:
        if chunk == 2:
            with psycopg.connect(
                host=server.host,
                port=server.port,
                user=server.user,
                dbname=db.dbname,
                autocommit=True,
            ) as admin:
                killed = admin.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where application_name = 'embed-udfs backfill writer' and datname = %s",
                    (db.dbname,),
                ).fetchall()
            assert killed, "no writer connection to drop"

    summary = backfill_space(
        db,
        config,
        config.space(SPACE),
        BackfillOptions(chunk_size=64, batch_size=32),
        on_commit=drop_writer_connection,
    )
    assert summary.retries == 1
    assert summary.embedded == catalog
    assert _count(db) == catalog


def test_database_restart_longer_than_the_first_backoff_is_survived(db, catalog):
    """The server goes away for about 5 s mid-run (stop, wait, start): the claims
    and the writer reconnect with backoff, and every row lands exactly once."""
    _reset(db)
    config = load_config(PROJECT_DIR)
    outage: dict[str, float] = {}

    def restart() -> None:
        started = time.monotonic()
        assert stop_embedded(PROJECT_DIR), "the tests run on the embedded server"
        time.sleep(5)
        # started from a fresh process, as a user would: `embed-udfs db start`
        subprocess.run(
            [sys.executable, "-m", "embed_udfs.cli", "--project-dir", str(PROJECT_DIR)]
            + ["db", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        outage["seconds"] = time.monotonic() - started

    restarter = threading.Thread(target=restart, daemon=True)

    def on_commit(chunk: int, rows: int) -> None:
        if chunk == 1:
            restarter.start()

    summary = backfill_space(
        db,
        config,
        config.space(SPACE),
        BackfillOptions(chunk_size=32, batch_size=32),
        on_commit=on_commit,
    )
    restarter.join(60)
    assert outage["seconds"] > 5 > 2 * DB_RECONNECT.first_delay_s
    assert summary.retries >= 1, "the run must have met the outage"
    assert summary.embedded == catalog
    assert _count(db) == catalog
    assert query(db, "select count(*) from embeddings.backfill_claims")[0][0] == 0


def test_shards_partition_the_catalog():
    ids = [f"P{i:06d}" for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = [[s.owns(p) for s in shards] for p in ids]
    assert all(sum(row) == 1 for row in owners)
    sizes = [sum(row[i] for row in owners) for i in range(3)]
    assert min(sizes) > 900
    assert Shard.parse("2/3") == Shard(2, 3)
    with pytest.raises(ConfigError):
        Shard.parse("3/3")
    with pytest.raises(ConfigError):
        Shard.parse("x")


def test_out_of_memory_splits_the_batch_and_keeps_order():
    calls = []

    def encode(batch):
        calls.append(len(batch))
        if len(batch) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.asarray(batch, dtype=np.float32)[:, None]

    result = forward(encode, list(range(10)))
    assert result[:, 0].tolist() == list(range(10))
    assert calls[0] == 10 and max(calls[1:]) <= 5
    with pytest.raises(ValueError):
        forward(lambda batch: (_ for _ in ()).throw(ValueError("not memory")), [1, 2])


class _FlakyImages(http.server.BaseHTTPRequestHandler):
    """Serves one PNG; the first request for /flaky.png fails with 503."""

    png = b""
    failures = {"flaky": 1}

    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path == "/flaky.png" and self.failures["flaky"] > 0:
            self.failures["flaky"] -= 1
            self.send_error(503)
            return
        if self.path in ("/ok.png", "/flaky.png"):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(self.png)
            return
        self.send_error(404)

    def log_message(self, *args):
        pass


def test_http_images_with_retries_on_loopback():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, format="PNG")
    _FlakyImages.png = buffer.getvalue()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyImages)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        limits = loopback_limits()
        assert read_image_bytes(f"{base}/ok.png", limits) == _FlakyImages.png
        assert read_image_bytes(f"{base}/flaky.png", limits, attempts=3) == _FlakyImages.png
        with pytest.raises(OSError, match="404"):
            read_image_bytes(f"{base}/missing.png", limits)
    finally:
        httpd.shutdown()
