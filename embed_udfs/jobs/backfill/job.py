"""`embed-udfs backfill`: embed each space's inputs (changed rows only) into the vectors
table. Its flags, declared once below, make the sub-command and the backfill's flags of
`embed-udfs refresh`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from embed_udfs import contract
from embed_udfs.config import ProjectConfig, require_checkpoints
from embed_udfs.db import ConnectionSettings
from embed_udfs.encoders import require_backends
from embed_udfs.errors import EmbedUdfsError
from embed_udfs.jobs.backfill.runner import BackfillOptions, backfill_space
from embed_udfs.jobs.backfill.sources import RemoteImages
from embed_udfs.jobs.base import Job, JobOptions, JobSummary, Shard, option


@dataclass(frozen=True, kw_only=True)
class BackfillJobOptions(JobOptions):
    space: Sequence[str] | None = option(
        flag="--space",
        action="append",
        help="a space to embed (repeatable; default all)",
        refresh_help="backfill only these spaces",
    )
    skip_backfill: bool = option(
        False,
        flag="--skip-backfill",
        action="store_true",
        help="only rebuild the dbt models",
        refresh_help="only rebuild the dbt models",
        command=False,
    )
    dry_run: bool = option(
        False,
        flag="--dry-run",
        action="store_true",
        help="count what would be embedded, embed nothing",
    )
    shard: str | None = option(
        flag="--shard",
        metavar="I/N",
        help="embed only products whose id hashes to I mod N (default: torchrun's "
        "RANK/WORLD_SIZE, else all). Run N workers, on one host or many, to split the work",
    )
    batch_size: int | None = option(
        flag="--batch-size",
        type=int,
        help="rows per forward pass (default 256 images / 512 texts on CUDA, 32 / 64 on CPU); "
        "a batch that runs out of GPU memory is split and retried",
    )
    chunk_size: int = option(
        1024,
        flag="--chunk-size",
        type=int,
        help="rows per committed chunk (default 1024): a killed run loses at most one chunk",
    )
    workers: int | None = option(
        flag="--workers",
        type=int,
        help="image decode processes (default: CPUs - 1, up to 8, on CUDA; 1 on CPU)",
        refresh_help="image decode processes for the backfill (default: CPUs - 1, up to 8, "
        "on CUDA; 1 on CPU); each reads vars.image_fetch_threads images at once",
    )
    retry_errors: bool = option(
        False,
        flag="--retry-errors",
        action="store_true",
        help="forget the recorded errors of these spaces first, so their rows are tried "
        "again (transient failures are retried on every run anyway)",
    )
    reason: Sequence[str] | None = option(
        flag="--reason",
        action="append",
        help="with --retry-errors: only errors whose reason contains this text, e.g. "
        "'not found' or 'corrupt' (repeatable)",
    )
    device: str | None = option(
        flag="--device",
        help="cuda, cuda:N or cpu (default: cuda:LOCAL_RANK under torchrun, "
        "else cuda if available)",
    )
    precision: str = option(
        "auto",
        flag="--precision",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="autocast dtype on CUDA (auto = fp16); CPU always runs fp32",
    )

    def runner_options(self) -> BackfillOptions:
        device = self.device
        if device is None and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per local rank
            device = f"cuda:{os.environ['LOCAL_RANK']}"
        return BackfillOptions(
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            num_workers=self.workers,
            device=device,
            precision=self.precision,
            shard=Shard.parse(self.shard),
            dry_run=self.dry_run,
            retry_errors=tuple(self.reason or ()) if self.retry_errors else None,
        )


class BackfillJob(Job):
    """Embed each space's inputs (changed rows only) into the vectors table."""

    name = "backfill"
    reads = contract.SPACE_INPUTS
    writes = contract.VECTORS
    Options = BackfillJobOptions
    help = "embed the inputs dbt built into embeddings.vectors (changed rows only)"

    def enabled(self, config: ProjectConfig, options: BackfillJobOptions) -> bool:
        return not options.skip_backfill

    def written(self, config: ProjectConfig) -> tuple[contract.Relation, ...]:
        return (self.writes.resolve(config), contract.BACKFILL_ERRORS.resolve(config))

    def check(self, config: ProjectConfig, options: BackfillJobOptions) -> None:
        for name in options.space or ():
            config.space(name)  # an unknown name is refused before any work
        options.runner_options()  # a malformed --shard, too
        if options.reason and not options.retry_errors:
            raise EmbedUdfsError("--reason only narrows --retry-errors; add --retry-errors.")
        if self.enabled(config, options):
            if not options.dry_run:  # a dry run counts rows and loads no model
                names = options.space or [space.name for space in config.spaces]
                require_backends([config.space(name) for name in names])
            require_checkpoints(config, options.space)

    def run(
        self, settings: ConnectionSettings, config: ProjectConfig, options: BackfillJobOptions
    ) -> JobSummary:
        names = options.space or [space.name for space in config.spaces]
        spaces = [config.space(name) for name in names]
        backfill_options = options.runner_options()
        # one download per remote image, and a dead host learnt once, for all the spaces
        with RemoteImages(config.ingest) as remote:
            summaries = [
                backfill_space(settings, config, space, backfill_options, remote=remote)
                for space in spaces
            ]
        if options.dry_run:
            lines = tuple(
                f"{s.space}: would embed {s.embedded}, unchanged {s.unchanged}, "
                f"rejected {sum(s.rejected.values())}"
                for s in summaries
            )
        else:
            lines = tuple(s.line() for s in summaries)
        return JobSummary(self.name, lines, tuple(summaries))
