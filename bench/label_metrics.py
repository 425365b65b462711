"""Benchmark: the label-structure metrics (`embed-udfs cluster` as a library
call, then the label dbt models) against scikit-learn and numpy on the same
arrays, run directly in the same process, at N = 5,000 and 10,000 for three
text spaces.

    python bench/label_metrics.py [--sizes 5000 10000] [--dims 384 512 768]

Prints, per size: seconds for the label sample (int_label_vectors with its
HNSW indexes), for `cluster_spaces` (read, PCA, KMeans, write) against the same
PCA + KMeans on numpy arrays, and for the label dbt models (1-NN, silhouette,
ARI/NMI, bootstrap intervals, comparisons; dbt runs two at a time, and the
slowest are listed) against scikit-learn's
silhouette_samples, a brute-force numpy 1-NN, adjusted_rand_score and
normalized_mutual_info_score, first without and then with the same bootstrap
(sklearn on each resampled array); each with the ratio ours / scikit-learn.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from _scratch import PROJECT_DIR, machine, plant, scratch_database
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_samples,
)

from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.jobs.cluster import cluster_spaces

SECTIONS = 10
LABEL_MODELS = [
    "stg_embeddings__cluster_assignments",
    "stg_embeddings__cluster_runs",
    "int_label_neighbours",
    "int_label_silhouettes",
    "int_bootstrap_weights",
    "int_kmeans_scores",
    "int_label_replicates",
    "fct_label_metrics",
    "fct_space_comparisons",
    "fct_label_confusions",
]


def planted(n: int, dims: list[int], seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Imbalanced sections; one space per dim, from clear to weak section structure."""
    rng = np.random.default_rng(seed)
    shares = 1.0 / np.arange(1, SECTIONS + 1)
    sections = rng.choice(SECTIONS, size=n, p=shares / shares.sum())
    spaces = []
    for i, dim in enumerate(dims):
        centres = rng.normal(size=(SECTIONS, dim)) * (0.25 - 0.06 * i)
        x = centres[sections] + rng.normal(size=(n, dim)) / np.sqrt(dim) * 1.5
        spaces.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    return sections, spaces


def _span(result) -> float:
    """The models' own execution span (hooks included), not dbt's start-up."""
    spans = [
        (t.started_at, t.completed_at)
        for r in result.result.results
        if r.node.unique_id.startswith("model.")
        for t in r.timing
        if t.name == "execute"
    ]
    return (max(e for _, e in spans) - min(b for b, _ in spans)).total_seconds()


def sklearn_cluster(
    vectors: list[np.ndarray], k: int, pca_dims: list[int | None], seeds: list[int]
) -> list[tuple[int, np.ndarray]]:
    """PCA + KMeans on numpy arrays, as `embed-udfs cluster` runs them."""
    labels = []
    for i, x in enumerate(vectors):
        x = x.astype(np.float64)
        sizes = [d for d in pca_dims if d is not None and d < x.shape[1]]
        if sizes:
            projected = PCA(n_components=max(sizes), svd_solver="full").fit_transform(x)
        for dims in pca_dims:
            if dims is not None and dims >= x.shape[1]:
                continue
            data = x if dims is None else np.ascontiguousarray(projected[:, :dims])
            for seed in seeds:
                km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(data)
                labels.append((i, km.labels_))
    return labels


def nearest_neighbours(x: np.ndarray, block: int = 2048) -> np.ndarray:
    """Brute-force cosine 1-NN, excluding the product itself, in blocks."""
    u = x.astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    nearest = np.empty(len(u), dtype=np.int64)
    for start in range(0, len(u), block):
        sims = u[start : start + block] @ u.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf
        nearest[start : start + block] = sims.argmax(axis=1)
    return nearest


def sklearn_metrics(
    sections: np.ndarray,
    vectors: list[np.ndarray],
    runs: list[tuple[int, np.ndarray]],
    replicates: int,
) -> tuple[float, float]:
    """Seconds for the point metrics, and for point metrics plus the bootstrap."""
    started = time.perf_counter()
    per_product = []
    for x in vectors:
        silhouettes = silhouette_samples(x, sections, metric="cosine")
        hits = sections[nearest_neighbours(x)] == sections
        per_product.append((silhouettes, hits))
        for s in np.unique(sections):
            silhouettes[sections == s].mean(), hits[sections == s].mean()
    for _, labels in runs:
        adjusted_rand_score(sections, labels), normalized_mutual_info_score(sections, labels)
    point = time.perf_counter() - started

    rng = np.random.default_rng(0)
    for _ in range(replicates):
        w = rng.poisson(1.0, size=len(sections))
        resampled = np.repeat(sections, w)
        for silhouettes, hits in per_product:
            for s in [*np.unique(sections), None]:
                members = np.ones(len(sections), bool) if s is None else sections == s
                np.average(silhouettes[members], weights=w[members] + 1e-12)
                np.average(hits[members], weights=w[members] + 1e-12)
        for _, labels in runs:
            clusters = np.repeat(labels, w)
            adjusted_rand_score(resampled, clusters)
            normalized_mutual_info_score(resampled, clusters)
    return point, time.perf_counter() - started


def bench_size(settings, n: int, dims: list[int], target: Path) -> dict[str, float]:
    sections, vectors = planted(n, dims)
    names = [f"bench_text_{d}" for d in dims]
    dbt_vars = {
        "embed_spaces": [
            {
                "name": name,
                "modality": "text",
                "backend": "sentence_transformers",
                "family": name,
                "model": "planted",
                "dim": dim,
            }
            for name, dim in zip(names, dims, strict=True)
        ],
        "embed_pairs": [],
        "eval_sample_size": n,
        "retrieval_search": "hnsw",  # the figures below time 1-NN through the index
    }
    config = load_config(PROJECT_DIR, overrides=dbt_vars)
    plant(
        settings,
        config,
        [f"section_{s:02d}" for s in sections],
        dict(zip(names, vectors, strict=True)),
    )

    def dbt(*args: str):
        return run_dbt(
            list(args), settings, PROJECT_DIR, dbt_vars=dbt_vars, target_path=target, quiet=True
        )

    timings: dict[str, float] = {}
    dbt(
        "build",
        "--select",
        "+int_eval_sample",
        "--resource-type",
        "model",
        "--resource-type",
        "seed",
    )
    timings["label_sample"] = _span(dbt("run", "--select", "int_label_vectors"))
    started = time.perf_counter()
    summaries = cluster_spaces(settings, config)
    timings["cluster"] = time.perf_counter() - started
    result = dbt("run", "--select", *LABEL_MODELS)
    timings["label_models"] = _span(result)
    timings.update(
        {
            f"model:{r.node.name}": sum(
                (t.completed_at - t.started_at).total_seconds()
                for t in r.timing
                if t.name == "execute"
            )
            for r in result.result.results
        }
    )

    labels = [f"section_{s:02d}" for s in sections]
    sections_text = np.array(labels)
    started = time.perf_counter()
    runs = sklearn_cluster(
        vectors,
        len(np.unique(sections)),
        list(config.labels.pca_dims),
        list(config.labels.kmeans_seeds),
    )
    timings["sklearn_cluster"] = time.perf_counter() - started
    point, with_bootstrap = sklearn_metrics(
        sections_text, vectors, runs, config.labels.bootstrap_replicates
    )
    timings["sklearn_metrics"] = point
    timings["sklearn_metrics_bootstrap"] = with_bootstrap
    timings["runs"] = sum(s.runs for s in summaries)

    with connection(settings) as conn:
        got = dict(
            conn.execute(
                "select space, value from metrics.fct_label_metrics "
                "where metric = 'nn1_accuracy' and section = 'ALL'"
            ).fetchall()
        )
    expected = {
        name: float(np.mean(sections[nearest_neighbours(x)] == sections))
        for name, x in zip(names, vectors, strict=True)
    }
    timings["max_nn1_difference"] = max(abs(got[k] - expected[k]) for k in names)
    return timings


def _format(t: dict[str, float]) -> str:
    return (
        f"label sample+HNSW {t['label_sample']:5.1f}s | cluster {t['cluster']:6.1f}s"
        f" vs sklearn {t['sklearn_cluster']:6.1f}s ({t['cluster'] / t['sklearn_cluster']:4.2f}x,"
        f" {t['runs']:.0f} runs) | label models {t['label_models']:5.1f}s vs sklearn point"
        f" {t['sklearn_metrics']:5.1f}s ({t['label_models'] / t['sklearn_metrics']:5.2f}x),"
        f" with bootstrap {t['sklearn_metrics_bootstrap']:6.1f}s"
        f" ({t['label_models'] / t['sklearn_metrics_bootstrap']:5.2f}x)"
        f" | HNSW 1-NN vs numpy: max |diff| {t['max_nn1_difference']:.4f}\n"
        "          label models, slowest first: "
        + ", ".join(
            f"{name[6:]} {seconds:.1f}s"
            for name, seconds in sorted(t.items(), key=lambda kv: -kv[1])
            if name.startswith("model:") and seconds >= 0.1
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--dims", type=int, nargs=3, default=[384, 512, 768])
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with scratch_database(args.keep) as settings:
        config = load_config(PROJECT_DIR)
        print(
            f"machine: {machine()}; 3 text spaces "
            f"(dims {args.dims}), {SECTIONS} sections; PCA {list(config.labels.pca_dims)}, "
            f"{len(config.labels.kmeans_seeds)} seeds, {config.labels.bootstrap_replicates} "
            "bootstrap replicates"
        )
        with tempfile.TemporaryDirectory() as target:
            for n in args.sizes:
                t = bench_size(settings, n, args.dims, Path(target))
                print(f"N={n:>6}: {_format(t)}", flush=True)


if __name__ == "__main__":
    main()
