"""Hold the demo's mixed pair fixed and draw fresh catalogs: what does this one mix score?

The Wilson interval of `clip_mixed` describes the queries of one catalog for one mix. This
script separates the two sources of spread in the mixed pair's R@10. It loads the demo's
trained towers through the product's own encoder path (the `clip_text`, `clip_image` and
`clip_b_image` spaces of dbt_project.yml), draws catalogs from the demo generator with
other seeds (seed 7 is the demo's own), and counts R@10 hits per catalog in numpy:

- aligned `clip` text->image, for scale;
- mixed `clip_mixed` text->image and image->text.

Spread across catalogs near the binomial one means the per-query interval is right about
this mix; a mean away from chance (10/N) is this mix's own bias, which only the draw of
the mix (see the rotation null band of bench/demo_figures.py) averages out.

Texts are name and description joined, whitespace-normalised and cut at 50 words, as the
raw `clip_text` recipe feeds them; dbt's deduplication and sampling are not applied, so N
is a little above the demo's eval n.

Usage: .venv/bin/python bench/mixed_pair_resample.py [--catalogs 12] [--products 2400]
Needs the demo checkpoints (`embed-udfs demo train`).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from embed_udfs import demo
from embed_udfs.config import find_project_dir, load_config
from embed_udfs.encoders import Encoder, load_encoder

K = 10


def _hits(queries: np.ndarray, gallery: np.ndarray) -> int:
    similarity = queries @ gallery.T
    rank = 1 + (similarity > np.diag(similarity)[:, None]).sum(axis=1)
    return int((rank <= K).sum())


def _text(product: demo.DemoProduct) -> str:
    fields = (product.product_name or "", product.product_description or "")
    return " ".join(" ".join(fields).split()[:50])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogs", type=int, default=12, help="fresh catalogs (seeds 8, 9, ...)")
    parser.add_argument("--products", type=int, default=2400, help="products drawn per catalog")
    args = parser.parse_args()

    import torch
    from PIL import Image

    project = find_project_dir(Path(__file__).parent)
    config = load_config(project)
    missing = [
        s.name for s in config.spaces if s.pretrained and not (project / s.pretrained).is_file()
    ]
    if missing:
        print(f"missing demo checkpoints for {missing}: run `embed-udfs demo train`.")
        return 2
    text = load_encoder(config.space("clip_text"), "cpu")
    image_a = load_encoder(config.space("clip_image"), "cpu")
    image_b = load_encoder(config.space("clip_b_image"), "cpu")

    def images(encoder: Encoder, products: list[demo.DemoProduct]) -> np.ndarray:
        opened = [Image.open(p.image_uri or "").convert("RGB") for p in products]
        return np.asarray(encoder.encode_images(opened), dtype=np.float64)

    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, torch {torch.__version__};"
        f" K = {K}, {args.products} products drawn per catalog"
    )
    print("seed      N  chance hits  aligned t2i  mixed t2i  mixed i2t")
    rows = []
    for seed in [7, *range(8, 8 + args.catalogs)]:
        with tempfile.TemporaryDirectory() as folder:
            drawn = demo.generate_catalog(Path(folder), n_products=args.products, seed=seed)
            products = []
            for p in drawn:
                if not (p.image_uri and Path(p.image_uri).is_file() and _text(p)):
                    continue
                try:
                    with Image.open(p.image_uri) as img:
                        img.load()
                except OSError:
                    continue  # the generator plants broken images on purpose
                products.append(p)
            texts = np.asarray(text.encode_texts([_text(p) for p in products]), np.float64)
            a, b = images(image_a, products), images(image_b, products)
        n = len(products)
        row = (seed, n, _hits(texts, a), _hits(texts, b), _hits(b, texts))
        rows.append(row)
        print(f"{seed:>4} {n:>6} {K:>12} {row[2]:>12} {row[3]:>10} {row[4]:>10}", flush=True)
    fresh = np.array([r[3:] for r in rows[1:]], dtype=np.float64)
    n_mean = float(np.mean([r[1] for r in rows[1:]]))
    binomial = math.sqrt(K * (1 - K / n_mean))
    for column, name in ((0, "mixed t2i"), (1, "mixed i2t")):
        values = fresh[:, column]
        print(
            f"{name} over {len(values)} fresh catalogs: mean {values.mean():.1f} hits"
            f" ({values.mean() / K:.2f} x chance), sd {values.std(ddof=1):.1f}"
            f" against a binomial sd at chance of {binomial:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
