"""Stage-2 scorers: each scores (text, image) pairs, higher meaning a better match.

- `open_clip`: a dual encoder. Every product's text and image vectors are
  computed once (`prepare`) and a pair's score is their cosine, so the cost is
  per product, not per pair. SigLIP configs that open_clip ships load the same way.
- `blip_itm`: a cross-encoder, transformers' BlipForImageTextRetrieval with its
  image-text matching head. It reads each pair jointly, so the cost is per
  pair; an image's vision-tower output is cached and reused across the
  candidates that share it, and the score is the ITM head's log-odds of a match.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm import tqdm

from embed_udfs import extras
from embed_udfs.config import IngestLimits, SpaceConfig
from embed_udfs.encoders import Runtime, resolve_runtime, state_dict_sha256
from embed_udfs.errors import EncoderError
from embed_udfs.jobs.backfill.sources import (
    CORRUPT,
    DEFAULT_LIMITS,
    ReadFailure,
    decode_image,
    read_image_bytes,
)

if TYPE_CHECKING:
    import torch

    from embed_udfs.config import RerankerConfig

log = logging.getLogger(__name__)

Failure = tuple[str, str]  # (reason, detail)


class Scorer(Protocol):
    """What the rerank job needs from a backend."""

    scorer_ref: str
    device: str

    def prepare(self, texts: Mapping[str, str], images: Mapping[str, str]) -> None:
        """Be ready to score pairs among these texts and images (product id -> input)."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, dict[int, Failure]]:
        """Scores of (text product id, image product id) pairs, and the pairs that could
        not be scored (by position) with the reason; their score is NaN."""


# the modules each reranker backend's scorer imports (the rerank extra brings them)
SCORER_MODULES: dict[str, tuple[str, ...]] = {
    "open_clip": ("torch", "torchvision", "open_clip", "PIL"),
    "blip_itm": ("torch", "transformers", "PIL"),
}


def require_scorers(rerankers: Sequence[RerankerConfig], command: str) -> None:
    """Refuse to rerank before any work when the scorers' modules are not installed
    (the core install has no model stack): the message has the pip line."""
    modules = [m for r in rerankers for m in SCORER_MODULES.get(r.backend, ("torch",))]
    extras.require(
        extras.RERANK,
        command,
        modules,
        instead="or leave vars.rerankers empty, and the refresh runs no reranker",
    )


def load_scorer(
    reranker: RerankerConfig,
    device: str | None = None,
    precision: str = "auto",
    limits: IngestLimits = DEFAULT_LIMITS,
) -> Scorer:
    """The reranker's scorer; its images are read under the backfill's limits (byte
    caps, deadlines, the addresses a catalog may reach)."""
    runtime = resolve_runtime(device, precision)
    scorer: DualEncoderScorer | BlipItmScorer
    if reranker.backend == "open_clip":
        scorer = DualEncoderScorer.load(reranker, runtime)
    elif reranker.backend == "blip_itm":
        scorer = BlipItmScorer.load(reranker, runtime)
    else:
        raise EncoderError(
            f"reranker {reranker.name!r} has backend {reranker.backend!r}; rerankers run "
            "'open_clip' or 'blip_itm'."
        )
    scorer.limits = limits
    return scorer


def _read_image(uri: str, limits: IngestLimits) -> tuple[Any, Failure | None]:
    # the backfill's readers and reasons, so both tables speak of a failure alike
    try:
        payload = read_image_bytes(uri, limits)
    except ReadFailure as exc:
        return None, (exc.reason, f"{uri}: {exc.detail}")
    try:
        return decode_image(payload), None
    except ValueError as exc:
        return None, (CORRUPT, f"{uri}: {exc}")


class DualEncoderScorer:
    """An open_clip model: cosine of the text and image vectors, each computed once."""

    def __init__(self, encoder: Any, batch_size: int) -> None:
        self.encoder = encoder
        self.device = encoder.device
        self.scorer_ref = encoder.model_ref
        self.batch_size = batch_size
        self.limits = DEFAULT_LIMITS
        self.text_vectors: dict[str, np.ndarray] = {}
        self.image_vectors: dict[str, np.ndarray] = {}
        self.image_failures: dict[str, Failure] = {}

    @classmethod
    def load(cls, reranker: RerankerConfig, runtime: Runtime) -> DualEncoderScorer:
        # open_clip and torch load only for a dual-encoder reranker
        import open_clip

        from embed_udfs.encoders.open_clip_backend import load_open_clip, register_bundled_configs

        register_bundled_configs()
        model_config = open_clip.get_model_config(reranker.model.replace("/", "-"))
        if model_config is None:
            raise EncoderError(
                f"reranker {reranker.name!r}: open_clip has no model config {reranker.model!r}. "
                "Use a name from open_clip.list_models() (SigLIP ones included, e.g. "
                "'ViT-B-16-SigLIP') with pretrained: <tag or checkpoint path>."
            )
        space = SpaceConfig(
            name=reranker.name,
            modality="image",
            backend="open_clip",
            family=reranker.name,
            model=reranker.model,
            dim=int(model_config["embed_dim"]),
            pretrained=reranker.pretrained,
        )
        return cls(load_open_clip(space, runtime), reranker.batch_size)

    def prepare(self, texts: Mapping[str, str], images: Mapping[str, str]) -> None:
        import torch

        todo_texts = [(pid, text) for pid, text in texts.items() if pid not in self.text_vectors]
        todo_images = [
            (pid, uri)
            for pid, uri in images.items()
            if pid not in self.image_vectors and pid not in self.image_failures
        ]
        progress = tqdm(
            total=len(todo_texts) + len(todo_images),
            desc="reranker: encoding products",
            unit="product",
            disable=None,
            leave=False,
        )
        with progress:
            for start in range(0, len(todo_texts), self.batch_size):
                chunk = todo_texts[start : start + self.batch_size]
                vectors = self.encoder.encode_token_tensor(
                    self.encoder.tokenize([text for _, text in chunk])
                )
                self.text_vectors.update(zip((pid for pid, _ in chunk), vectors, strict=True))
                progress.update(len(chunk))
            for start in range(0, len(todo_images), self.batch_size):
                chunk = todo_images[start : start + self.batch_size]
                good, tensors = [], []
                for pid, uri in chunk:
                    image, failure = _read_image(uri, self.limits)
                    if failure is not None:
                        self.image_failures[pid] = failure
                    else:
                        good.append(pid)
                        tensors.append(self.encoder.image_transform(image))
                if good:
                    vectors = self.encoder.encode_image_tensor(torch.stack(tensors))
                    self.image_vectors.update(zip(good, vectors, strict=True))
                progress.update(len(chunk))

    def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, dict[int, Failure]]:
        scores = np.full(len(pairs), np.nan)
        failures: dict[int, Failure] = {}
        for i, (text_id, image_id) in enumerate(pairs):
            if image_id in self.image_failures:
                failures[i] = self.image_failures[image_id]
                continue
            # float64 sum: float32 rounding would turn near-equal scores into ties
            scores[i] = float(
                np.dot(
                    self.text_vectors[text_id].astype(np.float64),
                    self.image_vectors[image_id].astype(np.float64),
                )
            )
        return scores, failures


class BlipItmScorer:
    """BLIP's image-text matching head over each (text, image) pair."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        runtime: Runtime,
        scorer_ref: str,
        cache_images: int = 512,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.runtime = runtime
        self.device = runtime.device
        self.scorer_ref = scorer_ref
        self.limits = DEFAULT_LIMITS
        self.texts: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.image_failures: dict[str, Failure] = {}
        # vision-tower outputs by product: a query's image is reused for all of its
        # candidates, a popular candidate's image across queries
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_images

    @classmethod
    def load(cls, reranker: RerankerConfig, runtime: Runtime) -> BlipItmScorer:
        # transformers loads only for a cross-encoder reranker
        from transformers import AutoTokenizer, BlipForImageTextRetrieval, BlipImageProcessor

        try:
            model = BlipForImageTextRetrieval.from_pretrained(reranker.model)
            tokenizer = AutoTokenizer.from_pretrained(reranker.model)
            image_processor = BlipImageProcessor.from_pretrained(reranker.model)
        except (OSError, ValueError) as exc:
            hint = (
                ""
                if os.path.isdir(reranker.model)
                else " Without network access, download it elsewhere (e.g. "
                "Salesforce/blip-itm-base-coco) and set model to the local directory."
            )
            raise EncoderError(
                f"reranker {reranker.name!r}: cannot load BLIP ITM model {reranker.model!r} "
                f"(model, tokenizer and image processor): {exc}.{hint}"
            ) from exc
        model.eval().to(runtime.device)
        ref = f"blip_itm:{reranker.model}:weights=sha256:{state_dict_sha256(model)}"
        return cls(model, tokenizer, image_processor, runtime, f"{ref}:dtype={runtime.dtype_name}")

    def prepare(self, texts: Mapping[str, str], images: Mapping[str, str]) -> None:
        self.texts.update(texts)
        self.images.update(images)

    def _image_embeds(self, image_ids: Sequence[str]) -> dict[str, torch.Tensor]:

        found = {pid: self._cache[pid] for pid in image_ids if pid in self._cache}
        todo, pixels = [], []
        for pid in dict.fromkeys(image_ids):
            if pid in found or pid in self.image_failures:
                continue
            image, failure = _read_image(self.images[pid], self.limits)
            if failure is not None:
                self.image_failures[pid] = failure
                continue
            todo.append(pid)
            pixels.append(image)
        if todo:
            batch = self.image_processor(images=pixels, return_tensors="pt")["pixel_values"]
            with self.runtime.forward():
                embeds = self.model.vision_model(
                    pixel_values=batch.to(self.device)
                ).last_hidden_state
            for pid, embed in zip(todo, embeds, strict=True):
                found[pid] = embed
                self._cache[pid] = embed
        for pid in found:
            self._cache.move_to_end(pid)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return found

    def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, dict[int, Failure]]:
        import torch

        scores = np.full(len(pairs), np.nan)
        embeds = self._image_embeds([image_id for _, image_id in pairs])
        failures = {
            i: self.image_failures[image_id]
            for i, (_, image_id) in enumerate(pairs)
            if image_id not in embeds
        }
        good = [i for i in range(len(pairs)) if i not in failures]
        if not good:
            return scores, failures
        tokens = self.tokenizer(
            [self.texts[pairs[i][0]] for i in good],
            padding=True,
            truncation=True,
            max_length=self.model.config.text_config.max_position_embeddings,
            return_tensors="pt",
        ).to(self.device)
        image_embeds = torch.stack([embeds[pairs[i][1]] for i in good])
        with self.runtime.forward():
            # the ITM branch of BlipForImageTextRetrieval.forward, on cached image embeds
            hidden = self.model.text_encoder(
                input_ids=tokens["input_ids"],
                attention_mask=tokens["attention_mask"],
                encoder_hidden_states=image_embeds,
                encoder_attention_mask=torch.ones(
                    image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device
                ),
            ).last_hidden_state
            logits = self.model.itm_head(hidden[:, 0, :]).float()
        # log-odds of "match": ranks like the softmax probability, without its saturation ties
        scores[good] = (logits[:, 1] - logits[:, 0]).double().cpu().numpy()
        return scores, failures
