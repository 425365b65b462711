"""Feeding the model: decode workers that read, hash, decode and transform
images (no database needed), and a forward pass that survives CUDA OOM."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from embed_udfs.backfill.sources import decode_image, input_hash, is_remote, read_image_bytes

log = logging.getLogger(__name__)

CORRUPT_IMAGE = "corrupt image"
MISSING_IMAGE = "missing image: the file or URL cannot be read"


class ImageInput(NamedTuple):
    product_id: str
    uri: str
    input_hash: str


class ImageDataset:
    """Read, hash, decode and transform one image, in a DataLoader worker."""

    def __init__(self, items: Sequence[ImageInput], transform: Callable, recipe: str):
        self.items, self.transform, self.recipe = items, transform, recipe

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, Any, str, str | None, str]:
        item = self.items[index]
        try:
            payload = read_image_bytes(item.uri)
        except OSError as exc:
            return index, None, item.input_hash, MISSING_IMAGE, f"{item.uri}: {exc}"
        digest = item.input_hash if is_remote(item.uri) else input_hash(self.recipe, payload)
        try:
            image = decode_image(payload)
        except ValueError as exc:
            return index, None, digest, CORRUPT_IMAGE, str(exc)
        return index, self.transform(image), digest, None, ""


def collate(samples: list[tuple[int, Any, str, str | None, str]]) -> tuple:
    import torch

    good = [s for s in samples if s[1] is not None]
    tensor = torch.stack([s[1] for s in good]) if good else None
    return (
        [(s[0], s[2]) for s in good],
        tensor,
        [(s[0], s[2], s[3], s[4]) for s in samples if s[1] is None],
    )


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc)
    )


def forward(encode: Callable[[Any], np.ndarray], batch: Any) -> np.ndarray:
    """encode(batch); on CUDA out-of-memory, split the batch in two and go on."""
    try:
        return encode(batch)
    except Exception as exc:
        if not is_out_of_memory(exc) or len(batch) <= 1:
            raise
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(batch) // 2
        log.warning("out of memory on a batch of %d; splitting it in two", len(batch))
        return np.concatenate([forward(encode, batch[:half]), forward(encode, batch[half:])])
