"""Bounds on the ingest path, from dbt_project.yml vars: how many bytes an
image may have, how long a download and a database outage may last, how many
fetches run at once, when a chunk commits and when a run warns about failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from embed_udfs.errors import ConfigError


@dataclass(frozen=True)
class IngestLimits:
    """What `embed-udfs backfill` reads, waits for and tolerates (vars of the same names)."""

    image_max_bytes: int = 50_000_000  # a local file or HTTP body above this is refused
    image_connect_timeout_s: float = 3.0  # TCP connect to an image host
    image_download_deadline_s: float = 30.0  # the whole download, headers and body together
    image_fetch_threads: int = 16  # concurrent image reads per decode worker
    image_fetch_per_host: int = 4  # of which at most this many to one host
    image_host_failures: int = 8  # consecutive connection failures before a host is skipped
    backfill_commit_interval_s: float = 30.0  # a chunk commits when full or this old
    backfill_failure_warn_share: float = 0.2  # warn when more of a space's inputs failed
    db_retry_deadline_s: float = 60.0  # how long a lost database connection is retried


_POSITIVE_INTS = {"image_max_bytes", "image_fetch_threads", "image_fetch_per_host"}
_POSITIVE_INTS |= {"image_host_failures"}


def parse_limits(raw: Mapping[str, Any], where: Path) -> IngestLimits:
    """The limits in `raw` (dbt vars), defaults for those not given; ConfigError if invalid."""
    values: dict[str, Any] = {}
    for spec in fields(IngestLimits):
        if spec.name not in raw:
            continue
        value = raw[spec.name]
        if spec.name in _POSITIVE_INTS:
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            kind = "a positive integer"
        elif spec.name == "backfill_failure_warn_share":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
            kind = "a share from 0 to 1"
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            kind = "a positive number of seconds"
        if not ok:
            raise ConfigError(f"{where}: vars.{spec.name} is {value!r}; it must be {kind}.")
        values[spec.name] = value
    return IngestLimits(**values)
