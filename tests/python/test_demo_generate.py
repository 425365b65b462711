"""The demo catalog: deterministic, imbalanced, and carrying the planted duplicates and defects."""

from __future__ import annotations

import io
import itertools
import pathlib
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from embed_udfs.demo.catalog import (
    _COLOURS,
    COLOURWAY_SIZE,
    SECTION_SHARES,
    DemoProduct,
    _Attributes,
    _render_png,
    generate_catalog,
)

N = 2400


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> list[DemoProduct]:
    return generate_catalog(tmp_path_factory.mktemp("images"), n_products=N, seed=7)


def _portable(products: list[DemoProduct]) -> list[DemoProduct]:
    """Records with image_uri cut to the file name, so two image folders compare equal."""
    return [
        replace(p, image_uri=None if p.image_uri is None else pathlib.Path(p.image_uri).name)
        for p in products
    ]


def _image_bytes(products: list[DemoProduct]) -> dict[str, bytes]:
    return {
        p.product_id: pathlib.Path(p.image_uri).read_bytes()
        for p in products
        if p.image_uri is not None and pathlib.Path(p.image_uri).exists()
    }


def _loads(path: str) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            return image.size == (64, 64) and image.mode == "RGB"
    except (OSError, SyntaxError):
        return False


def test_same_seed_gives_same_records_and_image_bytes(tmp_path: pathlib.Path) -> None:
    first = generate_catalog(tmp_path / "a", n_products=300, seed=3)
    second = generate_catalog(tmp_path / "b", n_products=300, seed=3)

    assert _portable(first) == _portable(second)
    assert _image_bytes(first) == _image_bytes(second)
    assert len(_image_bytes(first)) > 280


def test_different_seed_gives_different_catalog(tmp_path: pathlib.Path) -> None:
    first = generate_catalog(tmp_path / "a", n_products=300, seed=3)
    second = generate_catalog(tmp_path / "b", n_products=300, seed=4)

    assert [p.product_name for p in first] != [p.product_name for p in second]
    assert _image_bytes(first) != _image_bytes(second)


def test_image_uri_is_absolute_and_named_by_product_id(catalog: list[DemoProduct]) -> None:
    ids = [p.product_id for p in catalog]
    assert len(set(ids)) == N
    assert ids[0] == "P000001"
    for p in catalog:
        if p.image_uri is not None:
            assert pathlib.Path(p.image_uri).is_absolute()
            assert pathlib.Path(p.image_uri).name == f"{p.product_id}.png"


def test_sections_are_many_and_imbalanced(catalog: list[DemoProduct]) -> None:
    counts = Counter(p.collection_section for p in catalog)
    nulls = counts.pop(None)

    assert set(counts) == set(SECTION_SHARES)
    assert max(counts.values()) / min(counts.values()) >= 5
    assert max(counts.values()) / N == pytest.approx(0.25, abs=0.03)
    assert nulls / N == pytest.approx(0.01, abs=0.005)


def test_small_catalog_still_has_several_sections(tmp_path: pathlib.Path) -> None:
    products = generate_catalog(tmp_path, n_products=50)

    assert len(products) == 50
    assert len({p.collection_section for p in products} - {None}) >= 8


def test_single_product_catalog(tmp_path: pathlib.Path) -> None:
    (product,) = generate_catalog(tmp_path, n_products=1)

    assert product.collection_section == "shoes"
    assert _loads(product.image_uri)


@pytest.mark.parametrize("n_products", [0, -5])
def test_rejects_empty_catalog(tmp_path: pathlib.Path, n_products: int) -> None:
    with pytest.raises(ValueError, match="n_products must be at least 1"):
        generate_catalog(tmp_path, n_products=n_products)


@pytest.mark.parametrize("colourway_size", [0, 15])
def test_rejects_a_colourway_size_outside_the_palette(
    tmp_path: pathlib.Path, colourway_size: int
) -> None:
    with pytest.raises(ValueError, match="colourway_size must be between 1 and 14"):
        generate_catalog(tmp_path, n_products=5, colourway_size=colourway_size)


def test_exact_duplicates_share_text_and_image_bytes(catalog: list[DemoProduct]) -> None:
    images = _image_bytes(catalog)
    groups = defaultdict(list)
    for p in catalog:
        if p.product_id in images and p.product_name:
            groups[(p.product_name, p.product_description, images[p.product_id])].append(p)

    copies = sum(len(group) - 1 for group in groups.values())
    assert copies >= 0.02 * N


def test_near_duplicates_differ_in_wording_only(catalog: list[DemoProduct]) -> None:
    by_description = defaultdict(set)
    by_name = defaultdict(set)
    for p in catalog:
        if p.product_name and p.product_description:
            by_description[p.product_description].add(p.product_name)
            by_name[p.product_name].add(p.product_description)

    # Another store's prefix or an added "!!!": same description, different name.
    renamed = sum(len(names) - 1 for names in by_description.values())
    # An extra boilerplate sentence: same name, one description extends the other.
    extended = sum(
        1
        for descriptions in by_name.values()
        for a, b in itertools.permutations(descriptions, 2)
        if b.startswith(a + " ")
    )
    assert renamed + extended >= 0.03 * N


def test_text_is_messy_like_real_listings(catalog: list[DemoProduct]) -> None:
    names = [p.product_name for p in catalog if p.product_name]
    descriptions = [p.product_description for p in catalog if p.product_description]

    def share(texts: list[str], predicate: Callable[[str], bool]) -> float:
        return sum(map(predicate, texts)) / len(texts)

    assert share(names, lambda t: t.startswith("[")) > 0.1
    assert share(names, lambda t: "!!!" in t) > 0.02
    assert share(names, lambda t: "✨" in t or "🔥" in t) > 0.01
    assert share(names, lambda t: "PREMIUM" in t) > 0.05
    assert share(names + descriptions, lambda t: "&amp;" in t) > 0.05
    assert share(names + descriptions, lambda t: any(ord(c) > 0x2FF for c in t)) > 0.02
    assert share(descriptions, lambda t: "Free shipping on orders over $50." in t) > 0.1
    assert share(descriptions, lambda t: len(t) > 2000) > 0.01


def test_blank_descriptions_and_names_exist(catalog: list[DemoProduct]) -> None:
    descriptions = Counter(p.product_description for p in catalog if not p.product_description)
    names = Counter(p.product_name for p in catalog if not p.product_name)

    assert descriptions[""] > 0 and descriptions[None] > 0
    assert sum(descriptions.values()) / N == pytest.approx(0.015, abs=0.005)
    assert 2 <= sum(names.values()) <= 3


def test_broken_images_are_missing_dangling_or_corrupt(catalog: list[DemoProduct]) -> None:
    missing = [p for p in catalog if p.image_uri is None]
    dangling = [p for p in catalog if p.image_uri and not pathlib.Path(p.image_uri).exists()]
    on_disk = [p for p in catalog if p.image_uri and pathlib.Path(p.image_uri).exists()]
    corrupt = [p for p in on_disk if not _loads(p.image_uri)]

    assert len(missing) == len(dangling) == len(corrupt) == 0.01 * N
    # Both kinds: a cut-short PNG still opens (only verify or load finds it), garbage does not.
    assert 0 < sum(_opens(p.image_uri) for p in corrupt) < len(corrupt)


def _opens(path: str) -> bool:
    try:
        Image.open(path).close()
    except OSError:
        return False
    return True


def test_rerun_into_same_folder_keeps_dangling_paths_dangling(tmp_path: pathlib.Path) -> None:
    generate_catalog(tmp_path, n_products=300, seed=1)
    products = generate_catalog(tmp_path, n_products=300, seed=2)

    dangling = [p for p in products if p.image_uri and not pathlib.Path(p.image_uri).exists()]
    assert len(dangling) == 3


def _pixels(section: str, colour: str, image_seed: int) -> np.ndarray:
    attributes = _Attributes(section, "item", colour, "cotton", "classic", "M", image_seed)
    return np.asarray(Image.open(io.BytesIO(_render_png(attributes))), dtype=float)


def test_section_alone_changes_the_shape() -> None:
    # Same seed, so background, jitter and noise are identical; only the shape can differ.
    images = {section: _pixels(section, "red", image_seed=11) for section in SECTION_SHARES}

    for a, b in itertools.combinations(SECTION_SHARES, 2):
        assert np.abs(images[a] - images[b]).mean() > 3, (a, b)
    assert np.array_equal(_pixels("rugs", "red", 11), images["rugs"])


def test_colour_decides_the_fill() -> None:
    for colour, rgb in [("red", (210, 30, 40)), ("navy blue", (20, 40, 120))]:
        pixels = _pixels("bags", colour, image_seed=5)
        close = np.abs(pixels - np.array(rgb)).max(axis=2) <= 8
        assert close.sum() > 0.2 * 64 * 64, colour


def test_colourway_fills_bands_left_to_right_in_listed_order() -> None:
    names = ["red", "navy blue", "yellow", "green"]
    pixels = _pixels("bags", "/".join(names), image_seed=5)
    # Which listed colour each pixel is (within the +-8 noise), or -1 for none of them.
    rgb = np.array([_COLOURS[name] for name in names], dtype=float)
    nearest = np.abs(pixels[:, :, None, :] - rgb[None, None]).max(axis=3)
    which = np.where(nearest.min(axis=2) <= 8, nearest.argmin(axis=2), -1)
    counts = [(which == k).sum() for k in range(len(names))]
    assert min(counts) > 0.05 * 64 * 64, counts
    # Along the middle row the colours appear in the listed order, each one band.
    row = [int(k) for k in which[32] if k >= 0]
    bands = [k for i, k in enumerate(row) if i == 0 or k != row[i - 1]]
    assert bands == [0, 1, 2, 3]


def test_catalog_colourways_are_four_distinct_known_colours(catalog: list[DemoProduct]) -> None:
    colourways = set()
    for p in catalog:
        match = re.search(r"Colour: ([a-z /]+) \|", p.product_description or "")
        if match:
            colourways.add(match.group(1))
    assert len(colourways) > 100
    for colourway in colourways:
        names = colourway.split("/")
        assert len(names) == len(set(names)) == COLOURWAY_SIZE, colourway
        assert set(names) <= set(_COLOURS), colourway


def test_catalog_images_differ_between_sections(catalog: list[DemoProduct]) -> None:
    images = _image_bytes(catalog)
    first_image = {}
    for p in catalog:
        if p.collection_section and p.product_id in images:
            first_image.setdefault(p.collection_section, images[p.product_id])

    assert len(first_image) == len(SECTION_SHARES)
    assert len(set(first_image.values())) == len(SECTION_SHARES)
