"""Benchmark: the retrieval-metric build in SQL (pgvector HNSW) against numpy
brute-force ranks computed in the same run, at N = 5,000 and 20,000 (512-d).

    python bench/retrieval.py [--sizes 5000 20000] [--dim 512]

Prints, per size: seconds for each SQL stage and for numpy, the ratio
SQL/numpy, and how well R@10 agrees (overall and per query).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _scratch import PROJECT_DIR, machine, plant, scratch_database
from psycopg import sql

from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt

SECTIONS = 10


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


def numpy_ranks(queries: np.ndarray, gallery: np.ndarray, block: int = 2048) -> np.ndarray:
    """1 + gallery items strictly closer than the positive, by cosine, in blocks.

    float64, and the positive's similarity is read off the same matrix, so the
    positive never counts as closer than itself.
    """
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    q, g = q.astype(np.float64), g.astype(np.float64)
    ranks = np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), block):
        sims = q[start : start + block] @ g.T
        rows = np.arange(len(sims))
        positive = sims[rows, start + rows]
        ranks[start : start + block] = 1 + (sims > positive[:, None]).sum(axis=1)
    return ranks


def bench_size(settings, n: int, dim: int, search: str) -> dict[str, float]:
    sections, texts, images = planted(n, dim)
    dbt_vars = {
        "embed_spaces": [
            {
                "name": "bench_text",
                "modality": "text",
                "backend": "open_clip",
                "family": "bench",
                "model": "planted",
                "dim": dim,
            },
            {
                "name": "bench_image",
                "modality": "image",
                "backend": "open_clip",
                "family": "bench",
                "model": "planted",
                "dim": dim,
            },
        ],
        "embed_pairs": [
            {"name": "bench", "text_space": "bench_text", "image_space": "bench_image"}
        ],
        "eval_sample_size": n,
        "retrieval_search": search,
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
    timings: dict[str, float] = {}
    stages = {
        "int_eval_vectors": ["int_eval_vectors"],
        # the top-K lists (one model per direction) and the ranks counted in them
        "ranks": [
            "int_text_to_image_neighbours",
            "int_image_to_text_neighbours",
            "int_retrieval_neighbours",
            "fct_retrieval_ranks",
        ],
        # per-query scores (recall, MRR, nDCG, section purity) and their aggregation
        "fct_retrieval_metrics": ["fct_retrieval_scores", "fct_retrieval_metrics"],
    }
    for stage, models in stages.items():
        # the models' own execution span (hooks, e.g. index builds, included), not dbt's start-up;
        # the two neighbour models run concurrently on dbt's two threads
        result = run_dbt(
            ["run", "--select", *models],
            settings,
            PROJECT_DIR,
            dbt_vars=dbt_vars,
            target_path=target,
            quiet=True,
        )
        spans = [
            (t.started_at, t.completed_at)
            for r in result.result.results
            if r.node.unique_id.startswith("model.")
            for t in r.timing
            if t.name == "execute"
        ]
        timings[stage] = (max(e for _, e in spans) - min(b for b, _ in spans)).total_seconds()

    started = time.perf_counter()
    ranks = {
        "text_to_image": numpy_ranks(texts, images),
        "image_to_text": numpy_ranks(images, texts),
    }
    timings["numpy"] = time.perf_counter() - started

    with connection(settings) as conn:
        rows = conn.execute(
            "select direction, product_id, positive_rank from metrics.fct_retrieval_ranks"
        ).fetchall()
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                sql.SQL(
                    "explain select 1 from intermediate.int_eval_vectors "
                    "where space = 'bench_image' order by embedding::vector({dim}) <=> "
                    "(select embedding::vector({dim}) from intermediate.int_eval_vectors limit 1) "
                    "limit 50"
                ).format(dim=sql.Literal(dim))
            ).fetchall()
        )
    by_id = {product_id: i for i, product_id in enumerate(ids)}
    agree, sql_hits, np_hits = 0, 0, 0
    for direction, product_id, rank in rows:
        np_rank = ranks[direction][by_id[product_id]]
        sql_hit = rank is not None and rank <= 10
        np_hit = np_rank <= 10
        agree += sql_hit == np_hit
        sql_hits += sql_hit
        np_hits += np_hit
    timings["sql_total"] = sum(timings[s] for s in stages)
    timings["ratio"] = timings["sql_total"] / timings["numpy"]
    timings["r10_sql"] = sql_hits / len(rows)
    timings["r10_numpy"] = np_hits / len(rows)
    timings["r10_query_agreement"] = agree / len(rows)
    timings["uses_hnsw"] = float("hnsw" in plan.lower() or "Index Scan" in plan)
    return timings


def _format(t: dict[str, float]) -> str:
    return (
        f"eval_vectors+HNSW {t['int_eval_vectors']:6.1f}s  ranks {t['ranks']:6.1f}s"
        f"  metrics {t['fct_retrieval_metrics']:5.1f}s | SQL {t['sql_total']:6.1f}s"
        f"  numpy {t['numpy']:5.1f}s  ratio SQL/numpy {t['ratio']:5.1f}x"
        f" | R@10 SQL {t['r10_sql']:.4f} numpy {t['r10_numpy']:.4f},"
        f" per-query agreement {t['r10_query_agreement']:.4f}"
        + ("" if t["uses_hnsw"] else "  (planner did not use HNSW)")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument(
        "--search",
        nargs="+",
        default=["hnsw", "exact"],
        help="retrieval_search modes to time (default: both)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    with scratch_database(args.keep) as settings:
        print(f"machine: {machine()}; dim {args.dim}; 1 pair, both directions")
        for n in args.sizes:
            for search in args.search:
                t = bench_size(settings, n, args.dim, search)
                print(f"N={n:>6} {search:>5}: {_format(t)}", flush=True)


if __name__ == "__main__":
    main()
