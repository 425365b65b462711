"""The open_clip backend: CLIP-style text and image towers that share one space.

`pretrained` is an open_clip tag, a local checkpoint file, or None for a seeded random
init. The bundled `embed-metrics-tiny-clip` config gives tests and the demo a fast model.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embed_udfs.encoders.base import (
    DEFAULT_BATCH_SIZE,
    Runtime,
    batches,
    check_dim,
    file_sha256,
    require_sequence,
    state_dict_sha256,
    unit_rows,
)
from embed_udfs.errors import EncoderError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from embed_udfs.config import SpaceConfig

logger = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
SCHEMA_PREFIXES = ("hf-hub:", "local-dir:")
CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".npz", ".ckpt")
RANDOM_INIT_SEED = 0


class OpenClipEncoder:
    """An open_clip model with its tokenizer and inference image transform."""

    def __init__(
        self,
        space: SpaceConfig,
        model: torch.nn.Module,
        image_transform: Callable[[Image.Image], torch.Tensor],
        tokenizer: Callable[..., torch.Tensor],
        runtime: Runtime,
        model_ref: str,
    ) -> None:
        self.space = space
        self.model = model
        self.image_transform = image_transform
        self._tokenizer = tokenizer
        self._runtime = runtime
        self.device = runtime.device
        self.model_ref = model_ref
        self.dim = space.dim

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        require_sequence(texts, "tokenize")
        return self._tokenizer(list(texts))

    def encode_token_tensor(self, tokens: torch.Tensor) -> np.ndarray:
        with self._runtime.forward():
            features = self.model.encode_text(tokens.to(self.device, non_blocking=True))
        return unit_rows(features)

    def encode_image_tensor(self, batch: torch.Tensor) -> np.ndarray:
        with self._runtime.forward():
            features = self.model.encode_image(batch.to(self.device, non_blocking=True))
        return unit_rows(features)

    def encode_texts(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        require_sequence(texts, "encode_texts")
        parts = [
            self.encode_token_tensor(self.tokenize(chunk)) for chunk in batches(texts, batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    def encode_images(
        self, images: Sequence[Image.Image], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        import torch

        require_sequence(images, "encode_images")
        parts = [
            self.encode_image_tensor(torch.stack([self.image_transform(image) for image in chunk]))
            for chunk in batches(images, batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    def output_dim(self) -> int:
        """The model's output width, from one dummy forward of this space's tower."""
        import torch

        if self.space.modality == "image":
            size = self.model.visual.image_size
            height, width = (size, size) if isinstance(size, int) else size
            return self.encode_image_tensor(torch.zeros(1, 3, height, width)).shape[1]
        return self.encode_token_tensor(self.tokenize(["dimension check"])).shape[1]


def load_open_clip(space: SpaceConfig, runtime: Runtime) -> OpenClipEncoder:
    import open_clip
    import torch

    register_bundled_configs()
    name = space.model
    has_schema = name.startswith(SCHEMA_PREFIXES)
    if not has_schema:
        _check_model_name(space)
    pretrained_ref = _pretrained_ref(space, has_schema)

    try:
        if space.pretrained and not os.path.isfile(space.pretrained):
            logger.info(
                "space %s: fetching open_clip weights %r for %s from the hub "
                "(set HF_HUB_OFFLINE=1 to fail fast without a network)",
                space.name,
                space.pretrained,
                name,
            )
        # A seeded init makes two loads of a random model give identical vectors; the
        # fork keeps the caller's random state as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model, _, image_transform = open_clip.create_model_and_transforms(
                name, pretrained=space.pretrained, device=runtime.device
            )
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:
        raise _load_error(space, exc) from exc

    model.eval()
    if has_schema:
        pretrained_ref = f"sha256:{state_dict_sha256(model)}"
    # open_clip reads 'ViT-B/32' as 'ViT-B-32'; one spelling keeps model_ref stable.
    canonical = name if has_schema else name.replace("/", "-")
    model_ref = f"open_clip:{canonical}:pretrained={pretrained_ref}:dtype={runtime.dtype_name}"
    encoder = OpenClipEncoder(space, model, image_transform, tokenizer, runtime, model_ref)
    check_dim(space, encoder.output_dim(), model_ref)
    return encoder


def register_bundled_configs() -> None:
    """Make the model configs shipped with embed_udfs known to open_clip, once."""
    import open_clip

    known = set(open_clip.list_models())
    if any(path.stem not in known for path in MODEL_CONFIG_DIR.glob("*.json")):
        open_clip.add_model_config(MODEL_CONFIG_DIR)


def _check_model_name(space: SpaceConfig) -> None:
    import open_clip

    # open_clip looks built-in names up with '/' replaced by '-'.
    if open_clip.get_model_config(space.model.replace("/", "-")) is not None:
        return
    close = difflib.get_close_matches(space.model, open_clip.list_models(), n=3)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise EncoderError(
        f"space {space.name!r}: open_clip has no model {space.model!r}.{hint} List the valid "
        'names with `python -c "import open_clip; print(open_clip.list_models())"` '
        "(embed_udfs adds 'embed-metrics-tiny-clip'), or use 'hf-hub:<org>/<repo>' or "
        "'local-dir:<path>' for a model with its own open_clip_config.json."
    )


def _pretrained_ref(space: SpaceConfig, has_schema: bool) -> str:
    """The weights part of model_ref; schema models are hashed after loading."""
    import open_clip

    pretrained = space.pretrained
    if has_schema:
        if pretrained is not None:
            raise EncoderError(
                f"space {space.name!r}: model {space.model!r} brings its own weights, so "
                f"pretrained {pretrained!r} would be ignored. Remove pretrained from the space."
            )
        return "pending"
    if pretrained is None:
        return "random"
    if os.path.isfile(pretrained):
        return f"sha256:{file_sha256(pretrained)}"
    if os.sep in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES):
        raise EncoderError(
            f"space {space.name!r}: checkpoint file {pretrained!r} does not exist. Fix the "
            "path in pretrained (absolute, or relative to the project directory)."
        )
    tags = open_clip.list_pretrained_tags_by_model(space.model.replace("/", "-"))
    if pretrained not in tags:
        known = ", ".join(tags) if tags else "none"
        raise EncoderError(
            f"space {space.name!r}: {pretrained!r} is neither an open_clip pretrained tag for "
            f"{space.model!r} (its tags: {known}) nor an existing checkpoint file. Use one of "
            "those tags, or pretrained: /path/to/open_clip_pytorch_model.bin."
        )
    return pretrained


def _load_error(space: SpaceConfig, exc: Exception) -> EncoderError:
    pretrained = space.pretrained
    if pretrained is not None and os.path.isfile(pretrained):
        return EncoderError(
            f"space {space.name!r}: could not load checkpoint {pretrained} into open_clip "
            f"model {space.model!r}: {exc}. Check that the checkpoint was saved from this "
            "architecture (an open_clip state_dict or open_clip_pytorch_model.bin)."
        )
    if pretrained is not None:
        return EncoderError(
            f"space {space.name!r}: no weights could be loaded for open_clip model "
            f"{space.model!r} with pretrained tag {pretrained!r}; the tag needs a download "
            f"that failed ({exc}). Download the checkpoint on a machine with network access and "
            "pass its local path instead: pretrained: /path/to/open_clip_pytorch_model.bin."
        )
    return EncoderError(
        f"space {space.name!r}: open_clip could not create model {space.model!r}: {exc}. "
        "Check the model name and, for hf-hub: or local-dir: models, that their files exist."
    )
