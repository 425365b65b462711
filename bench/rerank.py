"""Benchmark: `embed-udfs rerank` on CPU against its model's forward-only rate,
in one run, for the dual encoder (open_clip) and the cross-encoder (BLIP ITM),
at K = 50 and 100 candidates per query.

    python bench/rerank.py [--products 150] [--clip-model ViT-B-32] [--blip-hidden 128]

- job:     `rerank()` end to end (plan from the database, image reads and
           decodes, forward, NaN checks, COPY and a commit per chunk);
- forward: the same model on the same pairs, inputs decoded and tokenised
           beforehand, no database.

Prints scored pairs/s for each and job/forward - 1, the job's own overhead.
The models have random weights (nothing is downloaded); their cost per
forward is that of the real architecture (ViT-B-32; BLIP at --blip-hidden).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _scratch import PROJECT_DIR, machine, scratch_database

from embed_udfs import demo, store
from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.encoders import resolve_runtime
from embed_udfs.jobs.backfill import backfill_space, decode_image, read_image_bytes
from embed_udfs.jobs.rerank.job import RerankOptions, rerank
from embed_udfs.jobs.rerank.scorers import BlipItmScorer, DualEncoderScorer, load_scorer
from embed_udfs.jobs.rerank.tiny_blip import save_tiny_blip

SPACE = {"backend": "open_clip", "family": "tiny", "model": "embed-metrics-tiny-clip", "dim": 128}


def _vars(k: int, clip_model: str, blip_dir: Path) -> dict:
    return {
        "embed_spaces": [
            {**SPACE, "name": "t", "modality": "text", "text_variant": "raw", "max_words": 50},
            {**SPACE, "name": "i", "modality": "image"},
        ],
        "embed_pairs": [{"name": "p", "text_space": "t", "image_space": "i"}],
        "eval_k_values": [1, 5, 10],
        "hnsw_ef_search": 100,
        "rerank_candidates": k,
        "rerankers": [
            {
                "name": "dual",
                "backend": "open_clip",
                "model": clip_model,
                "pairs": ["p"],
                "batch_size": 64,
            },
            {
                "name": "cross",
                "backend": "blip_itm",
                "model": str(blip_dir),
                "pairs": ["p"],
                "batch_size": 64,
            },
        ],
    }


def _pairs(settings, reranker: str) -> list[tuple[str, str, str, str]]:
    """(text id, text, image id, uri) per candidate, as the job would read them."""
    with connection(settings) as conn:
        return conn.execute(
            "select t.product_id, t.model_input, i.product_id, i.model_input "
            "from intermediate.int_rerank_candidates as c "
            "join intermediate.int_space_inputs as t on t.space = 't' and t.product_id = "
            "  case when c.direction = 'text_to_image' then c.query_product_id "
            "  else c.candidate_product_id end "
            "join intermediate.int_space_inputs as i on i.space = 'i' and i.product_id = "
            "  case when c.direction = 'text_to_image' then c.candidate_product_id "
            "  else c.query_product_id end "
            "where c.reranker = %s "
            "order by c.pair, c.direction, c.query_product_id, c.stage1_rank",
            (reranker,),
        ).fetchall()


def dual_forward(scorer: DualEncoderScorer, pairs, batch: int) -> float:
    """Seconds for the model alone: encode each product once, then the dot products."""
    encoder = scorer.encoder
    texts = dict((t, text) for t, text, _, _ in pairs)
    images = {i: encoder.image_transform(decode_image(read_image_bytes(u))) for _, _, i, u in pairs}
    tokens = [
        encoder.tokenize(list(texts.values())[s : s + batch]) for s in range(0, len(texts), batch)
    ]
    tensors = list(images.values())
    started = time.perf_counter()
    text_vectors = np.concatenate([encoder.encode_token_tensor(t) for t in tokens])
    image_vectors = np.concatenate(
        [
            encoder.encode_image_tensor(torch.stack(tensors[s : s + batch]))
            for s in range(0, len(tensors), batch)
        ]
    )
    t_index = {t: n for n, t in enumerate(texts)}
    i_index = {i: n for n, i in enumerate(images)}
    rows = np.array([t_index[t] for t, _, _, _ in pairs])
    cols = np.array([i_index[i] for _, _, i, _ in pairs])
    scores = np.einsum(
        "ij,ij->i", text_vectors[rows].astype(np.float64), image_vectors[cols].astype(np.float64)
    )
    assert np.isfinite(scores).all()
    return time.perf_counter() - started


def cross_forward(scorer: BlipItmScorer, pairs, batch: int) -> float:
    """Seconds for the model alone: each image's vision tower once, then the ITM head per pair."""
    model = scorer.model
    images = {i: decode_image(read_image_bytes(u)) for _, _, i, u in pairs}
    ids = list(images)
    pixels = scorer.image_processor(images=[images[i] for i in ids], return_tensors="pt")[
        "pixel_values"
    ]
    batches = [
        scorer.tokenizer(
            [text for _, text, _, _ in pairs[s : s + batch]],
            padding=True,
            truncation=True,
            max_length=64,
            return_tensors="pt",
        )
        for s in range(0, len(pairs), batch)
    ]
    pixels = pixels.to(scorer.device)
    batches = [tokens.to(scorer.device) for tokens in batches]
    index = {i: n for n, i in enumerate(ids)}
    started = time.perf_counter()
    with scorer.runtime.forward():
        embeds = torch.cat(
            [
                model.vision_model(pixel_values=pixels[s : s + batch]).last_hidden_state
                for s in range(0, len(ids), batch)
            ]
        )
        for b, tokens in enumerate(batches):
            chunk = pairs[b * batch : (b + 1) * batch]
            image_embeds = embeds[[index[i] for _, _, i, _ in chunk]]
            hidden = model.text_encoder(
                input_ids=tokens["input_ids"],
                attention_mask=tokens["attention_mask"],
                encoder_hidden_states=image_embeds,
                encoder_attention_mask=torch.ones(
                    image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device
                ),
            ).last_hidden_state
            model.itm_head(hidden[:, 0, :])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=150)
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--blip-hidden", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    blip_dir = save_tiny_blip(
        Path(tempfile.mkdtemp()) / "blip", hidden=args.blip_hidden, image_size=224
    )
    print(f"machine: {machine()}, torch threads {torch.get_num_threads()}")
    with scratch_database() as settings:
        image_dir = PROJECT_DIR / ".embed_metrics" / "bench_images"
        products = demo.generate_catalog(image_dir, n_products=args.products, seed=13)
        base = _vars(50, args.clip_model, blip_dir)
        config = load_config(PROJECT_DIR, overrides=base)
        with connection(settings) as conn:
            demo.load_catalog(conn, products)
            store.bootstrap(conn, config)
        target = PROJECT_DIR / "target" / "bench"
        run_dbt(
            ["build", "--select", "+int_space_inputs"],
            settings,
            PROJECT_DIR,
            dbt_vars=base,
            target_path=target,
            quiet=True,
        )
        for space in config.spaces:
            backfill_space(settings, config, space)
        rerankers = config.rerank.rerankers
        runtime = resolve_runtime("cpu", "fp32")
        loaded = {r.name: load_scorer(r, "cpu") for r in rerankers}
        fresh = {
            "dual": lambda: DualEncoderScorer(loaded["dual"].encoder, 64),
            "cross": lambda: BlipItmScorer(
                loaded["cross"].model,
                loaded["cross"].tokenizer,
                loaded["cross"].image_processor,
                runtime,
                loaded["cross"].scorer_ref,
            ),
        }
        forward = {"dual": dual_forward, "cross": cross_forward}
        print(
            f"{'reranker':<8}{'K':>5}{'pairs':>8}{'job pairs/s':>14}{'forward pairs/s':>17}"
            f"{'overhead':>10}"
        )
        for k in (50, 100):
            dbt_vars = _vars(k, args.clip_model, blip_dir)
            run_dbt(
                ["build", "--select", "+int_rerank_candidates"],
                settings,
                PROJECT_DIR,
                dbt_vars=dbt_vars,
                target_path=target,
                quiet=True,
            )
            for reranker in rerankers:
                with connection(settings) as conn:
                    conn.execute("truncate embeddings.rerank_scores, embeddings.rerank_errors")
                    conn.commit()
                pairs = _pairs(settings, reranker.name)
                started = time.perf_counter()
                summary = rerank(
                    settings,
                    config,
                    reranker,
                    RerankOptions(device="cpu"),
                    scorer_factory=lambda _r, name=reranker.name: fresh[name](),
                )
                job = time.perf_counter() - started
                assert summary.scored == len(pairs), summary.line()
                model_only = forward[reranker.name](fresh[reranker.name](), pairs, 64)
                print(
                    f"{reranker.name:<8}{k:>5}{len(pairs):>8}{len(pairs) / job:>14.1f}"
                    f"{len(pairs) / model_only:>17.1f}{job / model_only - 1:>+10.1%}"
                )


if __name__ == "__main__":
    main()
