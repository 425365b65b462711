"""Independent Python references for the text recipes, duplicate groups and the
balanced sample, written from docs/cleaning-dedup-sampling.md, not from the SQL."""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
VULGAR_FRACTIONS = "¼½¾⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞↉"
ALNUM_AFTER = r"(?![^\W_])"  # not followed by a letter or digit
# the marks cleaning keeps, each only in its place (docs/cleaning-dedup-sampling.md, Text recipes)
KEPT_MARKS = "-./%°+#"
FORMAT_CHARACTERS = "\u200d\ufe0e\ufe0f\u20e3"  # emoji joiners, variation selectors, keycap


def raw_text(fields: Sequence[str | None]) -> str | None:
    """'field one. field two.', skipping empty fields (PostgreSQL trim() trims spaces)."""
    parts = [f.strip(" ") + "." for f in fields if f is not None and f.strip(" ")]
    return " ".join(parts) or None


def _is_removed(ch: str) -> bool:
    """Punctuation, symbols (emoji), control and emoji-format characters."""
    category = unicodedata.category(ch)
    return category[0] in "PS" or category == "Cc" or ch in FORMAT_CHARACTERS


def clean(text: str | None) -> str | None:
    """The clean recipe as the docs state it, rule by rule."""
    if text is None:
        return None
    text = re.sub(f"([0-9])([{VULGAR_FRACTIONS}])", r"\1 \2", text)
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2044", "/")
    for entity, character in (("quot|#34", '"'), ("apos|#39", "'"), ("amp|#38", "&")):
        text = re.sub(f"&({entity});", character, text)
    named = "lt|gt|nbsp|ndash|mdash|hellip|laquo|raquo|reg|trade|copy"
    text = re.sub(rf"&({named}|#[0-9]+|#x[0-9a-f]+);", " ", text)
    text = re.sub(r"([0-9])\s*(\"|”|″|′′|''|inches|inch)" + ALNUM_AFTER, r"\1 inch", text)
    text = re.sub(r"([0-9])\s*°\s*([cf])" + ALNUM_AFTER, r"\1 °\2", text)
    text = re.sub(r"([0-9])\s*°", r"\1 °", text)
    text = re.sub(r"(?<![^\W_])−(?=[0-9])", "-", text)
    text = re.sub(r"(?<=[0-9]),(?=[0-9]{3}(?![0-9]))", "", text)
    text = re.sub(r"(?<=[^\W\d_])['’ʼ](?=[^\W\d_])", "", text)
    text = "".join(" " if _is_removed(ch) and ch not in KEPT_MARKS else ch for ch in text)
    text = re.sub(r"(?<![0-9])[./]|[./](?![0-9])", " ", text)
    text = re.sub(r"(?<=[^\W_])-|-(?![0-9])", " ", text)
    text = re.sub(r"(?<![0-9])%", " ", text)
    text = re.sub(r"(?<![0-9] )°", " ", text)
    text = re.sub(r"(?<![^\W\d_])(?<!\+)\++|\++(?=[^\W_])|(?<![^\W\d_])#+|#+(?=[^\W_])", " ", text)
    return " ".join(text.split()) or None


def seed_rows(name: str) -> list[dict[str, str]]:
    with (SEEDS / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def seed_terms(name: str, column: str) -> list[str]:
    return [row[column] for row in seed_rows(name)]


def _whole_words(alternatives: Iterable[str]) -> str | None:
    ordered = sorted(set(alternatives), key=len, reverse=True)
    return r"(?<!\S)(?:" + "|".join(ordered) + r")(?!\S)" if ordered else None


def _literal(terms: Iterable[str | None]) -> list[str]:
    return [re.escape(c) for c in (clean(t) for t in terms) if c]


def strip_noise(
    cleaned: str | None,
    phrases: Iterable[str],
    tokens: Iterable[str],
    store: str | None,
    patterns: Iterable[str] = (),
) -> str | None:
    """Remove cleaned phrases (and regex patterns), then tokens, then the store name,
    as whole words of the cleaned text."""
    if cleaned is None:
        return None
    text = cleaned
    for alternatives in (
        [*_literal(phrases), *patterns],
        _literal(tokens),
        _literal([store] if store else []),
    ):
        pattern = _whole_words(alternatives)
        if pattern:
            text = re.sub(pattern, " ", text)
    return " ".join(text.split()) or None


def clean_no_boilerplate(
    name: str | None, description: str | None, store: str | None
) -> str | None:
    """Noise of scope `description` leaves the description only; the rest leaves both."""
    phrases = seed_rows("boilerplate_phrases")
    tokens = seed_rows("noise_tokens")
    description_only = _whole_words(
        _literal(t["token"] for t in tokens if t["scope"] == "description")
    )
    described = clean(description)
    if described and description_only:
        described = re.sub(description_only, " ", described)
    joined = " ".join(f for f in (clean(name), described) if f)
    return strip_noise(
        " ".join(joined.split()) or None,
        [p["phrase"] for p in phrases if p["match"] == "phrase"],
        [t["token"] for t in tokens if t["scope"] == "anywhere"],
        store,
        patterns=[p["phrase"] for p in phrases if p["match"] == "pattern"],
    )


def cosine_distances(matrix: np.ndarray) -> np.ndarray:
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return 1.0 - unit.astype(np.float64) @ unit.astype(np.float64).T


def near_pairs(ids: Sequence[str], matrix: np.ndarray, max_distance: float) -> set[tuple[str, str]]:
    """Every pair below the threshold, by brute force over all N^2 distances."""
    distances = cosine_distances(matrix)
    rows, cols = np.nonzero(np.triu(distances < max_distance, k=1))
    return {tuple(sorted((ids[i], ids[j]))) for i, j in zip(rows, cols, strict=True)}


def classes(keys: Mapping[str, str | None]) -> list[list[str]]:
    """Products sharing a non-null key (equal text, equal image hash), 2 or more per class."""
    by_key: dict[str, list[str]] = defaultdict(list)
    for product_id, key in keys.items():
        if key is not None:
            by_key[key].append(product_id)
    return [sorted(members) for members in by_key.values() if len(members) > 1]


def components(nodes: Iterable[str], links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Union-find: each node's group id, the smallest node of its component."""
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in parent}


def round_robin_sample(
    sections: Mapping[str, str],
    seed: int,
    size: int,
    section_min: int = 1,
    section_cap: int | None = None,
) -> list[str]:
    """The eval sample: per section, sort by md5(product_id:seed); drop sections below
    section_min; cap; then round robin (rank, md5(section:seed)) up to size."""

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    by_section: dict[str, list[str]] = defaultdict(list)
    for product_id, section in sections.items():
        by_section[section].append(product_id)
    ordered = []
    for section, members in by_section.items():
        if len(members) < section_min:
            continue
        members = sorted(members, key=lambda p: (md5(f"{p}:{seed}"), p))
        if section_cap is not None:
            members = members[:section_cap]
        ordered += [(rank, md5(f"{section}:{seed}"), section, p) for rank, p in enumerate(members)]
    return [p for *_, p in sorted(ordered)[:size]]
