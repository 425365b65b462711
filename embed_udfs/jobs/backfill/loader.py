"""Feeding the model: decode workers that read, hash, decode and transform
images (no database needed), and a forward pass that survives CUDA OOM."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from embed_udfs.config import IngestLimits
from embed_udfs.jobs.backfill.sources import (
    CORRUPT,
    DEFAULT_LIMITS,
    DownloadCache,
    Fetcher,
    ReadFailure,
    decode_image,
    input_hash,
    is_remote,
)
from embed_udfs.jobs.base import split_on_out_of_memory

log = logging.getLogger(__name__)

# (index, tensor or None, input hash, rejection reason or None, detail, transient)
Sample = tuple[int, Any, str, str | None, str, bool]


class ImageInput(NamedTuple):
    product_id: str
    uri: str
    input_hash: str


class ImageDataset:
    """Read, hash, decode and transform images, in a DataLoader worker.

    A batch's images are read at once (torch's DataLoader calls __getitems__
    with the whole batch), so slow or dead hosts cost one wait per batch.
    """

    def __init__(
        self,
        items: Sequence[ImageInput],
        transform: Callable,
        recipe: str,
        limits: IngestLimits = DEFAULT_LIMITS,
        failing_hosts: Mapping[str, int] | None = None,
        downloads: DownloadCache | None = None,
    ):
        self.items, self.transform, self.recipe = items, transform, recipe
        self.fetcher = Fetcher(limits, failing_hosts, downloads)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Sample]:
        payloads = self.fetcher.read_all([self.items[i].uri for i in indices])
        return [self._decode(i, payload) for i, payload in zip(indices, payloads, strict=True)]

    def _decode(self, index: int, payload: bytes | ReadFailure) -> Sample:
        item = self.items[index]
        if isinstance(payload, ReadFailure):
            return index, None, item.input_hash, payload.reason, payload.detail, payload.transient
        digest = item.input_hash if is_remote(item.uri) else input_hash(self.recipe, payload)
        try:
            image = decode_image(payload)
            return index, self.transform(image), digest, None, "", False
        except Exception as exc:  # one bad image is a rejected row, never a dead run
            return index, None, digest, CORRUPT, f"{item.uri}: {exc}", False


def collate(samples: list[Sample]) -> tuple:
    import torch

    good = [s for s in samples if s[1] is not None]
    tensor = torch.stack([s[1] for s in good]) if good else None
    return (
        [(s[0], s[2]) for s in good],
        tensor,
        [(s[0], s[2], s[3], s[4], s[5]) for s in samples if s[1] is None],
    )


def forward(encode: Callable[[Any], np.ndarray], batch: Any) -> np.ndarray:
    """encode(batch); on CUDA out-of-memory, split the batch in two and go on."""
    return split_on_out_of_memory(encode, batch, _stack)


def _stack(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.concatenate([first, second])
