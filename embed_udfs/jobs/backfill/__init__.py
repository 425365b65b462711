"""Embedding backfill: read what dbt built for each space (int_space_inputs),
embed only the rows whose input hash changed, and write L2-normalised vectors
with binary COPY. Resumable, shardable, and inputs that cannot be embedded go
to backfill_errors with the reason.
"""

from embed_udfs.jobs.backfill.job import BackfillJob, BackfillJobOptions
from embed_udfs.jobs.backfill.plan import WorkItem, input_hash, recipe_ref
from embed_udfs.jobs.backfill.runner import BackfillOptions, BackfillSummary, backfill_space
from embed_udfs.jobs.backfill.sources import (
    DownloadCache,
    HostHealth,
    RemoteImages,
    decode_image,
    read_image_bytes,
)

__all__ = [
    "BackfillJob",
    "BackfillJobOptions",
    "BackfillOptions",
    "BackfillSummary",
    "DownloadCache",
    "HostHealth",
    "RemoteImages",
    "WorkItem",
    "backfill_space",
    "decode_image",
    "input_hash",
    "read_image_bytes",
    "recipe_ref",
]
