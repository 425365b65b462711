"""Planning a backfill: what each space is fed (from the dbt model), which
rows belong to this shard, and which of them changed since the last run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql
from tqdm import tqdm

from embed_udfs import contract, store
from embed_udfs.config import ProjectConfig, SpaceConfig
from embed_udfs.encoders import file_sha256
from embed_udfs.errors import EmbedUdfsError
from embed_udfs.jobs.backfill.hash_cache import CACHE_FILE, ImageHashCache, Key, file_key
from embed_udfs.jobs.backfill.sources import ReadFailure, input_hash, is_remote, read_image_bytes
from embed_udfs.jobs.base import Shard

HASH_THREADS = 8
HASH_CHUNK = 4096  # rows handed to the hashing threads at a time
CACHE_WRITE_BATCH = 10_000  # remembered hashes are written in batches: memory stays bounded
STALE_REPAIR = "stored vector stale: another input of the product was rejected after it"


@dataclass(frozen=True)
class WorkItem:
    product_id: str
    model_input: str  # the text fed to the model, or the image URI
    input_hash: str


def recipe_ref(space: SpaceConfig) -> str:
    """What decides the model's output for an input: backend, model, weights, recipe.

    A checkpoint path counts by its content, so replacing the file re-embeds.
    """
    weights = space.pretrained or "random"
    if space.pretrained and Path(space.pretrained).expanduser().is_file():
        weights = "sha256:" + file_sha256(str(Path(space.pretrained).expanduser()))
    parts = [space.backend, space.model, f"weights={weights}"]
    if space.modality == "text":
        parts += [
            f"fields={'+'.join(space.text_fields)}",
            f"variant={space.text_variant}",
            f"prompt={space.prompt!r}",
        ]
    return ":".join(parts)


def load_inputs(
    conn: psycopg.Connection, space: SpaceConfig
) -> list[tuple[str, str | None, str | None]]:
    """(product_id, model_input, rejection_reason) for the space, from the dbt model."""
    relation = contract.SPACE_INPUTS.identifier
    name = str(contract.SPACE_INPUTS)
    try:
        rows = conn.execute(
            sql.SQL(
                "select product_id, model_input, rejection_reason from {} "
                "where space = %s order by product_id"
            ).format(relation),
            (space.name,),
        ).fetchall()
    except psycopg.errors.UndefinedTable as exc:
        conn.rollback()
        raise EmbedUdfsError(
            f"{name} does not exist: dbt builds what each space is fed. Run "
            "`embed-udfs refresh`, or `dbt build --select +int_space_inputs` first."
        ) from exc
    if not rows:
        has_rows = conn.execute(sql.SQL("select exists (select 1 from {})").format(relation))
        if (has_rows.fetchone() or (False,))[0]:
            raise EmbedUdfsError(
                f"space {space.name!r} has no rows in {name}: the dbt models predate this "
                "space. Rebuild them with `dbt build --select +int_space_inputs`."
            )
    return rows


@dataclass
class Plan:
    todo: list[WorkItem]
    unchanged: int
    rejections: list[store.Rejection]  # new rejections, to record
    known_rejections: dict[str, int]  # reason -> count, already recorded for the same input
    inputs: int = 0  # the space's rows in this shard
    retried: int = 0  # rows whose last failure was transient, tried again
    repairs: dict[str, int] = field(default_factory=dict)  # reason -> stored vectors redone
    hashes_cached: int = 0  # local image files read and hashed now, remembered for next time


def _payload_identity(config: ProjectConfig, space: SpaceConfig, model_input: str) -> bytes:
    """What the input hash covers: the text, or the image bytes (the URI for remote images)."""
    if space.modality == "text":
        return model_input.encode()
    if is_remote(model_input):
        # Downloading every remote image to see if it changed would cost the
        # backfill itself; a changed image needs a changed URL.
        return model_input.encode()
    return read_image_bytes(model_input, config.ingest)


def plan(conn: psycopg.Connection, config: ProjectConfig, space: SpaceConfig, shard: Shard) -> Plan:
    """Hash this shard's inputs; split them into work, unchanged rows and rejections."""
    recipe = recipe_ref(space)
    existing: dict[str, str] = {}
    embedded_at: dict[str, datetime] = {}
    for product_id, digest, at in conn.execute(
        sql.SQL("select product_id, input_hash, embedded_at from {} where space = %s").format(
            store.vectors_table(config)
        ),
        (space.name,),
    ).fetchall():
        existing[product_id], embedded_at[product_id] = digest, at
    recorded: dict[tuple[str, str], tuple[str, bool]] = {}
    latest_rejection: dict[str, tuple[datetime, str]] = {}
    for product_id, digest, reason, transient, at in conn.execute(
        sql.SQL(
            "select product_id, input_hash, reason, transient, occurred_at from {} where space = %s"
        ).format(store.errors_table(config)),
        (space.name,),
    ).fetchall():
        recorded[product_id, digest] = (reason, transient)
        if product_id not in latest_rejection or at > latest_rejection[product_id][0]:
            latest_rejection[product_id] = (at, digest)
    invalid = store.invalid_vectors(conn, config, space)
    # A vector written before a later rejection of another input is stale to dbt
    # (int_vectors_validated); when the input is back to the vector's own, embedding
    # it again makes it current.
    for product_id, (at, digest) in latest_rejection.items():
        stale = product_id in existing and digest != existing[product_id]
        if stale and at > embedded_at[product_id] and product_id not in invalid:
            invalid[product_id] = STALE_REPAIR
    rows = [row for row in load_inputs(conn, space) if shard.owns(row[0])]
    result = Plan(todo=[], unchanged=0, rejections=[], known_rejections={}, inputs=len(rows))

    def reject(
        product_id: str, digest: str, reason: str, detail: str = "", transient: bool = False
    ) -> None:
        if (product_id, digest) in recorded and not transient:
            result.known_rejections[reason] = result.known_rejections.get(reason, 0) + 1
        else:
            result.rejections.append(store.Rejection(product_id, digest, reason, detail, transient))

    cache = ImageHashCache(config.project_dir / CACHE_FILE) if space.modality == "image" else None
    max_bytes = config.ingest.image_max_bytes

    def identify(
        row: tuple[str, str | None, str | None],
    ) -> tuple[str, str, str | ReadFailure, Key | None]:
        """(product_id, input, its input hash or why it could not be read, and the
        file's cache key when the hash is new and worth remembering)."""
        product_id, model_input, _ = row
        assert model_input is not None  # only rows that have an input are identified
        key = file_key(recipe, model_input) if cache is not None else None
        if key is not None and cache is not None and key[2] <= max_bytes:
            cached = cache.lookup(key)
            if cached is not None:
                return product_id, model_input, cached, None
        try:
            payload = _payload_identity(config, space, model_input)
        except ReadFailure as failure:
            return product_id, model_input, failure, None
        return product_id, model_input, input_hash(recipe, payload), key

    ready = [row for row in rows if row[1] is not None]
    for product_id, model_input, reason in rows:
        if model_input is None:
            reject(product_id, input_hash(recipe, b""), reason or "empty input")
    learned: list[tuple[Key, str]] = []
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        # chunk by chunk: pool.map would hold a future (and its result) for every row
        identified = (
            found
            for start in range(0, len(ready), HASH_CHUNK)
            for found in pool.map(identify, ready[start : start + HASH_CHUNK])
        )
        for product_id, model_input, digest, key in tqdm(
            identified,
            total=len(ready),
            desc=f"{space.name}: hashing",
            unit="row",
            disable=None,
            leave=False,
        ):
            if isinstance(digest, ReadFailure):
                reject(
                    product_id,
                    input_hash(recipe, model_input.encode()),
                    digest.reason,
                    digest.detail,
                    digest.transient,
                )
                continue
            if key is not None and cache is not None:
                learned.append((key, digest))
                if len(learned) >= CACHE_WRITE_BATCH:
                    result.hashes_cached += cache.remember(learned)
                    learned.clear()
            if existing.get(product_id) == digest and product_id not in invalid:
                result.unchanged += 1
                continue
            if product_id in invalid and existing.get(product_id) == digest:
                why = invalid[product_id]
                result.repairs[why] = result.repairs.get(why, 0) + 1
            elif (product_id, digest) in recorded:
                reason, transient = recorded[product_id, digest]
                if not transient:
                    result.known_rejections[reason] = result.known_rejections.get(reason, 0) + 1
                    continue
                result.retried += 1
            result.todo.append(WorkItem(product_id, model_input, digest))
    if cache is not None:
        result.hashes_cached += cache.remember(learned)
    return result
