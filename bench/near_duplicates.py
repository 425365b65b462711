"""Benchmark: the near-duplicate search (int_near_duplicate_neighbours: one HNSW
index scan per product) against a brute-force numpy reference over all N^2
cosine distances, both in the same run, at N = 20,000 (384-d, like MiniLM).

    python bench/near_duplicates.py [--sizes 20000] [--dim 384] [--seqscan]

Prints, per size: seconds for the HNSW index build (int_dedup_vectors), the
search (hnsw.ef_search 100), numpy, the ratio search/numpy, how many of the
exact pairs below the threshold the index found, and with --seqscan the same
query with index scans disabled (a sequential top-N sort per product: N^2
distances in SQL; slow).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _scratch import PROJECT_DIR, machine, plant, scratch_database

from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt

MAX_DISTANCE = 0.02
K = 10
DUPLICATE_SHARE = 0.03


def planted(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors in 50 loose clusters; 3% are re-listings at cosine distance ~0.005
    of another product, and as many decoys sit at ~0.05, beyond the threshold."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, size=n)] + 1.5 * rng.normal(size=(n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    n_planted = int(n * DUPLICATE_SHARE)
    originals = rng.choice(n, size=2 * n_planted, replace=False)
    copies = rng.choice(np.setdiff1d(np.arange(n), originals), size=2 * n_planted, replace=False)
    for i, (source, target) in enumerate(zip(originals, copies, strict=True)):
        distance = 0.005 if i < n_planted else 0.05
        noise = rng.normal(size=dim)
        noise -= (noise @ vectors[source]) * vectors[source]
        noise /= np.linalg.norm(noise)
        angle = np.arccos(1 - distance)
        vectors[target] = np.cos(angle) * vectors[source] + np.sin(angle) * noise
    return vectors.astype(np.float32)


def numpy_pairs(
    vectors: np.ndarray, max_distance: float, block: int = 4096
) -> set[tuple[int, int]]:
    """Every pair (i < j) with cosine distance below max_distance, by brute force."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    pairs = set()
    for start in range(0, len(unit), block):
        sims = unit[start : start + block] @ unit.T
        rows, cols = np.nonzero(sims > 1 - max_distance)
        pairs.update((start + r, c) for r, c in zip(rows, cols, strict=True) if start + r < c)
    return pairs


def _model_seconds(result) -> float:
    spans = [
        (t.started_at, t.completed_at)
        for r in result.result.results
        if r.node.unique_id.startswith("model.")
        for t in r.timing
        if t.name == "execute"
    ]
    return (max(e for _, e in spans) - min(b for b, _ in spans)).total_seconds()


def bench_size(settings, n: int, dim: int, seqscan: bool) -> dict[str, float]:
    vectors = planted(n, dim)
    space = {
        "name": "bench_text",
        "modality": "text",
        "backend": "sentence_transformers",
        "family": "bench",
        "model": "planted",
        "dim": dim,
        "near_duplicates": True,
    }
    dbt_vars = {
        "embed_spaces": [space],
        "embed_pairs": [],
        "near_duplicate_max_distance": MAX_DISTANCE,
        "near_duplicate_k": K,
    }
    config = load_config(PROJECT_DIR, overrides=dbt_vars)
    ids = plant(settings, config, [None] * n, {"bench_text": vectors})

    target = PROJECT_DIR / "target" / "bench_near_duplicates"
    run_dbt(
        ["run", "--select", "+int_vectors_validated"],
        settings,
        PROJECT_DIR,
        dbt_vars=dbt_vars,
        target_path=target,
        quiet=True,
    )
    timings: dict[str, float] = {}
    for stage in ("int_dedup_vectors", "int_near_duplicate_neighbours"):
        result = run_dbt(
            ["run", "--select", stage],
            settings,
            PROJECT_DIR,
            dbt_vars=dbt_vars,
            target_path=target,
            quiet=True,
        )
        timings[stage] = _model_seconds(result)

    if seqscan:
        # the model's own SQL as dbt compiled it, with index scans off: a sequential scan
        # and a top-N sort per product (N^2 distances), what the index saves
        compiled = next((target / "compiled").rglob("int_near_duplicate_neighbours.sql"))
        with connection(settings) as conn:
            conn.execute("set enable_indexscan = off")
            conn.execute("set enable_bitmapscan = off")
            started = time.perf_counter()
            conn.execute(compiled.read_text()).fetchall()
            timings["sql_seqscan"] = time.perf_counter() - started

    started = time.perf_counter()
    exact = numpy_pairs(vectors, MAX_DISTANCE)
    timings["numpy"] = time.perf_counter() - started

    by_id = {product_id: i for i, product_id in enumerate(ids)}
    with connection(settings) as conn:
        found = {
            (by_id[a], by_id[b])
            for a, b in conn.execute(
                "select product_id, neighbour_id from intermediate.int_near_duplicate_neighbours"
            ).fetchall()
        }
    timings["ratio"] = timings["int_near_duplicate_neighbours"] / timings["numpy"]
    timings["pairs_exact"] = len(exact)
    timings["pairs_found"] = len(found & exact)
    timings["pairs_extra"] = len(found - exact)
    return timings


def _format(t: dict[str, float]) -> str:
    line = (
        f"HNSW build {t['int_dedup_vectors']:5.1f}s"
        f"  search {t['int_near_duplicate_neighbours']:5.1f}s"
        f" | numpy {t['numpy']:5.1f}s  ratio search/numpy {t['ratio']:5.2f}x"
        f" | pairs below {MAX_DISTANCE}: {t['pairs_found']:.0f} of {t['pairs_exact']:.0f} found,"
        f" {t['pairs_extra']:.0f} extra"
    )
    if "sql_seqscan" in t:
        line += f" | without the index {t['sql_seqscan']:6.1f}s"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument(
        "--seqscan", action="store_true", help="also time the search without the index (slow)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    with scratch_database(args.keep) as settings:
        print(
            f"machine: {machine()}; dim {args.dim}; "
            f"k {K}, threshold {MAX_DISTANCE}, {DUPLICATE_SHARE:.0%} planted near duplicates"
        )
        for n in args.sizes:
            t = bench_size(settings, n, args.dim, args.seqscan)
            print(f"N={n:>6}: {_format(t)}", flush=True)


if __name__ == "__main__":
    main()
