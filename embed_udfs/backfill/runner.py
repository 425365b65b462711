"""Running a backfill: claimed batches flow through decode workers, the model
and a writer thread at once, so the model is the only thing that waits.

    claim (main) -> read + decode + transform (DataLoader workers, pinned memory)
      -> forward (main; inference_mode, autocast on CUDA; OOM splits the batch)
      -> COPY + commit per chunk, claims released in the same transaction (writer)
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
from tqdm import tqdm

from embed_udfs import store
from embed_udfs.backfill.loader import ImageDataset, ImageInput, collate, forward
from embed_udfs.backfill.plan import Plan, Shard, WorkItem, plan, recipe_ref
from embed_udfs.config import ProjectConfig, SpaceConfig
from embed_udfs.db import ConnectionSettings, connect
from embed_udfs.encoders import Encoder, TensorEncoder, as_tensor_encoder
from embed_udfs.errors import DatabaseError

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
    max_retries: int = 5  # per chunk, on a lost database connection


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
            text += f"; {self.retries} chunk write(s) retried after a lost connection"
        for reason, count in self.rejected.most_common():
            text += f"\n    {count:>6}  {reason}"
        return text


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
) -> BackfillSummary:
    """Embed this shard's changed inputs of one space; return what happened.

    Rerunning after a crash finishes the job: committed chunks are skipped by
    their input hash, and claims of dead sessions are taken over.
    """
    options = options or BackfillOptions()
    summary = BackfillSummary(space=space.name, shard=str(options.shard))
    with connect(settings, application_name="embed-udfs backfill plan") as conn:
        store.bootstrap(conn, config)
        work = plan(conn, config, space, options.shard)
        summary.unchanged = work.unchanged
        summary.rejected.update(work.known_rejections)
        summary.rejected.update(r.reason for r in work.rejections)
        if options.dry_run:
            summary.embedded = len(work.todo)
            return summary
        store.write_rejections(conn, config, space, work.rejections, recipe_ref(space))
        conn.commit()
    if not work.todo:
        return summary

    if encoder_factory is None:
        from embed_udfs.encoders import load_encoder

        def encoder_factory(space: SpaceConfig) -> Encoder:
            return load_encoder(space, options.device, options.precision)

    encoder = encoder_factory(space)
    summary.model_ref = f"{encoder.model_ref}:{recipe_ref(space)}"
    batch_size = options.batch_size or default_batch_size(space, encoder.device)
    started = time.perf_counter()
    writer = _Writer(settings, config, space, summary, options, on_commit)
    progress = tqdm(
        total=len(work.todo),
        desc=f"{space.name}: embedding",
        unit="row",
        disable=None,
        smoothing=0.1,
    )
    writer.progress = progress
    claims = _Claims(settings, config, space)
    try:
        batches = (
            _image_batches(work, space, as_tensor_encoder(encoder), claims, batch_size, options)
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
    return summary


class _Claims:
    """This worker's claims, made on a connection that lives as long as the run."""

    def __init__(self, settings: ConnectionSettings, config: ProjectConfig, space: SpaceConfig):
        self.settings, self.config, self.space = settings, config, space
        self.skipped = 0
        self._conn: psycopg.Connection | None = None

    def take(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        for attempt in range(5):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(
                        self.settings,
                        autocommit=True,
                        application_name="embed-udfs backfill claims",
                    )
                owned = store.claim(
                    self._conn,
                    self.config,
                    self.space,
                    [i.product_id for i in items],
                    [i.input_hash for i in items],
                )
                break
            except psycopg.OperationalError as exc:
                self.close()
                if attempt == 4:
                    raise DatabaseError(
                        f"lost the database connection while claiming rows: {exc}"
                    ) from exc
                time.sleep(0.5 * 2**attempt)
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
) -> Iterator[tuple[list[WorkItem], Any, list[store.Rejection]]]:
    from torch.utils.data import DataLoader

    workers = (
        options.num_workers if options.num_workers is not None else default_workers(encoder.device)
    )
    loader = DataLoader(
        ImageDataset(
            [ImageInput(i.product_id, i.model_input, i.input_hash) for i in work.todo],
            encoder.image_transform,
            recipe_ref(space),
        ),
        batch_sampler=_ClaimingSampler(work.todo, claims, batch_size),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=encoder.device.startswith("cuda"),
        prefetch_factor=4 if workers else None,
    )
    for good, tensor, bad in loader:
        items = [_rehash(work.todo[i], digest) for i, digest in good]
        failures = [
            store.Rejection(work.todo[i].product_id, digest, reason, detail)
            for i, digest, reason, detail in bad
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
        self.progress: tqdm | None = None
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

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        items: list[WorkItem] = []
        vectors: list[np.ndarray] = []
        failures: list[store.Rejection] = []
        try:
            while True:
                message = self._queue.get()
                if message is not None:
                    items.extend(message[0])
                    vectors.append(message[1])
                    failures.extend(message[2])
                full = len(items) + len(failures) >= self.options.chunk_size
                if (items or failures) and (message is None or full):
                    stacked = np.concatenate(vectors) if vectors else np.empty((0, self.space.dim))
                    self._write(items, stacked, failures)
                    items, vectors, failures = [], [], []
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
        delay = 0.5
        for attempt in range(self.options.max_retries + 1):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(
                        self.settings, application_name="embed-udfs backfill writer"
                    )
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
                store.write_rejections(
                    conn, self.config, self.space, failures, self.summary.model_ref
                )
                store.release_claims(
                    conn,
                    self.config,
                    self.space,
                    [i.product_id for i in items] + [r.product_id for r in failures],
                )
                conn.commit()
                break
            except psycopg.OperationalError as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if attempt == self.options.max_retries:
                    raise DatabaseError(
                        f"lost the database connection {attempt + 1} times while writing a chunk "
                        f"of {len(items)} rows of space {self.space.name!r}: {exc}\nThe chunks "
                        "committed so far are kept; rerun the same command to finish."
                    ) from exc
                self.summary.retries += 1
                log.warning(
                    "lost the database connection while writing a chunk of %d rows (%s); "
                    "reconnecting and writing it again in %.1fs",
                    len(items),
                    str(exc).strip(),
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        self._chunks += 1
        self.summary.embedded += len(items) - len(rejected)
        self.summary.rejected.update(r.reason for r in rejected)
        self.summary.rejected.update(r.reason for r in failures)
        if self.progress is not None:
            self.progress.update(len(items) + len(failures))
        if self.on_commit is not None:
            self.on_commit(self._chunks, len(items))
