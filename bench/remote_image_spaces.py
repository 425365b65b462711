"""Benchmark: three image spaces over one catalog of remote images, on the loopback.

    python bench/remote_image_spaces.py [--rows 400] [--hosts 4] [--workers N]

Every image URI is on one of --hosts loopback servers that wait 0.3 s before
answering (a slow image host). The demo's three image spaces (clip_image,
clip_b_image, sigmoid_image; `embed-udfs demo train` makes their checkpoints)
are backfilled twice in the same run, on the same rows:

- baseline: each space on its own, as separate `embed-udfs backfill --space`
  runs do: every space downloads every image;
- shared: one backfill job over the three spaces (what `refresh` and
  `embed-udfs backfill` run), where the spaces share one RemoteImages: each
  image is downloaded once.

Prints the wall time and the requests the servers received for each, and
their ratio.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from _scratch import PROJECT_DIR, machine, scratch_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from loopback import LOOPBACK, LoopbackImages  # noqa: E402

from embed_udfs import store  # noqa: E402
from embed_udfs.config import load_config  # noqa: E402
from embed_udfs.db import connection  # noqa: E402
from embed_udfs.dbt_runner import run_dbt  # noqa: E402
from embed_udfs.jobs.backfill import (  # noqa: E402
    BackfillJob,
    BackfillJobOptions,
    BackfillOptions,
    RemoteImages,
    backfill_space,
)

SPACES = ["clip_image", "clip_b_image", "sigmoid_image"]


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--hosts", type=int, default=4, help="loopback image servers")
    parser.add_argument("--workers", type=int, help="decode processes (default: the backfill's)")
    args = parser.parse_args()
    config = load_config(PROJECT_DIR, overrides=LOOPBACK)  # the image servers are local
    missing = [s for s in SPACES if not (PROJECT_DIR / str(config.space(s).pretrained)).is_file()]
    if missing:
        sys.exit(f"no checkpoint for {missing}: run `embed-udfs demo train` first.")
    servers = [LoopbackImages() for _ in range(args.hosts)]
    with scratch_database() as settings:
        for server in servers:
            server.__enter__()
        try:
            uris = [servers[i % args.hosts].url(f"/pause.png?i={i}") for i in range(args.rows)]
            with connection(settings) as conn:
                conn.execute(store.PRODUCTS_DDL)
                store.bootstrap(conn, config)
                with conn.cursor().copy("copy catalog.products from stdin") as copy:
                    for i, uri in enumerate(uris):
                        copy.write_row((f"P{i:06d}", f"product {i}", "bench", "s", "store", uri))
                conn.commit()
            run_dbt(["build", "--select", "+int_space_inputs"], settings, PROJECT_DIR, quiet=True)

            def requests() -> int:
                return sum(server.requests["pause.png"] for server in servers)

            def forget() -> None:
                with connection(settings) as conn:
                    conn.execute("truncate embeddings.vectors, embeddings.backfill_errors")
                    conn.commit()

            options = BackfillOptions(num_workers=args.workers)
            started, before = time.perf_counter(), requests()
            for name in SPACES:
                with RemoteImages(config.ingest) as remote:
                    summary = backfill_space(
                        settings, config, config.space(name), options, remote=remote
                    )
                    assert summary.embedded == args.rows, summary.line()
            baseline_s, baseline_requests = time.perf_counter() - started, requests() - before

            forget()
            started, before = time.perf_counter(), requests()
            job = BackfillJob().run(
                settings, config, BackfillJobOptions(space=SPACES, workers=args.workers)
            )
            shared_s, shared_requests = time.perf_counter() - started, requests() - before
            assert all(s.embedded == args.rows for s in job.details), job.line()
        finally:
            for server in servers:
                server.__exit__(None, None, None)
    print(machine())
    print(f"rows: {args.rows} remote images on {args.hosts} hosts (0.3 s per answer), 3 spaces")
    print(f"baseline (each space downloads):  {baseline_s:6.1f} s, {baseline_requests} requests")
    print(f"shared (one download per image):  {shared_s:6.1f} s, {shared_requests} requests")
    print(f"baseline / shared: {baseline_s / shared_s:.2f}x wall time")


if __name__ == "__main__":
    main()
