"""How far does a mixed pair stray from chance, by the number of colours per product?

The demo's mixed pair (`clip_mixed`: the text tower of one trained model against the
image tower of another) is at chance in expectation over the draw of the mix, but one
draw strays by however lumpy the trained towers are (docs/demo-models.md, "Why the mixed
pair is at chance"). This script retrains the demo's two CLIP-loss models (`demo_clip_a`,
`demo_clip_b`: same configs, seeds and steps as `make demo`) on catalogs from the demo
generator with 1, 2, ... colours per product (the demo uses COLOURWAY_SIZE), loads them
through the product's encoder path, and prints per colourway size:

- the participation ratio (effective dimensions) of the text and image vectors;
- aligned `clip` text->image R@10, to show what the models learned;
- the mixed pair's R@10 both ways, with its Wilson interval;
- the rotation null: R@10 when the gallery side gets a uniformly random basis, i.e.
  over draws of the mix. Its mean is chance (10/N) for any towers; its sd against the
  binomial one, and the share of draws whose Wilson interval contains chance (each
  direction, and both at once), say how much one draw can be trusted to look like
  chance.

Eval items are the demo catalog's (seed 7) products with a readable image and text,
deduplicated on text; texts are name and description cut at 50 words as `clip_text`
feeds them. dbt's sampling is not applied, so N is a little above the demo's eval n.

Usage: .venv/bin/python bench/colourway_null.py [--sizes 1,2,4] [--rotations 300]
About a minute per size on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from embed_udfs.config import find_project_dir, load_config
from embed_udfs.demo import COLOURWAY_SIZE, DemoProduct, generate_catalog
from embed_udfs.demo.training import DEMO_MODELS, train, training_catalog
from embed_udfs.encoders import load_encoder

K = 10
Z = 1.959963984540054


def _hits(queries: np.ndarray, gallery: np.ndarray) -> int:
    similarity = queries @ gallery.T
    rank = 1 + (similarity > np.diag(similarity)[:, None]).sum(axis=1)
    return int((rank <= K).sum())


def _wilson(hits: int, n: int) -> tuple[float, float]:
    p = hits / n
    denominator = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denominator
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denominator
    return centre - half, centre + half


def _participation_ratio(vectors: np.ndarray) -> float:
    eigenvalues = np.linalg.eigvalsh(np.cov(vectors.T))
    return float(eigenvalues.sum() ** 2 / (eigenvalues**2).sum())


def _haar(dim: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def _text(product: DemoProduct) -> str:
    fields = (product.product_name or "", product.product_description or "")
    return " ".join(" ".join(fields).split()[:50])


def _eval_items(products: list[DemoProduct]) -> list[DemoProduct]:
    from PIL import Image

    items, seen = [], set()
    for p in products:
        text = _text(p)
        if not (p.image_uri and Path(p.image_uri).is_file() and text) or text in seen:
            continue
        try:
            with Image.open(p.image_uri) as image:
                image.load()
        except OSError:
            continue  # the generator plants broken images on purpose
        seen.add(text)
        items.append(p)
    return items


def measure(size: int, rotations: int, folder: Path) -> dict[str, float]:
    from PIL import Image

    config = load_config(find_project_dir(Path(__file__).parent))
    demo = generate_catalog(folder / "demo", n_products=2400, seed=7, colourway_size=size)
    spec_a, spec_b = (s for s in DEMO_MODELS if s.loss == "clip")
    training = training_catalog(
        folder / "train",
        demo,
        n_products=spec_a.catalog_products,
        seed=spec_a.catalog_seed,
        colourway_size=size,
    )
    encoders = {}
    for spec, text_space, image_space in (
        (spec_a, "clip_text", "clip_image"),
        (spec_b, None, "clip_b_image"),
    ):
        checkpoint = folder / f"{spec.name}.pt"
        train(spec, training, checkpoint)
        for space in (text_space, image_space):
            if space is not None:
                copy = dataclasses.replace(config.space(space), pretrained=str(checkpoint))
                encoders[space] = load_encoder(copy, "cpu")
    items = _eval_items(demo)
    images = [Image.open(p.image_uri or "").convert("RGB") for p in items]
    text = np.asarray(encoders["clip_text"].encode_texts([_text(p) for p in items]), np.float64)
    image_a = np.asarray(encoders["clip_image"].encode_images(images), np.float64)
    image_b = np.asarray(encoders["clip_b_image"].encode_images(images), np.float64)
    n = len(items)
    chance = K / n

    def contains(hits: int) -> bool:
        low, high = _wilson(hits, n)
        return low <= chance <= high

    rng = np.random.default_rng(0)
    null = []
    for _ in range(rotations):
        rotated = image_b @ _haar(image_b.shape[1], rng)
        null.append((_hits(text, rotated), _hits(rotated, text)))
    draws = np.array(null, dtype=np.float64)
    mixed = (_hits(text, image_b), _hits(image_b, text))
    return {
        "n": n,
        "pr_text": _participation_ratio(text),
        "pr_image_a": _participation_ratio(image_a),
        "pr_image_b": _participation_ratio(image_b),
        "aligned_t2i": _hits(text, image_a) / n,
        "mixed_t2i": mixed[0],
        "mixed_i2t": mixed[1],
        "mixed_t2i_contains": contains(mixed[0]),
        "mixed_i2t_contains": contains(mixed[1]),
        "null_mean_t2i": draws[:, 0].mean(),
        "null_mean_i2t": draws[:, 1].mean(),
        "null_sd_t2i": draws[:, 0].std(),
        "null_sd_i2t": draws[:, 1].std(),
        "binomial_sd": math.sqrt(K * (1 - chance)),
        "contains_t2i": float(np.mean([contains(int(h)) for h in draws[:, 0]])),
        "contains_i2t": float(np.mean([contains(int(h)) for h in draws[:, 1]])),
        "contains_both": float(np.mean([contains(int(a)) and contains(int(b)) for a, b in null])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=f"1,2,{COLOURWAY_SIZE}",
        help="colours per product to compare, comma-separated (default: 1,2 and the demo's)",
    )
    parser.add_argument(
        "--rotations", type=int, default=300, help="random bases of the gallery side per size"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import torch

    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, torch {torch.__version__}; K = {K};"
        f" models {', '.join(s.name for s in DEMO_MODELS if s.loss == 'clip')}"
        f" ({', '.join(str(s.steps) for s in DEMO_MODELS if s.loss == 'clip')} steps)"
    )
    for size in sizes:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            r = measure(size, args.rotations, Path(folder))
        print(
            f"\ncolours per product {size}: N {r['n']}, chance hits {K};"
            f" effective dimensions text {r['pr_text']:.1f}, image {r['pr_image_a']:.1f},"
            f" other model's image {r['pr_image_b']:.1f}; aligned t2i R@10"
            f" {r['aligned_t2i']:.3f} ({time.perf_counter() - started:.0f} s)"
        )
        for direction in ("t2i", "i2t"):
            hits = r[f"mixed_{direction}"]
            low, high = _wilson(int(hits), int(r["n"]))
            print(
                f"  mixed {direction}: {hits} hits, Wilson [{low:.4f}, {high:.4f}]"
                f" {'contains' if r[f'mixed_{direction}_contains'] else 'excludes'} chance;"
                f" rotation null mean {r[f'null_mean_{direction}']:.1f}"
                f" sd {r[f'null_sd_{direction}']:.1f} (binomial {r['binomial_sd']:.1f}),"
                f" Wilson contains chance in {r[f'contains_{direction}']:.0%} of draws"
            )
        print(f"  both directions contain chance in {r['contains_both']:.0%} of draws")
    return 0


if __name__ == "__main__":
    sys.exit(main())
