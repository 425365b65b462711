"""`embed-udfs rerank` end to end on a small demo catalog: the open_clip dual
encoder (the stage-1 model itself, whose scores must reproduce stage 1), a
tiny random BLIP ITM cross-encoder checked against transformers' own forward,
missing images, NaN scores, refused configurations, and a SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT_DIR, config_for, dbt_build, query

from embed_udfs import demo, store
from embed_udfs.config import RerankerConfig
from embed_udfs.db import connection
from embed_udfs.errors import ConfigError
from embed_udfs.jobs.backfill import backfill_space
from embed_udfs.jobs.backfill.sources import NOT_FOUND
from embed_udfs.jobs.rerank.job import NON_FINITE, RerankOptions, rerank
from embed_udfs.jobs.rerank.scorers import load_scorer
from embed_udfs.jobs.rerank.tiny_blip import save_tiny_blip

CANDIDATES = 12
# history follows every mart; these tests build only the rerank marts
MARTS = (
    "int_bootstrap_clusters",
    "int_rerank_bootstrap_weights",
    "stg_rerank__scores+",
    "--exclude",
    "fct_metric_history+",
)
SPACE = {
    "backend": "open_clip",
    "family": "clip-tiny-random",
    "model": "embed-metrics-tiny-clip",
    "pretrained": None,
    "dim": 128,
}


def _vars(rerankers: list[dict]) -> dict:
    return {
        "embed_spaces": [
            {
                **SPACE,
                "name": "clip_text",
                "modality": "text",
                "text_variant": "raw",
                "max_words": 50,
            },
            {**SPACE, "name": "clip_image", "modality": "image"},
        ],
        "embed_pairs": [{"name": "clip", "text_space": "clip_text", "image_space": "clip_image"}],
        "eval_k_values": [1, 5, 10],
        "hnsw_ef_search": 40,
        "rerank_candidates": CANDIDATES,
        "bootstrap_replicates": 20,
        "rerankers": rerankers,
    }


STAGE1 = {
    "name": "stage1_itself",
    "backend": "open_clip",
    "model": "embed-metrics-tiny-clip",
    "pairs": ["clip"],
    "batch_size": 16,
}


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory) -> Path:
    return save_tiny_blip(tmp_path_factory.mktemp("blip"))


@pytest.fixture(scope="module")
def catalog(db, tmp_path_factory, blip_dir):
    """80 demo products, embedded by the tiny CLIP, with the stage-1 candidates built."""
    image_dir = tmp_path_factory.mktemp("images")
    products = demo.generate_catalog(image_dir, n_products=80, seed=9)
    blip = {
        "name": "blip",
        "backend": "blip_itm",
        "model": str(blip_dir),
        "pairs": ["clip"],
        "batch_size": 8,
    }
    dbt_vars = _vars([STAGE1, blip])
    config = config_for(dbt_vars)
    with connection(db) as conn:
        demo.load_catalog(conn, products)
        store.bootstrap(conn, config)
    target = tmp_path_factory.mktemp("dbt")
    dbt_build(db, dbt_vars, target, "+int_space_inputs")
    for space in config.spaces:
        backfill_space(db, config, space)
    dbt_build(db, dbt_vars, target, "+int_rerank_candidates")
    n = query(db, "select count(*) from intermediate.int_rerank_candidates")[0][0]
    assert n > 0
    return {"vars": dbt_vars, "config": config, "image_dir": image_dir, "target": target}


def _reranker(catalog, name: str) -> RerankerConfig:
    return catalog["config"].rerank.reranker(name)


def _n_candidates(db, reranker: str) -> int:
    return query(
        db,
        "select count(*) from intermediate.int_rerank_candidates where reranker = %s",
        (reranker,),
    )[0][0]


def _clear(db, reranker: str) -> None:
    with connection(db) as conn:
        conn.execute("delete from embeddings.rerank_scores where reranker = %s", (reranker,))
        conn.execute("delete from embeddings.rerank_errors where reranker = %s", (reranker,))
        conn.commit()


def test_the_stage1_model_as_reranker_reproduces_stage1_and_reruns_score_nothing(db, catalog):
    reranker = _reranker(catalog, "stage1_itself")
    summary = rerank(db, catalog["config"], reranker, RerankOptions(device="cpu", chunk_size=100))
    total = _n_candidates(db, "stage1_itself")
    assert summary.scored == total and not summary.unscored
    rows = query(
        db,
        "select c.stage1_distance, s.score from intermediate.int_rerank_candidates as c "
        "join embeddings.rerank_scores as s using (reranker, pair, direction, query_product_id, "
        "candidate_product_id) where c.reranker = 'stage1_itself'",
    )
    assert len(rows) == total  # every candidate scored exactly once
    distances, scores = np.array(rows).T
    # the same model on the same inputs: its cosine is 1 - the stage-1 cosine distance
    np.testing.assert_allclose(scores, 1 - distances, atol=1e-5)
    again = rerank(db, catalog["config"], reranker, RerankOptions(device="cpu"))
    assert again.scored == 0 and again.unchanged == total


def test_two_shards_score_every_candidate_once_between_them(db, catalog):
    from embed_udfs.jobs.base import Shard

    _clear(db, "stage1_itself")
    reranker = _reranker(catalog, "stage1_itself")
    halves = [
        rerank(db, catalog["config"], reranker, RerankOptions(device="cpu", shard=Shard(i, 2)))
        for i in (0, 1)
    ]
    total = _n_candidates(db, "stage1_itself")
    assert all(0 < half.scored < total for half in halves)
    assert sum(half.scored for half in halves) == total
    assert (
        query(db, "select count(*) from embeddings.rerank_scores where reranker = 'stage1_itself'")[
            0
        ][0]
        == total
    )


def test_blip_itm_scores_every_candidate_like_transformers_forward(db, catalog, blip_dir):
    import torch
    from PIL import Image
    from transformers import AutoTokenizer, BlipForImageTextRetrieval, BlipImageProcessor

    _clear(db, "blip")
    reranker = _reranker(catalog, "blip")
    summary = rerank(db, catalog["config"], reranker, RerankOptions(device="cpu", chunk_size=200))
    total = _n_candidates(db, "blip")
    assert summary.scored == total and not summary.unscored
    assert summary.scorer_ref.startswith(f"blip_itm:{blip_dir}:weights=sha256:")
    sample = query(
        db,
        "select s.direction, s.query_product_id, s.candidate_product_id, s.score, "
        "t.model_input, i.model_input from embeddings.rerank_scores as s "
        "join intermediate.int_space_inputs as t on t.space = 'clip_text' and t.product_id = "
        "  case when s.direction = 'text_to_image' then s.query_product_id "
        "  else s.candidate_product_id end "
        "join intermediate.int_space_inputs as i on i.space = 'clip_image' and i.product_id = "
        "  case when s.direction = 'text_to_image' then s.candidate_product_id "
        "  else s.query_product_id end "
        "where s.reranker = 'blip' order by md5(s.query_product_id || s.candidate_product_id) "
        "limit 12",
    )
    model = BlipForImageTextRetrieval.from_pretrained(blip_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(blip_dir)
    processor = BlipImageProcessor.from_pretrained(blip_dir)
    texts = [row[4] for row in sample]
    images = [Image.open(row[5]).convert("RGB") for row in sample]
    with torch.no_grad():
        tokens = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        logits = model(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            pixel_values=pixels,
        ).itm_score
    expected = (logits[:, 1] - logits[:, 0]).numpy()
    np.testing.assert_allclose([row[3] for row in sample], expected, atol=1e-4)

    # the marts rank by these scores: stage-2 rank = 1 + candidates scored strictly higher
    dbt_build(db, catalog["vars"], catalog["target"], *MARTS)
    scores: dict = {}
    for d, q, _candidate, s, positive in query(
        db,
        "select s.direction, s.query_product_id, s.candidate_product_id, s.score, c.is_positive "
        "from embeddings.rerank_scores as s join intermediate.int_rerank_candidates as c "
        "using (reranker, pair, direction, query_product_id, candidate_product_id) "
        "where s.reranker = 'blip'",
    ):
        scores.setdefault((d, q), []).append((s, positive))
    ranks = dict(
        ((d, q), r)
        for d, q, r in query(
            db,
            "select direction, query_product_id, stage2_rank from metrics.fct_rerank_ranks "
            "where reranker = 'blip'",
        )
    )
    assert ranks.keys() == scores.keys()
    for key, rows in scores.items():
        values = np.array([s for s, _ in rows])
        positive = [s for s, p in rows if p]
        expected_rank = 1 + int((values > positive[0]).sum()) if positive else None
        assert ranks[key] == expected_rank, key


def test_missing_image_is_recorded_and_its_queries_keep_stage1_order(db, catalog, tmp_path):
    _clear(db, "stage1_itself")
    uri, product_id = query(
        db,
        "select i.model_input, i.product_id from intermediate.int_space_inputs as i "
        "join intermediate.int_rerank_candidates as c on c.query_product_id = i.product_id "
        "where i.space = 'clip_image' and c.direction = 'image_to_text' "
        "order by i.product_id limit 1",
    )[0]
    moved = tmp_path / "moved.png"
    os.rename(uri, moved)
    try:
        summary = rerank(
            db, catalog["config"], _reranker(catalog, "stage1_itself"), RerankOptions(device="cpu")
        )
    finally:
        os.rename(moved, uri)
    missing = query(
        db,
        "select count(*) from intermediate.int_rerank_candidates where reranker = "
        "'stage1_itself' and ((direction = 'image_to_text' and query_product_id = %s) or "
        "(direction = 'text_to_image' and candidate_product_id = %s))",
        (product_id, product_id),
    )[0][0]
    reasons = query(db, "select reason, count(*) from embeddings.rerank_errors group by reason")
    assert reasons == [(NOT_FOUND, missing)]
    assert sum(summary.unscored.values()) == missing
    assert summary.scored + missing == _n_candidates(db, "stage1_itself")
    dbt_build(db, catalog["vars"], catalog["target"], *MARTS)
    kept = query(
        db,
        "select query_product_id, direction, stage1_rank, stage2_rank, is_reranked "
        "from metrics.fct_rerank_ranks where reranker = 'stage1_itself' and not is_reranked",
    )
    assert (product_id, "image_to_text") in {(q, d) for q, d, *_ in kept}
    assert all(s1 == s2 for _, _, s1, s2, _ in kept)  # kept in stage-1 order
    counted = query(
        db,
        "select direction, n_not_reranked from metrics.fct_rerank_uplift where reranker = "
        "'stage1_itself' and section = 'ALL' and metric = 'recall_at_1'",
    )
    per_direction = {d: 0 for d, _ in counted}
    for _, d, *_ in kept:
        per_direction[d] += 1
    assert dict(counted) == per_direction
    # a rerun with the image back scores the pairs that failed, and only those
    again = rerank(
        db, catalog["config"], _reranker(catalog, "stage1_itself"), RerankOptions(device="cpu")
    )
    assert again.scored == missing
    assert query(db, "select count(*) from embeddings.rerank_errors")[0][0] == 0


def test_nan_scores_are_refused_with_the_reason(db, catalog):
    _clear(db, "stage1_itself")
    reranker = _reranker(catalog, "stage1_itself")
    real = load_scorer(reranker, "cpu")
    poisoned = query(db, "select min(product_id) from intermediate.int_space_inputs")[0][0]

    class NanForOneText:
        scorer_ref, device = real.scorer_ref, real.device

        def prepare(self, texts, images):
            real.prepare(texts, images)

        def score(self, pairs):
            scores, failures = real.score(pairs)
            scores[[i for i, (t, _) in enumerate(pairs) if t == poisoned]] = np.nan
            return scores, failures

    summary = rerank(
        db,
        catalog["config"],
        reranker,
        RerankOptions(device="cpu"),
        scorer_factory=lambda _: NanForOneText(),
    )
    expected = query(
        db,
        "select count(*) from intermediate.int_rerank_candidates where reranker = "
        "'stage1_itself' and ((direction = 'text_to_image' and query_product_id = %s) or "
        "(direction = 'image_to_text' and candidate_product_id = %s))",
        (poisoned, poisoned),
    )[0][0]
    assert expected > 0
    assert summary.unscored == {NON_FINITE: expected}
    assert query(db, "select count(*) from embeddings.rerank_scores where score = 'NaN'")[0][0] == 0
    assert query(db, "select count(*), min(reason) from embeddings.rerank_errors")[0] == (
        expected,
        NON_FINITE,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pairs": ["nope"]}, "rescores pair 'nope', which does not exist"),
        ({"backend": "sentence_transformers"}, "cannot score pair 'clip'"),
        ({"backend": "cohere"}, "backend is 'cohere'; use one of open_clip, blip_itm"),
        ({"name": "Bad-Name"}, "must match"),
    ],
)
def test_bad_rerankers_are_refused_before_dbt_runs(db, catalog, tmp_path, change, message):
    bad = _vars([{**STAGE1, **change}])
    with pytest.raises(ConfigError, match=message):
        config_for(bad)
    with pytest.raises(ConfigError, match=message):
        dbt_build(db, bad, tmp_path, "int_rerank_candidates")


def test_more_candidates_than_the_search_returns_is_refused(db, catalog, tmp_path):
    bad = {**_vars([STAGE1]), "rerank_candidates": 41}
    with pytest.raises(ConfigError, match=r"rerank_candidates \(41\) is above vars.hnsw_ef_search"):
        config_for(bad)
    with pytest.raises(ConfigError, match=r"rerank_candidates \(41\) is above vars.hnsw_ef_search"):
        dbt_build(db, bad, tmp_path, "int_rerank_candidates")


def _cli(db, dbt_vars: dict, *args: str) -> subprocess.Popen:
    env = {**os.environ, **db.env(), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "embed_udfs.cli",
            "--project-dir",
            str(PROJECT_DIR),
            "--vars",
            json.dumps(dbt_vars),
            "rerank",
            "--reranker",
            "blip",
            "--no-dbt",
            "--device",
            "cpu",
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _scored(db) -> dict:
    return dict(
        ((d, q, c), t)
        for d, q, c, t in query(
            db,
            "select direction, query_product_id, candidate_product_id, scored_at "
            "from embeddings.rerank_scores where reranker = 'blip'",
        )
    )


def test_sigkill_mid_rerank_then_rerun_scores_each_candidate_once(db, catalog):
    _clear(db, "blip")
    total = _n_candidates(db, "blip")
    worker = _cli(db, catalog["vars"], "--chunk-size", "40", "--batch-size", "8")
    deadline = time.monotonic() + 180
    while len(_scored(db)) < 80 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = _scored(db)
    assert 0 < len(before) < total, "the run must be killed mid-way for this test to mean much"
    assert len(before) % 40 == 0, "only whole chunks are committed"
    rerun = _cli(db, catalog["vars"], "--chunk-size", "40")
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert f"scored {total - len(before)} pairs" in stdout
    after = _scored(db)
    assert len(after) == total
    assert all(after[key] == at for key, at in before.items())  # committed scores untouched
