"""Running a backfill: claimed batches flow through decode workers, the model
and a writer thread at once, so the model is the only thing that waits.

    claim (main) -> read + decode + transform (DataLoader workers, pinned memory)
      -> forward (main; inference_mode, autocast on CUDA; OOM splits the batch)
      -> COPY + commit per chunk (when full or old enough), claims released in
         the same transaction (writer)

A lost database connection is retried with backoff up to
vars.db_retry_deadline_s; images that cannot be read are recorded, never fatal.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from embed_udfs import store
from embed_udfs.config import IngestLimits, ProjectConfig, SpaceConfig
from embed_udfs.db import ConnectionSettings, connect
from embed_udfs.encoders import Encoder, TensorEncoder, as_tensor_encoder, load_encoder
from embed_udfs.errors import DatabaseError
from embed_udfs.jobs.backfill.loader import ImageDataset, ImageInput, collate, forward
from embed_udfs.jobs.backfill.plan import Plan, WorkItem, plan, recipe_ref
from embed_udfs.jobs.backfill.sources import RemoteImages
from embed_udfs.jobs.base import Shard, progress_bar
from embed_udfs.retry import DB_RECONNECT, RetriesExhausted, is_connection_error, retry_call

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackfillOptions:
    """How to run: batch sizes, workers, device, shard. None picks a default per device."""

    batch_size: int | None = None  # rows per forward pass
    chunk_size: int = 1024  # rows per committed chunk
    num_workers: int | None = None  # image decode processes
    device: str | None = None
    precision: str = "auto"
    shard: Shard = field(default_factory=Shard)
    dry_run: bool = False
    # Recorded errors to forget first, so their rows are tried again: None keeps
    # them all, () re-queues them all, else those whose reason contains one of these.
    retry_errors: tuple[str, ...] | None = None


@dataclass
class BackfillSummary:
    space: str
    shard: str = "0/1"
    embedded: int = 0
    unchanged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    left_to_others: int = 0  # rows a concurrent worker holds
    retries: int = 0
    seconds: float = 0.0
    model_ref: str = ""
    inputs: int = 0  # the space's rows in this shard
    requeued: int = 0  # recorded errors forgotten on request (--retry-errors)
    retried: int = 0  # rows whose last failure was transient, tried again
    repaired: Counter[str] = field(default_factory=Counter)  # invalid stored vectors redone

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = (
            f"{self.space}: embedded {self.embedded}, unchanged {self.unchanged}, "
            f"rejected {sum(self.rejected.values())}"
        )
        if self.shard != "0/1":
            text += f" (shard {self.shard})"
        if self.left_to_others:
            text += f", {self.left_to_others} held by another worker"
        if self.embedded:
            text += f"; {self.rate:.1f} rows/s"
        if self.retries:
            text += f"; {self.retries} database operation(s) retried after a lost connection"
        if self.requeued:
            text += f"; {self.requeued} recorded error(s) re-queued"
        if self.retried:
            text += f"; {self.retried} transient failure(s) tried again"
        for reason, count in self.repaired.most_common():
            text += f"\n    {count:>6}  re-embedded, {reason}"
        for reason, count in self.rejected.most_common():
            text += f"\n    {count:>6}  {reason}"
        return text

    def failure_warning(self, share: float) -> str | None:
        """A warning when more than `share` of the space's inputs failed, else None."""
        failed = sum(self.rejected.values())
        if not self.inputs or failed <= share * self.inputs:
            return None
        reason, count = self.rejected.most_common(1)[0]
        return (
            f"space {self.space!r}: {failed} of {self.inputs} inputs "
            f"({failed / self.inputs:.0%}) could not be embedded; most common reason: "
            f"{reason!r} ({count} rows). The rows are in embeddings.backfill_errors. "
            "Transient failures (could not connect, timed out) are tried again on the "
            "next run; `embed-udfs backfill --retry-errors` re-queues the others "
            "(vars.backfill_failure_warn_share sets when this warning shows)."
        )


def default_batch_size(space: SpaceConfig, device: str) -> int:
    if device.startswith("cuda"):
        return 256 if space.modality == "image" else 512
    return 32 if space.modality == "image" else 64


def default_workers(device: str) -> int:
    cpus = os.cpu_count() or 1
    # On CPU the model wants the cores; one process keeps decoding ahead of it.
    return min(8, max(1, cpus - 1)) if device.startswith("cuda") else 1


def backfill_space(
    settings: ConnectionSettings,
    config: ProjectConfig,
    space: SpaceConfig,
    options: BackfillOptions | None = None,
    *,
    encoder_factory: Callable[[SpaceConfig], Encoder] | None = None,
    on_commit: Callable[[int, int], None] | None = None,
    remote: RemoteImages | None = None,
) -> BackfillSummary:
    """Embed this shard's changed inputs of one space; return what happened.

    Rerunning after a crash finishes the job: committed chunks are skipped by
    their input hash, and claims of dead sessions are taken over. Pass one
    entered `remote` to the backfills of several spaces: a remote image is then
    downloaded once for all of them, and a host found dead in one space is
    skipped at once in the next.
    """
    options = options or BackfillOptions()
    summary = BackfillSummary(space=space.name, shard=str(options.shard))
    with connect(settings, application_name="embed-udfs backfill plan") as conn:
        store.bootstrap(conn, config)
        stale = store.clear_stale_claims(conn, config)
        if stale:
            log.info("cleared %d claim(s) left by runs that ended without releasing them", stale)
        if options.retry_errors is not None and not options.dry_run:
            summary.requeued = store.requeue_errors(conn, config, space, options.retry_errors)
        work = plan(conn, config, space, options.shard)
        summary.inputs = work.inputs
        summary.unchanged = work.unchanged
        summary.retried = work.retried
        summary.repaired.update(work.repairs)
        summary.rejected.update(work.known_rejections)
        summary.rejected.update(r.reason for r in work.rejections)
        if options.dry_run:
            summary.embedded = len(work.todo)
            return summary
        store.write_rejections(conn, config, space, work.rejections, recipe_ref(space))
        conn.commit()
    for reason, count in work.repairs.items():
        log.warning(
            "%s: %d stored vector(s) fail validation (%s); embedding them again",
            space.name,
            count,
            reason,
        )
    if not work.todo:
        _warn_on_failures(summary, config)
        return summary

    if encoder_factory is None:

        def encoder_factory(space: SpaceConfig) -> Encoder:
            return load_encoder(space, options.device, options.precision)

    encoder = encoder_factory(space)
    summary.model_ref = f"{encoder.model_ref}:{recipe_ref(space)}"
    batch_size = options.batch_size or default_batch_size(space, encoder.device)
    started = time.perf_counter()
    writer = _Writer(settings, config, space, summary, options, on_commit)
    progress = _Progress(len(work.todo), f"{space.name}: embedding")
    writer.progress = progress
    claims = _Claims(settings, config, space, summary)
    try:
        batches = (
            _image_batches(
                work,
                space,
                as_tensor_encoder(encoder),
                claims,
                batch_size,
                options,
                config.ingest,
                remote if remote is not None else RemoteImages(config.ingest),
            )
            if space.modality == "image"
            else _text_batches(work, claims, batch_size)
        )
        for items, inputs, failures in batches:
            vectors = (
                (
                    forward(as_tensor_encoder(encoder).encode_image_tensor, inputs)
                    if space.modality == "image"
                    else forward(
                        lambda texts: encoder.encode_texts(texts, batch_size=len(texts)), inputs
                    )
                )
                if items
                else np.empty((0, space.dim), np.float32)
            )
            writer.put(items, vectors, failures)
        writer.close()
    finally:
        writer.stop()
        claims.close()
        progress.close()
    summary.left_to_others = claims.skipped
    summary.seconds = time.perf_counter() - started
    _warn_on_failures(summary, config)
    return summary


def _warn_on_failures(summary: BackfillSummary, config: ProjectConfig) -> None:
    warning = summary.failure_warning(config.ingest.backfill_failure_warn_share)
    if warning:
        log.warning("%s", warning)


def _reconnecting(
    settings: ConnectionSettings, config: ProjectConfig, summary: BackfillSummary, what: str
):
    """The retry policy for database work: backoff up to vars.db_retry_deadline_s."""
    policy = DB_RECONNECT.with_deadline(config.ingest.db_retry_deadline_s)

    def call(fn, reset):
        def on_retry(exc: BaseException, delay: float) -> None:
            reset()
            summary.retries += 1
            log.warning(
                "lost the database connection while %s (%s); reconnecting in %.1fs",
                what,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                delay,
            )

        try:
            return retry_call(fn, policy, is_connection_error, on_retry=on_retry)
        except RetriesExhausted as exc:
            reset()
            raise DatabaseError(
                f"lost the database connection while {what} and could not get it back within "
                f"{policy.deadline_s:g}s (vars.db_retry_deadline_s; {exc.attempts} attempts): "
                f"{exc.last}\nThe chunks committed so far are kept; once {settings.uri} is up "
                "again, rerun the same command to finish."
            ) from exc.last

    return call


class _Progress:
    """A tqdm bar on a terminal; otherwise a log line every LOG_EVERY_S seconds."""

    LOG_EVERY_S = 15.0

    def __init__(self, total: int, desc: str):
        self.total, self.desc = total, desc
        self.bar = progress_bar(total, desc, "row", smoothing=0.1)
        self.done = 0
        self.started = self.logged = time.monotonic()

    def update(self, n: int) -> None:
        self.bar.update(n)
        self.done += n
        now = time.monotonic()
        if self.bar.disable and now - self.logged >= self.LOG_EVERY_S:
            self.logged = now
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            log.info(
                "%s: %d/%d rows (%.0f%%), %.1f rows/s, about %.0fs left",
                self.desc,
                self.done,
                self.total,
                100 * self.done / max(self.total, 1),
                rate,
                left,
            )

    def close(self) -> None:
        self.bar.close()


class _Claims:
    """This worker's claims, made on a connection that lives as long as the run."""

    def __init__(
        self,
        settings: ConnectionSettings,
        config: ProjectConfig,
        space: SpaceConfig,
        summary: BackfillSummary,
    ):
        self.settings, self.config, self.space = settings, config, space
        self.skipped = 0
        self._conn: psycopg.Connection | None = None
        self._retrying = _reconnecting(settings, config, summary, "claiming rows")

    def take(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        def attempt() -> set[str]:
            if self._conn is None or self._conn.closed:
                self._conn = connect(
                    self.settings,
                    autocommit=True,
                    application_name="embed-udfs backfill claims",
                )
            return store.claim(
                self._conn,
                self.config,
                self.space,
                [i.product_id for i in items],
                [i.input_hash for i in items],
            )

        owned = self._retrying(attempt, self.close)
        taken = [item for item in items if item.product_id in owned]
        self.skipped += len(items) - len(taken)
        return taken

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _text_batches(
    work: Plan, claims: _Claims, batch_size: int
) -> Iterator[tuple[list[WorkItem], list[str], list[store.Rejection]]]:
    for start in range(0, len(work.todo), batch_size):
        items = claims.take(work.todo[start : start + batch_size])
        if items:
            yield items, [item.model_input for item in items], []


class _ClaimingSampler:
    """Index batches for the DataLoader, claimed just before they are dispatched."""

    def __init__(self, items: Sequence[WorkItem], claims: _Claims, batch_size: int):
        self.items, self.claims, self.batch_size = items, claims, batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.items), self.batch_size):
            batch = range(start, min(start + self.batch_size, len(self.items)))
            owned = {item.product_id for item in self.claims.take([self.items[i] for i in batch])}
            indices = [i for i in batch if self.items[i].product_id in owned]
            if indices:
                yield indices

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch_size)


def _image_batches(
    work: Plan,
    space: SpaceConfig,
    encoder: TensorEncoder,
    claims: _Claims,
    batch_size: int,
    options: BackfillOptions,
    limits: IngestLimits,
    remote: RemoteImages,
) -> Iterator[tuple[list[WorkItem], Any, list[store.Rejection]]]:
    from torch.utils.data import DataLoader  # torch loads with the first model, not before

    workers = (
        options.num_workers if options.num_workers is not None else default_workers(encoder.device)
    )
    loader = DataLoader(
        ImageDataset(
            [ImageInput(i.product_id, i.model_input, i.input_hash) for i in work.todo],
            encoder.image_transform,
            recipe_ref(space),
            limits,
            remote.hosts.failing(),
            remote.downloads,
        ),
        batch_sampler=_ClaimingSampler(work.todo, claims, batch_size),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=encoder.device.startswith("cuda"),
        prefetch_factor=4 if workers else None,
    )
    for good, tensor, bad in loader:
        for i, _ in good:
            remote.hosts.record(work.todo[i].model_input, ok=True)
        for i, _, _, _, transient in bad:
            remote.hosts.record(work.todo[i].model_input, ok=False, transient=transient)
        items = [_rehash(work.todo[i], digest) for i, digest in good]
        failures = [
            store.Rejection(work.todo[i].product_id, digest, reason, detail, transient)
            for i, digest, reason, detail, transient in bad
        ]
        yield items, tensor, failures


def _rehash(item: WorkItem, digest: str) -> WorkItem:
    # The hash of the bytes that were actually decoded, should the file have changed.
    return (
        item if item.input_hash == digest else WorkItem(item.product_id, item.model_input, digest)
    )


class _Writer:
    """Writes chunks on its own thread: COPY, rejections and claim release, one commit."""

    def __init__(
        self,
        settings: ConnectionSettings,
        config: ProjectConfig,
        space: SpaceConfig,
        summary: BackfillSummary,
        options: BackfillOptions,
        on_commit: Callable[[int, int], None] | None,
    ):
        self.settings, self.config, self.space = settings, config, space
        self.summary, self.options, self.on_commit = summary, options, on_commit
        self.progress: _Progress | None = None
        self._retrying = _reconnecting(
            settings, config, summary, f"writing a chunk of space {space.name!r}"
        )
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._conn: psycopg.Connection | None = None
        self._chunks = 0
        self._thread = threading.Thread(target=self._run, name="embed-udfs-writer", daemon=True)
        self._thread.start()

    def put(
        self, items: list[WorkItem], vectors: np.ndarray, failures: list[store.Rejection]
    ) -> None:
        self._raise_if_failed()
        self._queue.put((items, vectors, failures))

    def close(self) -> None:
        """Flush what is buffered and wait for the last commit."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._conn is not None:
            self._conn.close()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        items: list[WorkItem] = []
        vectors: list[np.ndarray] = []
        failures: list[store.Rejection] = []
        interval = self.config.ingest.backfill_commit_interval_s
        last_commit = time.monotonic()
        try:
            while True:
                # A chunk also commits when it has waited long enough, so that
                # progress and errors land while a slow run goes on.
                wait = max(0.0, last_commit + interval - time.monotonic())
                try:
                    message = self._queue.get(timeout=wait if items or failures else None)
                    timed_out = False
                except queue.Empty:
                    message, timed_out = (), True
                if message:
                    items.extend(message[0])
                    vectors.append(message[1])
                    failures.extend(message[2])
                full = len(items) + len(failures) >= self.options.chunk_size
                old = time.monotonic() - last_commit >= interval
                if (items or failures) and (message is None or full or old or timed_out):
                    stacked = np.concatenate(vectors) if vectors else np.empty((0, self.space.dim))
                    self._write(items, stacked, failures)
                    items, vectors, failures = [], [], []
                    last_commit = time.monotonic()
                elif not items and not failures:
                    last_commit = time.monotonic()
                if message is None:
                    return
        except BaseException as exc:  # handed to the main thread
            self._error = exc
            while True:  # drain so that put() never blocks forever
                try:
                    if self._queue.get_nowait() is None:
                        break
                except queue.Empty:
                    break

    def _write(
        self, items: list[WorkItem], vectors: np.ndarray, failures: list[store.Rejection]
    ) -> None:
        def attempt() -> list[store.Rejection]:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.settings, application_name="embed-udfs backfill writer")
            conn = self._conn
            rejected = (
                store.write_vectors(
                    conn,
                    self.config,
                    self.space,
                    [i.product_id for i in items],
                    [i.input_hash for i in items],
                    vectors,
                    self.summary.model_ref,
                )
                if items
                else []
            )
            store.write_rejections(conn, self.config, self.space, failures, self.summary.model_ref)
            store.release_claims(
                conn,
                self.config,
                self.space,
                [i.product_id for i in items] + [r.product_id for r in failures],
            )
            conn.commit()
            return rejected

        rejected = self._retrying(attempt, self._drop_connection)
        self._chunks += 1
        self.summary.embedded += len(items) - len(rejected)
        self.summary.rejected.update(r.reason for r in rejected)
        self.summary.rejected.update(r.reason for r in failures)
        if self.progress is not None:
            self.progress.update(len(items) + len(failures))
        if self.on_commit is not None:
            self.on_commit(self._chunks, len(items))
