"""Benchmark: the whole pipeline on synthetic catalogs of growing size, to see which
steps grow with the catalog and which stay bounded by the sample.

    python bench/scale.py [--sizes 100000 1000000] [--dim 32] [--changed 0.01]
        [--numpy-max 200000] [--refreshes first no_change changed] [--keep]

For each size, in a scratch database: products loaded with COPY (against a plain COPY
of the same rows into a table with no key, the baseline), planted vectors written the
way the backfill writes them (store.write_vectors: binary COPY), then the refreshes
named by --refreshes, with --skip-backfill (the vectors are planted): the first, one
with nothing changed, and one after 1% of the catalog changed (texts with their
vectors, sections, removed and new products; each kind of change one batched
statement or COPY, one write_vectors call per space). Each refresh records dbt's
seconds for every whole-catalog model (CATALOG_MODELS) and sampled model
(SAMPLED_MODELS), and the catalog gallery search (the int_catalog_*_neighbours
models and the tiers between sample and catalog, int_tier_retrieval_neighbours) as
gallery_search_s.

Then: recall of the planted near-duplicate pairs in int_near_duplicate_neighbours,
against a numpy brute force over all pairs (blocks of at most 2**27 similarities;
above --numpy-max products, --numpy-max evenly spread query rows against all N,
timed and extrapolated to N rows); a numpy exact whole-catalog gallery search (each
sampled text query's rank of its own image among every catalog gallery image), timed,
its R@1 and R@10 beside the pipeline's catalog-scope figures in fct_retrieval_metrics;
the database size; and peak RSS of this process (dbt runs in it; before and after the
numpy baselines) and of every PostgreSQL process of the server.

Every figure is printed as soon as it is measured, so a run stopped part-way leaves
what it had. Between sizes it prints each step's growth exponent,
log(t2 / t1) / log(N2 / N1) (1 is linear, 0 is flat), and each tracked model's, per
refresh; last, one line `RESULTS-JSON [...]` with every size's figures.

Planted data: 40 sections of loose clusters; a product's image vector is its base
vector, its text vector the base plus noise, so R@K is neither 0 nor 1 and falls as
the gallery grows; 0.5% of products are re-listings of another at cosine distance
about 0.005 in both spaces (under the 0.02 threshold), with different text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
import psycopg
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


def change(
    settings: ConnectionSettings, config: ProjectConfig, catalog: Catalog, share: float
) -> tuple[int, set[str]]:
    """Change `share` of the catalog: half of it new texts (and vectors), a quarter new
    sections, and the rest split between removed products and new ones.

    Each kind of change is one statement or COPY and one write_vectors call per space,
    as a loader would send it: at 1,000,000 products 1% is 10,000 products, too many
    for a round trip each."""
    rng = np.random.default_rng(99)
    k = max(4, int(catalog.n * share))
    picked = rng.choice(catalog.n, size=k, replace=False)
    texts, sections, removed = np.split(picked, [k // 2, k // 2 + k // 4])
    removed, added = removed[: len(removed) // 2], len(removed) - len(removed) // 2
    columns = "product_id, product_name, product_description, collection_section, store_name"
    with connection(settings) as conn:
        conn.execute(
            "create temp table _changed_texts (product_id text, product_name text, "
            "product_description text) on commit drop"
        )
        rows = [next(catalog.rows(int(i), int(i) + 1, version=1)) for i in texts]
        with conn.cursor().copy("copy _changed_texts from stdin") as copy:
            for row in rows:
                copy.write_row(row[:3])
        conn.execute(
            "update catalog.products as products set product_name = changed.product_name, "
            "product_description = changed.product_description from _changed_texts as changed "
            "where products.product_id = changed.product_id"
        )
        # each product's vectors as when it changed alone: vectors(i, i + 1, version=1)
        per_product = [catalog.vectors(int(i), int(i) + 1, version=1) for i in texts]
        ids = [row[0] for row in rows]
        for space, column in (("t", 0), ("i", 1)):
            matrix = np.concatenate([vectors[column] for vectors in per_product])
            hashes = [f"{space}{int(i)}v1" for i in texts]
            store.write_vectors(conn, config, config.space(space), ids, hashes, matrix, "b")
        conn.execute(
            "update catalog.products set collection_section = 'section 99' "
            "where product_id = any(%s)",
            ([catalog.pid(int(i)) for i in sections],),
        )
        ids = [catalog.pid(int(i)) for i in removed]
        conn.execute("delete from catalog.products where product_id = any(%s)", (ids,))
        vectors = store.vectors_table(config).as_string(conn)
        conn.execute(f"delete from {vectors} where product_id = any(%s)", (ids,))
        if added:
            first = catalog.n
            with conn.cursor().copy(f"copy catalog.products ({columns}) from stdin") as copy:
                for row in catalog.rows(first, first + added):
                    copy.write_row(row)
            text, image = catalog.vectors(first, first + added)
            ids = [catalog.pid(i) for i in range(first, first + added)]
            for space, matrix in (("t", text), ("i", image)):
                hashes = [f"{space}{i}" for i in ids]
                store.write_vectors(conn, config, config.space(space), ids, hashes, matrix, "b")
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


# Whole-catalog models: each reads every product (or every product's vectors).
CATALOG_MODELS = (
    "int_product_texts_cleaned",
    "int_space_inputs",
    "int_section_levels",
    "int_dedup_vectors",
    "int_near_duplicate_neighbours",
    "int_duplicate_pairs",
    "int_duplicate_components",
    "int_duplicate_groups",
    "int_products_deduped",
    "int_bootstrap_clusters",
    "int_eval_candidates",
    "int_label_candidates",
    "int_catalog_gallery_vectors",
    "int_catalog_duplicate_sets",
    "int_catalog_text_to_image_neighbours",
    "int_catalog_image_to_text_neighbours",
    "int_tier_retrieval_neighbours",
    "fct_rejected_inputs",
    "fct_pipeline_steps",
)
# Sampled models: bounded by the eval (or label) sample, whatever the catalog's size.
SAMPLED_MODELS = (
    "fct_similarity_histograms",
    "int_label_neighbours",
    "int_text_to_image_neighbours",
    "int_image_to_text_neighbours",
)
REFRESHES = ("first", "no_change", "changed")


def refresh(settings, config, variables) -> tuple[float, ModelTimes]:
    with ModelTimes() as times:
        started = time.perf_counter()
        pipeline.refresh(settings, config, dbt_vars=variables, options={"skip_backfill": True})
        return time.perf_counter() - started, times


def read_vectors(
    conn: psycopg.Connection, relation: str, space: str
) -> tuple[list[str], np.ndarray]:
    """One space's (product ids, float32 vectors) of a model, by binary COPY."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    query = f"copy (select product_id, embedding from {relation} where space = %s) to stdout"
    with conn.cursor().copy(query + " (format binary)", (space,)) as copy:
        copy.set_types(["text", "vector"])
        for product_id, embedding in copy.rows():
            ids.append(product_id)
            rows.append(embedding.to_numpy())
    return ids, np.asarray(rows, dtype=np.float32)


def block_rows(n: int) -> int:
    """Query rows per block of a brute force against n vectors: at most 2**27 float32
    similarities (512 MiB), so memory stays bounded at any catalog size."""
    return max(64, 2**27 // max(1, n))


def near_duplicates(
    settings: ConnectionSettings, catalog: Catalog, moved: set[str], numpy_max: int
) -> dict:
    """Recall of the planted pairs (those whose vectors the change left alone), and the
    numpy baseline (numpy_near_duplicates)."""
    with connection(settings) as conn:
        found = set(
            conn.execute(
                "select product_id, neighbour_id from intermediate.int_near_duplicate_neighbours"
            ).fetchall()
        )
    planted = {pair for pair in catalog.pairs() if not (set(pair) & moved)}
    out: dict[str, Any] = {
        "planted_pairs": len(planted),
        "recall": len(planted & found) / max(1, len(planted)),
    }
    out.update(numpy_near_duplicates(catalog, numpy_max))
    return out


def numpy_near_duplicates(catalog: Catalog, numpy_max: int) -> dict[str, Any]:
    """The numpy brute force over all pairs, the baseline: every product's row against
    the whole catalog up to numpy_max products; above it, numpy_max evenly spread rows,
    timed and extrapolated to all n (the cost is linear in the rows). numpy_pairs
    counts the pairs within the threshold found from the rows searched."""
    text = np.concatenate(
        [catalog.vectors(s, min(s + CHUNK, catalog.n))[0] for s in range(0, catalog.n, CHUNK)]
    ).astype(np.float32)
    if catalog.n <= numpy_max:
        queries = np.arange(catalog.n)
    else:
        queries = np.unique(np.linspace(0, catalog.n - 1, numpy_max).round().astype(np.int64))
    block = block_rows(catalog.n)
    count = 0
    started = time.perf_counter()
    for start in range(0, len(queries), block):
        rows_of_block = queries[start : start + block]
        rows, cols = np.nonzero(text[rows_of_block] @ text.T > 1 - MAX_DISTANCE)
        count += int(np.sum(rows_of_block[rows] < cols))
    measured = time.perf_counter() - started
    return {
        "numpy_queries": len(queries),
        "numpy_measured_s": measured,
        "numpy_s": measured * catalog.n / len(queries),
        "numpy_pairs": count,
    }


def gallery_baseline(settings: ConnectionSettings) -> dict:
    """Whole-catalog text-to-image search in numpy: each sampled text query's exact
    cosine rank of its own image among every catalog gallery image (blocks of bounded
    memory), timed, beside the pipeline's catalog-scope R@1 and R@10 (metrics are
    from fct_retrieval_metrics, ALL, leaf level); and the same ranks within each tier
    the pipeline published (gallery_scope sample_x<m>: the sample's images and the
    catalog images whose md5 draw falls under the tier's bound, macros/gallery_tiers.sql)."""
    with connection(settings) as conn:
        query_ids, queries = read_vectors(conn, "intermediate.int_eval_vectors", "t")
        gallery_ids, gallery = read_vectors(conn, "intermediate.int_catalog_gallery_vectors", "i")
        sample_ids = {
            product_id
            for (product_id,) in conn.execute(
                "select product_id from intermediate.int_eval_vectors where space = 'i'"
            )
        }
        pipeline_rows = conn.execute(
            "select gallery_scope, metric, value, search_method, index_bias, gallery_size "
            "from metrics.fct_retrieval_metrics where gallery_scope <> 'sample' "
            "and pair = 'planted' and direction = 'text_to_image' "
            "and section_level = 'leaf' and section = 'ALL' "
            "and metric in ('recall_at_1', 'recall_at_10')"
        ).fetchall()
    position = {product_id: j for j, product_id in enumerate(gallery_ids)}
    kept = [row for row, product_id in enumerate(query_ids) if product_id in position]
    own = np.array([position[query_ids[row]] for row in kept], dtype=np.int64)
    queries = queries[kept]
    # each tier's gallery, as the rule in macros/gallery_tiers.sql states it
    in_sample = np.array([product_id in sample_ids for product_id in gallery_ids])
    draw = np.array([int(hashlib.md5(p.encode()).hexdigest()[:8], 16) for p in gallery_ids])
    s, n = int(in_sample.sum()), len(gallery_ids)
    tiers = {}
    for scope in sorted({row[0] for row in pipeline_rows if row[0].startswith("sample_x")}):
        size = int(scope.removeprefix("sample_x")) * s
        tiers[scope] = in_sample | (draw < -(-(size - s) * 2**32 // (n - s)))
    block = block_rows(len(gallery))
    ranks = np.empty(len(kept), dtype=np.int64)
    tier_ranks = {scope: np.empty(len(kept), dtype=np.int64) for scope in tiers}
    started = time.perf_counter()
    for start in range(0, len(kept), block):
        sims = queries[start : start + block] @ gallery.T
        own_sims = sims[np.arange(len(sims)), own[start : start + block]]
        closer = sims > own_sims[:, None]
        ranks[start : start + block] = 1 + np.sum(closer, axis=1)
        for scope, members in tiers.items():
            tier_ranks[scope][start : start + block] = 1 + np.sum(closer & members, axis=1)
    out: dict[str, Any] = {
        "numpy_gallery_s": time.perf_counter() - started,
        "gallery_queries": len(kept),
        "gallery_queries_without_image": len(query_ids) - len(kept),
        "gallery_size": len(gallery),
    }
    for k in (1, 10):
        out[f"numpy_catalog_r{k}"] = float(np.mean(ranks <= k)) if len(kept) else math.nan
    out["tiers"] = {
        scope: {
            "size": int(members.sum()),
            **{f"numpy_r{k}": float(np.mean(tier_ranks[scope] <= k)) for k in (1, 10)},
        }
        for scope, members in tiers.items()
    }
    for scope, metric, value, method, bias, size in pipeline_rows:
        k = metric.removeprefix("recall_at_")
        if scope in out["tiers"]:
            out["tiers"][scope].update(
                {f"pipeline_r{k}": value, "pipeline_size": size, "pipeline_search_method": method}
            )
            continue
        out[f"pipeline_catalog_r{k}"] = value
        out["pipeline_search_method"] = method
        out["pipeline_gallery_size"] = size
        out[f"pipeline_index_bias_r{k}"] = bias
    return out


def model_seconds(times: ModelTimes) -> dict[str, float]:
    """The refresh's seconds of the whole-catalog and the sampled models."""
    return {name: times.seconds.get(name, 0.0) for name in (*CATALOG_MODELS, *SAMPLED_MODELS)}


def bench_size(
    n: int, dim: int, share: float, numpy_max: int, keep: bool, refreshes: list[str]
) -> dict:
    """Every measure of one catalog size; each line is printed as soon as it is measured."""
    variables = dbt_vars(dim)
    config = load_config(PROJECT_DIR, overrides=variables)
    catalog = Catalog(n, dim)
    out: dict[str, Any] = {"n": n, "model_s": {}}
    moved: set[str] = set()
    with scratch_database(keep=keep) as settings:
        peak = PeakRss(settings)
        out.update(load(settings, config, catalog))
        print(
            f"  N={n:,} load {out['load']:.1f}s (plain COPY {out['copy_baseline']:.1f}s, "
            f"{out['load'] / out['copy_baseline']:.2f}x), vectors {out['vectors']:.1f}s",
            flush=True,
        )
        for step in (step for step in REFRESHES if step in refreshes):
            if step == "changed":
                started = time.perf_counter()
                out["changed_products"], moved = change(settings, config, catalog, share)
                out["change_s"] = time.perf_counter() - started
                print(
                    f"  N={n:,} changed {out['changed_products']:,} products in "
                    f"{out['change_s']:.1f}s",
                    flush=True,
                )
            out[step], times = refresh(settings, config, variables)
            out[f"{step}_models"] = times.top()
            out[f"{step}_max_builds"] = max(times.builds.values(), default=0)
            out["model_s"][step] = model_seconds(times)
            out[f"{step}_gallery_search_s"] = sum(
                seconds
                for name, seconds in times.seconds.items()
                if name in times.builds
                and name.startswith(("int_catalog_", "int_tier_"))
                and name.endswith("_neighbours")
            )
            catalog_s = sum(times.seconds.get(name, 0.0) for name in CATALOG_MODELS)
            sampled_s = sum(times.seconds.get(name, 0.0) for name in SAMPLED_MODELS)
            print(
                f"  N={n:,} {step} refresh {out[step]:.1f}s (whole-catalog models "
                f"{catalog_s:.1f}s, sampled {sampled_s:.1f}s, catalog gallery search "
                f"{out[f'{step}_gallery_search_s']:.1f}s; most builds of one model "
                f"{out[f'{step}_max_builds']}): {times.top()}",
                flush=True,
            )
        out["rss_pipeline_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with connection(settings) as conn:
            size = conn.execute("select pg_database_size(current_database())").fetchone()
            out["db_mib"] = size[0] / 2**20  # type: ignore[index]
        print(
            f"  N={n:,} database {out['db_mib']:.0f} MiB; peak RSS of this process before "
            f"the numpy baselines {out['rss_pipeline_mib']:.0f} MiB",
            flush=True,
        )
        out.update(near_duplicates(settings, catalog, moved, numpy_max))
        extrapolated = out["numpy_queries"] < n
        print(
            f"  N={n:,} near-dup recall {out['recall']:.4f} of {out['planted_pairs']:,} planted; "
            f"numpy brute force {out['numpy_s']:.1f}s"
            + (
                f" (extrapolated from {out['numpy_queries']:,} query rows in "
                f"{out['numpy_measured_s']:.1f}s)"
                if extrapolated
                else f" ({out['numpy_pairs']:,} pairs)"
            ),
            flush=True,
        )
        out.update(gallery_baseline(settings))
        method = out.get("pipeline_search_method")
        bias = ""
        if method == "hnsw":
            bias = (
                f", index_bias R@1 {out.get('pipeline_index_bias_r1')} "
                f"R@10 {out.get('pipeline_index_bias_r10')}"
            )
        print(
            f"  N={n:,} catalog gallery {out['gallery_size']:,} images, "
            f"{out['gallery_queries']:,} text queries: numpy exact {out['numpy_gallery_s']:.1f}s, "
            f"R@1 {out['numpy_catalog_r1']:.4f} R@10 {out['numpy_catalog_r10']:.4f}; "
            f"pipeline ({method}) R@1 {_figure(out.get('pipeline_catalog_r1'))} "
            f"R@10 {_figure(out.get('pipeline_catalog_r10'))}{bias}",
            flush=True,
        )
        for scope, tier in out["tiers"].items():
            print(
                f"  N={n:,} gallery {scope}: {tier['size']:,} images (pipeline "
                f"{tier.get('pipeline_size', 0):,}): numpy exact R@1 {tier['numpy_r1']:.4f} "
                f"R@10 {tier['numpy_r10']:.4f}; pipeline ({tier.get('pipeline_search_method')}) "
                f"R@1 {_figure(tier.get('pipeline_r1'))} R@10 {_figure(tier.get('pipeline_r10'))}",
                flush=True,
            )
        out["rss_self_mib"], out["rss_postgres_mib"] = peak.stop()
        print(
            f"  N={n:,} peak RSS this process {out['rss_self_mib']:.0f} MiB (with the numpy "
            f"baselines), largest postgres process {out['rss_postgres_mib']:.0f} MiB; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    return out


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


STEPS = (
    "load",
    "copy_baseline",
    "vectors",
    "first",
    "no_change",
    "changed",
    "first_gallery_search_s",
    "no_change_gallery_search_s",
    "changed_gallery_search_s",
    "numpy_s",
    "numpy_gallery_s",
    "db_mib",
)


def _exponent(small: float | None, large: float | None, scale: float) -> str | None:
    if not small or not large or small <= 0 or large <= 0:
        return None
    return f"{math.log(large / small) / scale:.2f}"


def print_growth(small: dict, large: dict) -> None:
    """Growth exponents log(t2 / t1) / log(N2 / N1) of each step, and of each tracked
    model's time in each refresh."""
    scale = math.log(large["n"] / small["n"])
    steps = []
    for step in STEPS:
        exponent = _exponent(small.get(step), large.get(step), scale)
        if exponent is not None:
            steps.append(f"{step} {exponent}")
    print(f"growth exponents {small['n']:,} -> {large['n']:,}: {', '.join(steps)}")
    for kind, names in (("whole-catalog", CATALOG_MODELS), ("sampled", SAMPLED_MODELS)):
        for name in names:
            figures = []
            for step in REFRESHES:
                t1 = small["model_s"].get(step, {}).get(name)
                t2 = large["model_s"].get(step, {}).get(name)
                if t1 is None or t2 is None:
                    continue
                exponent = _exponent(t1, t2, scale) or "-"
                figures.append(f"{step} {t1:.1f}s -> {t2:.1f}s ({exponent})")
            if figures:
                print(f"  {kind} {name}: {'; '.join(figures)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--changed", type=float, default=0.01, help="share of products changed")
    parser.add_argument(
        "--numpy-max",
        type=int,
        default=200_000,
        help="query rows of the numpy near-dup baseline; above it, extrapolated to all N",
    )
    parser.add_argument(
        "--refreshes",
        nargs="+",
        choices=REFRESHES,
        default=list(REFRESHES),
        help="refreshes to run (always in the order first, no_change, changed)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    print(f"{machine()}, load average {os.getloadavg()[0]:.2f}, dim {args.dim}")
    results = []
    for n in args.sizes:
        r = bench_size(n, args.dim, args.changed, args.numpy_max, args.keep, args.refreshes)
        results.append(r)
        ratios = ", ".join(
            f"{step} {r[step]:.1f}s ({r[step] / r['first']:.2f}x of first)"
            if "first" in r and step != "first"
            else f"{step} {r[step]:.1f}s"
            for step in REFRESHES
            if step in r
        )
        print(f"N={n:,}: {ratios}; load average {os.getloadavg()[0]:.2f}", flush=True)
    for small, large in zip(results, results[1:], strict=False):
        print_growth(small, large)
    print("RESULTS-JSON " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
