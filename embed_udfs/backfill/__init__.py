"""Deprecated: the backfill lives in `embed_udfs.jobs.backfill`; import it from there.

This package stays for `python -m embed_udfs.backfill` (see __main__.py), which
`torchrun --nproc-per-node=G -m embed_udfs.backfill` uses to start G sharded workers,
and re-exports what it used to hold."""

import warnings

from embed_udfs.jobs.backfill import (
    BackfillOptions,
    BackfillSummary,
    DownloadCache,
    HostHealth,
    RemoteImages,
    WorkItem,
    backfill_space,
    decode_image,
    input_hash,
    read_image_bytes,
    recipe_ref,
)
from embed_udfs.jobs.base import Shard

warnings.warn(
    "embed_udfs.backfill is deprecated: import from embed_udfs.jobs.backfill "
    "(Shard from embed_udfs.jobs.base)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "BackfillOptions",
    "BackfillSummary",
    "DownloadCache",
    "HostHealth",
    "RemoteImages",
    "Shard",
    "WorkItem",
    "backfill_space",
    "decode_image",
    "input_hash",
    "read_image_bytes",
    "recipe_ref",
]
