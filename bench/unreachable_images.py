"""Benchmark: a catalog whose every image is unreachable, on the loopback.

    python bench/unreachable_images.py [--rows 1000] [--workers N]

A third of the image URIs point at a closed port (connection refused), a
third at a server that accepts and never answers (timed out), a third at a
second server that answers 404 (not found). Times `backfill_space` end to end on the
tiny image model, and a baseline in the same run: the same reader applied to
the URIs one after another (no pool, no per-host skipping), measured on a
sample and scaled to the catalog. Prints both and their ratio, and checks
that every row was recorded as transient or permanent as it should be.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from _scratch import PROJECT_DIR, machine, scratch_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from loopback import LOOPBACK, LoopbackImages, closed_port  # noqa: E402

from embed_udfs import store  # noqa: E402
from embed_udfs.config import load_config  # noqa: E402
from embed_udfs.db import connection  # noqa: E402
from embed_udfs.dbt_runner import run_dbt  # noqa: E402
from embed_udfs.jobs.backfill import BackfillOptions, backfill_space  # noqa: E402
from embed_udfs.jobs.backfill.sources import ReadFailure, read_image_bytes  # noqa: E402


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--workers", type=int, help="decode processes (default: the backfill's)")
    parser.add_argument("--sample", type=int, default=12, help="rows the baseline reads")
    args = parser.parse_args()
    config = load_config(PROJECT_DIR, overrides=LOOPBACK)  # the image servers are local
    space = config.space("clip_image")
    LoopbackImages.HANG_S = 120.0  # longer than any deadline: the client must give up first
    with LoopbackImages() as hangs, LoopbackImages() as missing, scratch_database() as settings:
        refused = f"http://127.0.0.1:{closed_port()}"
        kinds = [
            (refused + f"/{i}.png")
            if i % 3 == 0
            else hangs.url(f"/hang.png?i={i}")
            if i % 3 == 1
            else missing.url(f"/missing.png?i={i}")
            for i in range(args.rows)
        ]
        with connection(settings) as conn:
            conn.execute(store.PRODUCTS_DDL)
            store.bootstrap(conn, config)
            with conn.cursor().copy("copy catalog.products from stdin") as copy:
                for i, uri in enumerate(kinds):
                    copy.write_row((f"P{i:06d}", f"product {i}", "bench", "s", "store", uri))
            conn.commit()
        run_dbt(["build", "--select", "+int_space_inputs"], settings, PROJECT_DIR, quiet=True)

        started = time.perf_counter()
        summary = backfill_space(settings, config, space, BackfillOptions(num_workers=args.workers))
        backfill_s = time.perf_counter() - started

        sample = kinds[: args.sample]
        started = time.perf_counter()
        for uri in sample:
            with contextlib.suppress(ReadFailure):
                read_image_bytes(uri, config.ingest)
        baseline_s = (time.perf_counter() - started) * args.rows / len(sample)

        with connection(settings) as conn:
            recorded = Counter(
                conn.execute(
                    "select reason, transient from embeddings.backfill_errors where space = %s",
                    (space.name,),
                ).fetchall()
            )
    print(machine())
    print(f"rows: {args.rows}, all images unreachable (refused / never answers / 404)")
    print(f"backfill (pool, per-host limits and skipping): {backfill_s:.1f}s")
    print(f"baseline (one after another, scaled from {len(sample)} rows): {baseline_s:.0f}s")
    print(f"baseline / backfill: {baseline_s / backfill_s:.1f}x")
    for (reason, transient), count in recorded.most_common():
        print(f"  {count:>6}  {reason} ({'transient' if transient else 'permanent'})")
    assert sum(recorded.values()) == args.rows, summary.line()


if __name__ == "__main__":
    main()
