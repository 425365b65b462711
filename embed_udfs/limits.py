"""Bounds on the ingest path, from dbt_project.yml vars: how many bytes an
image may have, how long a download and a database outage may last, how many
fetches run at once, which non-public addresses image downloads may reach,
when a chunk commits and when a run warns about failures.
"""

from __future__ import annotations

import ipaddress
import re
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
    # Image downloads reach public addresses only; these let them reach others.
    image_allowed_networks: tuple[str, ...] = ()  # CIDRs, e.g. "10.0.0.0/8"
    image_allowed_hosts: tuple[str, ...] = ()  # "host" or "host:port", whatever it resolves to

    def __post_init__(self) -> None:
        # canonical and hashable, however they were given (lists from YAML, any case)
        networks = tuple(str(parse_network(n)) for n in self.image_allowed_networks)
        object.__setattr__(self, "image_allowed_networks", networks)
        hosts = tuple(parse_host(h) for h in self.image_allowed_hosts)
        object.__setattr__(self, "image_allowed_hosts", hosts)


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR ("10.0.0.0/8") or one address ("10.1.2.3"); ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string")
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network: {exc}") from None


_HOST = re.compile(r"^(?:[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")


def parse_host(text: str) -> str:
    """A host name or "host:port" ("[v6]:port"), lowercased; ValueError if it is neither."""
    if not isinstance(text, str) or not _HOST.match(text.strip().lower()):
        raise ValueError(f"{text!r} is not a host name or host:port (no scheme, path or wildcard)")
    return text.strip().lower()


_POSITIVE_INTS = {"image_max_bytes", "image_fetch_threads", "image_fetch_per_host"}
_POSITIVE_INTS |= {"image_host_failures"}
_LISTS = {
    "image_allowed_networks": (parse_network, 'CIDRs, e.g. ["10.0.0.0/8", "127.0.0.1/32"]'),
    "image_allowed_hosts": (parse_host, 'host names or host:port, e.g. ["images.internal"]'),
}


def parse_limits(raw: Mapping[str, Any], where: Path) -> IngestLimits:
    """The limits in `raw` (dbt vars), defaults for those not given; ConfigError if invalid."""
    values: dict[str, Any] = {}
    for spec in fields(IngestLimits):
        if spec.name not in raw:
            continue
        value = raw[spec.name]
        if spec.name in _LISTS:
            values[spec.name] = _parse_list(spec.name, value, where)
            continue
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


def _parse_list(name: str, value: Any, where: Path) -> tuple[str, ...]:
    parse, example = _LISTS[name]
    if value is None:
        return ()
    if isinstance(value, str):  # env_var() and --vars give one string: comma-separated
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: vars.{name} is {value!r}; it must be a list of {example}.")
    for index, item in enumerate(value):
        try:
            parse(item)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: vars.{name}[{index}]: {exc}; it must be a list of {example}."
            ) from None
    return tuple(value)
