"""Benchmark: exact top-max(K) neighbour lists and positive ranks in SQL
(PostgreSQL + pgvector, no index) against numpy brute force in the same run.

    python bench/exact_ranks.py [--sizes 5000 20000 50000] [--max-k 50]
        [--formulations INDEX ...] [--repeat 2]

(--help lists the formulations; the default times exact_neighbours, the
bounded block scan per direction, and exact_pairs, both directions from one
pass over the pairs, split over two connections.)

For each size: plants hard 512-d unit vectors (section clusters under heavy
noise, as bench/retrieval.py does, plus identical vectors and a section of one
product), loads them into a scratch database, and for both directions times
each SQL formulation (materialising one row per query and neighbour, as a
model does) and numpy (chunked matrix product + argpartition, in a child
process without this environment's OPENBLAS_* overrides, which make it about
1.7x slower here). Prints seconds (min over --repeat runs), the ratio to numpy
in float64 (the reference) and float32, and whether every query's rank and
neighbour list is identical to numpy's float64 answer.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
from _scratch import PROJECT_DIR, machine, scratch_database
from psycopg import sql
from tqdm import tqdm

from embed_udfs.db import ConnectionSettings, connection

log = logging.getLogger("exact_ranks")

SECTIONS = 10
DIRECTIONS = {"text_to_image": ("text", "image"), "image_to_text": ("image", "text")}


# --- planted data -----------------------------------------------------------


def planted(n: int, dim: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sections, text and image unit vectors (float32, as the store writes them).

    Section clusters under heavy noise (hard: R@10 about 0.1 at 20,000), the
    last product alone in its section, and 1% of products sharing another's
    image and 1% another's text vector exactly (ties at every distance).
    """
    rng = np.random.default_rng(seed)
    sections = [f"section_{s}" for s in rng.integers(0, SECTIONS, size=n)]
    sections[-1] = "section_solo"
    centres = rng.normal(size=(SECTIONS + 1, dim)).astype(np.float32)
    index = np.array([int(s.split("_")[1]) if s[-1].isdigit() else SECTIONS for s in sections])
    base = centres[index] + rng.normal(size=(n, dim)).astype(np.float32)
    texts = base + 4.0 * rng.normal(size=(n, dim)).astype(np.float32)
    images = base + 4.0 * rng.normal(size=(n, dim)).astype(np.float32)
    for matrix in (texts, images):
        copies = rng.choice(n, size=(max(1, n // 100), 2), replace=False)
        matrix[copies[:, 0]] = matrix[copies[:, 1]]

    def unit(m: np.ndarray) -> np.ndarray:
        return (m / np.linalg.norm(m.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)

    return sections, unit(texts), unit(images)


# --- numpy baseline and reference ---------------------------------------------


def numpy_neighbours(
    queries: np.ndarray,
    gallery: np.ndarray,
    max_k: int,
    dtype: type,
    exact_ties: bool = False,
    block: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-max_k gallery indices per query (by similarity, ties by index) and
    the positive's rank (query i's positive is gallery row i; 0 when max_k or
    more items are strictly closer).

    exact_ties (the reference, untimed): similarities against the distinct
    gallery vectors only, so identical vectors tie exactly whatever path the
    BLAS kernel takes (the timed baseline skips this).
    """
    if exact_ties:
        distinct, inverse = np.unique(gallery, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        distinct, inverse = gallery, slice(None)
    q, g = queries.astype(dtype), distinct.astype(dtype)
    n = len(queries)
    lists = np.empty((n, max_k), dtype=np.int64)
    ranks = np.empty(n, dtype=np.int64)
    order = np.arange(len(gallery))
    for start in range(0, n, block):
        sims = (q[start : start + block] @ g.T)[:, inverse]
        rows = np.arange(len(sims))
        positive = sims[rows, start + rows]
        closer = (sims > positive[:, None]).sum(axis=1)
        ranks[start : start + block] = np.where(closer < max_k, closer + 1, 0)
        top = np.argpartition(-sims, max_k - 1, axis=1)[:, :max_k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        kth = top_sims.min(axis=1)
        # rows where the max_k-th similarity is shared with items left out
        crowded = np.nonzero((sims >= kth[:, None]).sum(axis=1) > max_k)[0]
        for r in crowded:
            candidates = order[sims[r] >= kth[r]]
            top[r] = candidates[np.lexsort((candidates, -sims[r, candidates]))][:max_k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        by_rank = np.lexsort((top, -top_sims), axis=1)
        lists[start : start + block] = np.take_along_axis(top, by_rank, axis=1)
    return lists, ranks


def numpy_child(data: Path, out: Path, max_k: int, repeat: int) -> None:
    """Run in a child process: time both directions in float64 and float32."""
    arrays = np.load(data)
    spaces = {"text": arrays["text"], "image": arrays["image"]}
    result: dict[str, float] = {}
    answers: dict[str, np.ndarray] = {}
    for dtype in (np.float64, np.float32):
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            for query, gallery in DIRECTIONS.values():
                numpy_neighbours(spaces[query], spaces[gallery], max_k, dtype)
            times.append(time.perf_counter() - started)
        result[dtype.__name__] = min(times)
    for direction, (query, gallery) in DIRECTIONS.items():
        lists, ranks = numpy_neighbours(
            spaces[query], spaces[gallery], max_k, np.float64, exact_ties=True
        )
        answers[f"float64_{direction}_lists"] = lists
        answers[f"float64_{direction}_ranks"] = ranks
    np.savez(out, **answers)
    out.with_suffix(".json").write_text(json.dumps(result))


def run_numpy(texts: np.ndarray, images: np.ndarray, max_k: int, repeat: int) -> tuple[dict, dict]:
    """numpy in a child process without the OPENBLAS_* overrides."""
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "answers.npz"
        np.savez(data, text=texts, image=images)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--numpy-child",
                str(data),
                str(out),
                str(max_k),
                str(repeat),
            ],
            env=env,
            check=True,
        )
        answers = dict(np.load(out))
        return json.loads(out.with_suffix(".json").read_text()), answers


# --- SQL formulations ----------------------------------------------------------


def macros() -> jinja2.runtime.TemplateModule:
    """exact_neighbours (macros/exact_search.sql) and the formulations it superseded
    (bench/sql/exact_search_alternatives.sql) as plain Jinja: they use no dbt context."""
    files = (
        PROJECT_DIR / "macros" / "exact_search.sql",
        PROJECT_DIR / "bench" / "sql" / "exact_search_alternatives.sql",
    )
    text = "\n".join(path.read_text() for path in files)
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).module


@dataclass(frozen=True)
class Formulation:
    name: str
    layout: str  # "table" (one table per space), "filter" or "tid" (one table, rows by space)
    workers: int
    sample: Callable[[int, int], int]  # (N, max_k) -> sample_size; 0: no bound
    cosine: bool = False  # order by <=> instead of <#>
    function: bool = False  # exact_neighbours_parallel: a PARALLEL SAFE function per query
    blocked: tuple[int, int] | None = None  # exact_neighbours_merge: (block_pages, sample_blocks)
    walk: int = 0  # exact_neighbours_walk (the recursive walk): block_pages
    block_rows: int = 0  # exact_neighbours (bounded block scan): vectors per block
    parts: int = 0  # exact_pairs: both directions from one pass, split over this many connections


def sqrt_sample(n: int, max_k: int) -> int:
    return min(n, int(math.sqrt(n * max_k)))


FORMULATIONS = [
    Formulation("per_query, cosine <=>", "table", 0, lambda n, k: 0, cosine=True),
    Formulation("per_query", "table", 0, lambda n, k: 0),
    Formulation("per_query, 2 workers", "table", 2, lambda n, k: 0),
    Formulation("per_query, bound sqrt(NK) rows", "table", 0, sqrt_sample),
    Formulation("per_query, bound sqrt(NK) rows, 2 workers", "table", 2, sqrt_sample),
    Formulation(
        "per_query, bound 4 sqrt(NK) rows, 2 workers",
        "table",
        2,
        lambda n, k: min(n, 4 * sqrt_sample(n, k)),
    ),
    Formulation(
        "per_query, bound sqrt(NK), 2 workers, shared table filtered", "filter", 2, sqrt_sample
    ),
    Formulation(
        "per_query, bound sqrt(NK), 2 workers, shared table TID range", "tid", 2, sqrt_sample
    ),
    Formulation(
        "parallel function, no bound, 2 workers", "table", 2, lambda n, k: 0, function=True
    ),
    Formulation(
        "parallel function, bound sqrt(NK), 2 workers", "table", 2, sqrt_sample, function=True
    ),
    Formulation(
        "parallel function, bound sqrt(NK), 1 worker", "table", 1, sqrt_sample, function=True
    ),
    Formulation(
        "parallel function, bound sqrt(NK), 2 workers, shared TID range",
        "tid",
        2,
        sqrt_sample,
        function=True,
    ),
    Formulation(
        "merge, 128 pages, bound from 1 block", "table", 0, lambda n, k: 0, blocked=(128, 1)
    ),
    Formulation(
        "merge, 512 pages, bound from 1 block", "table", 0, lambda n, k: 0, blocked=(512, 1)
    ),
    Formulation(
        "merge, 512 pages, bound from 2 blocks", "table", 0, lambda n, k: 0, blocked=(512, 2)
    ),
    Formulation(
        "merge, 1024 pages, bound from 1 block", "table", 0, lambda n, k: 0, blocked=(1024, 1)
    ),
    Formulation("exact_neighbours_walk, 128 pages", "table", 0, lambda n, k: 0, walk=128),
    Formulation("exact_neighbours_walk, 512 pages", "table", 0, lambda n, k: 0, walk=512),
    Formulation("exact_neighbours_walk, 1024 pages", "table", 0, lambda n, k: 0, walk=1024),
    Formulation(
        "exact_neighbours, blocks of 256 vectors", "table", 0, lambda n, k: 0, block_rows=256
    ),
    Formulation(
        "exact_neighbours, blocks of 512 vectors", "table", 0, lambda n, k: 0, block_rows=512
    ),
    Formulation(
        "exact_pairs, both directions at once, 2 parts", "table", 0, lambda n, k: 0, parts=2
    ),
]


WINNER = next(i for i, f in enumerate(FORMULATIONS) if f.block_rows == 256)
SHARED = next(i for i, f in enumerate(FORMULATIONS) if f.parts == 2)
WALK = next(i for i, f in enumerate(FORMULATIONS) if f.walk == 128)


def relation(layout: str, space: str, pages: dict[str, tuple[int, int]]) -> str:
    if layout == "table":
        return f"eval_{space}"
    if layout == "filter":
        return f"(select * from eval_vectors where space = '{space}')"
    first, last = pages[space]
    return (
        f"(select * from eval_vectors where ctid >= '({first},0)'::tid"
        f" and ctid < '({last + 1},0)'::tid and space = '{space}')"
    )


def formulation_sql(
    f: Formulation,
    query: str,
    gallery: str,
    n: int,
    dim: int,
    max_k: int,
    pages: dict[str, tuple[int, int]],
) -> str:
    """The statement, preceded by the function's DDL where it uses one."""
    if f.block_rows:
        return macros().exact_neighbours(
            relation(f.layout, query, pages),
            relation(f.layout, gallery, pages),
            dim,
            max_k,
            f.block_rows,
        )
    if f.walk:
        return macros().exact_neighbours_walk(
            relation(f.layout, query, pages), relation(f.layout, gallery, pages), dim, max_k, f.walk
        )
    if f.blocked:
        return macros().exact_neighbours_merge(
            relation(f.layout, query, pages),
            relation(f.layout, gallery, pages),
            dim,
            max_k,
            *f.blocked,
        )
    if f.function:
        name = f"exact_top_k_{gallery}"
        g = relation(f.layout, gallery, pages)
        ddl = macros().exact_search_function(name, g, dim, max_k, f.sample(n, max_k))
        text = macros().exact_neighbours_parallel(
            relation(f.layout, query, pages), g, name, dim, max_k
        )
        return f"{ddl};\n{text}"
    text = macros().exact_neighbours_per_query(
        relation(f.layout, query, pages),
        relation(f.layout, gallery, pages),
        dim,
        max_k,
        f.sample(n, max_k),
    )
    if f.cosine:
        # the same plan ordered by cosine distance itself: the operator the models use today
        text = text.replace("<#>", "<=>").replace("1 + nip", "nip")
        text = text.replace("1 + positive_nip", "positive_nip")
    return text


# --- database -----------------------------------------------------------------


def load(
    settings: ConnectionSettings, sections: list[str], spaces: dict[str, np.ndarray], dim: int
) -> dict[str, tuple[int, int]]:
    """One plain-storage table per space and one shared table with each space's
    rows contiguous; returns each space's heap page range in the shared one."""
    ids = [f"P{i:06d}" for i in range(len(sections))]
    with connection(settings) as conn:
        for table in ["eval_vectors", *(f"eval_{s}" for s in spaces)]:
            conn.execute(
                sql.SQL(
                    "create table {} (space text, product_id text, collection_section text,"
                    " embedding vector({})) with (toast_tuple_target = 8160)"
                ).format(sql.Identifier(table), sql.Literal(dim))
            )
            conn.execute(
                sql.SQL("alter table {} alter column embedding set storage plain").format(
                    sql.Identifier(table)
                )
            )
            for space, matrix in spaces.items():
                if table not in ("eval_vectors", f"eval_{space}"):
                    continue
                with conn.cursor().copy(
                    sql.SQL(
                        "copy {} (space, product_id, collection_section, embedding)"
                        " from stdin (format binary)"
                    ).format(sql.Identifier(table))
                ) as copy:
                    copy.set_types(["text", "text", "text", "vector"])
                    for product_id, section, vector in zip(ids, sections, matrix, strict=True):
                        copy.write_row((space, product_id, section, vector))
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier(table)))
        pages = {
            space: tuple(
                conn.execute(
                    "select min((ctid::text::point)[0])::int, max((ctid::text::point)[0])::int"
                    " from eval_vectors where space = %s",
                    (space,),
                ).fetchone()
            )
            for space in spaces
        }
        conn.commit()
    return pages


def run_direction(
    settings: ConnectionSettings,
    f: Formulation,
    direction: str,
    n: int,
    dim: int,
    max_k: int,
    pages: dict[str, tuple[int, int]],
) -> tuple[float, list]:
    query, gallery = DIRECTIONS[direction]
    text = formulation_sql(f, query, gallery, n, dim, max_k, pages)
    out = sql.Identifier(f"exact_out_{direction}")
    with connection(settings) as conn:
        conn.execute(sql.SQL("drop table if exists {}").format(out))
        conn.execute(f"set max_parallel_workers_per_gather = {f.workers}")
        for setting in (
            "parallel_setup_cost",
            "parallel_tuple_cost",
            "min_parallel_table_scan_size",
        ):
            conn.execute(f"set {setting} = 0")
        conn.execute("set work_mem = '256MB'")
        ddl, _, text = text.rpartition(";\n")
        if ddl:
            conn.execute(ddl)
        started = time.perf_counter()
        conn.execute(sql.SQL("create table {} as ").format(out).as_string(conn) + text)
        conn.commit()
        elapsed = time.perf_counter() - started
        rows = conn.execute(
            sql.SQL(
                "select query_product_id, neighbour_rank, neighbour_product_id, positive_rank"
                " from {}"
            ).format(out)
        ).fetchall()
    return elapsed, rows


def _run(settings: ConnectionSettings, statements: list[str]) -> None:
    with connection(settings) as conn:
        conn.execute("set work_mem = '1GB'")
        conn.execute("set max_parallel_workers_per_gather = 0")
        for statement in statements:
            conn.execute(statement)
        conn.commit()


def run_shared(
    settings: ConnectionSettings, f: Formulation, dim: int, max_k: int
) -> tuple[float, dict]:
    """exact_pairs: each part's (text, image) pairs on its own connection at once, then
    each direction's lists from their union on its own connection at once."""
    parts = [f"exact_pairs_{p}" for p in range(f.parts)]
    union = "(" + " union all ".join(f"select * from {t}" for t in parts) + ")"
    drops = [f"drop table if exists {t}" for t in [*parts, "exact_positives"]] + [
        f"drop table if exists exact_out_{d}" for d in DIRECTIONS
    ]
    _run(settings, drops)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=f.parts) as pool:
        runs = [
            pool.submit(
                _run,
                settings,
                [
                    f"create table {table} as "
                    + macros().exact_pairs("eval_text", "eval_image", dim, max_k, p, f.parts)
                ],
            )
            for p, table in enumerate(parts)
        ]
        for run in runs:
            run.result()
    _run(
        settings,
        [
            "create table exact_positives as select t.product_id, i.embedding <#> t.embedding"
            " as nip from eval_text as t join eval_image as i using (product_id)"
        ],
    )
    with ThreadPoolExecutor(max_workers=len(DIRECTIONS)) as pool:
        runs = [
            pool.submit(
                _run,
                settings,
                [
                    f"create table exact_out_{d} as "
                    + macros().exact_lists_from_pairs(union, "exact_positives", d, max_k)
                ],
            )
            for d in DIRECTIONS
        ]
        for run in runs:
            run.result()
    elapsed = time.perf_counter() - started
    with connection(settings) as conn:
        rows = {
            d: conn.execute(
                f"select query_product_id, neighbour_rank, neighbour_product_id, positive_rank"
                f" from exact_out_{d}"
            ).fetchall()
            for d in DIRECTIONS
        }
    return elapsed, rows


def time_formulation(
    settings: ConnectionSettings,
    f: Formulation,
    n: int,
    dim: int,
    max_k: int,
    pages: dict[str, tuple[int, int]],
    repeat: int,
) -> tuple[float, dict]:
    """Min over runs of both directions materialised; the rows of the last run.

    Serial formulations run the two directions at once on two connections, as
    dbt runs the two per-direction models on its two threads; parallel ones
    one after the other (their workers already take both cores).
    """
    times, rows = [], {}
    if f.parts:
        for _ in range(repeat):
            seconds, rows = run_shared(settings, f, dim, max_k)
            times.append(seconds)
        return min(times), rows
    for _ in range(repeat):
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1 if f.workers else len(DIRECTIONS)) as pool:
            runs = {
                d: pool.submit(run_direction, settings, f, d, n, dim, max_k, pages)
                for d in DIRECTIONS
            }
            rows = {d: run.result()[1] for d, run in runs.items()}
        times.append(time.perf_counter() - started)
    return min(times), rows


def compare(
    rows: dict, answers: dict, spaces: dict[str, np.ndarray], n: int, max_k: int
) -> tuple[int, int, float]:
    """Queries whose rank, and whose neighbour list, differ from numpy float64,
    and the largest float64 distance gap behind a difference (between the
    items swapped, or between the positive and its nearest other item):
    pgvector sums in float32, so distances closer than about 1e-7 may tie or
    swap."""
    bad_ranks, bad_lists, gap = 0, 0, 0.0
    for direction, (query, gallery) in DIRECTIONS.items():
        lists = np.full((n, max_k), -1, dtype=np.int64)
        ranks = np.full(n, -1, dtype=np.int64)
        for query_id, neighbour_rank, neighbour_id, rank in rows[direction]:
            q = int(query_id[1:])
            lists[q, neighbour_rank - 1] = int(neighbour_id[1:])
            ranks[q] = rank or 0
        expected = answers[f"float64_{direction}_lists"]
        wrong = np.nonzero(ranks != answers[f"float64_{direction}_ranks"])[0]
        bad_ranks += len(wrong)
        q64, g64 = spaces[query].astype(np.float64), spaces[gallery].astype(np.float64)
        for q in wrong:
            # the positive's nearest other distance: a near tie float32 resolved otherwise
            sims = g64 @ q64[q]
            others = np.abs(np.delete(sims, q) - sims[q])
            gap = max(gap, float(others[others > 0].min()))
        differ = np.nonzero((lists != expected).any(axis=1))[0]
        bad_lists += len(differ)
        for q in differ:
            got = g64[np.maximum(lists[q], 0)] @ q64[q]
            want = g64[expected[q]] @ q64[q]
            gap = max(gap, float(np.abs(got - want).max()) if (lists[q] >= 0).all() else 2.0)
    return bad_ranks, bad_lists, gap


def explain(
    settings: ConnectionSettings,
    f: Formulation,
    n: int,
    dim: int,
    max_k: int,
    pages: dict[str, tuple[int, int]],
) -> str:
    text = formulation_sql(f, "text", "image", n, dim, max_k, pages)
    with connection(settings) as conn:
        conn.execute(f"set max_parallel_workers_per_gather = {f.workers}")
        for setting in (
            "parallel_setup_cost",
            "parallel_tuple_cost",
            "min_parallel_table_scan_size",
        ):
            conn.execute(f"set {setting} = 0")
        ddl, _, text = text.rpartition(";\n")
        if ddl:
            conn.execute(ddl)
        return "\n".join(r[0] for r in conn.execute(f"explain {text}").fetchall())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--numpy-child":
        numpy_child(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--max-k", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=2, help="runs per timing; the min is kept")
    parser.add_argument(
        "--formulations",
        nargs="+",
        type=int,
        default=[WINNER, SHARED],
        help="indices into: " + "; ".join(f"{i} {f.name}" for i, f in enumerate(FORMULATIONS)),
    )
    parser.add_argument("--explain", action="store_true", help="log each formulation's plan")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    print(
        f"machine: {machine()}; dim {args.dim}; max(K) {args.max_k}; both directions;"
        f" min of {args.repeat} runs"
    )
    for n in args.sizes:
        sections, texts, images = planted(n, args.dim)
        timings, answers = run_numpy(texts, images, args.max_k, args.repeat)
        print(
            f"N={n:>6} numpy float64 {timings['float64']:7.2f}s"
            f"  float32 {timings['float32']:7.2f}s",
            flush=True,
        )
        with scratch_database(args.keep) as settings:
            with connection(settings) as conn:
                conn.execute("create extension if not exists vector")
                conn.commit()
            pages = load(settings, sections, {"text": texts, "image": images}, args.dim)
            for i in tqdm(args.formulations, desc=f"N={n}", file=sys.stderr):
                f = FORMULATIONS[i]
                if args.explain:
                    log.info("%s\n%s", f.name, explain(settings, f, n, args.dim, args.max_k, pages))
                seconds, rows = time_formulation(
                    settings, f, n, args.dim, args.max_k, pages, args.repeat
                )
                bad_ranks, bad_lists, gap = compare(
                    rows, answers, {"text": texts, "image": images}, n, args.max_k
                )
                identical = (
                    "yes"
                    if bad_ranks == bad_lists == 0
                    else (
                        f"NO ({bad_ranks} ranks, {bad_lists} lists of {2 * n};"
                        f" largest distance gap {gap:.1e})"
                    )
                )
                print(
                    f"N={n:>6} {f.name:<58} {seconds:8.2f}s"
                    f"  /numpy64 {seconds / timings['float64']:5.2f}x"
                    f"  /numpy32 {seconds / timings['float32']:5.2f}x  identical {identical}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
