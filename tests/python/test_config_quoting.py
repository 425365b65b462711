"""Configuration strings reach SQL only as quoted literals: a quote in a
checkpoint path, a prompt or a model name builds, and the dimension tables
hold the exact strings."""

from __future__ import annotations

import pytest
from conftest import PROJECT_DIR, config_for, dbt_build, plant, planted_config, query

from embed_udfs.dbt_runner import run_dbt
from embed_udfs.errors import ConfigError, DbtError

CHECKPOINT = "/models/o'brien's ViT-B-32/open_clip_pytorch_model.bin"
PROMPT = "the shopper's pick: "


def _vars(text_fields: list[str] | None = None) -> dict:
    text = {
        "name": "quoted_text",
        "modality": "text",
        "backend": "open_clip",
        "family": "o'brien",
        "model": "ViT-B-32",
        "pretrained": CHECKPOINT,
        "dim": 4,
        "text_variant": "clean",
        "prompt": PROMPT,
        "text_fields": text_fields or ["product_name", "product_description"],
    }
    image = {**text, "name": "quoted_image", "modality": "image"}
    for key in ("text_variant", "prompt", "text_fields"):
        image.pop(key)
    pair = {"name": "quoted", "text_space": "quoted_text", "image_space": "quoted_image"}
    return planted_config([text, image], [pair])


def test_a_quote_in_a_checkpoint_path_builds_and_is_kept_exactly(db, tmp_path):
    dbt_vars = _vars()
    plant(db, config_for(dbt_vars), [("P1", "bags"), ("P2", "shoes")], {})
    dbt_build(
        db, dbt_vars, tmp_path, "+int_space_inputs", "dim_embedding_spaces", "dim_retrieval_pairs"
    )
    spaces = query(
        db,
        "select space, family, pretrained, prompt, text_fields from metrics.dim_embedding_spaces "
        "order by space",
    )
    assert spaces == [
        ("quoted_image", "o'brien", CHECKPOINT, None, None),
        ("quoted_text", "o'brien", CHECKPOINT, PROMPT, "product_name, product_description"),
    ]
    assert query(db, "select pair, text_family from metrics.dim_retrieval_pairs") == [
        ("quoted", "o'brien")
    ]
    inputs = query(
        db,
        "select model_input from intermediate.int_space_inputs "
        "where space = 'quoted_text' order by product_id",
    )
    # the prompt goes in front as configured; the text is cleaned
    assert inputs == [(PROMPT + "product p1 planted",), (PROMPT + "product p2 planted",)]


def test_a_text_field_that_is_not_a_column_name_is_refused(db, tmp_path):
    dbt_vars = _vars(["product_name", "product_name); drop table catalog.products; --"])
    with pytest.raises(ConfigError, match=r"text_fields\[1\] is .*names reach SQL"):
        dbt_build(db, dbt_vars, tmp_path, "int_space_inputs")
    # dbt run directly (no validation) pastes a text field only as a checked column name
    with pytest.raises(DbtError, match="is not a column name"):
        run_dbt(
            ["build", "--select", "int_space_inputs"],
            db,
            PROJECT_DIR,
            dbt_vars=dbt_vars,
            target_path=tmp_path / "target",
            quiet=True,
            validate=False,
        )
    assert query(db, "select to_regclass('catalog.products') is not null") == [(True,)]
