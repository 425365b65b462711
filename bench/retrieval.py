"""Benchmark: the retrieval-metric build in SQL against numpy brute force
computed in the same run, at N = 5,000, 20,000 and 50,000 (512-d).

    python bench/retrieval.py [--sizes 5000 20000 50000] [--search exact hnsw]
        [--count-sizes 5000 20000] [--dim 512]

Per size and search mode: seconds for each dbt stage (the models' own
execution span), the ratio of the ranks stage (neighbour lists + ranks) to
numpy, and whether every rank and neighbour list is numpy's. On the sizes in
--count-sizes it also times the exact formulation the project used before it
kept top-K lists (a parallel count of the gallery items strictly closer than
each positive, one statement per direction, run as dbt ran it: both
directions at once), reconstructed here, against the same numpy.

The machine may be shared: besides wall seconds the script reports CPU
seconds (the database server's processes for SQL, this process's threads for
numpy), which other jobs disturb far less than wall time.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from _scratch import PROJECT_DIR, machine, plant, scratch_database
from psycopg import sql

from embed_udfs.config import load_config
from embed_udfs.db import ConnectionSettings, connection, embedded_datadir
from embed_udfs.dbt_runner import run_dbt

SECTIONS = 10
MAX_K = 50
DIRECTIONS = {
    "text_to_image": ("bench_text", "bench_image"),
    "image_to_text": ("bench_image", "bench_text"),
}
TICK = os.sysconf("SC_CLK_TCK")


def planted(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Section clusters, noisy text/image pairs: recall in the middle of its range."""
    rng = np.random.default_rng(seed)
    sections = rng.integers(0, SECTIONS, size=n)
    centres = rng.normal(size=(SECTIONS, dim)).astype(np.float32)
    base = centres[sections] + rng.normal(size=(n, dim)).astype(np.float32)
    noise = 4.0
    texts = base + noise * rng.normal(size=(n, dim)).astype(np.float32)
    images = base + noise * rng.normal(size=(n, dim)).astype(np.float32)
    return sections, texts, images


def unit(m: np.ndarray) -> np.ndarray:
    """As the store writes them: normalised in float64, stored as float32."""
    return (m / np.linalg.norm(m.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)


def numpy_ranks(
    queries: np.ndarray, gallery: np.ndarray, lists: bool = False, block: int = 2048
) -> tuple[np.ndarray, np.ndarray | None]:
    """1 + gallery items strictly closer than the positive (cosine, float64, in
    blocks), and with `lists` each query's top MAX_K gallery rows (distance,
    then row = product id order).

    The positive's similarity is read off the same matrix, so the positive
    never counts as closer than itself.
    """
    q, g = queries.astype(np.float64), gallery.astype(np.float64)
    ranks = np.empty(len(q), dtype=np.int64)
    top = np.empty((len(q), MAX_K), dtype=np.int64) if lists else None
    for start in range(0, len(q), block):
        sims = q[start : start + block] @ g.T
        rows = np.arange(len(sims))
        positive = sims[rows, start + rows]
        ranks[start : start + block] = 1 + (sims > positive[:, None]).sum(axis=1)
        if top is not None:
            best = np.argpartition(-sims, MAX_K - 1, axis=1)[:, :MAX_K]
            best_sims = np.take_along_axis(sims, best, axis=1)
            order = np.lexsort((best, -best_sims), axis=1)
            top[start : start + block] = np.take_along_axis(best, order, axis=1)
    return ranks, top


def server_cpu() -> float:
    """CPU seconds used so far by the embedded server: the postmaster's own and
    its ended backends' (which it has reaped), plus its live backends'."""
    time.sleep(0.5)  # let the postmaster reap the backends of connections just closed
    postmaster = int((embedded_datadir(PROJECT_DIR) / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # fields after the command: state, ppid, ..., utime, stime, cutime, cstime
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == postmaster:
            total += sum(int(f) for f in fields[11:15]) / TICK
        elif int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def timed(run: Callable[[], Any], cpu: Callable[[], float]) -> tuple[Any, float, float]:
    """The result, wall seconds and CPU seconds of one call."""
    cpu0 = cpu()
    wall0 = time.perf_counter()
    result = run()
    wall = time.perf_counter() - wall0
    return result, wall, cpu() - cpu0


def count_statement(query_space: str, gallery_space: str, dim: int) -> sql.Composed:
    """The exact ranks before top-K lists (closer_counts, a macro since removed):
    every gallery item against the positive's cosine distance, in a parallel nested loop."""
    return sql.SQL(
        """
        with queries as (
            select
                queries.product_id,
                queries.embedding::vector({dim}) as query_embedding,
                queries.embedding::vector({dim}) <=> positives.embedding::vector({dim})
                    as positive_distance
            from intermediate.int_eval_vectors as queries
            inner join intermediate.int_eval_vectors as positives
                on queries.product_id = positives.product_id and positives.space = {gallery}
            where queries.space = {query}
        )
        select
            queries.product_id,
            count(*) filter (
                where gallery.embedding::vector({dim}) <=> queries.query_embedding
                    < queries.positive_distance
            ) as n_closer
        from queries
        cross join intermediate.int_eval_vectors as gallery
        where gallery.space = {gallery}
        group by queries.product_id
        """
    ).format(
        dim=sql.Literal(dim), query=sql.Literal(query_space), gallery=sql.Literal(gallery_space)
    )


def old_count(settings: ConnectionSettings, dim: int) -> dict[str, dict[str, int | None]]:
    """Both directions at once on two connections (dbt's two threads), each
    materialised as a table, with the server's default settings as then."""

    def one(direction: str) -> dict[str, int | None]:
        query_space, gallery_space = DIRECTIONS[direction]
        table = sql.Identifier(f"bench_count_{direction}")
        with connection(settings) as conn:
            conn.execute(sql.SQL("drop table if exists {}").format(table))
            conn.execute(
                sql.SQL("create table {} as ").format(table)
                + count_statement(query_space, gallery_space, dim)
            )
            conn.commit()
            rows = conn.execute(sql.SQL("select product_id, n_closer from {}").format(table))
            return {p: (c + 1 if c < MAX_K else None) for p, c in rows.fetchall()}

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {d: pool.submit(one, d) for d in DIRECTIONS}
        return {d: f.result() for d, f in futures.items()}


def dbt_stages(settings: ConnectionSettings, dbt_vars: dict, target: Path) -> dict[str, float]:
    """The models' own execution span per stage, as dbt reports it (dbt's start-up excluded)."""
    stages = {
        "int_eval_vectors": ["int_eval_vectors"],
        # the top-K lists (one model per direction, run concurrently) and the ranks counted in them
        "ranks": [
            "int_text_to_image_neighbours",
            "int_image_to_text_neighbours",
            "int_retrieval_neighbours",
            "fct_retrieval_ranks",
        ],
        # per-query scores (recall, MRR, nDCG, section purity) and their aggregation
        "metrics": ["fct_retrieval_scores", "fct_retrieval_metrics"],
    }
    timings: dict[str, float] = {}
    for stage, models in stages.items():
        result, _, cpu = timed(
            lambda models=models: run_dbt(
                ["run", "--select", *models],
                settings,
                PROJECT_DIR,
                dbt_vars=dbt_vars,
                target_path=target,
                quiet=True,
            ),
            server_cpu,
        )
        spans = [
            (t.started_at, t.completed_at)
            for r in result.result.results
            if r.node.unique_id.startswith("model.")
            for t in r.timing
            if t.name == "execute"
        ]
        timings[stage] = (max(e for _, e in spans) - min(b for b, _ in spans)).total_seconds()
        timings[f"{stage}_cpu"] = cpu
    return timings


def compare(
    settings: ConnectionSettings,
    ids: list[str],
    ranks: dict[str, np.ndarray],
    lists: dict[str, np.ndarray],
    spaces: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[int, int, float, float]:
    """Queries whose rank differs from numpy, queries whose list differs, R@10,
    and the largest float64 similarity gap between the items a differing list
    has where numpy's has others (pgvector sums in float32: items closer than
    about 1e-7 may tie or swap)."""
    by_id = {product_id: i for i, product_id in enumerate(ids)}
    with connection(settings) as conn:
        got_ranks = conn.execute(
            "select direction, product_id, positive_rank from metrics.fct_retrieval_ranks"
        ).fetchall()
        got_lists = conn.execute(
            "select direction, query_product_id,"
            " array_agg(neighbour_product_id order by neighbour_rank)"
            " from intermediate.int_retrieval_neighbours where neighbour_rank <= %s"
            " group by 1, 2",
            (MAX_K,),
        ).fetchall()
    bad_ranks = sum(
        (rank or 0) != (r if (r := int(ranks[d][by_id[p]])) <= MAX_K else 0)
        for d, p, rank in got_ranks
    )
    bad_lists, gap = 0, 0.0
    for d, p, listed in got_lists:
        got, want = np.array([by_id[x] for x in listed]), lists[d][by_id[p]]
        if len(got) != len(want) or (got != want).any():
            bad_lists += 1
            queries, gallery = spaces[d]
            q = queries[by_id[p]].astype(np.float64)
            if len(got) == len(want):
                sims = gallery[np.concatenate([got, want])].astype(np.float64) @ q
                gap = max(gap, float(np.abs(sims[: len(got)] - sims[len(got) :]).max()))
            else:
                gap = 2.0
    hits = sum(rank is not None and rank <= 10 for _, _, rank in got_ranks)
    return bad_ranks, bad_lists, hits / len(got_ranks), gap


def bench_size(
    settings: ConnectionSettings, n: int, dim: int, searches: list[str], count: bool
) -> list[str]:
    sections, texts, images = planted(n, dim)
    texts, images = unit(texts), unit(images)
    spaces = [
        {
            "name": name,
            "modality": modality,
            "backend": "open_clip",
            "family": "bench",
            "model": "planted",
            "dim": dim,
        }
        for name, modality in (("bench_text", "text"), ("bench_image", "image"))
    ]
    lines = []

    # numpy first: ranks alone (the baseline of earlier runs) and ranks with top-K lists
    (np_ranks, np_ranks_wall, np_ranks_cpu) = timed(
        lambda: {
            d: numpy_ranks(*(texts, images)[:: 1 if d == "text_to_image" else -1])[0]
            for d in DIRECTIONS
        },
        time.process_time,
    )
    (np_both, np_wall, np_cpu) = timed(
        lambda: {
            d: numpy_ranks(*(texts, images)[:: 1 if d == "text_to_image" else -1], lists=True)
            for d in DIRECTIONS
        },
        time.process_time,
    )
    np_lists = {d: both[1] for d, both in np_both.items()}
    lines.append(
        f"N={n:>6} numpy f64: ranks {np_ranks_wall:6.1f}s (cpu {np_ranks_cpu:6.1f}s),"
        f" ranks+top-{MAX_K} lists {np_wall:6.1f}s (cpu {np_cpu:6.1f}s)"
    )
    print(lines[-1], flush=True)

    for search in searches:
        dbt_vars = {
            "embed_spaces": spaces,
            "embed_pairs": [
                {"name": "bench", "text_space": "bench_text", "image_space": "bench_image"}
            ],
            "eval_sample_size": n,
            "retrieval_search": search,
            "rerankers": [],
        }
        config = load_config(PROJECT_DIR, overrides=dbt_vars)
        ids = plant(
            settings,
            config,
            [f"section_{s}" for s in sections],
            {"bench_text": texts, "bench_image": images},
        )
        target = PROJECT_DIR / "target" / "bench"
        for step in (["seed"], ["run", "--select", "+int_eval_sample"]):
            run_dbt(step, settings, PROJECT_DIR, dbt_vars=dbt_vars, target_path=target, quiet=True)
        t = dbt_stages(settings, dbt_vars, target)
        bad_ranks, bad_lists, r10, gap = compare(
            settings,
            ids,
            np_ranks,
            np_lists,
            {"text_to_image": (texts, images), "image_to_text": (images, texts)},
        )
        lines.append(
            f"N={n:>6} {search:>5}: eval_vectors {t['int_eval_vectors']:6.1f}s"
            f"  ranks {t['ranks']:7.1f}s (cpu {t['ranks_cpu']:7.1f}s)"
            f"  metrics {t['metrics']:5.1f}s"
            f" | ranks / numpy ranks {t['ranks'] / np_ranks_wall:5.2f}x"
            f" (cpu {t['ranks_cpu'] / np_ranks_cpu:5.2f}x),"
            f" / numpy ranks+lists {t['ranks'] / np_wall:5.2f}x"
            f" (cpu {t['ranks_cpu'] / np_cpu:5.2f}x)"
            f" | R@10 {r10:.4f}; ranks unlike numpy {bad_ranks}, lists unlike numpy {bad_lists}"
            f" of {2 * n}" + (f" (largest similarity gap {gap:.1e})" if bad_lists else "")
        )
        print(lines[-1], flush=True)

        if count and search == searches[0]:
            counted, wall, cpu = timed(lambda: old_count(settings, dim), server_cpu)
            by_id = {p: i for i, p in enumerate(ids)}
            bad = sum(
                (rank or 0) != (r if (r := int(np_ranks[d][by_id[p]])) <= MAX_K else 0)
                for d, got in counted.items()
                for p, rank in got.items()
            )
            lines.append(
                f"N={n:>6} count (before top-K lists): {wall:7.1f}s (cpu {cpu:7.1f}s)"
                f" | / numpy ranks {wall / np_ranks_wall:5.2f}x (cpu {cpu / np_ranks_cpu:5.2f}x)"
                f" | top-K ranks stage / count {t['ranks'] / wall:5.2f}x"
                f" (cpu {t['ranks_cpu'] / cpu:5.2f}x); ranks unlike numpy {bad}"
            )
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument(
        "--search", nargs="+", default=["exact"], help="retrieval_search modes to time"
    )
    parser.add_argument(
        "--count-sizes",
        type=int,
        nargs="*",
        default=[5000, 20000],
        help="sizes at which to time the count formulation used before top-K lists",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    print(f"machine: {machine()}; dim {args.dim}; 1 pair, both directions; max(K) {MAX_K}")
    with scratch_database(args.keep) as settings:
        for n in args.sizes:
            bench_size(settings, n, args.dim, args.search, n in args.count_sizes)


if __name__ == "__main__":
    main()
