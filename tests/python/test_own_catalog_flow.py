"""The README's "Your own catalog" steps on a catalog whose images cannot be
reached: `embed-udfs load` then `embed-udfs refresh` with the default spaces
(real MiniLM, the demo's trained CLIP models) publish the text metrics and
name every pair that is not evaluable."""

from __future__ import annotations

import csv
import random

import pytest
from conftest import PROJECT_DIR, query

from embed_udfs import cli
from embed_udfs.config import load_config

WORDS = {
    "Kitchen": ["skillet", "saucepan", "whisk", "cutting board", "chef knife", "colander"],
    "Garden": ["hose", "trowel", "planter", "pruning shears", "watering can", "seed tray"],
    "Toys": ["puzzle", "building blocks", "plush bear", "toy train", "board game", "kite"],
    "Office": ["stapler", "notebook", "desk lamp", "ballpoint pen", "file folder", "tape"],
    "Pets": ["dog leash", "cat bed", "pet bowl", "chew toy", "litter box", "bird cage"],
}
ADJECTIVES = ["durable", "compact", "classic", "large", "small", "deluxe", "light", "sturdy"]


def _catalog_csv(path, n: int = 150) -> None:
    rng = random.Random(4)
    sections = list(WORDS)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["SKU", "Title", "Body", "Category", "Image URL"])
        for i in range(n):
            section = sections[i % len(sections)]
            item = rng.choice(WORDS[section])
            title = f"{rng.choice(ADJECTIVES).title()} {item} {i}"
            body = f"A {rng.choice(ADJECTIVES)} {item} for your {section.lower()} needs."
            writer.writerow(
                [f"SKU-{i:04d}", title, body, section, f"https://img.shop.invalid/{i}.jpg"]
            )


@pytest.mark.usefixtures("demo_models")
def test_a_first_catalog_with_unreachable_images_publishes_its_text_metrics(
    db, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("PGDATABASE", db.dbname)
    path = tmp_path / "products.csv"
    _catalog_csv(path)
    base = ["--project-dir", str(PROJECT_DIR)]
    mapping = "id=SKU,name=Title,description=Body,section=Category,image=Image URL"
    assert cli.main([*base, "load", str(path), "--map", mapping]) == 0
    assert cli.main([*base, "refresh"]) == 0
    out = capsys.readouterr().out

    config = load_config(PROJECT_DIR)
    for pair in config.pairs:
        assert f"not evaluable: retrieval sample for {pair.name} is empty" in out
    assert "only warn" in out  # the demo's floors, on a catalog that is not the demo's
    published = query(
        db,
        "select space, n from metrics.fct_label_metrics where section = 'ALL' "
        "and metric = 'nn1_accuracy' and reduction = 'none' order by space",
    )
    text_spaces = sorted(s.name for s in config.spaces if s.modality == "text")
    assert [space for space, _ in published] == text_spaces
    assert all(n == 150 for _, n in published)
    not_evaluable = query(
        db,
        "select scope from metrics.fct_eval_sample_sizes "
        "where purpose = 'retrieval' and is_empty order by scope",
    )
    assert [scope for (scope,) in not_evaluable] == sorted(p.name for p in config.pairs)
