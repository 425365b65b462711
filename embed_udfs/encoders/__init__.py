"""Encoders: one module per backend behind one small protocol, and their registry.

`load_encoder(space)` turns a configured space into an object that maps texts (or
images) to float32, L2-normalised rows, and says which weights made them (`model_ref`).
The registry is a leaf: `embed_udfs.config` does not import it; `check_backends` holds
the configured spaces to the registered backends and their modalities.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from embed_udfs import extras
from embed_udfs.encoders.base import (
    DEFAULT_BATCH_SIZE,
    PRECISIONS,
    Encoder,
    Runtime,
    TensorEncoder,
    as_tensor_encoder,
    batches,
    check_dim,
    file_sha256,
    require_sequence,
    resolve_runtime,
    state_dict_sha256,
    unit_rows,
)
from embed_udfs.errors import ConfigError, EncoderError

if TYPE_CHECKING:
    from embed_udfs.config import SpaceConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """A registered encoder backend: its name in `backend:`, what it embeds, its loader,
    and the modules its loader imports (the backfill checks them before any work)."""

    name: str
    modalities: tuple[str, ...]
    loader: Callable[[SpaceConfig, Runtime], Encoder]
    description: str = ""
    requires: tuple[str, ...] = ("torch",)


_BACKENDS: dict[str, Backend] = {}


def register_backend(
    name: str,
    modalities: Sequence[str],
    loader: Callable[[SpaceConfig, Runtime], Encoder],
    description: str = "",
    requires: Sequence[str] = ("torch",),
) -> Backend:
    """Make `backend: <name>` valid in the config and dispatch its spaces to `loader`.

    Config validation, `load_encoder` and the CLI's backend list read this registry;
    registering a name twice replaces the earlier entry (tests register throwaway ones).
    `requires` are the modules `loader` imports; torch by default, since every encoder
    runs on a torch device.
    """
    registered = Backend(name, tuple(modalities), loader, description, tuple(requires))
    _BACKENDS[name] = registered
    return registered


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def backend_names() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def backend(name: str) -> Backend:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise EncoderError(
            f"backend {name!r} is not registered; embed_udfs has encoders for "
            f"{', '.join(map(repr, _BACKENDS))}. Set backend to one of those."
        ) from None


def check_backends(spaces: Sequence[SpaceConfig]) -> None:
    """Each space names a registered backend that embeds its modality; else a ConfigError
    that says which var is wrong and what is registered."""
    for index, space in enumerate(spaces):
        where = f"vars.embed_spaces[{index}]"
        registered = _BACKENDS.get(space.backend)
        if registered is None:
            raise ConfigError(
                f"{where}.backend is '{space.backend}'; use one of {', '.join(_BACKENDS)} "
                "(the registered encoder backends)."
            )
        if space.modality not in registered.modalities:
            raise ConfigError(
                f"{where}: space '{space.name}' has modality {space.modality}, but backend "
                f"'{space.backend}' embeds only {', '.join(registered.modalities)}."
            )


def require_backends(spaces: Sequence[SpaceConfig], command: str = "embed-udfs backfill") -> None:
    """Refuse to embed `spaces` before any work when their backends' modules are not
    installed (the core install has no model stack): the message has the pip line."""
    modules = [module for space in spaces for module in backend(space.backend).requires]
    extras.require(
        extras.ENCODERS,
        command,
        modules,
        instead="or, when the vectors are already in the vectors table, skip the backfill "
        "(`embed-udfs refresh --skip-backfill`)",
    )


def load_encoder(space: SpaceConfig, device: str | None = None, precision: str = "auto") -> Encoder:
    """Load the model behind `space` and check that it produces `space.dim` dimensions.

    device None picks CUDA when available, else CPU. precision "auto" means float32 on
    CPU and float16 autocast on CUDA; "fp32", "fp16" and "bf16" force one.
    """
    registered = backend(space.backend)
    if space.modality not in registered.modalities:
        raise EncoderError(
            f"space {space.name!r} has modality {space.modality}, but backend "
            f"{space.backend!r} embeds only {', '.join(registered.modalities)}."
        )
    runtime = resolve_runtime(device, precision)
    encoder = registered.loader(space, runtime)
    logger.info("space %s: loaded %s on %s", space.name, encoder.model_ref, encoder.device)
    return encoder


def _load_open_clip(space: SpaceConfig, runtime: Runtime) -> Encoder:
    # imported on first use: open_clip and torch take seconds to import
    from embed_udfs.encoders.open_clip_backend import load_open_clip

    return load_open_clip(space, runtime)


def _load_sentence_transformer(space: SpaceConfig, runtime: Runtime) -> Encoder:
    from embed_udfs.encoders.sentence_transformers_backend import load_sentence_transformer

    return load_sentence_transformer(space, runtime)


register_backend(
    "open_clip",
    ("text", "image"),
    _load_open_clip,
    "CLIP-style text and image towers (open_clip): a tag, a checkpoint file or random weights",
    requires=("torch", "torchvision", "open_clip", "PIL"),
)
register_backend(
    "sentence_transformers",
    ("text",),
    _load_sentence_transformer,
    "text models such as MiniLM, GTE or E5 (sentence-transformers), by name or local path",
    requires=("torch", "sentence_transformers"),
)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "PRECISIONS",
    "Backend",
    "Encoder",
    "Runtime",
    "TensorEncoder",
    "as_tensor_encoder",
    "backend",
    "backend_names",
    "batches",
    "check_backends",
    "check_dim",
    "file_sha256",
    "load_encoder",
    "register_backend",
    "require_backends",
    "require_sequence",
    "resolve_runtime",
    "state_dict_sha256",
    "unit_rows",
    "unregister_backend",
]
