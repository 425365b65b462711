"""PCA + KMeans of the label sample in every text space (kmeans.py), and the job that
runs it (job.py): dbt scores the assignments against collection_section."""

from embed_udfs.jobs.cluster.job import ClusterJob, ClusterJobOptions
from embed_udfs.jobs.cluster.kmeans import (
    ClusterSummary,
    cluster_spaces,
    cluster_vectors,
    label_spaces,
    plan_reductions,
    read_label_vectors,
    refresh_clusters,
)

__all__ = [
    "ClusterJob",
    "ClusterJobOptions",
    "ClusterSummary",
    "cluster_spaces",
    "cluster_vectors",
    "label_spaces",
    "plan_reductions",
    "read_label_vectors",
    "refresh_clusters",
]
