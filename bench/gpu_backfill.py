"""GPU benchmark of the backfill's loader and model: images/s for ViT-B-32
(random weights) on synthetic JPEGs, decode included, at several batch sizes
in fp16 and bf16, beside the forward-only limit. One call, under 10 minutes.

It runs the backfill's own DataLoader stage (embed_udfs.jobs.backfill.loader:
read, decode, transform in worker processes, pinned memory) and forward pass
(inference_mode + autocast), without the database writes, which the CPU
benchmark (bench/backfill.py) covers.

On a lent GPU machine, which has torch but not open_clip, carry the wheels
(open_clip_torch, ftfy, wcwidth, timm, huggingface_hub...) in an ignored
folder, then:

    PYTHONPATH=.:/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu_backfill.py

Prints the card's name and one line per (precision, batch size).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from embed_udfs.config import SpaceConfig
from embed_udfs.encoders import load_encoder
from embed_udfs.jobs.backfill.loader import ImageDataset, ImageInput, collate


def synthetic_jpegs(folder: Path, count: int, size: int = 384) -> list[ImageInput]:
    """Distinct JPEGs of a typical product-photo size (decode and resize are real work)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    inputs = []
    for i in range(count):
        pixels = np.roll(base, shift=i * 7, axis=i % 2)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        path = folder / f"{i:06d}.jpg"
        path.write_bytes(buffer.getvalue())
        inputs.append(ImageInput(str(i), str(path), ""))
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--precisions", nargs="+", default=["fp16", "bf16"])
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU machine")
    print(
        f"card: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; "
        f"{os.cpu_count()} cpus, {args.workers} decode workers; {args.images} JPEGs 384x384"
    )
    with tempfile.TemporaryDirectory() as folder:
        inputs = synthetic_jpegs(Path(folder), args.images)
        for precision in args.precisions:
            space = SpaceConfig(
                name="gpu_bench",
                modality="image",
                backend="open_clip",
                family="bench",
                model="ViT-B-32",
                dim=512,
            )
            encoder = load_encoder(space, "cuda", precision)
            for batch_size in args.batch_sizes:
                loader = DataLoader(
                    ImageDataset(inputs, encoder.image_transform, "bench"),
                    batch_size=batch_size,
                    num_workers=args.workers,
                    collate_fn=collate,
                    pin_memory=True,
                    prefetch_factor=4,
                    persistent_workers=False,
                )
                batch = torch.randn(batch_size, 3, 224, 224, device="cuda")
                for _ in range(3):
                    encoder.encode_image_tensor(batch)  # warm-up
                torch.cuda.synchronize()
                started = time.perf_counter()
                repeats = max(1, args.images // batch_size)
                for _ in range(repeats):
                    encoder.encode_image_tensor(batch)
                torch.cuda.synchronize()
                limit = repeats * batch_size / (time.perf_counter() - started)

                started = time.perf_counter()
                done = 0
                for _, tensor, _ in loader:
                    encoder.encode_image_tensor(tensor)
                    done += len(tensor)
                torch.cuda.synchronize()
                pipeline = done / (time.perf_counter() - started)
                print(
                    f"{precision} batch {batch_size:4d}: pipeline (decode included) "
                    f"{pipeline:8.0f} images/s | forward-only limit {limit:8.0f} images/s | "
                    f"efficiency {pipeline / limit:4.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
