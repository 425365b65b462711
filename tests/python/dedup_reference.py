"""Independent Python references for the text recipes, duplicate groups and the
balanced sample, written from the README's rules, not from the SQL."""

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
_ENTITY = re.compile(r"&(amp|quot|apos|lt|gt|nbsp|#[0-9]+);")


def raw_text(fields: Sequence[str | None]) -> str | None:
    """'field one. field two.', skipping empty fields (PostgreSQL trim() trims spaces)."""
    parts = [f.strip(" ") + "." for f in fields if f is not None and f.strip(" ")]
    return " ".join(parts) or None


def clean(text: str | None) -> str | None:
    """NFKC, lowercase, HTML entities, anything not a letter/digit/space, whitespace."""
    if text is None:
        return None
    text = _ENTITY.sub(" ", unicodedata.normalize("NFKC", text).lower())
    text = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text)
    return " ".join(text.split()) or None


def seed_terms(name: str, column: str) -> list[str]:
    with (SEEDS / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]


def strip_noise(
    cleaned: str | None, phrases: Iterable[str], tokens: Iterable[str], store: str | None
) -> str | None:
    """Remove cleaned phrases, then tokens, then the store name, as whole words."""
    if cleaned is None:
        return None
    text = cleaned
    for terms in (phrases, tokens, [store] if store else []):
        words = sorted({c for c in (clean(t) for t in terms) if c}, key=len, reverse=True)
        if words:
            pattern = r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)"
            text = re.sub(pattern, " ", text)
    return " ".join(text.split()) or None


def clean_no_boilerplate(
    name: str | None, description: str | None, store: str | None
) -> str | None:
    return strip_noise(
        clean(raw_text([name, description])),
        seed_terms("boilerplate_phrases", "phrase"),
        seed_terms("noise_tokens", "token"),
        store,
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
