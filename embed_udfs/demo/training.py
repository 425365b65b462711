"""Small CLIP-style models for the demo, trained on a catalog the demo never evaluates.

The models are built from open_clip configs and trained with open_clip's own losses
(`ClipLoss`, `SigLipLoss`); checkpoints are saved in open_clip's format, so the demo's
spaces load them through `pretrained: <path>` exactly like a user's fine-tuned weights.
They are demo machinery, not a substitute for real CLIP weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import pathlib
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from PIL import Image
from tqdm import tqdm

from embed_udfs.demo.catalog import (
    COLOURWAY_SIZE,
    GENERATOR_VERSION,
    DemoProduct,
    generate_catalog,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MODEL_DIR = pathlib.Path(".embed_metrics") / "demo_models"  # relative to the project dir
TRAINING_DIR = pathlib.Path(".embed_metrics") / "demo_training"
PROMPT = "a product photo of "
MAX_WORDS = 50  # what the demo's CLIP text spaces feed the model

# Training product ids start far above any demo catalog's, so the two never share one.
TRAINING_FIRST_ID = 500_000


@dataclass(frozen=True)
class TrainingSpec:
    """One demo model: its open_clip config, loss and hyper-parameters."""

    name: str  # checkpoint file stem under MODEL_DIR
    model: str  # open_clip model config name
    loss: Literal["clip", "siglip"]
    seed: int  # model init and batch order
    steps: int
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    catalog_products: int = 3000  # drawn; products overlapping the demo catalog are dropped
    catalog_seed: int = 1007
    # Give the trained model's shared output space a uniformly random orthonormal basis
    # drawn from seed (both towers alike, so the model's own retrieval is unchanged). Two
    # separately trained models have no reason to share a basis; this makes that exact, so
    # a tower of this model mixed with another model's retrieves at chance in expectation.
    random_basis: bool = False

    @property
    def checkpoint(self) -> pathlib.Path:
        return MODEL_DIR / f"{self.name}.pt"


# The demo's models. Stage 1: the tiny config, CLIP loss, a short run. A second tiny model
# from another seed, with a random output basis, lends its image tower to the mixed pair.
# Stage 2: the larger config, sigmoid (SigLIP) loss, trained longer.
DEMO_MODELS: tuple[TrainingSpec, ...] = (
    TrainingSpec(
        name="demo_clip_a", model="embed-metrics-tiny-clip", loss="clip", seed=1, steps=60
    ),
    TrainingSpec(
        name="demo_clip_b",
        model="embed-metrics-tiny-clip",
        loss="clip",
        seed=2,
        steps=40,
        random_basis=True,
    ),
    TrainingSpec(
        name="demo_sigmoid_small",
        model="embed-metrics-small-clip",
        loss="siglip",
        seed=3,
        steps=180,
    ),
)


def demo_rerankers() -> list[dict[str, object]]:
    """The demo's stage 2: the SigLIP-loss model rescores the top rerank_candidates
    of the aligned stage-1 pair `clip`. `embed-udfs demo run` passes it as
    vars.rerankers unless --vars names rerankers; put it in dbt_project.yml to keep
    it for later refreshes."""
    stage2 = next(spec for spec in DEMO_MODELS if spec.loss == "siglip")
    return [
        {
            "name": "sigmoid_small",
            "backend": "open_clip",
            "model": stage2.model,
            "pretrained": str(stage2.checkpoint),
            "pairs": ["clip"],
        }
    ]


@dataclass(frozen=True)
class TrainingResult:
    """A trained (or cached) checkpoint and what it took."""

    spec: TrainingSpec
    checkpoint: pathlib.Path
    sha256: str
    cached: bool
    seconds: float
    losses: tuple[float, ...]  # per step; empty when cached

    def line(self) -> str:
        if self.cached:
            return f"{self.spec.name}: cached ({self.checkpoint.name}, sha256 {self.sha256[:16]})"
        return (
            f"{self.spec.name}: trained {self.spec.steps} steps in {self.seconds:.0f} s, "
            f"loss {self.losses[0]:.2f} -> {self.losses[-1]:.2f} (sha256 {self.sha256[:16]})"
        )


def training_catalog(
    image_dir: pathlib.Path,
    demo_products: Sequence[DemoProduct],
    *,
    n_products: int = 3000,
    seed: int = 1007,
    colourway_size: int = COLOURWAY_SIZE,
) -> list[DemoProduct]:
    """A catalog from the demo's generator with another seed, minus anything the demo holds.

    Ids come from a disjoint range; a product whose name, description or image bytes
    also occur in the demo catalog is dropped, and so is one without a readable image
    or without text: the demo is never evaluated on what the models saw.
    """
    demo_texts = {t for p in demo_products for t in (p.product_name, p.product_description) if t}
    demo_images = {_sha256_file(p.image_uri) for p in demo_products if _readable(p.image_uri)}
    drawn = generate_catalog(
        image_dir,
        n_products=n_products,
        seed=seed,
        first_id=TRAINING_FIRST_ID,
        colourway_size=colourway_size,
    )
    kept = [
        p
        for p in drawn
        if p.product_name
        and p.product_description
        and p.product_name not in demo_texts
        and p.product_description not in demo_texts
        and _loads(p.image_uri)
        and _sha256_file(p.image_uri) not in demo_images
    ]
    log.info("training catalog: %d of %d drawn products kept", len(kept), len(drawn))
    return kept


def training_text(product: DemoProduct, rng: random.Random) -> str:
    """The text a demo space would feed: raw, cleaned-like or prompted, at most MAX_WORDS words."""
    text = f"{product.product_name}. {product.product_description}."
    roll = rng.random()
    if roll < 1 / 3:
        text = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    if rng.random() < 0.5:
        text = PROMPT + text
    return " ".join(text.split()[:MAX_WORDS])


def cache_key(spec: TrainingSpec, demo_products: Sequence[DemoProduct]) -> str:
    """A hash of everything the checkpoint depends on: generator, config, hyper-parameters."""
    import open_clip
    import torch

    from embed_udfs.encoders.open_clip_backend import register_bundled_configs

    register_bundled_configs()
    demo_digest = hashlib.sha256()
    for p in demo_products:
        demo_digest.update(repr((p.product_id, p.product_name, p.product_description)).encode())
    material = {
        "generator_version": GENERATOR_VERSION,
        "model_config": open_clip.get_model_config(spec.model),
        "spec": dataclasses.asdict(spec),
        "demo_catalog": demo_digest.hexdigest(),
        "open_clip": open_clip.__version__,
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def ensure_demo_models(
    project_dir: pathlib.Path,
    demo_products: Sequence[DemoProduct],
    specs: Sequence[TrainingSpec] = DEMO_MODELS,
) -> list[TrainingResult]:
    """Train each demo model unless its checkpoint for the same key is already there."""
    results = []
    catalog: list[DemoProduct] | None = None
    for spec in specs:
        started = time.perf_counter()
        key = cache_key(spec, demo_products)
        checkpoint = project_dir / spec.checkpoint
        cached = _cached_sha256(checkpoint, key)
        if cached is not None:
            log.info("demo model %s: cached at %s", spec.name, checkpoint)
            results.append(
                TrainingResult(spec, checkpoint, cached, True, time.perf_counter() - started, ())
            )
            continue
        if catalog is None:
            catalog = training_catalog(
                project_dir / TRAINING_DIR / "images",
                demo_products,
                n_products=spec.catalog_products,
                seed=spec.catalog_seed,
            )
        losses = train(spec, catalog, checkpoint)
        sha = _sha256_file(str(checkpoint))
        _key_file(checkpoint).write_text(json.dumps({"key": key, "sha256": sha}) + "\n")
        results.append(
            TrainingResult(spec, checkpoint, sha, False, time.perf_counter() - started, losses)
        )
    return results


def train(
    spec: TrainingSpec, products: Sequence[DemoProduct], checkpoint: pathlib.Path
) -> tuple[float, ...]:
    """Train spec's model contrastively on products; save an open_clip checkpoint.

    Returns the loss of every step. The same spec and products give a byte-identical
    checkpoint on the same machine: the init, the batch order and the text variants
    all come from spec.seed, and nothing else is random.
    """
    import torch

    from embed_udfs.encoders.open_clip_backend import register_bundled_configs

    if len(products) < 2:
        raise ValueError(f"training {spec.name} needs at least 2 products, got {len(products)}.")
    register_bundled_configs()
    rng = random.Random(spec.seed)
    threads = torch.get_num_threads()
    # One thread makes the checkpoint independent of the core count (reductions keep
    # one order), and wastes nothing spinning when other work shares the cores.
    torch.set_num_threads(1)
    try:
        losses = _train_loop(spec, products, rng, checkpoint)
    finally:
        torch.set_num_threads(threads)
    log.info("trained %s: loss %.3f -> %.3f", spec.name, losses[0], losses[-1])
    return losses


def _train_loop(
    spec: TrainingSpec,
    products: Sequence[DemoProduct],
    rng: random.Random,
    checkpoint: pathlib.Path,
) -> tuple[float, ...]:
    import open_clip
    import torch
    from open_clip.loss import ClipLoss, SigLipLoss

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model, _, preprocess = open_clip.create_model_and_transforms(spec.model, pretrained=None)
        tokenizer = open_clip.get_tokenizer(spec.model)
        images = torch.stack([preprocess(_open_rgb(p.image_uri)) for p in products])
        loss_fn = ClipLoss() if spec.loss == "clip" else SigLipLoss()
        optimizer = torch.optim.AdamW(
            _param_groups(model, spec.weight_decay), lr=spec.learning_rate
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / spec.warmup_steps)
        )
        model.output_dict = True
        model.train()
        losses = []
        order: list[int] = []
        bar = tqdm(range(spec.steps), desc=f"train {spec.name}", unit="step", disable=None)
        for _ in bar:
            if len(order) < spec.batch_size:
                order += rng.sample(range(len(products)), len(products))
            batch, order = order[: spec.batch_size], order[spec.batch_size :]
            tokens = tokenizer([training_text(products[i], rng) for i in batch])
            out = model(images[batch], tokens)
            loss = loss_fn(
                out["image_features"],
                out["text_features"],
                out["logit_scale"],
                **({"logit_bias": out["logit_bias"]} if spec.loss == "siglip" else {}),
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                # open_clip's training clamps the temperature the same way.
                model.logit_scale.clamp_(0, 4.6052)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if spec.random_basis:
            change_output_basis(model, random_orthogonal(_embed_dim(model), spec.seed))
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, spec, checkpoint)
    return tuple(losses)


def random_orthogonal(dim: int, seed: int) -> torch.Tensor:
    """A dim x dim orthogonal matrix drawn uniformly (Haar) from seed, on the CPU.

    QR of a Gaussian matrix with the signs of R's diagonal moved into Q: without that
    correction Q is not uniformly distributed.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return (q * torch.sign(torch.diagonal(r))).to(torch.float32)


def change_output_basis(model: torch.nn.Module, rotation: torch.Tensor) -> None:
    """Map both towers' outputs x to x @ rotation, in place.

    Cosines within the model's space are unchanged (its own retrieval is the same); only
    the coordinates, which nothing outside the model can rely on, change.
    """
    import torch

    with torch.no_grad():
        for owner, name in ((model.visual, "proj"), (model, "text_projection")):
            projection = getattr(owner, name)
            if isinstance(projection, torch.nn.Linear):  # y = x W^T + b
                projection.weight.copy_(rotation.T @ projection.weight)
                if projection.bias is not None:
                    projection.bias.copy_(projection.bias @ rotation)
            elif isinstance(projection, torch.nn.Parameter):  # y = x P
                projection.copy_(projection @ rotation)
            else:
                raise TypeError(f"cannot change the basis of {type(owner).__name__}.{name}")


def _embed_dim(model: torch.nn.Module) -> int:
    import torch

    projection = model.text_projection
    if isinstance(projection, torch.nn.Linear):
        return int(projection.out_features)
    return int(projection.shape[1])


def save_checkpoint(model: torch.nn.Module, spec: TrainingSpec, path: pathlib.Path) -> None:
    """open_clip's checkpoint layout (name, epoch, state_dict), written atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save({"name": spec.name, "epoch": 1, "state_dict": model.state_dict()}, buffer)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    # open_clip's training leaves gains, biases, embeddings and the temperature undecayed.
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        exclude = param.ndim < 2 or any(k in name for k in ("bn", "ln", "bias", "logit_scale"))
        (no_decay if exclude else decay).append(param)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def _key_file(checkpoint: pathlib.Path) -> pathlib.Path:
    return checkpoint.with_suffix(".key.json")


def _cached_sha256(checkpoint: pathlib.Path, key: str) -> str | None:
    """The checkpoint's sha256 when it was trained under key and is intact, else None."""
    try:
        recorded = json.loads(_key_file(checkpoint).read_text())
    except (OSError, ValueError):
        return None
    if recorded.get("key") != key or not checkpoint.is_file():
        return None
    sha = _sha256_file(str(checkpoint))
    return sha if sha == recorded.get("sha256") else None


def _sha256_file(path: str | None) -> str:
    return hashlib.sha256(pathlib.Path(path or "").read_bytes()).hexdigest()


def _readable(path: str | None) -> bool:
    return path is not None and pathlib.Path(path).is_file()


def _loads(path: str | None) -> bool:
    if not _readable(path):
        return False
    try:
        _open_rgb(path)
    except OSError:
        return False
    return True


def _open_rgb(path: str | None) -> Image.Image:
    with Image.open(path or "") as image:
        return image.convert("RGB")
