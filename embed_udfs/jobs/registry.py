"""The jobs `refresh` runs and the CLI offers: the built-in ones in their declared order,
then any registered from outside (`register_job`), each after the jobs it names in
`after`. A new job is a package under embed_udfs/jobs/ and one line in BUILT_IN."""

from __future__ import annotations

from embed_udfs.errors import ConfigError
from embed_udfs.jobs.backfill.job import BackfillJob
from embed_udfs.jobs.base import Job
from embed_udfs.jobs.cluster.job import ClusterJob
from embed_udfs.jobs.rerank.job import RerankJob
from embed_udfs.jobs.tune.job import TuneJob

BUILT_IN: tuple[Job, ...] = (BackfillJob(), ClusterJob(), RerankJob(), TuneJob())

_JOBS: dict[str, Job] = {job.name: job for job in BUILT_IN}


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


def job(name: str) -> Job:
    """The registered job of that name."""
    try:
        return _JOBS[name]
    except KeyError:
        raise ConfigError(f"no job {name!r}; the registered jobs are {', '.join(_JOBS)}.") from None
