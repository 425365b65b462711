"""The one configuration: every dbt var the project reads, its default and its bounds.

`ProjectVars` is the schema. Defaults of the vars dbt reads sit in the vars block of
dbt_project.yml; those only embed_udfs reads (the ingest bounds, a reranker's optional
fields) default here. `load_config` renders the vars as dbt's var() does (Jinja with
env_var) and validates them; dbt reads the validated values and checks only that they
are the ones validated (`config_digest`, macros/config_guard.sql).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from embed_udfs.errors import ConfigError

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
SEVERITIES = ("warn", "error")  # a dbt test's severity
DIRECTIONS = ("text_to_image", "image_to_text")
# What each reranker backend reads. A reranker scores a (text, image) pair, so it must read
# both; sentence_transformers is listed so that a text-only model gets a clear refusal.
RERANK_BACKEND_MODALITIES: dict[str, tuple[str, ...]] = {
    "open_clip": ("text", "image"),
    "blip_itm": ("text", "image"),
    "sentence_transformers": ("text",),
}
RERANK_BACKENDS = ("open_clip", "blip_itm")
# The var that carries the digest of the validated vars to dbt (macros/config_guard.sql).
DIGEST_VAR = "config_digest"
# The columns of the user's relations, by their name in the data contract
# (vars.products_columns, vars.vectors_columns; macros/inputs.sql reads them).
PRODUCT_COLUMNS = (
    "product_id",
    "product_name",
    "product_description",
    "collection_section",
    "store_name",
    "image_uri",
)
VECTOR_COLUMNS = ("space", "product_id", "embedding", "input_hash", "model_ref", "embedded_at")
# A user's column name: dbt quotes it, so any case is kept, but nothing else reaches SQL.
COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
# Families of metrics that a var switches off (macros/families.sql).
FAMILIES = ("retrieval", "gaps", "labels", "dedup", "rerank", "ann_tuning", "history")


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


def _section_separator(value: Any) -> str | None:
    """A path separator of collection_section (spaces around it are ignored), or null."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise _rule('use a non-blank string such as "|" or ">", or null for one-level sections')
    if value.strip() != value:
        raise _rule(f"write it without spaces ({value.strip()!r}): segments are trimmed anyway")
    return value


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


def _number_in(low: float, high: float, example: str) -> Callable[[Any], float]:
    """A number in (low, high]."""

    def check(value: Any) -> float:
        number = _number(value)
        if not low < number <= high:
            raise _rule(f"it must be a number in ({low:g}, {high:g}], {example}")
        return number

    return check


def _share(value: Any) -> float:
    number = _number(value)
    if not 0 <= number <= 1:
        raise _rule("it must be a share from 0 to 1")
    return number


def _seconds(value: Any) -> float:
    number = _number(value)
    if not number > 0:  # NaN too
        raise _rule("it must be a positive number of seconds")
    return number


def _histogram_negatives(value: Any) -> int | str:
    if value == "all":
        return "all"
    try:
        return _integer(1)(value)
    except PydanticCustomError:
        raise _rule("use all or a positive integer (images per text)") from None


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR ("10.0.0.0/8") or one address ("10.1.2.3"); ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string")
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network: {exc}") from None


_HOST = re.compile(r"^(?:[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")


def parse_host(text: str) -> str:
    """A host name or "host:port" ("[v6]:port"), lowercased; ValueError if it is neither."""
    if not isinstance(text, str) or not _HOST.match(text.strip().lower()):
        raise ValueError(f"{text!r} is not a host name or host:port (no scheme, path or wildcard)")
    return text.strip().lower()


def _parsed(parse: Callable[[str], Any]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        try:
            return str(parse(value))
        except ValueError as exc:
            raise _rule(str(exc)) from None

    return check


def _address_list(example: str) -> Callable[[Any], Any]:
    """A list, or one comma-separated string (what env_var() and --vars give)."""

    def check(value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise _rule(f"it must be a list of {example}")
        return value

    return check


def _column_name(value: Any) -> str:
    if not isinstance(value, str) or not COLUMN_NAME.fullmatch(value):
        raise _rule("it must be a column name: letters, digits and underscores")
    return value


def _column_map(contract: Sequence[str], required: Sequence[str]) -> Callable[[Any], Any]:
    """Contract column -> the user's column (null: the table has none). A contract column
    left out keeps its own name, as the dbt macro reads it (macros/inputs.sql)."""

    def check(value: Any) -> dict[str, str | None]:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise _rule(f"it must map contract columns ({', '.join(contract)}) to your columns")
        unknown = sorted(str(key) for key in value if key not in contract)
        if unknown:
            raise _rule(f"{', '.join(unknown)} is not a contract column; use {', '.join(contract)}")
        mapped: dict[str, str | None] = {}
        for name in contract:
            column = value.get(name, name)
            if column is None and name in required:
                raise _rule(f"{name} is required: name the column that holds it")
            if column is not None and not (
                isinstance(column, str) and COLUMN_NAME.fullmatch(column)
            ):
                raise _rule(
                    f"{name} maps to {column!r}, which is not a column name: use letters, "
                    "digits and underscores, or null for a column the table lacks"
                )
            mapped[name] = column
        return mapped

    return check


def _directions(value: Any) -> tuple[str, ...]:
    given = list(DIRECTIONS) if value in (None, []) else value
    if not isinstance(given, (list, tuple)) or any(d not in DIRECTIONS for d in given):
        raise _rule("use text_to_image and/or image_to_text")
    return tuple(d for d in DIRECTIONS if d in given)


def _rerank_pairs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _rule("a reranker needs pairs: a list of the vars.embed_pairs it rescores")
    return tuple(_text(item) for item in dict.fromkeys(value))


def _rerank_backend(value: Any) -> str:
    if value not in RERANK_BACKEND_MODALITIES:
        raise _rule(f"use one of {', '.join(RERANK_BACKENDS)}")
    return str(value)


PositiveInt = Annotated[int, BeforeValidator(_integer(1))]
OptionalPositiveInt = Annotated[int | None, BeforeValidator(_optional(_integer(1)))]
NonNegativeInt = Annotated[int, BeforeValidator(_integer(0))]
Number = Annotated[float, BeforeValidator(_number)]
Seconds = Annotated[float, BeforeValidator(_seconds)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
Text = Annotated[str, BeforeValidator(_text)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
Identifier = Annotated[str, BeforeValidator(_identifier)]
Relation = Annotated[str, BeforeValidator(_relation)]
TextVariant = Annotated[str, BeforeValidator(_one_of(TEXT_VARIANTS))]
Networks = Annotated[
    tuple[Annotated[str, BeforeValidator(_parsed(parse_network))], ...],
    BeforeValidator(_address_list('CIDRs, e.g. ["10.0.0.0/8", "127.0.0.1/32"]')),
]
Hosts = Annotated[
    tuple[Annotated[str, BeforeValidator(_parsed(parse_host))], ...],
    BeforeValidator(_address_list('host names or host:port, e.g. ["images.internal"]')),
]

_ITEMS = ConfigDict(extra="ignore")
_FROZEN = ConfigDict(frozen=True, extra="ignore")


@dataclass(frozen=True, config=_ITEMS)
class SpaceConfig:
    """One embedding space: a model, its weights and its input recipe."""

    name: Identifier
    modality: Annotated[str, BeforeValidator(_one_of(MODALITIES))]
    # a registered encoder backend; the registry checks the name and its modalities
    # (embed_udfs.encoders.check_backends), so that this module does not import it
    backend: Text
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
    # the space's column in a vectors relation with one column per space
    # (vars.vectors_columns.space null); None: the column named as the space
    vector_column: Annotated[str | None, BeforeValidator(_optional(_column_name))] = None


@dataclass(frozen=True, config=_ITEMS)
class PairConfig:
    """A cross-modal retrieval pair, evaluated text->image and image->text."""

    name: Identifier
    text_space: Text
    image_space: Text
    alignment_override: OptionalText = None


@dataclass(frozen=True)
class RerankTarget:
    """One (pair, direction) whose stage-1 candidates a reranker rescores."""

    pair: str
    direction: str


@dataclass(frozen=True, config=_ITEMS)
class RerankerConfig:
    """A stage-2 model (one item of vars.rerankers): what it is and which candidate
    lists it rescores."""

    name: Identifier
    backend: Annotated[str, BeforeValidator(_rerank_backend)]
    model: Text  # an open_clip model name, or a BLIP ITM model name or directory
    pairs: Annotated[tuple[str, ...], BeforeValidator(_rerank_pairs)]
    directions: Annotated[tuple[str, ...], BeforeValidator(_directions)] = DIRECTIONS
    pretrained: OptionalText = None  # open_clip tag or checkpoint path; None = random init
    # (query, candidate) pairs per forward (cross-encoder) or products per forward (dual)
    batch_size: PositiveInt = 64

    @property
    def targets(self) -> tuple[RerankTarget, ...]:
        return tuple(RerankTarget(p, d) for p in self.pairs for d in self.directions)


@dataclass(frozen=True)
class RerankConfig:
    """Two-stage retrieval: how many stage-1 candidates, rescored by which rerankers."""

    candidates: int
    rerankers: tuple[RerankerConfig, ...]
    uplift_severity: str = "warn"

    def reranker(self, name: str) -> RerankerConfig:
        for reranker in self.rerankers:
            if reranker.name == name:
                return reranker
        known = ", ".join(r.name for r in self.rerankers) or "(none)"
        raise ConfigError(
            f"unknown reranker {name!r}; the rerankers in vars.rerankers are: {known}."
        )


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
    # the whole-catalog gallery is searched exactly while queries x gallery products
    # stays within this many inner products, through its HNSW index beyond
    catalog_exact_max_pairs: int
    # galleries between the sample and the catalog, as multiples of the sample's
    # (gallery_scope sample_x<m>, macros/gallery_tiers.sql)
    gallery_tiers: tuple[int, ...]
    # an empty sample (a pair or space that is not evaluable) fails the build
    # instead of warning (tests/assert_eval_samples_not_empty.sql)
    strict_samples: bool = False

    @property
    def max_k(self) -> int:
        return max(self.k_values)


@dataclass(frozen=True)
class SectionConfig:
    """How collection_section is read: a path split on `separator` ("A | B | C") into
    levels (None: one level), and the fewest queries a section needs to be reported on its
    own; smaller ones are folded into the `other` row of their level."""

    separator: str | None = "|"
    min_queries: int = 10


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
    # the products column whose values the interval bootstrap resamples; None: duplicate groups
    bootstrap_cluster_column: str | None = None


@dataclass(frozen=True)
class DedupConfig:
    """Duplicate detection: exact text under a recipe, exact image bytes, and
    near duplicates (cosine distance below a threshold) in one marked space."""

    text_variant: str
    near_duplicate_space: str | None
    near_duplicate_max_distance: float
    near_duplicate_k: int


class IngestVars(BaseModel):
    """Bounds on the ingest path (`embed-udfs backfill`, and the reranker's image reads):
    how many bytes an image may have, how long a download and a database outage may last,
    how many fetches run at once, which non-public addresses image downloads may reach,
    when a chunk commits and when a run warns about failures. Only embed_udfs reads
    them, so their defaults are here; set any of them in the vars block to override."""

    model_config = _FROZEN

    image_max_bytes: PositiveInt = 50_000_000  # a local file or HTTP body above this is refused
    image_connect_timeout_s: Seconds = 3.0  # TCP connect to an image host
    image_download_deadline_s: Seconds = 30.0  # the whole download, headers and body together
    image_fetch_threads: PositiveInt = 16  # concurrent image reads per decode worker
    image_fetch_per_host: PositiveInt = 4  # of which at most this many to one host
    image_host_failures: PositiveInt = 8  # consecutive failures before a host is skipped
    backfill_commit_interval_s: Seconds = 30.0  # a chunk commits when full or this old
    backfill_failure_warn_share: Annotated[float, BeforeValidator(_share)] = 0.2
    db_retry_deadline_s: Seconds = 60.0  # how long a lost database connection is retried
    # Image downloads reach public addresses only; these let them reach others.
    image_allowed_networks: Networks = ()  # CIDRs, e.g. "10.0.0.0/8"
    image_allowed_hosts: Hosts = ()  # "host" or "host:port", whatever it resolves to


def _ingest_default(name: str) -> Any:
    return IngestVars.model_fields[name].default


@dataclasses.dataclass(frozen=True)
class IngestLimits:
    """What `embed-udfs backfill` reads, waits for and tolerates (IngestVars, validated)."""

    image_max_bytes: int = _ingest_default("image_max_bytes")
    image_connect_timeout_s: float = _ingest_default("image_connect_timeout_s")
    image_download_deadline_s: float = _ingest_default("image_download_deadline_s")
    image_fetch_threads: int = _ingest_default("image_fetch_threads")
    image_fetch_per_host: int = _ingest_default("image_fetch_per_host")
    image_host_failures: int = _ingest_default("image_host_failures")
    backfill_commit_interval_s: float = _ingest_default("backfill_commit_interval_s")
    backfill_failure_warn_share: float = _ingest_default("backfill_failure_warn_share")
    db_retry_deadline_s: float = _ingest_default("db_retry_deadline_s")
    image_allowed_networks: tuple[str, ...] = ()
    image_allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # canonical and hashable, however they were given (lists, any case)
        networks = tuple(str(parse_network(n)) for n in self.image_allowed_networks)
        object.__setattr__(self, "image_allowed_networks", networks)
        hosts = tuple(parse_host(h) for h in self.image_allowed_hosts)
        object.__setattr__(self, "image_allowed_hosts", hosts)

    @classmethod
    def from_vars(cls, model: IngestVars) -> IngestLimits:
        return cls(**{spec.name: getattr(model, spec.name) for spec in dataclasses.fields(cls)})


class ProjectVars(IngestVars):
    """The schema of every var the project reads (dbt and embed_udfs alike).

    A field without a default here has its default in dbt_project.yml, nowhere else.
    """

    # Where the inputs and the jobs' outputs live (the data contract).
    products_relation: Relation
    products_columns: Annotated[
        dict[str, str | None], BeforeValidator(_column_map(PRODUCT_COLUMNS, ("product_id",)))
    ]
    vectors_relation: Relation
    # space None: one column per space (each space's vector_column)
    vectors_columns: Annotated[
        dict[str, str | None],
        BeforeValidator(_column_map(VECTOR_COLUMNS, ("product_id", "embedding"))),
    ]
    backfill_errors_relation: Relation
    cluster_assignments_relation: Relation

    # Families of metrics (macros/families.sql); a family that is off is not built.
    enable_retrieval: Bool
    enable_gaps: Bool
    enable_labels: Bool
    enable_dedup: Bool
    enable_rerank: Bool
    enable_ann_tuning: Bool
    enable_history: Bool

    # The evaluation protocol.
    eval_sample_size: Annotated[int, BeforeValidator(_integer(2))]
    eval_seed: NonNegativeInt
    eval_k_values: Annotated[tuple[PositiveInt, ...], BeforeValidator(_list)]
    hnsw_ef_search: PositiveInt  # at least the largest K
    retrieval_search: Annotated[str, BeforeValidator(_one_of(RETRIEVAL_SEARCHES))]
    exact_search_max_gallery: PositiveInt
    catalog_exact_max_pairs: PositiveInt
    gallery_tiers: Annotated[
        tuple[Annotated[int, BeforeValidator(_integer(2))], ...], BeforeValidator(_list)
    ]
    eval_dedup: Bool
    eval_section_min: PositiveInt
    eval_section_cap: Annotated[int | str | None, BeforeValidator(_section_cap)]
    eval_section_cap_factor: Annotated[float, BeforeValidator(_number_at_least(1))]
    strict_samples: Bool
    # Sections: collection_section as a path, and the smallest section reported.
    section_separator: Annotated[str | None, BeforeValidator(_section_separator)]
    section_min_queries: PositiveInt
    similarity_histogram_bins: PositiveInt
    similarity_histogram_negatives: Annotated[int | str, BeforeValidator(_histogram_negatives)]

    # Text recipes.
    text_max_words: PositiveInt
    text_strip_store_name: Bool

    # Duplicates.
    dedup_text_variant: TextVariant
    near_duplicate_max_distance: Number  # a cosine distance in (0, 2)
    near_duplicate_k: PositiveInt  # below hnsw_ef_search

    # Label structure and the bootstrap.
    label_pca_dims: Annotated[tuple[OptionalPositiveInt, ...], BeforeValidator(_pca_dims)]
    label_kmeans_seeds: Annotated[tuple[NonNegativeInt, ...], BeforeValidator(_list)]
    label_dominant_share: Annotated[
        float, BeforeValidator(_number_in(0, 1, "e.g. 0.5 (one section holds half)"))
    ]
    bootstrap_replicates: Annotated[int, BeforeValidator(_integer(2, 16000))]
    bootstrap_seed: NonNegativeInt
    # Intervals resample clusters: null = near-duplicate groups, else a products column.
    bootstrap_cluster_column: Annotated[str | None, BeforeValidator(_optional(_identifier))]
    # The evidence rule (docs/evaluation-protocol.md): Holm-adjusted p below this.
    evidence_alpha: Annotated[
        float, BeforeValidator(_number_in(0, 1, "e.g. 0.05 (a 5% family-wise error rate)"))
    ]
    small_section_n: PositiveInt  # sections with fewer queries or products are marked small

    # ANN tuning.
    ann_tuning: Bool
    ann_target_recall: Annotated[float, BeforeValidator(_target_recall)]
    ann_ef_search_grid: Annotated[tuple[PositiveInt, ...], BeforeValidator(_list)]
    ann_probes_grid: Annotated[tuple[PositiveInt, ...], BeforeValidator(_list)]
    ann_iterative_scans: Annotated[
        tuple[Annotated[str, BeforeValidator(_one_of(ITERATIVE_SCANS))], ...],
        BeforeValidator(_list),
    ]
    ann_tuning_queries: PositiveInt

    # Spaces, pairs and rerankers.
    embed_spaces: Annotated[tuple[SpaceConfig, ...], BeforeValidator(_list)]
    embed_pairs: Annotated[tuple[PairConfig, ...], BeforeValidator(_list)]
    rerank_candidates: PositiveInt  # stage-1 candidates per query, at most hnsw_ef_search
    rerank_uplift_severity: Annotated[str, BeforeValidator(_one_of(SEVERITIES))]
    rerankers: Annotated[
        tuple[RerankerConfig, ...], BeforeValidator(lambda v: () if v is None else _list(v))
    ]

    # Per run, set by the CLI (or by hand): not settings, so they default to nothing.
    run_label: OptionalText = Field(default=None, description="names the run in dim_runs")
    git_revision: OptionalText = Field(default=None, description="the commit in dim_runs")
    metrics_staging: Bool = Field(
        default=False, description="build the marts into the staging schema (refresh sets it)"
    )
    ann_curve_target: OptionalText = Field(
        default=None, description="analyses/ann_tuning_curve.sql: one gallery or relation"
    )
    worst_pair: OptionalText = Field(
        default=None, description="analyses/worst_queries.sql: the pair (default: any)"
    )
    worst_direction: OptionalText = Field(
        default=None, description="analyses/worst_queries.sql: the direction (text_to_image)"
    )
    worst_section: OptionalText = Field(
        default=None, description="analyses/worst_queries.sql: the section (default: weakest)"
    )

    @model_validator(mode="after")
    def _across_vars(self) -> ProjectVars:
        """Checks that span several vars."""
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
        _check_rerankers(self)
        return self


def _check_rerankers(model: ProjectVars) -> None:
    # only a reranked pair's lists go to rerank_candidates (macros/rerank.sql)
    if model.rerankers and model.rerank_candidates > model.hnsw_ef_search:
        raise _whole(
            f"vars.rerank_candidates ({model.rerank_candidates}) is above vars.hnsw_ef_search "
            f"({model.hnsw_ef_search}): an HNSW scan returns at most ef_search rows, so the "
            f"search cannot return {model.rerank_candidates} candidates per query. Lower "
            "rerank_candidates or raise hnsw_ef_search."
        )
    names = [r.name for r in model.rerankers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _whole(
            f"vars.rerankers: reranker names must be unique; repeated: {', '.join(repeated)}."
        )
    pairs = [p.name for p in model.embed_pairs]
    for index, reranker in enumerate(model.rerankers):
        what = f"vars.rerankers[{index}]: reranker '{reranker.name}'"
        for target in reranker.pairs:
            if target not in pairs:
                raise _whole(
                    f"{what} rescores pair '{target}', which does not exist; configured pairs: "
                    f"{', '.join(sorted(pairs)) or '(none)'}. Fix its pairs or add the pair to "
                    "vars.embed_pairs."
                )
            reads = RERANK_BACKEND_MODALITIES[reranker.backend]
            if "text" not in reads or "image" not in reads:
                raise _whole(
                    f"{what} (backend {reranker.backend}) reads {' and '.join(reads)} only, so "
                    f"it cannot score pair '{target}', whose queries and candidates are texts "
                    f"and images. Use {' or '.join(RERANK_BACKENDS)}."
                )
        if reranker.pretrained is not None and reranker.backend != "open_clip":
            raise _whole(
                f"{what}: pretrained is an open_clip setting; a {reranker.backend} model names "
                "its weights in model (a model name or a local directory)."
            )


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
    rerank: RerankConfig = dataclasses.field(default_factory=lambda: RerankConfig(100, ()))
    sections: SectionConfig = dataclasses.field(default_factory=SectionConfig)
    # the digest of the rendered vars that were validated, as dbt's guard recomputes it
    digest: str = ""
    # the user's column for each contract column (None: the relation has none)
    products_columns: Mapping[str, str | None] = dataclasses.field(
        default_factory=lambda: {name: name for name in PRODUCT_COLUMNS}
    )
    vectors_columns: Mapping[str, str | None] = dataclasses.field(
        default_factory=lambda: {name: name for name in VECTOR_COLUMNS}
    )

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
    return parse_config(render_vars(project_vars(project_dir, overrides), path), project_dir)


def project_vars(project_dir: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The vars block of dbt_project.yml with `overrides` on top, unrendered, as dbt merges
    them; the overrides pass through JSON and YAML as `--vars` does on its way to dbt."""
    path = project_dir / "dbt_project.yml"
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    raw = dict(document.get("vars") or {})
    if overrides:
        raw.update(yaml.safe_load(json.dumps(dict(overrides))))
    raw.pop(DIGEST_VAR, None)
    return raw


def _env_var(name: str, default: Any = None) -> Any:
    """dbt's env_var(): the variable, else the default, else an error."""
    if name.startswith("DBT_ENV_SECRET_"):
        raise jinja2.TemplateError(
            f"secret env vars ({name}) are allowed only in profiles.yml and packages.yml"
        )
    if name in os.environ:
        return os.environ[name]
    if default is not None:
        return default
    raise jinja2.TemplateError(f"Env var required but not provided: '{name}'")


def _renderer() -> SandboxedEnvironment:
    """Jinja as dbt renders a var, offering env_var() and nothing else."""
    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    environment.globals.clear()
    environment.globals["env_var"] = _env_var
    return environment


def render_vars(raw: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """The vars as dbt's var() returns them: each top-level string that holds Jinja is
    rendered (to a string, env_var offered); nested values are left as written, as dbt does."""
    rendered: dict[str, Any] = {}
    environment: SandboxedEnvironment | None = None
    for key, value in raw.items():
        if not isinstance(value, str) or not any(tag in value for tag in ("{{", "{%", "{#")):
            rendered[key] = value
            continue
        environment = environment or _renderer()
        try:
            rendered[key] = environment.from_string(value).render()
        except jinja2.TemplateError as exc:
            message = " ".join(str(exc).split())
            raise ConfigError(
                f"{where}: vars.{key} ({value!r}) does not render: {message}"
            ) from exc
    return rendered


def digest_of(rendered: Mapping[str, Any]) -> str:
    """md5 of the schema's vars as JSON with sorted keys (an absent var is null): what
    dbt's guard recomputes with local_md5(tojson(..., sort_keys=true))."""
    values = {name: rendered.get(name) for name in digested_vars()}
    return hashlib.md5(
        json.dumps(values, sort_keys=True).encode(), usedforsecurity=False
    ).hexdigest()


def digested_vars() -> list[str]:
    """The vars the digest covers: every field of the schema."""
    return sorted(ProjectVars.model_fields)


def stamp_vars(project_dir: Path, dbt_vars: Mapping[str, Any] | None) -> dict[str, Any]:
    """`dbt_vars` with the digest of the validated vars added, for dbt's on-run-start guard
    (macros/config_guard.sql); a ConfigError if they are not valid."""
    config = load_config(project_dir, dict(dbt_vars or {}))
    stamped = {key: value for key, value in (dbt_vars or {}).items() if key != DIGEST_VAR}
    stamped[DIGEST_VAR] = {"md5": config.digest, "vars": digested_vars()}
    return stamped


def parse_config(raw: Mapping[str, Any], project_dir: Path) -> ProjectConfig:
    """Validate rendered vars with the typed model; the first problem becomes a ConfigError."""
    where = project_dir / "dbt_project.yml"
    try:
        model = ProjectVars.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_error(exc)}") from None
    return dataclasses.replace(_project_config(model, project_dir), digest=digest_of(raw))


def parse_limits(raw: Mapping[str, Any], where: Path) -> IngestLimits:
    """The ingest bounds in `raw` (rendered vars), defaults for those not given."""
    try:
        return IngestLimits.from_vars(IngestVars.model_validate(dict(raw)))
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_error(exc)}") from None


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
        for position, field in enumerate(space.text_fields):
            name = config.products_columns.get(field, field)
            if name is not None and name not in columns:
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
    if error["type"] == "missing" and len(error["loc"]) == 1:
        return f"{where} is missing; set it in the vars block of dbt_project.yml (or --vars)."
    if error["type"] == "missing":
        return f"{where} is missing."
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
    rerankers = tuple(
        dataclasses.replace(r, pretrained=_reranker_checkpoint(r.pretrained, project_dir))
        for r in model.rerankers
    )
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
            catalog_exact_max_pairs=model.catalog_exact_max_pairs,
            gallery_tiers=tuple(sorted(set(model.gallery_tiers))),
            strict_samples=model.strict_samples,
        ),
        sections=SectionConfig(
            separator=model.section_separator, min_queries=model.section_min_queries
        ),
        products_relation=model.products_relation,
        products_columns=model.products_columns,
        vectors_relation=model.vectors_relation,
        vectors_columns=model.vectors_columns,
        backfill_errors_relation=model.backfill_errors_relation,
        labels=LabelConfig(
            pca_dims=tuple(dict.fromkeys(model.label_pca_dims)),
            kmeans_seeds=model.label_kmeans_seeds,
            bootstrap_replicates=model.bootstrap_replicates,
            bootstrap_seed=model.bootstrap_seed,
            cluster_assignments_relation=model.cluster_assignments_relation,
            bootstrap_cluster_column=model.bootstrap_cluster_column,
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
        ingest=IngestLimits.from_vars(model),
        rerank=RerankConfig(
            candidates=model.rerank_candidates,
            rerankers=rerankers,
            uplift_severity=model.rerank_uplift_severity,
        ),
    )


def _reranker_checkpoint(pretrained: str | None, project_dir: Path) -> str | None:
    """A relative checkpoint path read against the project, wherever embed-udfs runs."""
    if pretrained is None or Path(pretrained).is_absolute():
        return pretrained
    beside = project_dir / pretrained
    return str(beside) if beside.is_file() else pretrained
