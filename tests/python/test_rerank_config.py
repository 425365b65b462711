"""vars.rerankers and vars.rerank_candidates: fields of the one configuration, parsed
and refused by embed_udfs.config before anything runs."""

from __future__ import annotations

import pytest
from conftest import PROJECT_DIR, config_for, planted_config, planted_space

from embed_udfs.errors import ConfigError


def _vars(**overrides) -> dict:
    reranker = {
        "name": "r",
        "backend": "blip_itm",
        "model": "Salesforce/blip-itm-base-coco",
        "pairs": ["p"],
    }
    return planted_config(
        [planted_space("t", "text", 4), planted_space("i", "image", 4)],
        [{"name": "p", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 5, 10],
        hnsw_ef_search=60,
        rerankers=[{**reranker, **overrides}],
        rerank_candidates=60,
    )


def test_a_reranker_targets_both_directions_of_its_pairs_by_default():
    raw = _vars()
    config = config_for(raw).rerank
    assert config.candidates == 60
    (reranker,) = config.rerankers
    assert [(t.pair, t.direction) for t in reranker.targets] == [
        ("p", "text_to_image"),
        ("p", "image_to_text"),
    ]
    one_way = _vars(directions=["image_to_text"])
    (reranker,) = config_for(one_way).rerank.rerankers
    assert reranker.directions == ("image_to_text",)


def test_a_relative_checkpoint_is_read_against_the_project(tmp_path):
    raw = _vars(
        backend="open_clip", model="embed-metrics-tiny-clip", pretrained="dbt_project.yml"
    )  # any file of the project stands in
    (reranker,) = config_for(raw).rerank.rerankers
    assert reranker.pretrained == str(PROJECT_DIR / "dbt_project.yml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pairs": []}, r"rerankers\[0\].pairs is \[\]; a reranker needs pairs"),
        ({"directions": ["sideways"]}, r"directions is \['sideways'\]; use text_to_image"),
        ({"batch_size": 0}, r"rerankers\[0\].batch_size is 0; it must be a positive integer"),
        ({"pretrained": "x.pt"}, "pretrained is an open_clip setting"),
        ({"model": ""}, r"rerankers\[0\].model is ''; it must be a non-empty string"),
    ],
)
def test_bad_reranker_fields_are_refused(overrides, message):
    raw = _vars(**overrides)
    with pytest.raises(ConfigError, match=message):
        config_for(raw)


def test_candidates_must_be_positive_and_names_unique():
    raw = {**_vars(), "rerank_candidates": 0}
    with pytest.raises(ConfigError, match="positive integer"):
        config_for(raw)
    raw = _vars()
    raw["rerankers"] = raw["rerankers"] * 2
    with pytest.raises(ConfigError, match="unique"):
        config_for(raw)
