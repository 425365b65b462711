"""Benchmark: the whole pipeline on synthetic catalogs of growing size, to see which
steps grow with the catalog and which stay bounded by the sample.

    python bench/scale.py [--sizes 100000 1000000] [--dim 32] [--changed 0.01] [--keep]

For each size, in a scratch database: products loaded with COPY (against a plain COPY
of the same rows into a table with no key, the baseline), planted vectors written the
way the backfill writes them (store.write_vectors: binary COPY), then three refreshes
with --skip-backfill (the vectors are planted): the first, one with nothing changed,
and one after 1% of the catalog changed (texts with their vectors, sections, removed
and new products). Also: recall of the planted near-duplicate pairs in
int_near_duplicate_neighbours against a numpy brute force over all pairs (timed, up to
--numpy-max products), the database size, and the peak RSS of this process (dbt runs
in it) and of every PostgreSQL process of the server. Between sizes it prints each
step's growth exponent, log(t2 / t1) / log(N2 / N1): 1 is linear, 0 is flat.

Planted data: 40 sections of loose clusters; a product's image vector is its base
vector, its text vector the base plus noise, so R@K is neither 0 nor 1 and falls as
the gallery grows; 0.5% of products are re-listings of another at cosine distance
about 0.005 in both spaces (under the 0.02 threshold), with different text.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _scratch import PROJECT_DIR, machine, scratch_database

from embed_udfs import pipeline, store
from embed_udfs.config import ProjectConfig, load_config
from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.store import PRODUCTS_DDL

SECTIONS = 40
CHUNK = 50_000
MAX_DISTANCE = 0.02
DUPLICATE_SHARE = 0.005
WORDS = ["red", "blue", "green", "black", "leather", "canvas", "wool", "cotton", "vintage"]
WORDS += ["modern", "tote", "lamp", "chair", "boot"]


def dbt_vars(dim: int) -> dict[str, Any]:
    space = {"backend": "open_clip", "family": "bench", "model": "planted", "dim": dim}
    return {
        "embed_spaces": [
            {"name": "t", "modality": "text", **space, "near_duplicates": True},
            {"name": "i", "modality": "image", **space},
        ],
        "embed_pairs": [{"name": "planted", "text_space": "t", "image_space": "i"}],
        "near_duplicate_max_distance": MAX_DISTANCE,
        "label_pca_dims": ["none"],
        "label_kmeans_seeds": [0],
    }


class Catalog:
    """The synthetic catalog, generated chunk by chunk from a seed (never whole in memory)."""

    def __init__(self, n: int, dim: int, seed: int = 0) -> None:
        self.n, self.dim, self.seed = n, dim, seed
        rng = np.random.default_rng(seed)
        self.centres = rng.normal(size=(SECTIONS, dim))
        # re-listings: product j copies product j - 1 for every j = 1 mod 200
        self.step = round(1 / DUPLICATE_SHARE)

    def pairs(self) -> set[tuple[str, str]]:
        return {(self.pid(j - 1), self.pid(j)) for j in range(1, self.n, self.step) if j < self.n}

    @staticmethod
    def pid(i: int) -> str:
        return f"P{i:08d}"

    def section(self, i: int) -> int:
        return (i * 7919) % SECTIONS

    def rows(self, start: int, stop: int, version: int = 0) -> Iterator[tuple]:
        for i in range(start, stop):
            words = " ".join(WORDS[(i * k + version) % len(WORDS)] for k in (3, 5, 11))
            yield (
                self.pid(i),
                f"{words.title()} {i}",
                f"A {WORDS[i % len(WORDS)]} piece number {i}, version {version}.",
                f"section {self.section(i):02d}",
                f"store {i % 97}",
            )

    def vectors(self, start: int, stop: int, version: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(text, image) unit vectors of products start..stop."""
        rng = np.random.default_rng((self.seed, start, version))
        idx = np.arange(start, stop)
        base = self.centres[[self.section(i) for i in idx]] + 1.2 * rng.normal(
            size=(len(idx), self.dim)
        )
        text = base + 0.9 * rng.normal(size=base.shape)
        image = base.copy()
        for matrix in (text, image):
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            for row, i in enumerate(idx):
                if i % self.step == 1 and row > 0:
                    matrix[row] = _near(matrix[row - 1], rng, 0.005)
        return text, image


def _near(vector: np.ndarray, rng: np.random.Generator, distance: float) -> np.ndarray:
    noise = rng.normal(size=vector.shape)
    noise -= (noise @ vector) * vector
    noise /= np.linalg.norm(noise)
    angle = math.acos(1 - distance)
    return math.cos(angle) * vector + math.sin(angle) * noise


class PeakRss:
    """Peak resident memory of this process and of the server's PostgreSQL processes
    (sampled every half second from /proc: each process's VmHWM)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        with connection(settings) as conn:  # the backend's parent, while it lives
            backend = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            stat = Path(f"/proc/{backend}/stat").read_text()
        self.postmaster = int(stat.split(")")[1].split()[1])
        self.postgres_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _children(self) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.split(")")[1].split()[1]) == self.postmaster:
                    found.append(int(entry))
        return [self.postmaster, *found]

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for pid in self._children():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.postgres_kib = max(self.postgres_kib, int(line.split()[1]))
                except OSError:
                    continue

    def stop(self) -> tuple[float, float]:
        """(this process, the largest PostgreSQL process), in MiB."""
        self._stop.set()
        self._thread.join()
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return own, self.postgres_kib / 1024


def load(settings: ConnectionSettings, config: ProjectConfig, catalog: Catalog) -> dict:
    timings: dict[str, float] = {}
    with connection(settings) as conn:
        conn.execute(PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("create table public.plain_copy (like catalog.products)")
        conn.commit()
        columns = "product_id, product_name, product_description, collection_section, store_name"
        for table, name in (("public.plain_copy", "copy_baseline"), ("catalog.products", "load")):
            started = time.perf_counter()
            for start in range(0, catalog.n, CHUNK):
                with conn.cursor().copy(f"copy {table} ({columns}) from stdin") as copy:
                    for row in catalog.rows(start, min(start + CHUNK, catalog.n)):
                        copy.write_row(row)
            conn.commit()
            timings[name] = time.perf_counter() - started
        conn.execute("drop table public.plain_copy")
        conn.commit()
        started = time.perf_counter()
        for start in range(0, catalog.n, CHUNK):
            stop = min(start + CHUNK, catalog.n)
            ids = [catalog.pid(i) for i in range(start, stop)]
            text, image = catalog.vectors(start, stop)
            for space, matrix in (("t", text), ("i", image)):
                hashes = [f"{space}{i}v0" for i in ids]
                store.write_vectors(conn, config, config.space(space), ids, hashes, matrix, "bench")
            conn.commit()
        timings["vectors"] = time.perf_counter() - started
    return timings


def change(settings: ConnectionSettings, config: ProjectConfig, catalog: Catalog, share: float):
    """Change `share` of the catalog: half of it new texts (and vectors), a quarter new
    sections, and the rest split between removed products and new ones."""
    rng = np.random.default_rng(99)
    k = max(4, int(catalog.n * share))
    picked = rng.choice(catalog.n, size=k, replace=False)
    texts, sections, removed = np.split(picked, [k // 2, k // 2 + k // 4])
    removed, added = removed[: len(removed) // 2], len(removed) - len(removed) // 2
    with connection(settings) as conn:
        for i in texts:
            row = next(catalog.rows(int(i), int(i) + 1, version=1))
            conn.execute(
                "update catalog.products set product_name = %s, product_description = %s "
                "where product_id = %s",
                (row[1], row[2], row[0]),
            )
            text, image = catalog.vectors(int(i), int(i) + 1, version=1)
            for space, matrix in (("t", text), ("i", image)):
                store.write_vectors(
                    conn, config, config.space(space), [row[0]], [f"{space}{i}v1"], matrix, "b"
                )
        conn.execute(
            "update catalog.products set collection_section = 'section 99' "
            "where product_id = any(%s)",
            ([catalog.pid(int(i)) for i in sections],),
        )
        ids = [catalog.pid(int(i)) for i in removed]
        conn.execute("delete from catalog.products where product_id = any(%s)", (ids,))
        vectors = store.vectors_table(config).as_string(conn)
        conn.execute(f"delete from {vectors} where product_id = any(%s)", (ids,))
        new = [catalog.n + j for j in range(added)]
        for i in new:
            row = next(catalog.rows(i, i + 1))
            conn.execute(
                "insert into catalog.products (product_id, product_name, product_description, "
                "collection_section, store_name) values (%s, %s, %s, %s, %s)",
                row,
            )
        if new:
            text, image = catalog.vectors(new[0], new[-1] + 1)
            ids = [catalog.pid(i) for i in new]
            for space, matrix in (("t", text), ("i", image)):
                store.write_vectors(
                    conn,
                    config,
                    config.space(space),
                    ids,
                    [f"{space}{i}" for i in ids],
                    matrix,
                    "b",
                )
        conn.commit()
    moved = {catalog.pid(int(i)) for i in texts} | {catalog.pid(int(i)) for i in removed}
    return k, moved


class ModelTimes:
    """Seconds each dbt node took, summed over the invocations of one refresh."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.builds: dict[str, int] = defaultdict(int)
        self._real = pipeline.run_dbt

    def __enter__(self) -> ModelTimes:
        def recording(args, *rest, **kwargs):
            result = self._real(args, *rest, **kwargs)
            for node in getattr(result.result, "results", None) or []:
                name = node.node.unique_id.split(".", 2)[-1]
                self.seconds[name] += node.execution_time
                if node.node.resource_type == "model":
                    self.builds[name] += 1
            return result

        pipeline.run_dbt = recording
        return self

    def __exit__(self, *exc: object) -> None:
        pipeline.run_dbt = self._real

    def top(self, count: int = 6) -> str:
        ranked = sorted(self.seconds.items(), key=lambda item: -item[1])[:count]
        return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in ranked)


def refresh(settings, config, variables) -> tuple[float, ModelTimes]:
    with ModelTimes() as times:
        started = time.perf_counter()
        pipeline.refresh(settings, config, dbt_vars=variables, options={"skip_backfill": True})
        return time.perf_counter() - started, times


def near_duplicates(
    settings: ConnectionSettings, catalog: Catalog, moved: set[str], numpy_max: int
) -> dict:
    """Recall of the planted pairs (those whose vectors the change left alone)."""
    with connection(settings) as conn:
        found = set(
            conn.execute(
                "select product_id, neighbour_id from intermediate.int_near_duplicate_neighbours"
            ).fetchall()
        )
    planted = {pair for pair in catalog.pairs() if not (set(pair) & moved)}
    out: dict[str, float] = {
        "planted_pairs": len(planted),
        "recall": len(planted & found) / max(1, len(planted)),
    }
    if catalog.n <= numpy_max:
        started = time.perf_counter()
        count = 0
        text = np.concatenate(
            [catalog.vectors(s, min(s + CHUNK, catalog.n))[0] for s in range(0, catalog.n, CHUNK)]
        ).astype(np.float32)
        for start in range(0, catalog.n, 4096):
            sims = text[start : start + 4096] @ text.T
            rows, cols = np.nonzero(sims > 1 - MAX_DISTANCE)
            count += int(np.sum(start + rows < cols))
        out["numpy_s"] = time.perf_counter() - started
        out["numpy_pairs"] = count
    return out


def bench_size(n: int, dim: int, share: float, numpy_max: int, keep: bool) -> dict:
    variables = dbt_vars(dim)
    config = load_config(PROJECT_DIR, overrides=variables)
    catalog = Catalog(n, dim)
    out: dict[str, Any] = {"n": n}
    with scratch_database(keep=keep) as settings:
        peak = PeakRss(settings)
        out.update(load(settings, config, catalog))
        for step in ("first", "no_change"):
            out[step], times = refresh(settings, config, variables)
            out[f"{step}_models"] = times.top()
            out[f"{step}_max_builds"] = max(times.builds.values())
            print(f"  N={n:,} {step} refresh {out[step]:.1f}s: {times.top()}", flush=True)
        out["changed_products"], moved = change(settings, config, catalog, share)
        out["changed"], times = refresh(settings, config, variables)
        out["changed_models"] = times.top()
        print(f"  N={n:,} 1%-change refresh {out['changed']:.1f}s: {times.top()}", flush=True)
        out.update(near_duplicates(settings, catalog, moved, numpy_max))
        with connection(settings) as conn:
            size = conn.execute("select pg_database_size(current_database())").fetchone()
            out["db_mib"] = size[0] / 2**20  # type: ignore[index]
        out["rss_self_mib"], out["rss_postgres_mib"] = peak.stop()
    return out


STEPS = ("load", "copy_baseline", "vectors", "first", "no_change", "changed", "numpy_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--changed", type=float, default=0.01, help="share of products changed")
    parser.add_argument(
        "--numpy-max", type=int, default=200_000, help="largest N for the numpy near-dup baseline"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    print(f"{machine()}, load average {os.getloadavg()[0]:.2f}, dim {args.dim}")
    results = []
    for n in args.sizes:
        r = bench_size(n, args.dim, args.changed, args.numpy_max, args.keep)
        results.append(r)
        print(
            f"N={n:,}: load {r['load']:.1f}s (plain COPY {r['copy_baseline']:.1f}s, "
            f"{r['load'] / r['copy_baseline']:.2f}x), vectors {r['vectors']:.1f}s, "
            f"first refresh {r['first']:.1f}s, no-change {r['no_change']:.1f}s "
            f"({r['no_change'] / r['first']:.2f}x of first), "
            f"{r['changed_products']} changed {r['changed']:.1f}s "
            f"({r['changed'] / r['first']:.2f}x of first); most builds of one model in a "
            f"refresh: {r['first_max_builds']}; near-dup recall {r['recall']:.4f} of "
            f"{r['planted_pairs']} planted"
            + (
                f", numpy brute force {r['numpy_s']:.1f}s ({r['numpy_pairs']} pairs)"
                if "numpy_s" in r
                else ""
            )
            + f"; database {r['db_mib']:.0f} MiB; peak RSS this process "
            f"{r['rss_self_mib']:.0f} MiB, largest postgres process "
            f"{r['rss_postgres_mib']:.0f} MiB; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    for small, large in zip(results, results[1:], strict=False):
        scale = math.log(large["n"] / small["n"])
        exponents = ", ".join(
            f"{step} {math.log(large[step] / small[step]) / scale:.2f}"
            for step in STEPS
            if step in small and step in large and small[step] > 0 and large[step] > 0
        )
        print(f"growth exponents {small['n']:,} -> {large['n']:,}: {exponents}")


if __name__ == "__main__":
    main()
