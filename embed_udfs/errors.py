"""Errors a user can act on: each says what was wrong, where, and what to do.

The CLI prints these without a traceback; anything else is a bug.
"""


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
    """A dbt command failed."""


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
