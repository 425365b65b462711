"""Benchmark: HNSW top-k scans (the near-duplicate search's query shape) when the
table and its index fit in shared_buffers and when they do not.

    python bench/shared_buffers.py setup [--n 200000]
    python bench/shared_buffers.py run [--queries 20000]

`setup` writes N random unit 32-d vectors and their HNSW cosine index into the
project's database (table bench_shared_buffers); `run` times `--queries` scans of
`ORDER BY embedding <=> q LIMIT 11` at hnsw.ef_search 100, twice, and prints the
server's shared_buffers beside the seconds. Restart the server with another
shared_buffers between two `run`s (e.g. `pg_ctl restart -o "-c shared_buffers=16MB"`
on the embedded server's data directory, with the options of
embed_udfs/db/server.py), so both settings meet the same table: at 1,000,000
products the near-duplicate table and index are about 600 MB, so a 16 MB buffer
against 200,000 vectors (118 MB) is the same regime at a fifth of the cost.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _scratch import PROJECT_DIR, machine

from embed_udfs.db import connection, resolve_settings

DIM = 32
TABLE = "public.bench_shared_buffers"


def setup(n: int) -> None:
    with connection(resolve_settings(PROJECT_DIR)) as conn:
        conn.execute(f"drop table if exists {TABLE}")
        conn.execute(f"create table {TABLE} (product_id text, embedding vector({DIM}))")
        rng = np.random.default_rng(0)
        with conn.cursor().copy(f"copy {TABLE} from stdin (format binary)") as copy:
            copy.set_types(["text", "vector"])
            for i in range(n):
                vector = rng.normal(size=DIM).astype(np.float32)
                copy.write_row((f"P{i:08d}", vector / np.linalg.norm(vector)))
        conn.execute("set maintenance_work_mem = '1GB'")
        conn.execute(f"create index on {TABLE} using hnsw (embedding vector_cosine_ops)")
        conn.execute(f"analyze {TABLE}")
        size = conn.execute(f"select pg_size_pretty(pg_total_relation_size('{TABLE}'))")
        conn.commit()
        print(f"{n:,} vectors, table and index {size.fetchone()[0]}")  # type: ignore[index]


def run(queries: int) -> None:
    with connection(resolve_settings(PROJECT_DIR)) as conn:
        buffers = conn.execute("show shared_buffers").fetchone()[0]  # type: ignore[index]
        conn.execute("set hnsw.ef_search = 100")
        seconds = []
        for _ in range(2):
            started = time.perf_counter()
            conn.execute(
                f"select count(*) from (select * from {TABLE} order by md5(product_id) "
                f"limit %s) as q cross join lateral (select g.product_id from {TABLE} as g "
                "order by g.embedding <=> q.embedding limit 11) as nearest",
                (queries,),
            ).fetchone()
            seconds.append(time.perf_counter() - started)
        print(
            f"{machine()}, load average {os.getloadavg()[0]:.2f}: shared_buffers {buffers}, "
            f"{queries:,} scans: " + ", ".join(f"{s:.1f} s" for s in seconds)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["setup", "run"])
    parser.add_argument("--n", type=int, default=200_000, help="vectors written by setup")
    parser.add_argument("--queries", type=int, default=20_000, help="scans timed by run")
    args = parser.parse_args()
    setup(args.n) if args.step == "setup" else run(args.queries)


if __name__ == "__main__":
    main()
