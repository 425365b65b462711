"""Python jobs behind one interface: each reads one dbt model, writes one table that dbt
declares as a source, and reports what it did. `pipeline.refresh` runs the registered
jobs in dependency order; a new job is one module plus one `register_job` call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from embed_udfs import contract
from embed_udfs.errors import ConfigError

if TYPE_CHECKING:
    from embed_udfs.config import ProjectConfig
    from embed_udfs.db import ConnectionSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    """What a refresh passes every job: dbt --vars and an optional subset of spaces."""

    dbt_vars: Mapping[str, Any] = field(default_factory=dict)
    spaces: Sequence[str] | None = None
    workers: int | None = None  # image decode processes for the backfill (None: its default)


@dataclass(frozen=True)
class JobSummary:
    """What one job did: a line per unit of work (space, shard, ...), and the detail."""

    job: str
    lines: tuple[str, ...]
    details: tuple[Any, ...] = ()

    def line(self) -> str:
        return f"{self.job}: " + ("; ".join(self.lines) if self.lines else "nothing to do")


class Job(Protocol):
    """A Python job. `reads` is the dbt model it reads (an exposure with an enforced
    contract names it); `writes` is the source table it fills. `after` names the jobs
    whose output it reads, so the refresh runs them first."""

    @property
    def name(self) -> str: ...

    @property
    def reads(self) -> contract.Relation: ...

    @property
    def writes(self) -> contract.Relation | contract.ConfiguredRelation: ...

    @property
    def after(self) -> tuple[str, ...]: ...

    def run(
        self, settings: ConnectionSettings, config: ProjectConfig, options: JobOptions
    ) -> JobSummary: ...


_JOBS: dict[str, Job] = {}


def register_job(job: Job) -> Job:
    """Add a job to the refresh (registering a name again replaces the earlier job)."""
    _JOBS[job.name] = job
    return job


def unregister_job(name: str) -> None:
    _JOBS.pop(name, None)


def jobs() -> list[Job]:
    """The registered jobs in dependency order (registration order among equals)."""
    ordered: list[Job] = []
    placed: set[str] = set()
    pending = list(_JOBS.values())
    while pending:
        ready = [job for job in pending if set(job.after) <= placed]
        if not ready:
            blocked = {job.name: [a for a in job.after if a not in placed] for job in pending}
            raise ConfigError(
                f"jobs wait on jobs that never run (unregistered, or a cycle): {blocked}. "
                "Register the missing job or fix its `after`."
            )
        ordered.append(ready[0])
        placed.add(ready[0].name)
        pending.remove(ready[0])
    return ordered


@dataclass(frozen=True)
class BackfillJob:
    """Embed each space's inputs (changed rows only) into the vectors table."""

    name: str = "backfill"
    reads: contract.Relation = contract.SPACE_INPUTS
    writes: contract.ConfiguredRelation = contract.VECTORS
    after: tuple[str, ...] = ()

    def run(
        self, settings: ConnectionSettings, config: ProjectConfig, options: JobOptions
    ) -> JobSummary:
        from embed_udfs.backfill import BackfillOptions, RemoteImages, backfill_space

        names = options.spaces or [space.name for space in config.spaces]
        backfill_options = BackfillOptions(num_workers=options.workers)
        # one download per remote image, and a dead host learnt once, for all the spaces
        with RemoteImages(config.ingest) as remote:
            summaries = [
                backfill_space(
                    settings, config, config.space(name), backfill_options, remote=remote
                )
                for name in names
            ]
        for summary in summaries:
            log.info("%s", summary.line())
        return JobSummary(self.name, tuple(s.line() for s in summaries), tuple(summaries))


@dataclass(frozen=True)
class ClusterJob:
    """PCA + KMeans of every text space's label sample into the cluster assignments."""

    name: str = "cluster"
    reads: contract.Relation = contract.LABEL_VECTORS
    writes: contract.ConfiguredRelation = contract.CLUSTER_ASSIGNMENTS
    after: tuple[str, ...] = ("backfill",)

    def run(
        self, settings: ConnectionSettings, config: ProjectConfig, options: JobOptions
    ) -> JobSummary:
        from embed_udfs.cluster import refresh_clusters

        # the refresh has built what this job reads (int_label_vectors) just before
        summaries = refresh_clusters(settings, config, build_inputs=False)
        return JobSummary(self.name, tuple(s.line() for s in summaries), tuple(summaries))


register_job(BackfillJob())
register_job(ClusterJob())


def _register_rerank() -> None:
    # imported here: the rerank module imports this one for JobSummary
    from embed_udfs.rerank.job import RerankJob

    register_job(RerankJob())


_register_rerank()


def _register_tune() -> None:
    # imported here: the tune module imports this one for JobSummary
    from embed_udfs.tune.job import TuneJob

    register_job(TuneJob())


_register_tune()
