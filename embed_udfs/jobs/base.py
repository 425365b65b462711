"""What every Python job shares: the interface (what it reads and writes, whom it runs
after, the options it declares once for its command and for `refresh`, whether it is
enabled, how it runs) and the parts the jobs have in common: sharding, splitting a
batch that runs out of GPU memory, the progress bar and the summary of what was done.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm import tqdm

from embed_udfs import contract
from embed_udfs.errors import ConfigError

if TYPE_CHECKING:
    from embed_udfs.config import ProjectConfig
    from embed_udfs.db import ConnectionSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Option:
    """One command-line flag of a job, declared once: its sub-command (`embed-udfs
    <job>`) shows it, and `refresh` too when `refresh_help` is set. The value lands in
    the job's options field of the same name (`--batch-size` -> batch_size), whose
    default is the flag's default."""

    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    action: str | None = None  # "store_true", "store_false" or "append"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    dest: str | None = None  # the options field, when it is not named after the flag
    refresh_help: str | None = None  # also a flag of `embed-udfs refresh`, with this help
    command: bool = True  # False: a flag of `refresh` only

    @property
    def name(self) -> str:
        return self.dest or self.flag.lstrip("-").replace("-", "_")


def option(default: Any = None, **declaration: Any) -> Any:
    """A field of a job's options that the command line sets: `option(1024,
    flag="--chunk-size", type=int, help=...)`."""
    return field(default=default, metadata={"option": Option(**declaration)})


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """What every run of a job gets. A job's own options subclass this and declare
    their flags with `option(...)`.

    dbt_vars are the run's --vars. build_inputs: a job run on its own builds what it
    reads with dbt first unless told not to (--no-dbt); the refresh builds every job's
    inputs itself and passes False."""

    dbt_vars: Mapping[str, Any] = field(default_factory=dict)
    build_inputs: bool = True


OptionsT = TypeVar("OptionsT", bound=JobOptions)


def declared_options(options_type: type[JobOptions]) -> list[tuple[Option, Any]]:
    """The flags an options class declares, each with its default, in the order the
    class writes them (a field it redeclares, like build_inputs for --no-dbt, included:
    dataclasses would keep such a field where the base class put it)."""
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    order = list(
        dict.fromkeys(
            name
            for klass in options_type.__mro__
            for name in vars(klass).get("__annotations__", {})
            if name in fields
        )
    )
    return [
        (fields[name].metadata["option"], fields[name].default)
        for name in order
        if "option" in fields[name].metadata
    ]


def options_from(
    options_type: type[OptionsT],
    values: Mapping[str, Any],
    *,
    dbt_vars: Mapping[str, Any] | None = None,
    build_inputs: bool = True,
    refresh: bool = False,
) -> OptionsT:
    """The options object of a job from parsed flags (argparse's namespace as a dict);
    a declared field missing from `values` keeps its default. For the refresh, only the
    flags the job declares for `refresh` are read."""
    chosen = {
        declared.name: values[declared.name]
        for declared, _ in declared_options(options_type)
        if declared.name in values and (declared.refresh_help is not None or not refresh)
    }
    # a declared --no-dbt (dest build_inputs) wins over the caller's default
    return options_type(
        **{"dbt_vars": dict(dbt_vars or {}), "build_inputs": build_inputs, **chosen}
    )


@dataclass(frozen=True)
class JobSummary:
    """What one job did: a line per unit of work (space, shard, ...), and the detail.
    `footer` is what the job's own command prints after the lines (a next step)."""

    job: str
    lines: tuple[str, ...]
    details: tuple[Any, ...] = ()
    footer: tuple[str, ...] = ()

    def line(self) -> str:
        return f"{self.job}: " + ("; ".join(self.lines) if self.lines else "nothing to do")


class Job(ABC):
    """A Python job. `reads` is the dbt model it reads, and `also_reads` any others
    (an exposure with an enforced contract names each); `writes` is the source table
    it fills. `after` names the jobs
    whose output it reads, so the refresh runs them first.

    A job with a `help` line is also a sub-command, `embed-udfs <name>`, whose flags are
    the fields of `Options` declared with `option(...)`."""

    name: str
    reads: contract.Relation
    also_reads: tuple[contract.Relation, ...] = ()
    writes: contract.Relation | contract.ConfiguredRelation
    after: tuple[str, ...] = ()
    Options: type[JobOptions] = JobOptions
    help: str | None = None  # the sub-command's one-line summary
    epilog: str | None = None  # the sub-command's --help epilog

    def enabled(self, config: ProjectConfig, options: Any) -> bool:
        """Whether the refresh runs this job (it is asked before building its inputs)."""
        return True

    def check(self, config: ProjectConfig, options: Any) -> None:
        """Refuse bad options before any work: no dbt, no database (ConfigError)."""
        return None

    def written(self, config: ProjectConfig) -> tuple[contract.Relation, ...]:
        """Every table a run may change: the refresh rebuilds what dbt made from them."""
        return (self.writes.resolve(config),)

    @abstractmethod
    def run(
        self, settings: ConnectionSettings, config: ProjectConfig, options: Any
    ) -> JobSummary: ...


@dataclass(frozen=True)
class Shard:
    """Worker `index` of `count`: it owns the products whose id hashes to index mod count."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """'I/N' (e.g. '0/4'), else torchrun's RANK/WORLD_SIZE, else the whole catalog."""
        if text:
            try:
                index, count = (int(part) for part in text.split("/"))
            except ValueError as exc:
                raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from exc
        else:
            index = int(os.environ.get("RANK", 0))
            count = int(os.environ.get("WORLD_SIZE", 1))
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"shard {index}/{count}: need 0 <= I < N")
        return cls(index, count)

    def owns(self, product_id: str) -> bool:
        if self.count == 1:
            return True
        digest = hashlib.blake2b(product_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def is_out_of_memory(exc: BaseException) -> bool:
    # torch is imported only once a model has failed: the jobs that never load one
    # (cluster, tune) and the CLI start without it
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc)
    )


T = TypeVar("T")


def split_on_out_of_memory(
    call: Callable[[Any], T], batch: Any, join: Callable[[T, T], T], unit: str = "rows"
) -> T:
    """call(batch); on CUDA out-of-memory, split the batch in two, call each half and
    join the results, so a batch too large for the GPU costs time, not the run."""
    try:
        return call(batch)
    except Exception as exc:
        if not is_out_of_memory(exc) or len(batch) <= 1:
            raise
        import torch  # loaded already: the failing call ran a model

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(batch) // 2
        log.warning("out of memory on a batch of %d %s; splitting it in two", len(batch), unit)
        first = split_on_out_of_memory(call, batch[:half], join, unit)
        second = split_on_out_of_memory(call, batch[half:], join, unit)
        return join(first, second)


def progress_bar(total: int, desc: str, unit: str, **kwargs: Any) -> tqdm:
    """The one progress bar of a long loop, on stderr with rate and ETA; off when
    stderr is not a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None, **kwargs)


def int_list(text: str) -> tuple[int, ...]:
    """A flag's value as integers, e.g. --ef-search 64,100,200."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers, e.g. 64,100,200"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one value, e.g. 64,100,200")
    return values
