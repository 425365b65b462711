"""Benchmark: the image backfill on CPU, against a naive baseline and the
model's own limit, on the same model and the same demo rows, in one run.

    python bench/backfill.py [--rows 2000] [--model ViT-B-32] [--dim 512]

- baseline: a plain loop of open_clip batches (decode, preprocess, forward)
  with an INSERT per row;
- limit:    the model forward alone, on tensors preprocessed beforehand;
- backfill: `backfill_space`, end to end (plan, claims, decode workers,
  forward, binary COPY, commits).

Prints images/s for each, backfill/baseline (the speed-up) and
backfill/limit (the efficiency: 1.0 means the model is all that takes time).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from _scratch import PROJECT_DIR, machine, scratch_database

from embed_udfs import demo, store
from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.encoders import load_encoder
from embed_udfs.jobs.backfill import BackfillOptions, backfill_space, decode_image, read_image_bytes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, help="decode processes (default: the backfill's)")
    args = parser.parse_args()

    dbt_vars = {
        "embed_spaces": [
            {
                "name": "bench_image",
                "modality": "image",
                "backend": "open_clip",
                "family": "bench",
                "model": args.model,
                "dim": args.dim,
            }
        ],
        "embed_pairs": [],
    }
    config = load_config(PROJECT_DIR, overrides=dbt_vars)
    space = config.space("bench_image")
    with scratch_database(False) as settings:
        image_dir = PROJECT_DIR / ".embed_metrics" / "bench_images"
        products = demo.generate_catalog(image_dir, n_products=args.rows, seed=11)
        with connection(settings) as conn:
            demo.load_catalog(conn, products)
            store.bootstrap(conn, config)
        for step in (["seed"], ["run", "--select", "+int_space_inputs"]):  # recipes read seeds
            run_dbt(
                step,
                settings,
                PROJECT_DIR,
                dbt_vars=dbt_vars,
                target_path=PROJECT_DIR / "target" / "bench",
                quiet=True,
            )
        with connection(settings) as conn:
            uris = [
                u
                for (u,) in conn.execute(
                    "select model_input from intermediate.int_space_inputs "
                    "where space = 'bench_image' and model_input is not null order by product_id"
                )
            ]
        encoder = load_encoder(space, "cpu")
        torch.set_num_threads(os.cpu_count() or 1)
        print(
            f"machine: {machine()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads); model "
            f"{args.model} (random weights), {len(uris)} demo images, batch {args.batch_size}"
        )

        # limit: forward only, on preloaded tensors
        def load(uri: str) -> torch.Tensor | None:
            try:
                return encoder.image_transform(decode_image(read_image_bytes(uri)))
            except (OSError, ValueError):  # the demo's planted broken images
                return None

        tensors = [t for t in map(load, uris) if t is not None]
        batches = [
            torch.stack(tensors[i : i + args.batch_size])
            for i in range(0, len(tensors), args.batch_size)
        ]
        encoder.encode_image_tensor(batches[0])  # warm-up
        started = time.perf_counter()
        for batch in batches:
            encoder.encode_image_tensor(batch)
        limit = len(tensors) / (time.perf_counter() - started)

        # baseline: a plain loop with an INSERT per row
        started = time.perf_counter()
        with connection(settings) as conn:
            conn.execute("create table baseline (product_id text, embedding vector)")
            for i in range(0, len(uris), args.batch_size):
                images = [t for t in map(load, uris[i : i + args.batch_size]) if t is not None]
                vectors = encoder.encode_image_tensor(torch.stack(images))
                for j, vector in enumerate(vectors):
                    conn.execute(
                        "insert into baseline values (%s, %s)", (str(i + j), np.asarray(vector))
                    )
            conn.commit()
        baseline = len(tensors) / (time.perf_counter() - started)

        # the real pipeline, end to end
        started = time.perf_counter()
        summary = backfill_space(
            settings,
            config,
            space,
            BackfillOptions(device="cpu", batch_size=args.batch_size, num_workers=args.workers),
            encoder_factory=lambda _: encoder,
        )
        backfill = summary.embedded / (time.perf_counter() - started)

        print(f"limit (forward only)       {limit:8.1f} images/s")
        print(f"baseline (loop + INSERT)   {baseline:8.1f} images/s")
        print(
            f"backfill (pipeline)        {backfill:8.1f} images/s  ({summary.embedded} embedded, "
            f"{sum(summary.rejected.values())} rejected)"
        )
        print(f"speed-up backfill/baseline {backfill / baseline:8.2f}x")
        print(f"efficiency backfill/limit  {backfill / limit:8.2f}")


if __name__ == "__main__":
    main()
