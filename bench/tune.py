"""Benchmark: `embed-udfs tune` on a 20,000-row planted space and on the demo's spaces:
the recall/latency curve of every gallery and the job's run time, each index latency
as a ratio to the exact sequential scan timed in the same run.

    python bench/tune.py [--sizes 20000] [--dim 512] [--ef-search 50,100,...] [--demo]

--demo tunes the galleries of the project's own database, as `embed-udfs demo run`
leaves it (run that first).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _scratch import PROJECT_DIR, machine, plant, scratch_database

from embed_udfs.config import load_config
from embed_udfs.db import resolve_settings
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.jobs.tune.job import TuneOptions, TuneSummary, tune

SECTIONS = 10


def planted(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Section clusters, noisy text/image pairs (as bench/retrieval.py plants them)."""
    rng = np.random.default_rng(seed)
    sections = rng.integers(0, SECTIONS, size=n)
    centres = rng.normal(size=(SECTIONS, dim)).astype(np.float32)
    base = centres[sections] + rng.normal(size=(n, dim)).astype(np.float32)
    texts = base + 4.0 * rng.normal(size=(n, dim)).astype(np.float32)
    images = base + 4.0 * rng.normal(size=(n, dim)).astype(np.float32)
    return sections, texts, images


def print_curves(summary: TuneSummary) -> None:
    for target in summary.targets:
        print(f"\n{target.target}: {target.gallery_rows} rows, {target.queries} queries")
        if target.skipped:
            print(f"  skipped: {target.skipped}")
            continue
        print(
            "  setting            recall@10  recall@depth  R@10 bias  MRR bias   p50 ms   "
            "p95 ms  exact/p50"
        )
        for point in target.points:
            depth = max(point.recall)
            mrr = next((k for k in point.retrieval if k.startswith("mrr")), None)
            r10 = point.retrieval.get("recall_at_10")
            exact = target.exact_figures
            print(
                f"  {point.setting.label():<18} {point.recall[10]:9.4f}"
                f"  {point.recall[depth]:12.4f}"
                f"  {(r10 - exact['recall_at_10']) if r10 is not None else float('nan'):+9.4f}"
                f"  {(point.retrieval[mrr] - exact[mrr]) if mrr else float('nan'):+8.4f}"
                f"  {point.p50_ms:7.3f}  {point.p95_ms:7.3f}"
                f"  {target.exact_p50_ms / point.p50_ms:8.1f}x"
                + ("  <- chosen" if point is target.chosen else "")
            )
        print(f"  exact scan p50 {target.exact_p50_ms:.3f} ms; measured in {target.seconds:.1f} s")
        print("  " + target.line().splitlines()[0])


def bench_planted(n: int, dim: int, queries: int, grid: tuple[int, ...] | None) -> None:
    sections, texts, images = planted(n, dim)
    space = {"modality": "text", "backend": "open_clip", "family": "bench", "model": "planted"}
    dbt_vars = {
        "embed_spaces": [
            {**space, "name": "bench_text", "dim": dim},
            {**space, "name": "bench_image", "modality": "image", "dim": dim},
        ],
        "embed_pairs": [
            {"name": "bench", "text_space": "bench_text", "image_space": "bench_image"}
        ],
        "eval_sample_size": n,
        "ann_tuning_queries": queries,
    }
    config = load_config(PROJECT_DIR, overrides=dbt_vars)
    with scratch_database() as settings:
        plant(
            settings,
            config,
            [f"section_{s}" for s in sections],
            {"bench_text": texts, "bench_image": images},
        )
        target = PROJECT_DIR / "target" / "bench"
        for step in (["seed"], ["run", "--select", "+int_ann_tuning_vectors"]):
            run_dbt(step, settings, PROJECT_DIR, dbt_vars=dbt_vars, target_path=target, quiet=True)
        started = time.perf_counter()
        summary = tune(settings, config, TuneOptions(ef_search_grid=grid))
        seconds = time.perf_counter() - started
    print(f"\n== planted N = {n}, {dim}-d, {queries} queries per gallery ==")
    print_curves(summary)
    print(
        f"\ntune job: {seconds:.1f} s for {len(summary.targets)} galleries (index builds included)"
    )


def bench_demo() -> None:
    config = load_config(PROJECT_DIR)
    settings = resolve_settings(PROJECT_DIR)
    started = time.perf_counter()
    summary = tune(settings, config)
    seconds = time.perf_counter() - started
    print(f"\n== demo spaces, {config.ann.queries} queries per gallery ==")
    print_curves(summary)
    print(
        f"\ntune job: {seconds:.1f} s for {len(summary.targets)} galleries (index builds included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--ef-search",
        type=lambda text: tuple(int(v) for v in text.split(",")),
        help="the planted space's grid, e.g. 50,100,200,400,800,1600 (default the project's)",
    )
    parser.add_argument("--demo", action="store_true", help="also tune the demo's database")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    for n in args.sizes:
        bench_planted(n, args.dim, args.queries, args.ef_search)
    if args.demo:
        bench_demo()


if __name__ == "__main__":
    main()
