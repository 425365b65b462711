"""`embed-udfs cluster`: PCA + KMeans of every text space's label sample into the cluster
assignments, which dbt scores against the sections (ARI, NMI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from embed_udfs import contract
from embed_udfs.config import ProjectConfig
from embed_udfs.db import ConnectionSettings
from embed_udfs.jobs.base import Job, JobOptions, JobSummary, option
from embed_udfs.jobs.cluster.kmeans import label_spaces, refresh_clusters

EPILOG = """For every text space and every size in vars.label_pca_dims (none = no PCA;
sizes at or above the space's dim are skipped), PCA of the label sample
(intermediate.int_label_vectors), then KMeans with k = the number of sections,
once per seed in vars.label_kmeans_seeds (k-means++, one init each).
Deterministic given the seeds. Writes one row per (space, reduction, seed,
product) to vars.cluster_assignments_relation (default
embeddings.cluster_assignments) and one per run to cluster_runs beside it,
replacing the space's earlier rows. dbt then scores them against the sections
(ARI, NMI, with bootstrap intervals): run `dbt build` afterwards.

examples:
  embed-udfs cluster
  embed-udfs --vars '{label_pca_dims: [32, none]}' cluster --space minilm_text
"""

NEXT = (
    "next: `dbt build` (or `embed-udfs refresh --skip-backfill`) scores them into "
    "metrics.fct_label_metrics and metrics.fct_space_comparisons"
)


@dataclass(frozen=True, kw_only=True)
class ClusterJobOptions(JobOptions):
    space: Sequence[str] | None = option(
        flag="--space", action="append", help="a text space to cluster (repeatable; default all)"
    )
    build_inputs: bool = option(
        True,
        flag="--no-dbt",
        action="store_false",
        dest="build_inputs",
        help="do not rebuild the label sample first (dbt build --select +int_label_vectors)",
    )


class ClusterJob(Job):
    """PCA + KMeans of every text space's label sample into the cluster assignments."""

    name = "cluster"
    reads = contract.LABEL_VECTORS
    writes = contract.CLUSTER_ASSIGNMENTS
    after = ("backfill",)
    Options = ClusterJobOptions
    help = "PCA + KMeans of the label sample in every text space, for ARI/NMI against sections"
    epilog = EPILOG

    def check(self, config: ProjectConfig, options: ClusterJobOptions) -> None:
        label_spaces(config, options.space)  # unknown or image spaces, before dbt starts

    def enabled(self, config: ProjectConfig, options: ClusterJobOptions) -> bool:
        # no text space, nothing to cluster: the refresh builds no label sample for it
        return bool(label_spaces(config, options.space))

    def written(self, config: ProjectConfig) -> tuple[contract.Relation, ...]:
        return (self.writes.resolve(config), contract.cluster_runs(config))

    def run(
        self, settings: ConnectionSettings, config: ProjectConfig, options: ClusterJobOptions
    ) -> JobSummary:
        summaries = refresh_clusters(
            settings,
            config,
            dbt_vars=options.dbt_vars,
            spaces=options.space,
            build_inputs=options.build_inputs,
        )
        return JobSummary(self.name, tuple(s.line() for s in summaries), tuple(summaries), (NEXT,))
