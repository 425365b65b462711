"""The one configuration: embedding spaces, retrieval pairs and eval settings.

They are declared once, in the vars block of dbt_project.yml, defaults included.
`load_config` renders those vars as dbt's var() does (Jinja, env_var) and validates
them with one typed model; dbt's on-run-start guard repeats only the checks that
keep a bad value out of SQL, with the same messages (tests/python/test_config_parity.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from embed_udfs.errors import ConfigError
from embed_udfs.limits import IngestLimits, parse_limits

if TYPE_CHECKING:
    import psycopg

# Names that reach SQL (spaces, pairs, text fields, relation parts): dbt pastes them into
# identifiers and literals, so they are held to the plainest identifier form.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")
IDENTIFIER_RULE = "names reach SQL, so they must match ^[a-z][a-z0-9_]*$"
MODALITIES = ("text", "image")
TEXT_VARIANTS = ("raw", "clean", "clean_no_boilerplate")
RETRIEVAL_SEARCHES = ("auto", "hnsw", "exact")
SECTION_CAP_AUTO = "auto"
ITERATIVE_SCANS = ("off", "relaxed_order", "strict_order")  # pgvector's hnsw.iterative_scan
CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".npz", ".ckpt")


def _rule(message: str) -> PydanticCustomError:
    """A refusal of one value; the loader prefixes where it is and what it was."""
    return PydanticCustomError("embed_config", "{rule}", {"rule": message})


def _whole(message: str) -> PydanticCustomError:
    """A refusal that names its own location (checks across several vars)."""
    return PydanticCustomError("embed_config_whole", "{message}", {"message": message})


def _integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    """An int, or the digits a Jinja value renders to; never a bool or a float."""
    if maximum is not None:
        expected = f"it must be an integer from {minimum} to {maximum}"
    elif minimum == 1:
        expected = "it must be a positive integer"
    elif minimum == 0:
        expected = "it must be a non-negative integer"
    else:
        expected = f"it must be an integer of at least {minimum}"

    def check(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _rule(expected)
        if value < minimum or (maximum is not None and value > maximum):
            raise _rule(expected)
        return value

    return check


def _number(value: Any) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _rule("it must be a number")
    return float(value)


def _number_at_least(minimum: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        number = _number(value)
        if not number >= minimum:  # NaN too
            raise _rule(f"it must be a number of at least {minimum:g}")
        return number

    return check


def _section_cap(value: Any) -> int | str | None:
    """A positive integer, `auto` (derived from the section sizes in SQL) or null."""
    if value is None or value == SECTION_CAP_AUTO:
        return value
    try:
        return _integer(1)(value)
    except PydanticCustomError:
        raise _rule(f"use a positive integer, {SECTION_CAP_AUTO} or null") from None


def _boolean(value: Any) -> bool:
    # dbt's Jinja treats the string 'false' as true, so a string here is a mistake.
    if not isinstance(value, bool):
        raise _rule("it must be true or false")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _rule("it must be a non-empty string")
    return value


def _optional_text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _rule("it must be a string or null")
    return value


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise _rule(IDENTIFIER_RULE)
    return value


def _relation(value: Any) -> str:
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) != 2 or not all(IDENTIFIER.fullmatch(part) for part in parts):
        raise _rule(f"it must be schema.table, and {IDENTIFIER_RULE}")
    return str(value)


def _one_of(choices: Sequence[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise _rule(f"use one of {', '.join(choices)}")
        return str(value)

    return check


def _backend(value: Any) -> str:
    from embed_udfs.encoders import backend_names

    known = backend_names()
    if value not in known:
        raise _rule(f"use one of {', '.join(known)} (the registered encoder backends)")
    return str(value)


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _list(value: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _rule("it must be a list")
    return value


def _target_recall(value: Any) -> float:
    number = _number(value)
    if not 0 < number <= 1:
        raise _rule("it must be a number in (0, 1], e.g. 0.99 (neighbour recall@10)")
    return number


def _pca_dims(value: Any) -> Any:
    items = _list(value)
    if not items:
        raise _rule("it must list PCA sizes, e.g. [64, 128, 256, none]")
    return [None if item is None or item == "none" else item for item in items]


PositiveInt = Annotated[int, BeforeValidator(_integer(1))]
OptionalPositiveInt = Annotated[int | None, BeforeValidator(_optional(_integer(1)))]
NonNegativeInt = Annotated[int, BeforeValidator(_integer(0))]
Number = Annotated[float, BeforeValidator(_number)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
Text = Annotated[str, BeforeValidator(_text)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
Identifier = Annotated[str, BeforeValidator(_identifier)]
Relation = Annotated[str, BeforeValidator(_relation)]
TextVariant = Annotated[str, BeforeValidator(_one_of(TEXT_VARIANTS))]

_ITEMS = ConfigDict(extra="ignore")
_FROZEN = ConfigDict(frozen=True, extra="ignore")


@dataclass(frozen=True, config=_ITEMS)
class SpaceConfig:
    """One embedding space: a model, its weights and its input recipe."""

    name: Identifier
    modality: Annotated[str, BeforeValidator(_one_of(MODALITIES))]
    backend: Annotated[str, BeforeValidator(_backend)]
    family: Text
    model: Text
    dim: PositiveInt
    pretrained: OptionalText = None
    text_variant: TextVariant = "clean"
    text_fields: Annotated[tuple[Identifier, ...], BeforeValidator(_list)] = (
        "product_name",
        "product_description",
    )
    prompt: Annotated[str, BeforeValidator(lambda v: "" if v is None else v)] = ""
    # words fed to the model, prompt included; unset means vars.text_max_words
    max_words: OptionalPositiveInt = None
    near_duplicates: Bool = False  # the near-duplicate search runs in this space


@dataclass(frozen=True, config=_ITEMS)
class PairConfig:
    """A cross-modal retrieval pair, evaluated text->image and image->text."""

    name: Identifier
    text_space: Text
    image_space: Text
    alignment_override: OptionalText = None


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol: sample, seed, K values and how neighbours are searched."""

    sample_size: int
    seed: int
    k_values: tuple[int, ...]
    ef_search: int
    search: str
    dedup: bool  # sample one product per duplicate group
    section_min: int  # sections with fewer eligible products are reported, not sampled
    # at most this many products per section; "auto": section_cap_factor times the
    # median section size, derived in SQL (macros/eval_sample.sql) from the sample's sections
    section_cap: int | str | None
    section_cap_factor: float
    exact_search_max_gallery: int
    # an empty sample (a pair or space that is not evaluable) fails the build
    # instead of warning (tests/assert_eval_samples_not_empty.sql)
    strict_samples: bool = False

    @property
    def max_k(self) -> int:
        return max(self.k_values)


@dataclass(frozen=True)
class AnnConfig:
    """ANN tuning (`embed-udfs tune`): the settings tried against exact lists, how many
    queries each gallery gets, and the neighbour recall@10 the tuned setting must reach.
    Whether a grid value is below the largest K is checked when the tuning runs, so an
    unused grid never stops a refresh."""

    tuning: bool  # refresh runs the tune job
    target_recall: float
    ef_search_grid: tuple[int, ...]
    probes_grid: tuple[int, ...]
    iterative_scans: tuple[str, ...]
    queries: int


@dataclass(frozen=True)
class LabelConfig:
    """Label structure (how well text spaces separate collection_section): the PCA
    sizes and KMeans seeds of `embed-udfs cluster`, and the bootstrap behind the
    intervals. `None` in pca_dims means KMeans on the full vectors (no PCA)."""

    pca_dims: tuple[int | None, ...]
    kmeans_seeds: tuple[int, ...]
    bootstrap_replicates: int
    bootstrap_seed: int
    cluster_assignments_relation: str


@dataclass(frozen=True)
class DedupConfig:
    """Duplicate detection: exact text under a recipe, exact image bytes, and
    near duplicates (cosine distance below a threshold) in one marked space."""

    text_variant: str
    near_duplicate_space: str | None
    near_duplicate_max_distance: float
    near_duplicate_k: int


class ProjectVars(BaseModel):
    """The vars block of dbt_project.yml, as the typed model that validates it.

    Every field is required: its default is the value in dbt_project.yml, nowhere else.
    """

    model_config = _FROZEN

    products_relation: Relation
    vectors_relation: Relation
    backfill_errors_relation: Relation
    cluster_assignments_relation: Relation

    eval_sample_size: Annotated[int, BeforeValidator(_integer(2))]
    eval_seed: NonNegativeInt
    eval_k_values: Annotated[tuple[PositiveInt, ...], BeforeValidator(_list)]
    hnsw_ef_search: PositiveInt
    retrieval_search: Annotated[str, BeforeValidator(_one_of(RETRIEVAL_SEARCHES))]
    exact_search_max_gallery: PositiveInt
    eval_dedup: Bool
    eval_section_min: PositiveInt
    eval_section_cap: Annotated[int | str | None, BeforeValidator(_section_cap)]
    eval_section_cap_factor: Annotated[float, BeforeValidator(_number_at_least(1))]
    strict_samples: Bool

    text_max_words: PositiveInt
    text_strip_store_name: Bool

    dedup_text_variant: TextVariant
    near_duplicate_max_distance: Number
    near_duplicate_k: PositiveInt

    label_pca_dims: Annotated[tuple[OptionalPositiveInt, ...], BeforeValidator(_pca_dims)]
    label_kmeans_seeds: Annotated[tuple[NonNegativeInt, ...], BeforeValidator(_list)]
    bootstrap_replicates: Annotated[int, BeforeValidator(_integer(2, 16000))]
    bootstrap_seed: NonNegativeInt

    ann_tuning: Bool
    ann_target_recall: Annotated[float, BeforeValidator(_target_recall)]
    ann_ef_search_grid: Annotated[tuple[PositiveInt, ...], BeforeValidator(_list)]
    ann_probes_grid: Annotated[tuple[PositiveInt, ...], BeforeValidator(_list)]
    ann_iterative_scans: Annotated[
        tuple[Annotated[str, BeforeValidator(_one_of(ITERATIVE_SCANS))], ...],
        BeforeValidator(_list),
    ]
    ann_tuning_queries: PositiveInt

    embed_spaces: Annotated[tuple[SpaceConfig, ...], BeforeValidator(_list)]
    embed_pairs: Annotated[tuple[PairConfig, ...], BeforeValidator(_list)]

    @model_validator(mode="after")
    def _across_vars(self) -> ProjectVars:
        """Checks that span several vars; the order matches dbt's guard."""
        spaces = {space.name: space for space in self.embed_spaces}
        names = [space.name for space in self.embed_spaces]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise _whole(
                f"vars.embed_spaces: space names must be unique; repeated: {', '.join(repeated)}."
            )
        for index, pair in enumerate(self.embed_pairs):
            _check_pair(f"vars.embed_pairs[{index}]", pair, spaces)
        max_k = max(self.eval_k_values, default=0)
        if not self.eval_k_values:
            raise _whole("vars.eval_k_values is []; list at least one K, e.g. [1, 5, 10, 50].")
        if max_k >= self.eval_sample_size:
            raise _whole(
                f"vars.eval_k_values: the largest K ({max_k}) is not below vars.eval_sample_size "
                f"({self.eval_sample_size}); a gallery of n products ranks every positive within "
                "n, so recall at K >= n is 1.0 whatever the model. Lower K or sample more products."
            )
        if self.hnsw_ef_search < max_k:
            raise _whole(
                f"vars.hnsw_ef_search ({self.hnsw_ef_search}) is below the largest K ({max_k}); "
                "an HNSW scan returns at most ef_search rows, so recall at "
                f"K={max_k} would be silently truncated. Raise hnsw_ef_search."
            )
        for index, space in enumerate(self.embed_spaces):
            max_words = space.max_words or self.text_max_words
            if space.modality == "text" and max_words <= len(space.prompt.split()):
                raise _whole(
                    f"vars.embed_spaces[{index}]: space '{space.name}' has max_words {max_words} "
                    f"but its prompt alone takes {len(space.prompt.split())} words; raise "
                    "max_words (or vars.text_max_words)."
                )
            _check_modality(index, space)
        marked = [space.name for space in self.embed_spaces if space.near_duplicates]
        if len(marked) > 1:
            raise _whole(
                f"vars.embed_spaces: spaces {', '.join(marked)} are all marked near_duplicates: "
                "true; the near-duplicate search runs in one space (its threshold is one "
                "number), so keep the mark on one."
            )
        if not 0 < self.near_duplicate_max_distance < 2:
            raise _whole(
                f"vars.near_duplicate_max_distance is {self.near_duplicate_max_distance}; it is a "
                "cosine distance, so use a number between 0 and 2 (0.01 to 0.05 finds "
                "re-listings of one product)."
            )
        if self.near_duplicate_k + 1 > self.hnsw_ef_search:
            raise _whole(
                f"vars.near_duplicate_k ({self.near_duplicate_k}) must be below "
                f"vars.hnsw_ef_search ({self.hnsw_ef_search}): an HNSW scan returns at most "
                "ef_search rows."
            )
        if len(set(self.label_kmeans_seeds)) != len(self.label_kmeans_seeds) or not (
            self.label_kmeans_seeds
        ):
            raise _whole(
                "vars.label_kmeans_seeds must be a list of distinct non-negative integers, "
                "e.g. [0, 1, 2, 3, 4]: one KMeans run per seed."
            )
        return self


def _check_pair(where: str, pair: PairConfig, spaces: Mapping[str, SpaceConfig]) -> None:
    for role, modality in (("text_space", "text"), ("image_space", "image")):
        name = getattr(pair, role)
        if name not in spaces:
            raise _whole(
                f"{where}.{role} is '{name}', which is not a configured space; known spaces: "
                f"{', '.join(spaces) or '(none)'}."
            )
        if spaces[name].modality != modality:
            raise _whole(
                f"{where}.{role} is '{name}', whose modality is {spaces[name].modality}; it must "
                f"name a space of modality {modality}."
            )
    text, image = spaces[pair.text_space], spaces[pair.image_space]
    if text.dim != image.dim:
        raise _whole(
            f"{where}: '{text.name}' has dim {text.dim} but '{image.name}' has dim {image.dim}; "
            "vectors of different dimensions cannot be compared."
        )
    if text.family != image.family and not pair.alignment_override:
        raise _whole(
            f"{where}: pair '{pair.name}' retrieves across model families: '{text.name}' is "
            f"'{text.family}' and '{image.name}' is '{image.family}'. Vectors from models that "
            "were not trained jointly do not share a geometry, so their cross-modal recall is "
            "meaningless. Pair spaces of one family, or set alignment_override: '<why these "
            "spaces are aligned>' on the pair."
        )


def _check_modality(index: int, space: SpaceConfig) -> None:
    from embed_udfs.encoders import backend

    registered = backend(space.backend)
    if space.modality not in registered.modalities:
        raise _whole(
            f"vars.embed_spaces[{index}]: space '{space.name}' has modality {space.modality}, "
            f"but backend '{space.backend}' embeds only {', '.join(registered.modalities)}."
        )


@dataclass(frozen=True, config=ConfigDict(arbitrary_types_allowed=True))
class ProjectConfig:
    """The validated configuration, in the shape the jobs read it."""

    project_dir: Path
    spaces: tuple[SpaceConfig, ...]
    pairs: tuple[PairConfig, ...]
    eval: EvalConfig
    products_relation: str
    vectors_relation: str
    backfill_errors_relation: str
    labels: LabelConfig
    dedup: DedupConfig
    text_max_words: int
    text_strip_store_name: bool
    ann: AnnConfig
    ingest: IngestLimits = dataclasses.field(default_factory=IngestLimits)

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
    """Read, render and validate the vars block of dbt_project.yml, with --vars overrides."""
    project_dir = project_dir or find_project_dir()
    path = project_dir / "dbt_project.yml"
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    raw = dict(document.get("vars") or {})
    raw.update(overrides or {})
    return parse_config(render_vars(raw, path), project_dir)


def render_vars(raw: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """The vars as dbt's var() returns them: each top-level string rendered as Jinja in
    dbt's base context (env_var, var, ...); nested values are left as written, as dbt does."""
    if not any(isinstance(v, str) and ("{{" in v or "{%" in v) for v in raw.values()):
        return dict(raw)
    from dbt.clients.jinja import get_rendered
    from dbt.context.base import BaseContext
    from dbt_common.context import set_invocation_context
    from dbt_common.exceptions import DbtBaseException

    # dbt sets this per invocation; env_var reads the environment through it
    set_invocation_context(os.environ)
    context = BaseContext(cli_vars=dict(raw)).to_dict()
    rendered: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            rendered[key] = value
            continue
        try:
            rendered[key] = get_rendered(value, context)
        except DbtBaseException as exc:
            message = " ".join(str(exc).split())
            raise ConfigError(
                f"{where}: vars.{key} ({value!r}) does not render: {message}"
            ) from exc
    return rendered


def parse_config(raw: Mapping[str, Any], project_dir: Path) -> ProjectConfig:
    """Validate rendered vars with the typed model; the first problem becomes a ConfigError."""
    where = project_dir / "dbt_project.yml"
    try:
        model = ProjectVars.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_error(exc)}") from None
    # The ingest bounds (byte caps, deadlines, retries) are read by Python only.
    return dataclasses.replace(_project_config(model, project_dir), ingest=parse_limits(raw, where))


def check_text_fields(conn: psycopg.Connection, config: ProjectConfig) -> None:
    """Each space's text_fields must be columns of the products relation (dbt pastes them
    as column names); skipped while that relation does not exist yet, as dbt's guard does."""
    schema, table = config.products_relation.split(".")
    rows = conn.execute(
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s order by column_name",
        (schema, table),
    ).fetchall()
    columns = [row[0] for row in rows]
    if not columns:
        return
    for index, space in enumerate(config.spaces):
        for position, name in enumerate(space.text_fields):
            if name not in columns:
                raise ConfigError(
                    f"{config.project_dir / 'dbt_project.yml'}: vars.embed_spaces[{index}]"
                    f".text_fields[{position}] is '{name}', which is not a column of "
                    f"{config.products_relation}; its columns: {', '.join(columns)}."
                )


def describe_error(exc: ValidationError) -> str:
    """One sentence for the first problem: where it is, what it was, what is expected."""
    error = exc.errors(include_url=False)[0]
    if error["type"] == "embed_config_whole":
        return str(error["ctx"]["message"])
    where = "vars" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
    )
    if error["type"] == "missing":
        return f"{where} is missing; set it in the vars block of dbt_project.yml (or --vars)."
    shown = show(error["input"])
    if error["type"] == "embed_config":
        return f"{where} is {shown}; {error['ctx']['rule']}."
    return f"{where} is {shown}; {error['msg'][:1].lower()}{error['msg'][1:]}."


def show(value: Any) -> str:
    """A value as the dbt guard prints it (Jinja's `~`), strings quoted."""
    return f"'{value}'" if isinstance(value, str) else str(value)


def _names_checkpoint_file(pretrained: str) -> bool:
    """A pretrained value that is a file path, not an open_clip tag or a hub/dir model."""
    looks_like_path = "/" in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES)
    return looks_like_path and not pretrained.startswith(("hf-hub:", "local-dir:"))


def _checkpoint_path(pretrained: str | None, project_dir: Path) -> str | None:
    """A relative checkpoint path read against the project dir, so it works from any cwd.

    A value without a path separator or checkpoint suffix is an open_clip tag and is kept.
    """
    if pretrained is None:
        return None
    if not _names_checkpoint_file(pretrained):
        return pretrained
    if Path(pretrained).is_absolute():
        return pretrained
    return str(project_dir / pretrained)


def require_checkpoints(config: ProjectConfig, spaces: Sequence[str] | None = None) -> None:
    """Refuse, before any work, spaces whose pretrained names a checkpoint file that is
    not there; every missing file is named at once."""
    chosen = [s for s in config.spaces if spaces is None or s.name in spaces]
    missing = [
        space
        for space in chosen
        if space.pretrained is not None
        and _names_checkpoint_file(space.pretrained)
        and not os.path.isfile(space.pretrained)
    ]
    if not missing:
        return
    demo_dir = config.project_dir / ".embed_metrics" / "demo_models"
    lines = [f"  {space.name}: {space.pretrained}" for space in missing]
    hint = "Fix pretrained (absolute, or relative to the project directory), or remove the space."
    if any(Path(space.pretrained or "").parent == demo_dir for space in missing):
        hint = (
            "Those are the demo's CLIP-style models: `embed-udfs demo train` trains them "
            "(about 2 minutes of CPU, cached), or replace the spaces with your own model "
            "(docs/demo-models.md). " + hint
        )
    raise ConfigError(
        "checkpoint files named by vars.embed_spaces do not exist:\n"
        + "\n".join(lines)
        + "\n"
        + hint
    )


def _project_config(model: ProjectVars, project_dir: Path) -> ProjectConfig:
    spaces = tuple(
        dataclasses.replace(
            space,
            max_words=space.max_words or model.text_max_words,
            pretrained=_checkpoint_path(space.pretrained, project_dir),
        )
        for space in model.embed_spaces
    )
    marked = [space.name for space in spaces if space.near_duplicates]
    return ProjectConfig(
        project_dir=project_dir,
        spaces=spaces,
        pairs=model.embed_pairs,
        eval=EvalConfig(
            sample_size=model.eval_sample_size,
            seed=model.eval_seed,
            k_values=tuple(sorted(set(model.eval_k_values))),
            ef_search=model.hnsw_ef_search,
            search=model.retrieval_search,
            dedup=model.eval_dedup,
            section_min=model.eval_section_min,
            section_cap=model.eval_section_cap,
            section_cap_factor=model.eval_section_cap_factor,
            exact_search_max_gallery=model.exact_search_max_gallery,
            strict_samples=model.strict_samples,
        ),
        products_relation=model.products_relation,
        vectors_relation=model.vectors_relation,
        backfill_errors_relation=model.backfill_errors_relation,
        labels=LabelConfig(
            pca_dims=tuple(dict.fromkeys(model.label_pca_dims)),
            kmeans_seeds=model.label_kmeans_seeds,
            bootstrap_replicates=model.bootstrap_replicates,
            bootstrap_seed=model.bootstrap_seed,
            cluster_assignments_relation=model.cluster_assignments_relation,
        ),
        dedup=DedupConfig(
            text_variant=model.dedup_text_variant,
            near_duplicate_space=marked[0] if marked else None,
            near_duplicate_max_distance=model.near_duplicate_max_distance,
            near_duplicate_k=model.near_duplicate_k,
        ),
        text_max_words=model.text_max_words,
        text_strip_store_name=model.text_strip_store_name,
        ann=AnnConfig(
            tuning=model.ann_tuning,
            target_recall=model.ann_target_recall,
            ef_search_grid=tuple(sorted(set(model.ann_ef_search_grid))),
            probes_grid=tuple(sorted(set(model.ann_probes_grid))),
            iterative_scans=tuple(dict.fromkeys(model.ann_iterative_scans)) or ("off",),
            queries=model.ann_tuning_queries,
        ),
    )
