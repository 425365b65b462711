"""Errors a user can act on: each says what was wrong, where, and what to do.

The CLI prints these without a traceback; anything else is a bug.
"""

from __future__ import annotations

from typing import Any


class EmbedUdfsError(Exception):
    """Base class for every error meant for the user, not the developer."""


class ConfigError(EmbedUdfsError):
    """The dbt_project.yml vars (spaces, pairs, eval settings) are invalid."""


class DatabaseError(EmbedUdfsError):
    """The database cannot be reached or lacks something the project needs."""


class PgvectorMissing(DatabaseError):
    """The server has no pgvector, or one older than the project needs."""


class EncoderError(EmbedUdfsError):
    """A model cannot be loaded or run."""


class DbtError(EmbedUdfsError):
    """A dbt command failed; failed_nodes are the unique ids that errored or failed,
    skipped how many nodes dbt skipped because of them, failed_tests the compiled
    SQL of each test that failed (its rows are the failures)."""

    def __init__(
        self,
        message: str,
        failed_nodes: tuple[str, ...] = (),
        skipped: int = 0,
        failed_tests: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.failed_nodes = failed_nodes
        self.skipped = skipped
        self.failed_tests = dict(failed_tests or {})


class NotPublishedError(DbtError):
    """The final build of a refresh failed: nothing was published, `metrics` holds the
    previous figures, and this run's are in the staging schema."""


class EmptySampleError(EmbedUdfsError):
    """The build failed only because a configured pair or space has an empty sample;
    everything else was built, tested and published (summaries: what the jobs did)."""

    def __init__(self, message: str, summaries: list[Any]):
        super().__init__(message)
        self.summaries = summaries


class ClusterError(EmbedUdfsError):
    """PCA + KMeans of the label sample cannot run (no sample yet, an image space, ...)."""


class TuneError(EmbedUdfsError):
    """`embed-udfs tune` cannot measure an index (no vector column, no index, ...)."""


class NotAVectorColumn(TuneError):
    """The relation or column given to `tune --relation` holds no pgvector vectors."""


class NoAnnIndex(TuneError):
    """The column has no HNSW or IVFFlat index to tune (or several, and none was named)."""


class GridBelowDepth(ConfigError):
    """A search setting in the tuning grid cannot return the lists the metrics need."""


class PublishBlocked(DatabaseError):
    """Other sessions held the locks the publish needs past its patience; nothing was
    published, and the message names them."""


class MissingExtra(EmbedUdfsError):
    """A command needs a part of the install that is not there (an extra such as
    `encoders`); the message names the modules and the exact `pip install` line."""

    def __init__(self, message: str, extra: str):
        super().__init__(message)
        self.extra = extra
