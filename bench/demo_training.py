"""Time the demo's model training on this machine, against a forward-only baseline.

Trains every model of embed_udfs.demo.training.DEMO_MODELS into a temporary
directory (never the project's cache) and prints, per model, wall and CPU seconds,
seconds per step, and the ratio of a training step to a forward pass of one batch
measured in the same run. Usage: .venv/bin/python bench/demo_training.py
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
import time

import torch

from embed_udfs.demo import generate_catalog
from embed_udfs.demo.training import ensure_demo_models, training_text


def forward_seconds(model_name: str, products, batch_size: int) -> float:
    """One no-grad forward of a batch, the inference floor a training step is measured against."""
    import random

    import open_clip
    from PIL import Image

    from embed_udfs.encoders.open_clip_backend import register_bundled_configs

    register_bundled_configs()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as training runs
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name)
        tokenizer = open_clip.get_tokenizer(model_name)
        batch = products[:batch_size]
        images = torch.stack([preprocess(Image.open(p.image_uri).convert("RGB")) for p in batch])
        rng = random.Random(0)
        tokens = tokenizer([training_text(p, rng) for p in batch])
        with torch.no_grad():
            model(images, tokens)
            started = time.perf_counter()
            for _ in range(3):
                model(images, tokens)
        return (time.perf_counter() - started) / 3
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        demo = generate_catalog(root / "demo_images", n_products=2400, seed=7)
        wall, cpu = time.perf_counter(), time.process_time()
        results = ensure_demo_models(root, demo)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        usable = [p for p in demo if p.image_uri and pathlib.Path(p.image_uri).is_file()]
        for result in results:
            spec = result.spec
            step = result.seconds / spec.steps
            floor = forward_seconds(spec.model, usable[4:], spec.batch_size)
            print(
                f"{spec.name:<20} {spec.model:<26} {spec.loss:<7} {spec.steps:>4} steps "
                f"{result.seconds:7.1f} s  {step:6.3f} s/step  forward-only {floor:6.3f} s/batch  "
                f"ratio {step / floor:5.1f}x"
            )
        print(f"all demo models (training catalog included): {wall:.1f} s wall, {cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
