"""A backfill of an image space whose inputs are hostile or unreachable: the
run finishes in bounded time, good rows land, every bad row is recorded with
its reason and whether it is transient, transient ones are tried again on
the next run, --retry-errors re-queues the others, and a space where most
inputs failed ends with a warning. Also: stale claims cleared at the start of
a run, and stored vectors corrupted by hand embedded again."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pytest
from conftest import PROJECT_DIR, dbt_build, query
from loopback import LOOPBACK, LoopbackImages, closed_port, png_bytes
from test_bounded_inputs import bomb_png

from embed_udfs import cli, store
from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.jobs.backfill import (
    BackfillJob,
    BackfillJobOptions,
    BackfillOptions,
    backfill_space,
)

LIMITS = {
    "image_download_deadline_s": 2.5,
    "image_connect_timeout_s": 1,
    "image_max_bytes": 1_000_000,
    "backfill_failure_warn_share": 0.5,
    **LOOPBACK,
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "good.png").write_bytes(png_bytes((10, 200, 30)))
    (folder / "bomb.png").write_bytes(bomb_png(13_500))
    (folder / "big.png").write_bytes(b"\0" * 1_000_001)
    os.mkfifo(folder / "pipe.png")
    return folder


def _load(db, config, rows) -> None:
    with connection(db) as conn:
        conn.execute(store.PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("truncate catalog.products")
        conn.execute("truncate embeddings.vectors, embeddings.backfill_errors")
        with conn.cursor().copy("copy catalog.products from stdin") as copy:
            for product_id, uri in rows:
                copy.write_row((product_id, f"item {product_id}", "planted", "s", "store", uri))
        conn.commit()


def _errors(db) -> dict[str, tuple[str, bool]]:
    return {
        product_id: (reason, transient)
        for product_id, reason, transient in query(
            db,
            "select product_id, reason, transient from embeddings.backfill_errors "
            "where space = 'clip_image'",
        )
    }


def test_hostile_images_are_recorded_and_the_good_ones_land(db, images, tmp_path, caplog):
    config = load_config(PROJECT_DIR, overrides=LIMITS)
    space = config.space("clip_image")
    with LoopbackImages() as server:
        rows = [
            ("good_local", str(images / "good.png")),
            ("good_http", server.url("/ok.png")),
            ("bomb", str(images / "bomb.png")),
            ("dev_zero", "/dev/zero"),
            ("fifo", str(images / "pipe.png")),
            ("big_local", str(images / "big.png")),
            ("big_http", server.url("/endless.png")),
            ("slow_http", server.url("/slow.png")),
            ("not_found", server.url("/missing.png")),
            ("refused", f"http://127.0.0.1:{closed_port()}/a.png"),
        ]
        _load(db, config, rows)
        dbt_build(db, {}, tmp_path, "+int_space_inputs")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="embed_udfs"):
            first = backfill_space(db, config, space, BackfillOptions(batch_size=4))
        took = time.monotonic() - started
    assert took < 60, "every failure is bounded: no download may hang the run"
    assert first.embedded == 2 and sum(first.rejected.values()) == 8
    assert query(db, "select count(*) from embeddings.vectors where space = 'clip_image'") == [(2,)]
    errors = _errors(db)
    assert errors["bomb"][0] == "corrupt image"
    assert errors["dev_zero"][0] == errors["fifo"][0] == "missing image: not a regular file"
    assert errors["big_local"][0] == errors["big_http"][0] == "image too large"
    assert errors["not_found"] == ("missing image: not found", False)
    assert errors["slow_http"] == ("unreachable image: could not connect or timed out", True)
    assert errors["refused"] == ("unreachable image: could not connect or timed out", True)
    assert {p for p, (_, transient) in errors.items() if transient} == {"slow_http", "refused"}
    warning = [r.getMessage() for r in caplog.records if "could not be embedded" in r.getMessage()]
    assert warning and "'clip_image': 8 of 10 inputs" in warning[0]

    # The next run tries only the transient failures again (the servers are gone now).
    second = backfill_space(db, config, space, BackfillOptions(batch_size=4))
    assert (second.embedded, second.unchanged, second.retried) == (0, 2, 2)
    assert len(_errors(db)) == 8
    # On request, recorded errors are re-queued; --reason narrows them. The 404
    # server is gone, so the re-queued row now fails to connect: transient.
    third = backfill_space(
        db, config, space, BackfillOptions(batch_size=4, retry_errors=("NOT FOUND",))
    )
    assert third.requeued == 1 and third.embedded == 0
    assert _errors(db)["not_found"] == ("unreachable image: could not connect or timed out", True)
    assert _errors(db)["bomb"][0] == "corrupt image"  # not re-queued: another reason
    assert cli.main(["backfill", "--space", "clip_image", "--reason", "corrupt"]) == 2


def test_stale_claims_are_cleared_and_corrupted_vectors_embedded_again(db, images, tmp_path):
    config = load_config(PROJECT_DIR)
    space = config.space("clip_text")
    rows = [(f"p{i}", str(images / "good.png")) for i in range(6)]
    _load(db, config, rows)
    dbt_build(db, {}, tmp_path, "+int_space_inputs")
    assert backfill_space(db, config, space).embedded == 6
    with connection(db) as conn:
        # a claim of a session that is long gone, on a row that is already embedded
        conn.execute(
            "insert into embeddings.backfill_claims (space, product_id, input_hash, "
            "backend_pid, backend_start) values ('clip_text', 'p0', 'x', 1, now() - interval '1d')"
        )
        conn.execute(
            "update embeddings.vectors set embedding = case product_id "
            "when 'p1' then array_fill(0, array[128])::vector "
            "when 'p2' then (embedding::real[]::float8[])[1:64]::vector "
            "when 'p3' then (select array_agg(x * 3) from unnest(embedding::real[]) x)::vector "
            "end where space = 'clip_text' and product_id in ('p1', 'p2', 'p3')"
        )
        conn.commit()
    again = backfill_space(db, config, space)
    assert query(db, "select count(*) from embeddings.backfill_claims") == [(0,)]
    assert again.embedded == 3 and again.unchanged == 3
    assert dict(again.repaired) == {
        "stored vector invalid: zero vector": 1,
        "stored vector invalid: wrong dimension": 1,
        "stored vector invalid: not unit length": 1,
    }
    norms = query(
        db,
        "select vector_dims(embedding), vector_norm(embedding) from embeddings.vectors "
        "where space = 'clip_text'",
    )
    assert all(dim == 128 for dim, _ in norms)
    assert np.allclose([norm for _, norm in norms], 1, atol=1e-3)


def test_chunks_commit_when_full_or_old(db, images, tmp_path):
    rows = [(f"q{i}", str(images / "good.png")) for i in range(6)]
    # (interval, fewest commits, most commits): with a tiny interval every batch that
    # reaches the writer finds its chunk old, but two batches may reach it together
    for interval, fewest, most in ((1000.0, 1, 1), (0.001, 2, 3)):
        config = load_config(PROJECT_DIR, overrides={"backfill_commit_interval_s": interval})
        _load(db, config, rows)
        dbt_build(db, {}, tmp_path, "+int_space_inputs")
        commits: list[int] = []
        summary = backfill_space(
            db,
            config,
            config.space("clip_text"),
            BackfillOptions(batch_size=2, chunk_size=1000),
            on_commit=lambda chunk, n, commits=commits: commits.append(n),
        )
        assert summary.embedded == 6
        # one chunk of 1,000 never fills: it commits at the end, or as each batch comes
        assert fewest <= len(commits) <= most and sum(commits) == 6


def test_a_refresh_downloads_each_image_once_and_learns_a_dead_host_once(
    db, images, tmp_path, demo_models
):
    overrides = {**LIMITS, "image_host_failures": 2, "image_fetch_per_host": 2}
    config = load_config(PROJECT_DIR, overrides=overrides)
    with LoopbackImages() as server, LoopbackImages() as dead:
        rows = [(f"h{i}", dead.url(f"/hang.png?i={i}")) for i in range(12)]
        rows += [(f"ok{i}", server.url(f"/ok.png?i={i}")) for i in range(5)]
        _load(db, config, rows)
        dbt_build(db, {}, tmp_path, "+int_space_inputs")
        summary = BackfillJob().run(
            db, config, BackfillJobOptions(space=["clip_image", "clip_b_image"], workers=0)
        )
        asked, downloaded = dead.requests["hang.png"], server.requests["ok.png"]
    first, second = summary.details
    assert first.embedded == second.embedded == 5
    assert sum(first.rejected.values()) == sum(second.rejected.values()) == 12
    assert downloaded == 5  # once for both spaces
    # the first space asks until the host has failed image_host_failures times in a row
    assert 2 <= asked < 12
    errors = query(
        db,
        "select space, count(*) filter (where detail like '%%not tried%%' "
        "or detail like '%%not asked again%%'), bool_and(transient) "
        "from embeddings.backfill_errors group by space order by space",
    )
    # every row of the second space is recorded as transient without a request: the
    # host's count says skip it, or the URL failed already in the first space
    assert errors == [("clip_b_image", 12, True), ("clip_image", 12 - asked, True)]
