"""Rerankers, as declared in vars.rerankers of dbt_project.yml, and the
number of stage-1 candidates they rescore (vars.rerank_candidates).

Parsed from the raw vars on their own so that they can join the project's
config model as one field; macros/rerank.sql refuses the same mistakes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embed_udfs.config import ProjectConfig, render_vars
from embed_udfs.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
DIRECTIONS = ("text_to_image", "image_to_text")
DEFAULT_CANDIDATES = 100
# What each backend reads. A reranker scores a (text, image) pair, so it must read both;
# sentence_transformers is listed so that a text-only model gets a clear refusal.
BACKEND_MODALITIES: dict[str, tuple[str, ...]] = {
    "open_clip": ("text", "image"),
    "blip_itm": ("text", "image"),
    "sentence_transformers": ("text",),
}
RERANK_BACKENDS = ("open_clip", "blip_itm")
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class RerankTarget:
    """One (pair, direction) whose stage-1 candidates a reranker rescores."""

    pair: str
    direction: str


@dataclass(frozen=True)
class RerankerConfig:
    """A stage-2 model: what it is and which candidate lists it rescores."""

    name: str
    backend: str
    model: str
    pairs: tuple[str, ...]
    directions: tuple[str, ...] = DIRECTIONS
    pretrained: str | None = None  # open_clip tag or checkpoint path; None = random init
    batch_size: int = DEFAULT_BATCH_SIZE

    @property
    def targets(self) -> tuple[RerankTarget, ...]:
        return tuple(RerankTarget(p, d) for p in self.pairs for d in self.directions)


@dataclass(frozen=True)
class RerankConfig:
    candidates: int
    rerankers: tuple[RerankerConfig, ...]

    def reranker(self, name: str) -> RerankerConfig:
        for reranker in self.rerankers:
            if reranker.name == name:
                return reranker
        known = ", ".join(r.name for r in self.rerankers) or "(none)"
        raise ConfigError(
            f"unknown reranker {name!r}; the rerankers in vars.rerankers are: {known}."
        )


def load_rerank_config(
    project: ProjectConfig, overrides: Mapping[str, Any] | None = None
) -> RerankConfig:
    """Read vars.rerankers and vars.rerank_candidates from the project's dbt_project.yml."""
    import yaml

    path = project.project_dir / "dbt_project.yml"
    try:
        raw = dict((yaml.safe_load(path.read_text()) or {}).get("vars") or {})
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    raw.update(overrides or {})
    return parse_rerank_config(render_vars(raw, path), project, path)


def parse_rerank_config(
    raw: Mapping[str, Any], project: ProjectConfig, where: Path | str = "dbt_project.yml"
) -> RerankConfig:
    candidates = raw.get("rerank_candidates", DEFAULT_CANDIDATES)
    if not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < 1:
        raise ConfigError(
            f"{where}: vars.rerank_candidates is {candidates!r}; it must be a positive integer "
            "(stage-1 candidates per query)."
        )
    if candidates > project.eval.ef_search:
        raise ConfigError(
            f"{where}: vars.rerank_candidates ({candidates}) is above vars.hnsw_ef_search "
            f"({project.eval.ef_search}): an HNSW scan returns at most ef_search rows, so the "
            f"search cannot return {candidates} candidates per query. Lower rerank_candidates "
            "or raise hnsw_ef_search."
        )
    items = raw.get("rerankers") or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ConfigError(f"{where}: vars.rerankers must be a list of mappings.")
    pairs = {p.name for p in project.pairs}
    rerankers = tuple(_parse_reranker(item, pairs, where, project.project_dir) for item in items)
    names = [r.name for r in rerankers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{where}: reranker names must be unique; repeated: {repeated}.")
    return RerankConfig(candidates=candidates, rerankers=rerankers)


def _parse_reranker(
    item: Mapping[str, Any], pairs: set[str], where: Path | str, project_dir: Path
) -> RerankerConfig:
    name = item.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{where}: a reranker in vars.rerankers has name {name!r}; names must match "
            "^[a-z][a-z0-9_]*$."
        )
    what = f"reranker {name!r}"
    backend = item.get("backend")
    if backend not in BACKEND_MODALITIES:
        raise ConfigError(f"{where}: {what} has backend {backend!r}; use one of {RERANK_BACKENDS}.")
    model = item.get("model")
    if not model:
        raise ConfigError(f"{where}: {what} is missing 'model'.")
    targets = item.get("pairs")
    if not isinstance(targets, list) or not targets:
        raise ConfigError(
            f"{where}: {what} needs pairs: a list of the vars.embed_pairs it rescores."
        )
    directions = item.get("directions") or list(DIRECTIONS)
    if not isinstance(directions, list) or any(d not in DIRECTIONS for d in directions):
        raise ConfigError(
            f"{where}: {what} has directions {directions!r}; use text_to_image and/or "
            "image_to_text."
        )
    for target in targets:
        if target not in pairs:
            raise ConfigError(
                f"{where}: {what} rescores pair {target!r}, which does not exist; configured "
                f"pairs: {', '.join(sorted(pairs)) or '(none)'}. Fix its pairs or add the pair "
                "to vars.embed_pairs."
            )
        reads = BACKEND_MODALITIES[backend]
        if "text" not in reads or "image" not in reads:
            raise ConfigError(
                f"{where}: {what} (backend {backend}) reads {' and '.join(reads)} only, so it "
                f"cannot score pair {target!r}, whose queries and candidates are texts and "
                "images. Use open_clip or blip_itm."
            )
    batch_size = item.get("batch_size", DEFAULT_BATCH_SIZE)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"{where}: {what} has batch_size {batch_size!r}; use a positive integer.")
    pretrained = item.get("pretrained")
    if pretrained not in (None, "") and backend != "open_clip":
        raise ConfigError(
            f"{where}: {what}: pretrained is an open_clip setting; a {backend} model names its "
            "weights in model (a model name or a local directory)."
        )
    if pretrained not in (None, "") and not Path(str(pretrained)).is_absolute():
        # a relative checkpoint path is read against the project, wherever embed-udfs runs
        beside = project_dir / str(pretrained)
        if beside.is_file():
            pretrained = str(beside)
    return RerankerConfig(
        name=name,
        backend=str(backend),
        model=str(model),
        pairs=tuple(str(t) for t in dict.fromkeys(targets)),
        directions=tuple(d for d in DIRECTIONS if d in directions),
        pretrained=None if pretrained in (None, "") else str(pretrained),
        batch_size=batch_size,
    )
