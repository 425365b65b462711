"""The contract between dbt and Python: every relation a job reads from dbt and every
table it writes for dbt, named here and nowhere else in the package.

dbt gives each model read here an enforced contract and names its reader in an
exposure; each table written here is a dbt source (models/<domain>/staging/_<domain>__sources.yml).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from embed_udfs.errors import ConfigError

if TYPE_CHECKING:
    from embed_udfs.config import ProjectConfig


@dataclass(frozen=True)
class Relation:
    """A schema-qualified table or view. dbt's custom schemas are used verbatim
    (macros/generate_schema_name.sql), so a model's schema is known here."""

    schema: str
    name: str

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    def resolve(self, config: ProjectConfig) -> Relation:
        return self


@dataclass(frozen=True)
class ConfiguredRelation:
    """A table whose name the user sets in the vars (e.g. vars.vectors_relation)."""

    var: str
    read: Callable[[ProjectConfig], str]

    def resolve(self, config: ProjectConfig) -> Relation:
        return parse_relation(self.read(config), f"vars.{self.var}")

    def __str__(self) -> str:
        return f"vars.{self.var}"


def exists(conn: psycopg.Connection, relation: Relation) -> bool:
    """Whether the relation is there (dbt may not have built it yet)."""
    row = conn.execute("select to_regclass(%s) is not null", (str(relation),)).fetchone()
    return bool(row and row[0])


def parse_relation(text: str, what: str = "relation") -> Relation:
    schema, _, name = text.rpartition(".")
    if not schema or not name:
        raise ConfigError(f"{what} is {text!r}; it must be schema.table, e.g. embeddings.vectors.")
    return Relation(schema, name)


# dbt models that Python jobs read.
SPACE_INPUTS = Relation("intermediate", "int_space_inputs")  # backfill: what to embed
LABEL_VECTORS = Relation("intermediate", "int_label_vectors")  # cluster: the label sample
RETRIEVAL_METRICS = Relation("metrics", "fct_retrieval_metrics")  # report
EMBEDDING_GAPS = Relation("metrics", "fct_embedding_gaps")  # report
LABEL_METRICS = Relation("metrics", "fct_label_metrics")  # report
RERANK_CANDIDATES = Relation("intermediate", "int_rerank_candidates")  # rerank: what to score
EVAL_SAMPLE_SIZES = Relation("metrics", "fct_eval_sample_sizes")  # report: empty samples, why
RUNS = Relation("metrics", "dim_runs")  # baseline: which runs exist
METRIC_DELTAS = Relation("metrics", "fct_metric_deltas")  # report (optional block)
ANN_TUNING_VECTORS = Relation("intermediate", "int_ann_tuning_vectors")  # tune: the galleries
# tune: the whole-catalog galleries, searched through the partial HNSW index per space
# of the table under the view (whose index tune looks up, and never reads otherwise)
ANN_CATALOG_GALLERY = Relation("intermediate", "int_ann_catalog_gallery")
CATALOG_GALLERY_VECTORS = Relation("intermediate", "int_catalog_gallery_vectors")

# Marts the report and scorecard show when dbt has built them (optional blocks, no
# enforced contract: the report only reads columns it names and skips a missing mart),
# and those the scorecard points a reader to.
SIMILARITY_HISTOGRAMS = Relation("metrics", "fct_similarity_histograms")
SPACE_COMPARISONS = Relation("metrics", "fct_space_comparisons")
METRIC_HISTORY = Relation("metrics", "fct_metric_history")
RERANK_UPLIFT = Relation("metrics", "fct_rerank_uplift")
RETRIEVAL_RANKS = Relation("metrics", "fct_retrieval_ranks")
REJECTED_INPUTS = Relation("metrics", "fct_rejected_inputs")
PIPELINE_STEPS = Relation("metrics", "fct_pipeline_steps")
METRIC_THRESHOLDS = Relation("metrics", "dim_metric_thresholds")
RETRIEVAL_FAILURES = Relation("metrics", "fct_retrieval_failures")
RETRIEVAL_FAILURE_NEIGHBOURS = Relation("metrics", "fct_retrieval_failure_neighbours")
RETRIEVAL_CONFUSIONS = Relation("metrics", "fct_retrieval_confusions")
RANK_MOVES = Relation("metrics", "fct_rank_moves")
LABEL_CONFUSIONS = Relation("metrics", "fct_label_confusions")

MARTS_REPORTED: tuple[Relation, ...] = (
    SIMILARITY_HISTOGRAMS,
    SPACE_COMPARISONS,
    METRIC_HISTORY,
    RERANK_UPLIFT,
    RETRIEVAL_RANKS,
    REJECTED_INPUTS,
    PIPELINE_STEPS,
    METRIC_DELTAS,
    RETRIEVAL_FAILURES,
    RETRIEVAL_FAILURE_NEIGHBOURS,
    RETRIEVAL_CONFUSIONS,
    RANK_MOVES,
    LABEL_CONFUSIONS,
)

MODELS_READ: tuple[Relation, ...] = (
    SPACE_INPUTS,
    LABEL_VECTORS,
    RETRIEVAL_METRICS,
    EMBEDDING_GAPS,
    LABEL_METRICS,
    RERANK_CANDIDATES,
    EVAL_SAMPLE_SIZES,
    RUNS,
    ANN_TUNING_VECTORS,
    ANN_CATALOG_GALLERY,
)

# Tables Python writes and dbt reads as sources.
PRODUCTS = ConfiguredRelation("products_relation", lambda c: c.products_relation)
VECTORS = ConfiguredRelation("vectors_relation", lambda c: c.vectors_relation)
BACKFILL_ERRORS = ConfiguredRelation(
    "backfill_errors_relation", lambda c: c.backfill_errors_relation
)
CLUSTER_ASSIGNMENTS = ConfiguredRelation(
    "cluster_assignments_relation", lambda c: c.labels.cluster_assignments_relation
)


# `embed-udfs rerank` writes its scores and errors beside the vectors.
RERANK_SCORES = ConfiguredRelation(
    "vectors_relation", lambda c: f"{c.vectors_relation.rpartition('.')[0]}.rerank_scores"
)


def rerank_errors(config: ProjectConfig) -> Relation:
    """(query, candidate) pairs a reranker could not score, beside the scores."""
    return Relation(RERANK_SCORES.resolve(config).schema, "rerank_errors")


def cluster_runs(config: ProjectConfig) -> Relation:
    """One row per KMeans run, beside the assignments."""
    return Relation(CLUSTER_ASSIGNMENTS.resolve(config).schema, "cluster_runs")


def backfill_claims(config: ProjectConfig) -> Relation:
    """Which worker holds which rows of a running backfill, beside the vectors."""
    return Relation(VECTORS.resolve(config).schema, "backfill_claims")


def baseline(config: ProjectConfig) -> Relation:
    """The pinned baseline run of fct_metric_deltas (source runs.baseline), beside the vectors."""
    return Relation(VECTORS.resolve(config).schema, "baseline")


# `embed-udfs tune` writes the recall/latency curve beside the vectors, and builds its
# own copies of the galleries, with their HNSW indexes, in a schema of its own.
ANN_TUNING = ConfiguredRelation(
    "vectors_relation", lambda c: f"{c.vectors_relation.rpartition('.')[0]}.ann_tuning"
)
ANN_INDEX_SCHEMA = "ann_index"

# The dbt test that fails when a configured pair or text space has an empty sample.
# The refresh still publishes what was built when it is the only failure: an empty
# sample leaves rows out; it makes no other figure wrong.
EMPTY_SAMPLE_TEST = "test.embed_metrics.assert_eval_samples_not_empty"
