"""The one configuration: embedding spaces, retrieval pairs and eval settings.

They are declared once, as vars in dbt_project.yml; dbt reads them with var()
and this module reads the same block, so nothing is repeated in Python.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from embed_udfs.errors import ConfigError

MODALITIES = ("text", "image")
BACKENDS = ("open_clip", "sentence_transformers")
TEXT_VARIANTS = ("raw", "clean", "clean_no_boilerplate")
DEFAULT_MAX_WORDS = 128
PRODUCT_TEXT_FIELDS = ("product_name", "product_description", "store_name", "collection_section")
DIRECTIONS = ("text_to_image", "image_to_text")


@dataclass(frozen=True)
class SpaceConfig:
    """One embedding space: a model, its weights and its input recipe."""

    name: str
    modality: str
    backend: str
    family: str
    model: str
    dim: int
    pretrained: str | None = None
    text_variant: str = "clean"
    text_fields: tuple[str, ...] = ("product_name", "product_description")
    prompt: str = ""
    max_words: int = DEFAULT_MAX_WORDS  # words fed to the model, prompt included
    near_duplicates: bool = False  # the near-duplicate search runs in this space


@dataclass(frozen=True)
class PairConfig:
    """A cross-modal retrieval pair, evaluated text->image and image->text."""

    name: str
    text_space: str
    image_space: str
    alignment_override: str | None = None


@dataclass(frozen=True)
class EvalConfig:
    sample_size: int
    seed: int
    k_values: tuple[int, ...]
    ef_search: int
    search: str
    dedup: bool = True  # sample one product per duplicate group
    section_min: int = 3  # sections with fewer eligible products are reported, not sampled
    section_cap: int | None = None  # at most this many products per section

    @property
    def max_k(self) -> int:
        return max(self.k_values)


@dataclass(frozen=True)
class LabelConfig:
    """Label structure (how well text spaces separate collection_section): the PCA
    sizes and KMeans seeds of `embed-udfs cluster`, and the bootstrap behind the
    intervals. `None` in pca_dims means KMeans on the full vectors (no PCA)."""

    pca_dims: tuple[int | None, ...] = (64, 128, 256, None)
    kmeans_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    bootstrap_replicates: int = 200
    bootstrap_seed: int = 42
    cluster_assignments_relation: str = "embeddings.cluster_assignments"


@dataclass(frozen=True)
class DedupConfig:
    """Duplicate detection: exact text under a recipe, exact image bytes, and
    near duplicates (cosine distance below a threshold) in one marked space."""

    text_variant: str = "clean_no_boilerplate"
    near_duplicate_space: str | None = None
    near_duplicate_max_distance: float = 0.02
    near_duplicate_k: int = 10


@dataclass(frozen=True)
class ProjectConfig:
    project_dir: Path
    spaces: tuple[SpaceConfig, ...]
    pairs: tuple[PairConfig, ...]
    eval: EvalConfig
    products_relation: str
    vectors_relation: str
    backfill_errors_relation: str
    labels: LabelConfig = field(default_factory=LabelConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)

    def space(self, name: str) -> SpaceConfig:
        for space in self.spaces:
            if space.name == name:
                return space
        known = ", ".join(s.name for s in self.spaces) or "(none)"
        raise ConfigError(
            f"unknown space {name!r}; the spaces in {self.project_dir / 'dbt_project.yml'} "
            f"are: {known}. Add it under vars.embed_spaces or pick one of those."
        )


def find_project_dir(start: Path | None = None) -> Path:
    """The dbt project directory: $EMBED_UDFS_PROJECT_DIR, then upwards from cwd."""
    env = os.environ.get("EMBED_UDFS_PROJECT_DIR")
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "dbt_project.yml").is_file():
            raise ConfigError(f"EMBED_UDFS_PROJECT_DIR={env} has no dbt_project.yml.")
        return path
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dbt_project.yml").is_file():
            return candidate
    beside_package = Path(__file__).resolve().parents[1]
    if (beside_package / "dbt_project.yml").is_file():
        return beside_package
    raise ConfigError(
        f"no dbt_project.yml found in {here} or its parents; run embed-udfs from the "
        "embed-metrics project, or set EMBED_UDFS_PROJECT_DIR."
    )


def load_config(
    project_dir: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> ProjectConfig:
    """Read and validate the vars block of dbt_project.yml, with dbt-style --vars overrides."""
    project_dir = project_dir or find_project_dir()
    path = project_dir / "dbt_project.yml"
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    raw = dict(document.get("vars") or {})
    raw.update(overrides or {})
    return parse_config(raw, project_dir)


def parse_config(raw: Mapping[str, Any], project_dir: Path) -> ProjectConfig:
    where = project_dir / "dbt_project.yml"
    max_words = _positive_int(raw, "text_max_words", DEFAULT_MAX_WORDS, where)
    spaces = tuple(
        _parse_space(item, where, max_words) for item in _as_list(raw, "embed_spaces", where)
    )
    names = [s.name for s in spaces]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"{where}: space names must be unique; repeated: {duplicated}")
    by_name = {s.name: s for s in spaces}
    pairs = tuple(_parse_pair(item, by_name, where) for item in _as_list(raw, "embed_pairs", where))
    eval_config = _parse_eval(raw, where)
    return ProjectConfig(
        project_dir=project_dir,
        spaces=spaces,
        pairs=pairs,
        eval=eval_config,
        products_relation=str(raw.get("products_relation", "catalog.products")),
        vectors_relation=str(raw.get("vectors_relation", "embeddings.vectors")),
        backfill_errors_relation=str(
            raw.get("backfill_errors_relation", "embeddings.backfill_errors")
        ),
        labels=_parse_labels(raw, where),
        dedup=_parse_dedup(raw, spaces, eval_config, where),
    )


def _as_list(raw: Mapping[str, Any], key: str, where: Path) -> list[Mapping[str, Any]]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"{where}: vars.{key} must be a list of mappings.")
    return value


def _require(item: Mapping[str, Any], key: str, what: str, where: Path) -> Any:
    if item.get(key) in (None, ""):
        raise ConfigError(f"{where}: {what} is missing {key!r}.")
    return item[key]


def _positive_int(raw: Mapping[str, Any], key: str, default: int, where: Path) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: {key} is {value!r}; it must be a positive integer.")
    return value


def _parse_space(
    item: Mapping[str, Any], where: Path, default_max_words: int = DEFAULT_MAX_WORDS
) -> SpaceConfig:
    name = str(_require(item, "name", "a space in vars.embed_spaces", where))
    what = f"space {name!r}"
    modality = str(_require(item, "modality", what, where))
    if modality not in MODALITIES:
        raise ConfigError(f"{where}: {what} has modality {modality!r}; use one of {MODALITIES}.")
    backend = str(_require(item, "backend", what, where))
    if backend not in BACKENDS:
        raise ConfigError(f"{where}: {what} has backend {backend!r}; use one of {BACKENDS}.")
    if modality == "image" and backend != "open_clip":
        raise ConfigError(f"{where}: {what} is an image space; only open_clip embeds images.")
    dim = _require(item, "dim", what, where)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise ConfigError(f"{where}: {what} has dim {dim!r}; it must be a positive integer.")
    variant = str(item.get("text_variant") or "clean")
    if variant not in TEXT_VARIANTS:
        raise ConfigError(
            f"{where}: {what} has text_variant {variant!r}; use one of {TEXT_VARIANTS}."
        )
    fields = tuple(item.get("text_fields") or ("product_name", "product_description"))
    unknown = [f for f in fields if f not in PRODUCT_TEXT_FIELDS]
    if unknown:
        raise ConfigError(
            f"{where}: {what} has unknown text_fields {unknown}; use {PRODUCT_TEXT_FIELDS}."
        )
    prompt = str(item.get("prompt") or "")
    max_words = _positive_int(item, "max_words", default_max_words, where)
    if modality == "text" and max_words <= len(prompt.split()):
        raise ConfigError(
            f"{where}: {what} has max_words {max_words} but its prompt alone takes "
            f"{len(prompt.split())} words; raise max_words (or vars.text_max_words)."
        )
    pretrained = item.get("pretrained")
    return SpaceConfig(
        name=name,
        modality=modality,
        backend=backend,
        family=str(_require(item, "family", what, where)),
        model=str(_require(item, "model", what, where)),
        dim=dim,
        pretrained=None if pretrained in (None, "") else str(pretrained),
        text_variant=variant,
        text_fields=fields,
        prompt=prompt,
        max_words=max_words,
        near_duplicates=bool(item.get("near_duplicates", False)),
    )


def _parse_pair(
    item: Mapping[str, Any], spaces: Mapping[str, SpaceConfig], where: Path
) -> PairConfig:
    name = str(_require(item, "name", "a pair in vars.embed_pairs", where))
    what = f"pair {name!r}"
    pair = PairConfig(
        name=name,
        text_space=str(_require(item, "text_space", what, where)),
        image_space=str(_require(item, "image_space", what, where)),
        alignment_override=item.get("alignment_override") or None,
    )
    for role, modality in (("text_space", "text"), ("image_space", "image")):
        space_name = getattr(pair, role)
        if space_name not in spaces:
            raise ConfigError(
                f"{where}: {what} names {role} {space_name!r}, which is not a configured space; "
                f"known spaces: {', '.join(spaces) or '(none)'}."
            )
        if spaces[space_name].modality != modality:
            raise ConfigError(f"{where}: {what}: {role} {space_name!r} must be a {modality} space.")
    text, image = spaces[pair.text_space], spaces[pair.image_space]
    if text.dim != image.dim:
        raise ConfigError(
            f"{where}: {what}: {text.name!r} has dim {text.dim} but {image.name!r} has dim "
            f"{image.dim}; vectors of different dimensions cannot be compared."
        )
    check_alignment(pair, text, image, where)
    return pair


def check_alignment(pair: PairConfig, text: SpaceConfig, image: SpaceConfig, where: Path) -> None:
    """Refuse retrieval across spaces whose models were not trained jointly."""
    if text.family == image.family or pair.alignment_override:
        return
    raise ConfigError(
        f"{where}: pair {pair.name!r} retrieves across model families: {text.name!r} is "
        f"{text.family!r} and {image.name!r} is {image.family!r}. Vectors from models that "
        "were not trained jointly do not share a geometry, so their cross-modal recall is "
        "meaningless. Pair spaces of one family, or set alignment_override: '<why these "
        "spaces are aligned>' on the pair."
    )


def _parse_eval(raw: Mapping[str, Any], where: Path) -> EvalConfig:
    k_values = raw.get("eval_k_values", [1, 5, 10, 50])
    if (
        not isinstance(k_values, list)
        or not k_values
        or not all(isinstance(k, int) and k > 0 for k in k_values)
    ):
        raise ConfigError(f"{where}: vars.eval_k_values must be a list of positive integers.")
    config = EvalConfig(
        sample_size=int(raw.get("eval_sample_size", 5000)),
        seed=int(raw.get("eval_seed", 42)),
        k_values=tuple(sorted(set(k_values))),
        ef_search=int(raw.get("hnsw_ef_search", 100)),
        search=str(raw.get("retrieval_search", "auto")),
        dedup=bool(raw.get("eval_dedup", True)),
        section_min=_positive_int(raw, "eval_section_min", 3, where),
        section_cap=(
            None
            if raw.get("eval_section_cap") is None
            else _positive_int(raw, "eval_section_cap", 1, where)
        ),
    )
    if config.sample_size < 2:
        raise ConfigError(f"{where}: vars.eval_sample_size must be at least 2.")
    if config.ef_search < config.max_k:
        raise ConfigError(
            f"{where}: vars.hnsw_ef_search ({config.ef_search}) is below the largest K "
            f"({config.max_k}); an HNSW scan returns at most ef_search rows, so recall at "
            f"K={config.max_k} would be silently truncated. Raise hnsw_ef_search."
        )
    if config.search not in ("auto", "hnsw", "exact"):
        raise ConfigError(f"{where}: vars.retrieval_search must be 'auto', 'hnsw' or 'exact'.")
    return config


def _parse_labels(raw: Mapping[str, Any], where: Path) -> LabelConfig:
    default = LabelConfig()
    dims = raw.get("label_pca_dims", ["none" if d is None else d for d in default.pca_dims])
    if not isinstance(dims, list) or not dims:
        raise ConfigError(
            f"{where}: vars.label_pca_dims must be a list of PCA sizes, e.g. [64, 128, 256, none]."
        )
    pca_dims: list[int | None] = []
    for value in dims:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            pca_dims.append(None)
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            pca_dims.append(value)
        else:
            raise ConfigError(
                f"{where}: vars.label_pca_dims has {value!r}; use positive integers, or none "
                "for KMeans on the full vectors."
            )
    seeds = raw.get("label_kmeans_seeds", list(default.kmeans_seeds))
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ConfigError(
            f"{where}: vars.label_kmeans_seeds must be a list of distinct non-negative integers, "
            "e.g. [0, 1, 2, 3, 4]: one KMeans run per seed."
        )
    replicates = raw.get("bootstrap_replicates", default.bootstrap_replicates)
    if (
        not isinstance(replicates, int)
        or isinstance(replicates, bool)
        or not 2 <= replicates <= 16000
    ):
        raise ConfigError(
            f"{where}: vars.bootstrap_replicates is {replicates!r}; use an integer from 2 to "
            "16000 (a pgvector vector holds the replicate weights); 200 or more for stable "
            "intervals."
        )
    return LabelConfig(
        pca_dims=tuple(dict.fromkeys(pca_dims)),
        kmeans_seeds=tuple(seeds),
        bootstrap_replicates=replicates,
        bootstrap_seed=int(raw.get("bootstrap_seed", default.bootstrap_seed)),
        cluster_assignments_relation=str(
            raw.get("cluster_assignments_relation", default.cluster_assignments_relation)
        ),
    )


def _parse_dedup(
    raw: Mapping[str, Any], spaces: tuple[SpaceConfig, ...], eval_config: EvalConfig, where: Path
) -> DedupConfig:
    variant = str(raw.get("dedup_text_variant", DedupConfig.text_variant))
    if variant not in TEXT_VARIANTS:
        raise ConfigError(
            f"{where}: vars.dedup_text_variant is {variant!r}; use one of {TEXT_VARIANTS}."
        )
    marked = [s.name for s in spaces if s.near_duplicates]
    if len(marked) > 1:
        raise ConfigError(
            f"{where}: spaces {marked} are all marked near_duplicates: true; the near-duplicate "
            "search runs in one space (its threshold is one number), so keep the mark on one."
        )
    distance = raw.get("near_duplicate_max_distance", DedupConfig.near_duplicate_max_distance)
    if not isinstance(distance, (int, float)) or isinstance(distance, bool) or not 0 < distance < 2:
        raise ConfigError(
            f"{where}: vars.near_duplicate_max_distance is {distance!r}; it is a cosine distance, "
            "so use a number between 0 and 2 (0.01 to 0.05 finds re-listings of one product)."
        )
    k = _positive_int(raw, "near_duplicate_k", DedupConfig.near_duplicate_k, where)
    if k + 1 > eval_config.ef_search:
        raise ConfigError(
            f"{where}: vars.near_duplicate_k ({k}) must be below vars.hnsw_ef_search "
            f"({eval_config.ef_search}): an HNSW scan returns at most ef_search rows."
        )
    return DedupConfig(
        text_variant=variant,
        near_duplicate_space=marked[0] if marked else None,
        near_duplicate_max_distance=float(distance),
        near_duplicate_k=k,
    )
