"""PCA + KMeans of the label sample in every text space: the part of the label
metrics that SQL cannot do. It reads the vectors dbt put in int_label_vectors
and writes plain rows (one per space, reduction, seed and product) that dbt
declares as a source and scores against collection_section (ARI, NMI) in SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from tqdm import tqdm

from embed_udfs import contract, store
from embed_udfs.config import ProjectConfig, SpaceConfig
from embed_udfs.contract import LABEL_VECTORS
from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.errors import ClusterError
from embed_udfs.jobs.base import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledVectors:
    """One space's label sample: ids, sections and vectors, row-aligned, sorted by id."""

    product_ids: list[str]
    sections: np.ndarray
    vectors: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(np.unique(self.sections))


@dataclass(frozen=True)
class Reduction:
    """How the vectors are reduced before KMeans: `pca_<dims>`, or `none`."""

    name: str
    dims: int
    pca: bool


@dataclass(frozen=True)
class ClusterRun:
    """One KMeans run: its labels and what a reader needs to trust them."""

    space: str
    reduction: str
    dims: int
    seed: int
    n_clusters: int
    explained_variance: float
    inertia: float
    n_iter: int
    labels: np.ndarray


@dataclass(frozen=True)
class ClusterSummary:
    space: str
    n_products: int
    n_clusters: int
    runs: int
    skipped: tuple[str, ...] = ()

    def line(self) -> str:
        text = (
            f"{self.space}: {self.runs} KMeans runs (k = {self.n_clusters}) "
            f"on {self.n_products} products"
        )
        return text + (f"; skipped {', '.join(self.skipped)}" if self.skipped else "")


def read_label_vectors(conn: psycopg.Connection, space: str) -> LabelledVectors:
    """The label sample of one space, from int_label_vectors, sorted by product_id."""
    if not contract.exists(conn, LABEL_VECTORS):
        raise ClusterError(
            f"{LABEL_VECTORS} does not exist yet, so there is no label sample to "
            "cluster. Build it with `dbt run --select +int_label_vectors` (or run "
            "`embed-udfs cluster` without --no-dbt, or `embed-udfs refresh`)."
        )
    ids: list[str] = []
    sections: list[str] = []
    rows: list[np.ndarray] = []
    query = sql.SQL(
        "copy (select product_id, collection_section, embedding from {} where space = {} "
        "order by product_id) to stdout (format binary)"
    ).format(LABEL_VECTORS.identifier, sql.Literal(space))
    with conn.cursor().copy(query) as copy:
        copy.set_types(["text", "text", "vector"])
        for product_id, section, embedding in copy.rows():
            ids.append(product_id)
            sections.append(section)
            rows.append(embedding.to_numpy())
    vectors = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    return LabelledVectors(ids, np.asarray(sections, dtype=object), vectors)


def plan_reductions(
    space_dim: int, n_products: int, pca_dims: Sequence[int | None]
) -> tuple[list[Reduction], list[str]]:
    """The reductions to run for a space, and the skipped sizes with the reason.

    PCA sizes at or above the space's dimension reduce nothing and are skipped;
    PCA cannot keep more components than there are products.
    """
    reductions: list[Reduction] = []
    skipped: list[str] = []
    for dims in pca_dims:
        if dims is None:
            reductions.append(Reduction("none", space_dim, pca=False))
        elif dims >= space_dim:
            skipped.append(f"pca_{dims} (the space has {space_dim} dims)")
        elif dims >= n_products:
            skipped.append(f"pca_{dims} (only {n_products} products)")
        else:
            reductions.append(Reduction(f"pca_{dims}", dims, pca=True))
    return reductions, skipped


def cluster_vectors(
    space: str,
    vectors: np.ndarray,
    n_clusters: int,
    reductions: Sequence[Reduction],
    seeds: Sequence[int],
    progress: tqdm | None = None,
) -> Iterator[ClusterRun]:
    """PCA (one exact SVD, truncated per size) then KMeans per reduction and seed.

    KMeans runs in euclidean geometry: on unit vectors that ranks like cosine,
    and PCA keeps euclidean distances as well as its components allow. Each
    seed is one k-means++ initialisation (n_init=1), so the spread over seeds
    is the initialisation noise. Deterministic given the seeds.
    """
    # scikit-learn takes a second or two to import: only a clustering run pays for it
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = np.asarray(vectors, dtype=np.float64)
    largest = max((r.dims for r in reductions if r.pca), default=0)
    projected = variance = None
    if largest:
        pca = PCA(n_components=largest, svd_solver="full").fit(x)
        projected = pca.transform(x)
        variance = np.cumsum(pca.explained_variance_ratio_)
    for reduction in reductions:
        if reduction.pca:
            assert projected is not None and variance is not None  # fitted above for the largest
            data = np.ascontiguousarray(projected[:, : reduction.dims])
            explained = float(variance[reduction.dims - 1])
        else:
            data, explained = x, 1.0
        for seed in seeds:
            if progress is not None:
                progress.set_postfix_str(f"{space} {reduction.name} seed {seed}")
            kmeans = KMeans(
                n_clusters=n_clusters, init="k-means++", n_init=1, random_state=seed
            ).fit(data)
            yield ClusterRun(
                space=space,
                reduction=reduction.name,
                dims=reduction.dims,
                seed=seed,
                n_clusters=n_clusters,
                explained_variance=explained,
                inertia=float(kmeans.inertia_),
                n_iter=int(kmeans.n_iter_),
                labels=kmeans.labels_.astype(np.int32),
            )
            if progress is not None:
                progress.update(1)


def write_runs(
    conn: psycopg.Connection,
    config: ProjectConfig,
    space: str,
    product_ids: Sequence[str],
    runs: Sequence[ClusterRun],
) -> None:
    """Replace the space's assignments and runs with these (the caller commits)."""
    conn.execute(
        sql.SQL("delete from {} where space = %s").format(store.assignments_table(config)), (space,)
    )
    conn.execute(
        sql.SQL("delete from {} where space = %s").format(store.runs_table(config)), (space,)
    )
    copy_sql = sql.SQL(
        "copy {} (space, reduction, dims, seed, product_id, cluster) from stdin (format binary)"
    ).format(store.assignments_table(config))
    with conn.cursor().copy(copy_sql) as copy:
        copy.set_types(["text", "text", "int4", "int4", "text", "int4"])
        for run in runs:
            for product_id, cluster in zip(product_ids, run.labels.tolist(), strict=True):
                copy.write_row((space, run.reduction, run.dims, run.seed, product_id, cluster))
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "insert into {} (space, reduction, dims, seed, n_products, n_clusters, "
                "explained_variance, inertia, n_iter) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(store.runs_table(config)),
            [
                (
                    space,
                    run.reduction,
                    run.dims,
                    run.seed,
                    len(product_ids),
                    run.n_clusters,
                    run.explained_variance,
                    run.inertia,
                    run.n_iter,
                )
                for run in runs
            ],
        )


def label_spaces(config: ProjectConfig, names: Sequence[str] | None = None) -> list[SpaceConfig]:
    """The text spaces to cluster: all of them, or the named ones (which must be text)."""
    if not names:
        return [s for s in config.spaces if s.modality == "text"]
    spaces = [config.space(name) for name in names]
    images = [s.name for s in spaces if s.modality != "text"]
    if images:
        raise ClusterError(
            f"not a text space: {', '.join(images)} (an image space); label metrics score "
            "text spaces against collection_section. Name text spaces with --space."
        )
    return spaces


def cluster_spaces(
    settings: ConnectionSettings,
    config: ProjectConfig,
    spaces: Sequence[str] | None = None,
) -> list[ClusterSummary]:
    """Cluster the label sample of each text space and write assignments and runs."""
    chosen = label_spaces(config, spaces)
    seeds = config.labels.kmeans_seeds
    summaries: list[ClusterSummary] = []
    with connection(settings) as conn:
        store.bootstrap(conn, config)
        samples = {space.name: read_label_vectors(conn, space.name) for space in chosen}
        plans = {
            space.name: plan_reductions(
                space.dim, len(samples[space.name].product_ids), config.labels.pca_dims
            )
            for space in chosen
        }
        total = sum(len(reductions) * len(seeds) for reductions, _ in plans.values())
        with progress_bar(total, "kmeans", "run") as progress:
            for space in chosen:
                sample = samples[space.name]
                reductions, skipped = plans[space.name]
                n, k = len(sample.product_ids), sample.n_clusters
                if k < 2 or n <= k:
                    reason = f"{n} products in {k} sections: KMeans needs 2+ sections, n > k"
                    log.warning("%s: not clustered (%s)", space.name, reason)
                    progress.update(len(reductions) * len(seeds))
                    summaries.append(ClusterSummary(space.name, n, k, 0, (reason,)))
                    continue
                runs = list(
                    cluster_vectors(space.name, sample.vectors, k, reductions, seeds, progress)
                )
                write_runs(conn, config, space.name, sample.product_ids, runs)
                conn.commit()
                summary = ClusterSummary(space.name, n, k, len(runs), tuple(skipped))
                log.info("%s", summary.line())
                summaries.append(summary)
    return summaries


def refresh_clusters(
    settings: ConnectionSettings,
    config: ProjectConfig,
    *,
    dbt_vars: Mapping[str, Any] | None = None,
    spaces: Sequence[str] | None = None,
    build_inputs: bool = True,
) -> list[ClusterSummary]:
    """Build the label sample with dbt (unless told not to), then cluster it."""
    label_spaces(config, spaces)  # unknown or image spaces are refused before dbt starts
    if build_inputs:
        log.info("dbt: the label sample (int_label_vectors)")
        # build without tests, so that seeds the sample depends on are loaded too
        run_dbt(
            ["build", "--select", "+int_label_vectors", "--resource-type", "model"]
            + ["--resource-type", "seed"],
            settings,
            config.project_dir,
            dbt_vars=dbt_vars,
        )
    return cluster_spaces(settings, config, spaces)
