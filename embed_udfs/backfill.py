"""Embedding backfill: read what dbt built for each space (int_space_inputs),
embed only the rows whose input hash changed, and write L2-normalised vectors
with binary COPY. Inputs that cannot be embedded go to backfill_errors.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import psycopg
from psycopg import sql
from tqdm import tqdm

from embed_udfs import store
from embed_udfs.config import ProjectConfig, SpaceConfig
from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.errors import EmbedUdfsError

log = logging.getLogger(__name__)

INPUTS_RELATION = ("intermediate", "int_space_inputs")
DEFAULT_CHUNK = 256


@dataclass(frozen=True)
class WorkItem:
    product_id: str
    model_input: str
    input_hash: str
    payload: bytes | str  # image bytes, or the text itself


@dataclass
class BackfillSummary:
    space: str
    embedded: int = 0
    unchanged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    model_ref: str = ""

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        rejected = sum(self.rejected.values())
        text = (
            f"{self.space}: embedded {self.embedded}, unchanged {self.unchanged}, "
            f"rejected {rejected}"
        )
        if self.embedded:
            text += f" ({self.rate:.1f} rows/s)"
        for reason, count in self.rejected.most_common():
            text += f"\n    {count:>6}  {reason}"
        return text


def recipe_ref(space: SpaceConfig) -> str:
    """What decides the model's output for a given input: model, weights and recipe.

    A checkpoint path is identified by its content hash, so replacing the file
    re-embeds; the input hash covers this string plus the input itself.
    """
    weights = space.pretrained or "random"
    path = Path(weights).expanduser()
    if space.pretrained and path.is_file():
        weights = "sha256:" + _file_sha256(path)[:16]
    parts = [space.backend, space.model, f"weights={weights}"]
    if space.modality == "text":
        parts += [
            f"fields={'+'.join(space.text_fields)}",
            f"variant={space.text_variant}",
            f"prompt={space.prompt!r}",
        ]
    return ":".join(parts)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_hash(recipe: str, payload: bytes) -> str:
    return hashlib.sha256(recipe.encode() + b"\0" + payload).hexdigest()


def read_image_bytes(uri: str, timeout: float = 10.0) -> bytes:
    """Bytes of a local path, file:// or http(s):// image; OSError if unreadable."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        from urllib.request import urlopen

        with urlopen(uri, timeout=timeout) as response:  # noqa: S310 - user-configured URIs
            return response.read()
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
    return path.read_bytes()


def load_inputs(
    conn: psycopg.Connection, space: SpaceConfig
) -> list[tuple[str, str | None, str | None]]:
    """(product_id, model_input, rejection_reason) for the space, from the dbt model."""
    relation = sql.Identifier(*INPUTS_RELATION)
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
            f"{'.'.join(INPUTS_RELATION)} does not exist: dbt builds what each space is fed. "
            "Run `embed-udfs refresh`, or `dbt run --select +int_space_inputs` first."
        ) from exc
    if not rows:
        has_products = conn.execute(
            sql.SQL("select exists (select 1 from {})").format(relation)
        ).fetchone()[0]
        if has_products:
            raise EmbedUdfsError(
                f"space {space.name!r} has no rows in {'.'.join(INPUTS_RELATION)}: the dbt "
                "models predate this space. Rebuild them with `dbt run --select +int_space_inputs`."
            )
    return rows


def plan(
    conn: psycopg.Connection,
    config: ProjectConfig,
    space: SpaceConfig,
    summary: BackfillSummary,
) -> tuple[list[WorkItem], list[store.Rejection]]:
    """Hash every input; return what must be embedded and what is rejected up front."""
    recipe = recipe_ref(space)
    existing = dict(
        conn.execute(
            sql.SQL("select product_id, input_hash from {} where space = %s").format(
                store.vectors_table(config)
            ),
            (space.name,),
        ).fetchall()
    )
    known_rejections = {
        (product_id, digest): reason
        for product_id, digest, reason in conn.execute(
            sql.SQL("select product_id, input_hash, reason from {} where space = %s").format(
                store.errors_table(config)
            ),
            (space.name,),
        ).fetchall()
    }
    todo: list[WorkItem] = []
    rejections: list[store.Rejection] = []

    def reject(product_id: str, digest: str, reason: str, detail: str = "") -> None:
        summary.rejected[reason] += 1
        if (product_id, digest) not in known_rejections:
            rejections.append(store.Rejection(product_id, digest, reason, detail))

    for product_id, model_input, reason in tqdm(
        load_inputs(conn, space),
        desc=f"{space.name}: hashing",
        unit="row",
        disable=None,
        leave=False,
    ):
        if model_input is None:
            reject(product_id, input_hash(recipe, b""), reason or "empty input")
            continue
        if space.modality == "image":
            try:
                payload: bytes | str = read_image_bytes(model_input)
            except OSError as exc:
                reject(
                    product_id,
                    input_hash(recipe, model_input.encode()),
                    "missing image: the file or URL cannot be read",
                    f"{model_input}: {exc}",
                )
                continue
            digest = input_hash(recipe, payload)
        else:
            payload = model_input
            digest = input_hash(recipe, model_input.encode())
        if existing.get(product_id) == digest:
            summary.unchanged += 1
        elif (product_id, digest) in known_rejections:
            summary.rejected[known_rejections[product_id, digest]] += 1
        else:
            todo.append(WorkItem(product_id, model_input, digest, payload))
    return todo, rejections


def decode_image(payload: bytes):
    """A PIL RGB image from bytes; ValueError with the reason if it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(payload))
        image.load()
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"corrupt image: {exc}") from exc


def _chunks(items: Sequence[WorkItem], size: int) -> Iterator[Sequence[WorkItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def backfill_space(
    settings: ConnectionSettings,
    config: ProjectConfig,
    space: SpaceConfig,
    *,
    encoder_factory: Callable[[SpaceConfig], object] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    dry_run: bool = False,
) -> BackfillSummary:
    """Embed the space's changed inputs; each chunk of vectors commits with its rejections."""
    summary = BackfillSummary(space=space.name)
    started = time.perf_counter()
    with connection(settings) as conn:
        store.bootstrap(conn, config)
        todo, rejections = plan(conn, config, space, summary)
        if dry_run:
            summary.embedded = len(todo)
            conn.rollback()
            return summary
        store.write_rejections(conn, config, space, rejections, recipe_ref(space))
        conn.commit()
        if not todo:
            summary.seconds = time.perf_counter() - started
            return summary
        if encoder_factory is None:
            from embed_udfs.encoders import load_encoder

            encoder_factory = load_encoder
        encoder = encoder_factory(space)
        summary.model_ref = f"{encoder.model_ref}:{recipe_ref(space)}"
        progress = tqdm(total=len(todo), desc=f"{space.name}: embedding", unit="row", disable=None)
        embed_started = time.perf_counter()
        for chunk in _chunks(todo, chunk_size):
            good, bad = _prepare(space, chunk)
            if good:
                vectors = (
                    encoder.encode_images([x for _, x in good])
                    if space.modality == "image"
                    else encoder.encode_texts([x for _, x in good])
                )
                rejected = store.write_vectors(
                    conn,
                    config,
                    space,
                    [item.product_id for item, _ in good],
                    [item.input_hash for item, _ in good],
                    vectors,
                    summary.model_ref,
                )
                summary.embedded += len(good) - len(rejected)
                for rejection in rejected:
                    summary.rejected[rejection.reason] += 1
            store.write_rejections(conn, config, space, bad, summary.model_ref)
            for rejection in bad:
                summary.rejected[rejection.reason] += 1
            conn.commit()
            progress.update(len(chunk))
        progress.close()
        summary.seconds = time.perf_counter() - embed_started
    return summary


def _prepare(space: SpaceConfig, chunk: Sequence[WorkItem]) -> tuple[list, list[store.Rejection]]:
    """Decode the chunk's inputs; images that do not decode become rejections."""
    if space.modality == "text":
        return [(item, item.payload) for item in chunk], []
    good, bad = [], []
    for item in chunk:
        try:
            good.append((item, decode_image(item.payload)))
        except ValueError as exc:
            bad.append(store.Rejection(item.product_id, item.input_hash, "corrupt image", str(exc)))
    return good, bad
