"""What every encoder backend shares: the protocol, the runtime (device and
precision), unit rows, dimension checks and weight hashes. The backends import this
module; the registry (embed_udfs.encoders) imports them only when it loads one.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from embed_udfs.errors import EncoderError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from embed_udfs.config import SpaceConfig

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEFAULT_BATCH_SIZE = 64


class Encoder(Protocol):
    """What every backend offers: texts (and, for open_clip, images) to unit rows."""

    space: SpaceConfig
    model_ref: str
    dim: int
    device: str

    def encode_texts(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray: ...

    def encode_images(
        self, images: Sequence[Image.Image], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray: ...


@runtime_checkable
class TensorEncoder(Encoder, Protocol):
    """An open_clip encoder, with the pieces a DataLoader pipeline needs."""

    image_transform: Callable[[Image.Image], torch.Tensor]

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor: ...

    def encode_token_tensor(self, tokens: torch.Tensor) -> np.ndarray: ...

    def encode_image_tensor(self, batch: torch.Tensor) -> np.ndarray: ...


def as_tensor_encoder(encoder: Encoder) -> TensorEncoder:
    """The encoder as a TensorEncoder (what the image DataLoader pipeline needs)."""
    if not isinstance(encoder, TensorEncoder):
        raise EncoderError(
            f"space {encoder.space.name!r}: its encoder ({type(encoder).__name__}) has no tensor "
            "interface (image_transform, tokenize, encode_token_tensor, encode_image_tensor), "
            "which image backfills need. Use a backend that registers the image modality."
        )
    return encoder


@dataclass(frozen=True)
class Runtime:
    """Where and how forwards run: the device, and the autocast dtype on CUDA (or None)."""

    device: str
    autocast_dtype: torch.dtype | None
    dtype_name: str

    @contextlib.contextmanager
    def forward(self) -> Iterator[None]:
        import torch

        with torch.inference_mode():
            if self.autocast_dtype is None:
                yield
            else:
                with torch.autocast(device_type="cuda", dtype=self.autocast_dtype):
                    yield


def resolve_runtime(device: str | None, precision: str) -> Runtime:
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device_type = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise EncoderError(
            f"device {device!r} is not a torch device ({exc}); use 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if device_type == "cuda" and not torch.cuda.is_available():
        raise EncoderError(
            f"device {device!r} was asked for, but torch sees no CUDA device here "
            f"(torch {torch.__version__}). Use device 'cpu' or leave it unset."
        )
    if precision not in PRECISIONS:
        raise EncoderError(f"precision {precision!r} is not one of {PRECISIONS}.")
    if precision == "auto":
        precision = "fp16" if device_type == "cuda" else "fp32"
    if precision == "fp32":
        return Runtime(device, None, "float32")
    if device_type != "cuda":
        raise EncoderError(
            f"precision {precision!r} runs as CUDA autocast, and device {device!r} is not CUDA. "
            "Use precision 'fp32' (or 'auto') on CPU."
        )
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return Runtime(device, dtype, str(dtype).removeprefix("torch."))


def unit_rows(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """Rows re-normalised in float32. Zero and NaN rows pass through for the caller to reject."""
    if not isinstance(features, np.ndarray):
        features = features.detach().float().cpu().numpy()
    rows = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    # Dividing a zero row by its norm would turn it into NaN and hide what went wrong.
    return rows / np.where(norms > 0, norms, np.float32(1.0))


def check_dim(space: SpaceConfig, model_dim: int, model_ref: str) -> None:
    if model_dim != space.dim:
        raise EncoderError(
            f"space {space.name!r} is configured with dim {space.dim}, but its model "
            f"({model_ref}) produces {model_dim}-dimensional vectors. Set dim: {model_dim} "
            "for this space in dbt_project.yml, or point the space at the intended model."
        )


def file_sha256(path: str) -> str:
    """First 16 hex digits of the sha256 of a checkpoint file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def state_dict_sha256(module: torch.nn.Module) -> str:
    """First 16 hex digits of a sha256 over a module's named tensors, in key order.

    It identifies weights that did not come from one checkpoint file we can point at
    (a model directory, the Hugging Face cache).
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        cpu = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{cpu.dtype}:{tuple(cpu.shape)};".encode())
        # Viewed as bytes so that bfloat16 and other dtypes numpy lacks hash alike.
        digest.update(cpu.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def batches(items: Sequence, size: int) -> Iterator[Sequence]:
    if size <= 0:
        raise ValueError(f"batch_size must be positive, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def require_sequence(items: object, what: str) -> None:
    # A bare string is a Sequence too, and would be embedded one character at a time.
    if isinstance(items, (str, bytes)):
        raise TypeError(f"{what} takes a sequence of inputs, not a single {type(items).__name__}")
