"""The demo's trained models: a training catalog disjoint from the demo's, a short run
that learns, deterministic cached checkpoints, and loading them like a user's weights."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pathlib

import numpy as np
import pytest
import yaml
from conftest import PROJECT_DIR

from embed_udfs.config import load_config, parse_config
from embed_udfs.demo import DemoProduct, generate_catalog
from embed_udfs.demo.training import (
    TrainingSpec,
    ensure_demo_models,
    train,
    training_catalog,
)
from embed_udfs.encoders import load_encoder
from embed_udfs.errors import ConfigError

SMALL = TrainingSpec(name="t", model="embed-metrics-tiny-clip", loss="clip", seed=1, steps=60)


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> tuple[list[DemoProduct], list[DemoProduct]]:
    root = tmp_path_factory.mktemp("catalogs")
    demo = generate_catalog(root / "demo", n_products=600, seed=7)
    training = training_catalog(root / "train", demo, n_products=800, seed=1007)
    return demo, training


def _bytes(products: list[DemoProduct]) -> set[bytes]:
    return {
        pathlib.Path(p.image_uri).read_bytes()
        for p in products
        if p.image_uri and pathlib.Path(p.image_uri).is_file()
    }


def test_training_catalog_shares_no_id_text_or_image_with_the_demo(catalogs):
    demo, training = catalogs
    assert len(training) > 600
    assert not {p.product_id for p in demo} & {p.product_id for p in training}
    demo_texts = {t for p in demo for t in (p.product_name, p.product_description) if t}
    training_texts = {t for p in training for t in (p.product_name, p.product_description)}
    assert None not in training_texts and "" not in training_texts
    assert not demo_texts & training_texts
    assert not _bytes(demo) & _bytes(training)
    # Exact duplicates share an image; every other training product has its own.
    assert len(_bytes(training)) > 0.9 * len(training)


def _recall_at_10(space_dir: pathlib.Path, pretrained: str | None, held_out) -> float:
    """Text -> image R@10 over the held-out products, ranked with numpy."""
    config = _config(space_dir, pretrained)
    texts = [f"{p.product_name}. {p.product_description}." for p in held_out]
    from PIL import Image

    images = [Image.open(p.image_uri).convert("RGB") for p in held_out]
    text = load_encoder(config.space("t")).encode_texts(texts)
    image = load_encoder(config.space("i")).encode_images(images)
    similarity = text @ image.T
    rank = 1 + (similarity > np.diag(similarity)[:, None]).sum(axis=1)
    return float((rank <= 10).mean())


def _config(project_dir: pathlib.Path, pretrained: str | None):
    """The project's vars with one planted text/image pair of the tiny config."""
    spaces = [
        {
            "name": name,
            "modality": modality,
            "backend": "open_clip",
            "family": "f",
            "model": "embed-metrics-tiny-clip",
            "dim": 128,
            "pretrained": pretrained,
        }
        for name, modality in (("t", "text"), ("i", "image"))
    ]
    project_vars = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    raw = {
        **project_vars,
        "embed_spaces": spaces,
        "embed_pairs": [{"name": "p", "text_space": "t", "image_space": "i"}],
    }
    return parse_config(raw, project_dir)


def test_a_short_run_lowers_the_loss_and_lifts_held_out_recall(catalogs, tmp_path):
    demo, training = catalogs
    held_out = [
        p
        for p in demo
        if p.product_name
        and p.product_description
        and p.image_uri
        and p.collection_section
        and pathlib.Path(p.image_uri).is_file()
    ][:300]
    held_out = [p for p in held_out if _opens(p.image_uri)]
    n = len(held_out)
    checkpoint = tmp_path / "t.pt"
    losses = train(SMALL, training, checkpoint)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5

    random_recall = _recall_at_10(tmp_path, None, held_out)
    trained_recall = _recall_at_10(tmp_path, "t.pt", held_out)
    # Three standard errors of the difference of two proportions at this n.
    margin = 3 * math.sqrt(
        (random_recall * (1 - random_recall) + trained_recall * (1 - trained_recall)) / n
    )
    assert trained_recall - random_recall > margin, (trained_recall, random_recall, n)


def _opens(path: str) -> bool:
    from PIL import Image

    try:
        Image.open(path).convert("RGB")
    except OSError:
        return False
    return True


def test_same_seed_same_checkpoint_and_the_cache_is_hit(catalogs, tmp_path):
    demo, _ = catalogs
    quick = dataclasses.replace(SMALL, steps=3, catalog_products=120)
    other_seed = dataclasses.replace(quick, name="u", seed=2)
    first = ensure_demo_models(tmp_path / "a", demo, [quick, other_seed])
    again = ensure_demo_models(tmp_path / "a", demo, [quick, other_seed])
    elsewhere = ensure_demo_models(tmp_path / "b", demo, [quick])
    assert [r.cached for r in first] == [False, False]
    assert [r.cached for r in again] == [True, True]
    assert elsewhere[0].cached is False
    assert first[0].sha256 == again[0].sha256 == elsewhere[0].sha256
    assert first[0].sha256 == hashlib.sha256(first[0].checkpoint.read_bytes()).hexdigest()
    assert first[1].sha256 != first[0].sha256

    # The checkpoint loads through an ordinary space config, with a path relative to the
    # project dir; model_ref carries the file's hash, so other weights are another identity.
    refs = []
    for result in first:
        relative = str(result.checkpoint.relative_to(tmp_path / "a"))
        space = _config(tmp_path / "a", relative).space("i")
        assert space.pretrained == str(result.checkpoint)
        refs.append(load_encoder(space).model_ref)
    assert f"sha256:{first[0].sha256[:16]}" in refs[0]
    assert refs[0] != refs[1]

    # Other hyper-parameters are another cache key: the first checkpoint is retrained.
    longer = dataclasses.replace(quick, steps=4)
    retrained = ensure_demo_models(tmp_path / "a", demo, [longer])
    assert retrained[0].cached is False and retrained[0].sha256 != first[0].sha256


def test_the_mixed_demo_pair_needs_its_alignment_override():
    config = load_config(PROJECT_DIR)
    mixed = next(p for p in config.pairs if p.name == "clip_mixed")
    assert mixed.alignment_override
    text, image = config.space(mixed.text_space), config.space(mixed.image_space)
    assert text.family != image.family and text.pretrained != image.pretrained

    raw = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    pairs = [
        {k: v for k, v in pair.items() if k != "alignment_override"} for pair in raw["embed_pairs"]
    ]
    with pytest.raises(ConfigError, match="clip_mixed.*across model families"):
        load_config(PROJECT_DIR, overrides={"embed_pairs": pairs})


def test_a_random_output_basis_keeps_the_models_own_cosines_and_moves_its_coordinates():
    import open_clip
    import torch

    from embed_udfs.demo.training import change_output_basis, random_orthogonal
    from embed_udfs.encoders.open_clip_backend import register_bundled_configs

    rotation = random_orthogonal(128, seed=2)
    assert torch.allclose(rotation @ rotation.T, torch.eye(128), atol=1e-5)
    assert torch.equal(rotation, random_orthogonal(128, seed=2))
    assert not torch.allclose(rotation, random_orthogonal(128, seed=3))

    register_bundled_configs()
    torch.manual_seed(0)
    model = open_clip.create_model("embed-metrics-tiny-clip", pretrained=None).eval()
    tokens = open_clip.get_tokenizer("embed-metrics-tiny-clip")(["a red bag", "blue shoes"])
    images = torch.rand(3, 3, 64, 64)

    def features() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            text = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
            image = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
        return text, image

    text, image = features()
    change_output_basis(model, rotation)
    text_rotated, image_rotated = features()
    assert torch.allclose(text @ image.T, text_rotated @ image_rotated.T, atol=1e-5)
    assert torch.allclose(text_rotated, text @ rotation, atol=1e-5)
    assert torch.allclose(image_rotated, image @ rotation, atol=1e-5)


def test_under_a_random_basis_recall_at_k_averages_to_chance_whatever_the_geometry():
    # Planted lumpy towers: 8 tight clusters, text and image related through a fixed
    # arbitrary map. Under a uniformly random change of basis of the gallery, every
    # query's direction is uniform, and exactly K gallery items are in any direction's
    # top K, so mean R@K over rotations is K/N. The tolerance is the standard error of
    # the mean over the rotations, measured here.
    rng = np.random.default_rng(0)
    n, dim, k, draws = 160, 16, 10, 300
    centres = rng.standard_normal((8, dim))
    cluster = rng.integers(0, 8, size=n)
    texts = centres[cluster] + 0.2 * rng.standard_normal((n, dim))
    images = centres[(cluster * 3 + 1) % 8] @ rng.standard_normal((dim, dim))
    images = images + 0.2 * rng.standard_normal((n, dim))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    images /= np.linalg.norm(images, axis=1, keepdims=True)

    def recall(gallery: np.ndarray) -> float:
        similarity = texts @ gallery.T
        rank = 1 + (similarity > np.diag(similarity)[:, None]).sum(axis=1)
        return float((rank <= k).mean())

    values = []
    for _ in range(draws):
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        values.append(recall(images @ (q * np.sign(np.diag(r)))))
    mean, standard_error = np.mean(values), np.std(values, ddof=1) / math.sqrt(draws)
    assert abs(mean - k / n) < 3 * standard_error + 1e-12, (mean, k / n, standard_error)
    # Lumps make single draws far noisier than independent queries would.
    assert np.std(values) > math.sqrt(k / n * (1 - k / n) / n)
