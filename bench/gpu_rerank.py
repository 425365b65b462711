"""GPU benchmark of the reranker scoring loop: scored pairs/s for the dual
encoder (open_clip ViT-B-32) and the cross-encoder (a BLIP ITM of
blip-itm-base-coco's size: ViT-B/16 at 384 px, 12-layer text encoder), random
weights, at K = 50 and 100 candidates per query, in fp16 and bf16, beside the
forward-only rate of the same model on the same pairs. One call, no database.

The loop is the job's own (`DualEncoderScorer` / `BlipItmScorer` prepare and
score, batches split on OOM, images read and decoded from JPEG files); the
database side is what bench/rerank.py measures on CPU. On a lent GPU machine,
carry open_clip_torch and its wheels as for bench/gpu_backfill.py, then:

    PYTHONPATH=.:bench:/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu_rerank.py
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rerank import cross_forward, dual_forward

from embed_udfs.config import RerankerConfig
from embed_udfs.encoders import resolve_runtime
from embed_udfs.jobs.rerank.job import score_splitting
from embed_udfs.jobs.rerank.scorers import BlipItmScorer, DualEncoderScorer, load_scorer


def synthetic_catalog(folder: Path, count: int) -> tuple[dict[str, str], dict[str, str]]:
    rng = np.random.default_rng(0)
    texts, images = {}, {}
    for i in range(count):
        pixels = rng.integers(0, 255, size=(384, 384, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        path = folder / f"{i}.jpg"
        path.write_bytes(buffer.getvalue())
        texts[f"p{i}"] = f"a product photo of item {i}, a red cotton shirt with short sleeves"
        images[f"p{i}"] = str(path)
    return texts, images


def candidate_pairs(ids: list[str], k: int) -> list[tuple[str, str, str, str]]:
    rng = np.random.default_rng(1)
    return [(q, "", c, "") for q in ids for c in rng.choice(ids, size=k, replace=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(0), "torch", torch.__version__)
    folder = Path(tempfile.mkdtemp())
    texts, images = synthetic_catalog(folder, args.queries)
    ids = list(texts)
    blip_dir = folder / "blip"
    from transformers import BertTokenizer, BlipConfig, BlipForImageTextRetrieval

    from embed_udfs.jobs.rerank.tiny_blip import minilm_vocab

    tokenizer = BertTokenizer(vocab_file=str(minilm_vocab()))
    BlipForImageTextRetrieval(BlipConfig(image_text_hidden_size=256)).save_pretrained(blip_dir)
    tokenizer.save_pretrained(blip_dir)
    from transformers import BlipImageProcessor

    BlipImageProcessor(size={"height": 384, "width": 384}).save_pretrained(blip_dir)
    rerankers = {
        "dual": RerankerConfig("dual", "open_clip", "ViT-B-32", ("p",)),
        "cross": RerankerConfig("cross", "blip_itm", str(blip_dir), ("p",)),
    }
    print(
        f"{'reranker':<8}{'prec':>6}{'K':>5}{'pairs':>8}{'loop pairs/s':>14}{'forward pairs/s':>17}"
    )
    for precision in ("fp16", "bf16"):
        runtime = resolve_runtime("cuda", precision)
        for name, reranker in rerankers.items():
            loaded = load_scorer(reranker, "cuda", precision)
            for k in (50, 100):
                pairs = candidate_pairs(ids, k)
                for _ in range(2):  # the first pass warms up kernels and caches
                    scorer = (
                        DualEncoderScorer(loaded.encoder, args.batch_size)
                        if name == "dual"
                        else BlipItmScorer(
                            loaded.model,
                            loaded.tokenizer,
                            loaded.image_processor,
                            runtime,
                            loaded.scorer_ref,
                        )
                    )
                    torch.cuda.synchronize()
                    started = time.perf_counter()
                    scorer.prepare(texts, images)
                    for s in range(0, len(pairs), args.batch_size):
                        score_splitting(
                            scorer, [(q, c) for q, _, c, _ in pairs[s : s + args.batch_size]]
                        )
                    torch.cuda.synchronize()
                    loop = time.perf_counter() - started
                full = [(q, texts[q], c, images[c]) for q, _, c, _ in pairs]
                forward = (dual_forward if name == "dual" else cross_forward)(
                    scorer, full, args.batch_size
                )
                print(
                    f"{name:<8}{precision:>6}{k:>5}{len(pairs):>8}{len(pairs) / loop:>14.1f}"
                    f"{len(pairs) / forward:>17.1f}"
                )


if __name__ == "__main__":
    main()
