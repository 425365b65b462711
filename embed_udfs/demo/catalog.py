"""A deterministic demo catalog, messy like real marketplace listings, and its loader.

Each product's image is drawn from its attributes (section -> shape, colourway -> the
fill's bands), so a good encoder has something to find; duplicates, defects and noise
are planted on purpose.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import pathlib
import random
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Literal

import numpy as np
import psycopg
from PIL import Image, ImageDraw
from tqdm import tqdm

from embed_udfs.errors import DatabaseError
from embed_udfs.store import DEMO_CATALOG_COMMENT, PRODUCTS_DDL, mark_catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoProduct:
    """One row of catalog.products."""

    product_id: str
    product_name: str | None
    product_description: str | None
    collection_section: str | None
    store_name: str | None
    image_uri: str | None


IMAGE_SIZE = 64

# Bump when the same seed would give different records or image bytes: the demo's
# trained models are cached under a key that includes it.
GENERATOR_VERSION = 2

# Colours per product, listed as "red/olive/navy blue/beige" and drawn as that many
# vertical bands of the shape. One colour per product would make every trained tower
# map the ~16 products of a (section, colour) cell to one tight lump with few
# dimensions between them; four of 14 colours give 24,024 colourways, so products
# differ along many directions at once (see "Why the mixed pair is at chance" in
# docs/demo-models.md for what the lumps do to a mixed pair's figures).
COLOURWAY_SIZE = 4

# Shares of the catalog, largest first: imbalanced on purpose (about Zipf-like),
# so per-section metrics and balanced sampling have something to correct for.
SECTION_SHARES: dict[str, float] = {
    "shoes": 0.25,
    "dresses": 0.18,
    "bags": 0.14,
    "watches": 0.11,
    "kitchen": 0.08,
    "lamps": 0.07,
    "toys": 0.06,
    "books": 0.05,
    "phone cases": 0.04,
    "rugs": 0.02,
}

# Shares of planted duplicates and defects.
EXACT_DUPLICATE_SHARE = 0.02
NEAR_DUPLICATE_SHARE = 0.03
NULL_SECTION_SHARE = 0.01
NULL_STORE_SHARE = 0.02
BLANK_DESCRIPTION_SHARE = 0.015
MISSING_IMAGE_SHARE = 0.01
DANGLING_IMAGE_SHARE = 0.01
CORRUPT_IMAGE_SHARE = 0.01
LONG_DESCRIPTION_SHARE = 0.03

_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "white": (250, 250, 250),
    "red": (210, 30, 40),
    "navy blue": (20, 40, 120),
    "sky blue": (100, 170, 230),
    "green": (40, 150, 60),
    "olive": (110, 120, 40),
    "yellow": (240, 200, 30),
    "orange": (240, 130, 20),
    "pink": (240, 140, 180),
    "purple": (120, 50, 150),
    "brown": (120, 70, 30),
    "beige": (215, 195, 160),
    "grey": (130, 130, 130),
}

_STYLES = ["vintage", "minimalist", "boho", "classic", "sporty", "modern", "retro", "luxury"]


@dataclass(frozen=True)
class _SectionVocabulary:
    nouns: tuple[str, ...]
    materials: tuple[str, ...]
    sizes: tuple[str, ...]
    emoji: str


_VOCABULARY: dict[str, _SectionVocabulary] = {
    "shoes": _SectionVocabulary(
        ("running shoes", "sneakers", "loafers", "ankle boots", "sandals"),
        ("leather", "mesh", "suede", "canvas"),
        ("EU 38", "EU 40", "EU 42", "US 9", "US 11"),
        "👟",
    ),
    "dresses": _SectionVocabulary(
        ("maxi dress", "wrap dress", "midi dress", "summer dress"),
        ("cotton", "linen", "silk", "chiffon", "polyester"),
        ("XS", "S", "M", "L", "XL"),
        "👗",
    ),
    "bags": _SectionVocabulary(
        ("tote bag", "crossbody bag", "backpack", "clutch"),
        ("leather", "canvas", "nylon", "vegan leather"),
        ("small", "medium", "large"),
        "👜",
    ),
    "watches": _SectionVocabulary(
        ("analog watch", "smart watch", "chronograph", "dress watch"),
        ("stainless steel", "silicone", "leather", "titanium"),
        ("38mm", "42mm", "44mm"),
        "⌚",
    ),
    "kitchen": _SectionVocabulary(
        ("chef knife", "frying pan", "cutting board", "mixing bowl set", "kettle"),
        ("stainless steel", "cast iron", "bamboo", "ceramic"),
        ("20cm", "24cm", "28cm", "1.7L"),
        "🍳",
    ),
    "lamps": _SectionVocabulary(
        ("desk lamp", "floor lamp", "bedside lamp", "pendant light"),
        ("metal", "rattan", "glass", "wood"),
        ("E27", "LED 9W", "dimmable"),
        "💡",
    ),
    "toys": _SectionVocabulary(
        ("building blocks", "plush bear", "toy car", "jigsaw puzzle", "wooden train"),
        ("plastic", "wood", "plush"),
        ("ages 3+", "ages 6+", "ages 8+"),
        "🧸",
    ),
    "books": _SectionVocabulary(
        ("paperback novel", "cookbook", "notebook", "hardcover atlas"),
        ("paper", "recycled paper"),
        ("A5", "A4", "pocket size"),
        "📚",
    ),
    "phone cases": _SectionVocabulary(
        ("phone case", "silicone cover", "wallet case", "clear bumper"),
        ("silicone", "TPU", "leather", "polycarbonate"),
        ("iPhone 13", "iPhone 15 Pro", "Galaxy S23", "Pixel 8"),
        "📱",
    ),
    "rugs": _SectionVocabulary(
        ("area rug", "runner rug", "bath mat", "doormat"),
        ("wool", "jute", "cotton", "polypropylene"),
        ("60x90cm", "120x170cm", "160x230cm"),
        "🧶",
    ),
}

_STORES = [
    "BestDeals Store",
    "Shop4U",
    "MegaMart Official",
    "TrendyHub",
    "Global Bazaar",
    "Sunny Outlet",
    "深圳 Trading Co.",
    "HomeGoods Direct",
    "ValueKing",
    "Urban Style Co.",
]

_BOILERPLATE = [
    "Free shipping on orders over $50.",
    "Make sure this fits by entering your model number.",
    "30-day hassle-free returns.",
    "100% satisfaction guaranteed!!!",
    "Please allow 1-2cm difference due to manual measurement.",
    "Colours may vary slightly due to monitor settings.",
    "Click &quot;Add to Cart&quot; now!",
    "Buy 2 get 10% off.",
    "Ships within 24 hours.",
    "Contact us if you have any questions, we reply within 24h!",
]

_NON_LATIN = ["高品质", "新款", "Распродажа", "セール", "送料無料", "جديد", "Νέο"]
_HYPE_EMOJI = ["✨", "🔥", "💯", "⭐", "🎁"]

_NAME_TEMPLATES = [
    "{Style} {Colour} {Material} {Noun} - {size}",
    "{noun} {colour} {size}",
    "PREMIUM {Material} {noun} {COLOUR}",
    "{Noun}, {Colour}, {size}",
    "New {style} {noun} {colour} &amp; {material}",
    "{Colour} {Noun} for Women Men {Style} {Material}",
    "{Style} {noun} ({colour}/{material})",
]

_CORE_SENTENCES = [
    "This {style} {noun} in {colour} is made from {material}.",
    "{Style} design, {material} construction &amp; a {colour} finish.",
    "Our {noun} combines {material} with a {style} look.",
    "Upgrade your home/wardrobe with this {colour} {noun}!!",
]

_SPEC_LINES = [
    "Colour: {colour} | Material: {material} | Size: {size}",
    "Size: {size}.",
    "Material:&nbsp;{material}. Colour:&nbsp;{colour}.",
    "Specs - {size} / {material} / {colour}",
]

_LONG_NOTE = (
    "Note: due to the different monitor and light effect, the actual colour of the item "
    "might be slightly different from the colour showed on the pictures. Thank you for "
    "your understanding. Please check the size chart carefully before you buy the item, "
    "if you are not sure about size, please send message to us!!! "
)


@dataclass(frozen=True)
class _Attributes:
    """What a product is; its image is a pure function of these."""

    section: str
    noun: str
    colour: str  # a colourway: colour names joined by "/"
    material: str
    style: str
    size: str
    image_seed: int


_ImageState = Literal["ok", "missing", "dangling", "truncated", "garbage"]


@dataclass(frozen=True)
class _Listing:
    """How a product is listed: its attributes plus the messy text a seller wrote."""

    attributes: _Attributes
    product_name: str | None
    product_description: str | None
    collection_section: str | None
    store_name: str | None
    image: _ImageState = "ok"


def generate_catalog(
    image_dir: pathlib.Path,
    n_products: int = 2400,
    seed: int = 7,
    *,
    first_id: int = 1,
    colourway_size: int = COLOURWAY_SIZE,
) -> list[DemoProduct]:
    """Build n_products messy listings and write their PNGs to image_dir/<product_id>.png.

    The same seed gives identical records and byte-identical image files. Product ids
    are numbered from first_id, so catalogs drawn with disjoint ranges never share one.
    Each product has colourway_size distinct colours (the demo uses COLOURWAY_SIZE;
    bench/colourway_null.py compares others).
    """
    if n_products < 1:
        raise ValueError(f"n_products must be at least 1, got {n_products}.")
    if first_id < 0:
        raise ValueError(f"first_id must be at least 0, got {first_id}.")
    if not 1 <= colourway_size <= len(_COLOURS):
        raise ValueError(
            f"colourway_size must be between 1 and {len(_COLOURS)}, got {colourway_size}."
        )
    rng = random.Random(seed)

    n_exact = _count(n_products, EXACT_DUPLICATE_SHARE)
    n_near = _count(n_products, NEAR_DUPLICATE_SHARE)
    n_base = n_products - n_exact - n_near
    base = [_new_listing(rng, section, colourway_size) for section in _assign_sections(rng, n_base)]

    originals = rng.sample(range(n_base), n_exact + n_near)
    exact_copies = [base[i] for i in originals[:n_exact]]
    near_copies = [_near_duplicate(rng, base[i]) for i in originals[n_exact:]]
    duplicated = set(originals)
    singletons = [i for i in range(n_base) if i not in duplicated]
    _plant_defects(rng, base, singletons, n_products)

    listings = base + exact_copies + near_copies
    rng.shuffle(listings)
    products = _write_images(listings, pathlib.Path(image_dir).resolve(), first_id)
    log.info(
        "generated %d demo products (%d exact and %d near duplicates) in %s",
        len(products),
        n_exact,
        n_near,
        image_dir,
    )
    return products


def load_catalog(
    conn: psycopg.Connection, products: Sequence[DemoProduct], *, replace: bool = True
) -> int:
    """Write products to catalog.products with COPY, emptying it first when replace is set.

    Returns the number of rows written.
    """
    columns = ", ".join(field.name for field in fields(DemoProduct))
    try:
        with conn.cursor() as cur:
            cur.execute(PRODUCTS_DDL)
            if replace:
                cur.execute("truncate catalog.products")
            with cur.copy(f"copy catalog.products ({columns}) from stdin") as copy:
                for product in products:
                    copy.write_row(astuple(product))
            mark_catalog(conn, "catalog.products", DEMO_CATALOG_COMMENT)
    except psycopg.errors.UniqueViolation as exc:
        conn.rollback()
        raise DatabaseError(
            "catalog.products already holds some of these product ids; "
            "load with replace=True to start from an empty table."
        ) from exc
    conn.commit()
    return len(products)


def _count(n: int, share: float) -> int:
    return int(n * share + 0.5)


def _assign_sections(rng: random.Random, n: int) -> list[str]:
    """Sections in exact proportion to SECTION_SHARES (largest remainder), shuffled."""
    quotas = {section: n * share for section, share in SECTION_SHARES.items()}
    counts = {section: int(quota) for section, quota in quotas.items()}
    by_remainder = sorted(quotas, key=lambda s: quotas[s] - counts[s], reverse=True)
    for section in by_remainder[: n - sum(counts.values())]:
        counts[section] += 1
    sections = [section for section, count in counts.items() for _ in range(count)]
    rng.shuffle(sections)
    return sections


def _new_listing(rng: random.Random, section: str, colourway_size: int) -> _Listing:
    vocabulary = _VOCABULARY[section]
    attributes = _Attributes(
        section=section,
        noun=rng.choice(vocabulary.nouns),
        colour="/".join(rng.sample(list(_COLOURS), colourway_size)),
        material=rng.choice(vocabulary.materials),
        style=rng.choice(_STYLES),
        size=rng.choice(vocabulary.sizes),
        image_seed=rng.getrandbits(32),
    )
    store = None if rng.random() < NULL_STORE_SHARE else rng.choice(_STORES)
    return _Listing(
        attributes=attributes,
        product_name=_messy_name(rng, attributes, store),
        product_description=_messy_description(rng, attributes),
        collection_section=section,
        store_name=store,
    )


def _words(attributes: _Attributes) -> dict[str, str]:
    """Template fields: lower-case, Title-case and UPPER-case forms of each attribute."""
    words = {
        "noun": attributes.noun,
        "colour": attributes.colour,
        "material": attributes.material,
        "style": attributes.style,
    }
    return {
        **words,
        **{key.capitalize(): value.title() for key, value in words.items()},
        **{key.upper(): value.upper() for key, value in words.items()},
        "size": attributes.size,
    }


def _messy_name(rng: random.Random, attributes: _Attributes, store: str | None) -> str:
    name = rng.choice(_NAME_TEMPLATES).format(**_words(attributes))
    if rng.random() < 0.10:
        first, _, rest = name.partition(" ")
        name = f"PREMIUM {first.upper()} {rest}" if rng.random() < 0.5 else name.upper()
    if rng.random() < 0.08:
        name += "!!!"
    if rng.random() < 0.12:
        emoji = _VOCABULARY[attributes.section].emoji
        name = f"{rng.choice(_HYPE_EMOJI)}{name} {emoji}"
    if rng.random() < 0.04:
        name = f"{rng.choice(_NON_LATIN)} {name}"
    if store is not None:
        roll = rng.random()
        if roll < 0.25:
            name = f"[{store}] {name}"
        elif roll < 0.35:
            name = f"{name} | {store}"
    return name


def _messy_description(rng: random.Random, attributes: _Attributes) -> str:
    words = _words(attributes)
    sentences = [rng.choice(_CORE_SENTENCES).format(**words)]
    if rng.random() < 0.7:
        sentences.append(rng.choice(_SPEC_LINES).format(**words))
    sentences += rng.sample(_BOILERPLATE, rng.randint(0, 3))
    if rng.random() < 0.15:
        sentences.append(f"Great gift idea!!! {rng.choice(_HYPE_EMOJI)}")
    if rng.random() < 0.05:
        sentences.insert(0, f"{rng.choice(_NON_LATIN)}!")
    if rng.random() < LONG_DESCRIPTION_SHARE:
        spec = _SPEC_LINES[0].format(**words)
        sentences += [f"Package includes: 1 x {attributes.noun}.", spec]
        sentences += [_LONG_NOTE] * rng.randint(6, 12) + _BOILERPLATE
    return " ".join(sentences)


def _near_duplicate(rng: random.Random, listing: _Listing) -> _Listing:
    """The same product listed again with a small wording change and a re-shot image."""
    attributes = dataclasses.replace(listing.attributes, image_seed=rng.getrandbits(32))
    name = listing.product_name or ""
    description = listing.product_description or ""
    change = rng.randrange(3)
    if change == 0:
        store = rng.choice([s for s in _STORES if s != listing.store_name])
        bare = name.split("] ", 1)[1] if name.startswith("[") else name
        return dataclasses.replace(
            listing, attributes=attributes, product_name=f"[{store}] {bare}", store_name=store
        )
    if change == 1:
        unused = [s for s in _BOILERPLATE if s not in description]
        extra = rng.choice(unused or _BOILERPLATE)
        return dataclasses.replace(
            listing, attributes=attributes, product_description=f"{description} {extra}"
        )
    return dataclasses.replace(listing, attributes=attributes, product_name=f"{name}!!! 🔥")


def _plant_defects(
    rng: random.Random, listings: list[_Listing], singletons: list[int], n_products: int
) -> None:
    """Blank fields and break images, in place, on listings that have no duplicate.

    Keeping defects off duplicated products keeps every duplicate pair exact.
    """

    def pick(k: int) -> list[int]:
        return rng.sample(singletons, min(k, len(singletons)))

    for i in pick(_count(n_products, NULL_SECTION_SHARE)):
        listings[i] = dataclasses.replace(listings[i], collection_section=None)
    for j, i in enumerate(pick(_count(n_products, BLANK_DESCRIPTION_SHARE))):
        listings[i] = dataclasses.replace(listings[i], product_description=None if j % 2 else "")
    for j, i in enumerate(pick(min(3, n_products // 400))):
        listings[i] = dataclasses.replace(listings[i], product_name=None if j % 2 else "")

    # One draw for all broken images keeps their kinds disjoint.
    n_corrupt = _count(n_products, CORRUPT_IMAGE_SHARE)
    counts: dict[_ImageState, int] = {
        "missing": _count(n_products, MISSING_IMAGE_SHARE),
        "dangling": _count(n_products, DANGLING_IMAGE_SHARE),
        "truncated": n_corrupt // 2,
        "garbage": n_corrupt - n_corrupt // 2,
    }
    broken = pick(sum(counts.values()))
    for state, k in counts.items():
        for i in broken[:k]:
            listings[i] = dataclasses.replace(listings[i], image=state)
        broken = broken[k:]


def _write_images(
    listings: list[_Listing], image_dir: pathlib.Path, first_id: int
) -> list[DemoProduct]:
    image_dir.mkdir(parents=True, exist_ok=True)
    width = max(6, len(str(first_id + len(listings) - 1)))
    rendered: dict[_Attributes, bytes] = {}  # exact duplicates share one rendering
    products = []
    for number, listing in enumerate(
        tqdm(listings, desc="demo images", unit="img", disable=None), start=first_id
    ):
        product_id = f"P{number:0{width}d}"
        path = image_dir / f"{product_id}.png"
        if listing.image in ("ok", "truncated", "garbage"):
            if listing.attributes not in rendered:
                rendered[listing.attributes] = _render_png(listing.attributes)
            path.write_bytes(_damage(rendered[listing.attributes], listing.image))
        else:
            # A file left by an earlier run would make a dangling path resolve.
            path.unlink(missing_ok=True)
        products.append(
            DemoProduct(
                product_id=product_id,
                product_name=listing.product_name,
                product_description=listing.product_description,
                collection_section=listing.collection_section,
                store_name=listing.store_name,
                image_uri=None if listing.image == "missing" else str(path),
            )
        )
    return products


def _damage(png: bytes, image: _ImageState) -> bytes:
    """The file as a broken download would leave it: cut short, or garbage without a signature."""
    if image == "truncated":
        return png[: len(png) // 2]
    if image == "garbage":
        return bytes(reversed(png))
    return png


_Box = tuple[int, int, int, int]


def _square(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    draw.rectangle(box, fill=fill, outline=(60, 60, 60))


def _circle(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    draw.ellipse(box, fill=fill, outline=(60, 60, 60))


def _ring(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    draw.ellipse(box, outline=fill, width=7)


def _triangle(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill, outline=(60, 60, 60))


def _diamond(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill, outline=(60, 60, 60))


def _cross(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    draw.rectangle((cx - 5, y0, cx + 5, y1), fill=fill)
    draw.rectangle((x0, cy - 5, x1, cy + 5), fill=fill)


def _hexagon(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    circle = ((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2)
    draw.regular_polygon(circle, n_sides=6, fill=fill, outline=(60, 60, 60))


def _horizontal_stripes(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    for y in range(y0, y1, 10):
        draw.rectangle((x0, y, x1, y + 4), fill=fill)


def _vertical_stripes(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    for x in range(x0, x1, 10):
        draw.rectangle((x, y0, x + 4, y1), fill=fill)


def _checkerboard(draw: ImageDraw.ImageDraw, box: _Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    for row, y in enumerate(range(y0, y1, 8)):
        for col, x in enumerate(range(x0, x1, 8)):
            if (row + col) % 2 == 0:
                draw.rectangle((x, y, x + 7, y + 7), fill=fill)


_SHAPES: dict[str, Callable[[ImageDraw.ImageDraw, _Box, tuple[int, int, int]], None]] = {
    "shoes": _triangle,
    "dresses": _diamond,
    "bags": _square,
    "watches": _ring,
    "kitchen": _circle,
    "lamps": _hexagon,
    "toys": _cross,
    "books": _horizontal_stripes,
    "phone cases": _vertical_stripes,
    "rugs": _checkerboard,
}


def _render_png(attributes: _Attributes) -> bytes:
    """A 64x64 RGB PNG: the section's shape filled with the colourway's colours as
    vertical bands, left to right in the listed order, jittered and noised."""
    rng = np.random.default_rng(attributes.image_seed)
    background = tuple(int(v) for v in rng.integers(215, 256, size=3))
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    half = int(rng.integers(20, 26))
    cx, cy = (int(v) for v in IMAGE_SIZE // 2 + rng.integers(-4, 5, size=2))
    box = (cx - half, cy - half, cx + half, cy + half)
    image.paste(_bands(attributes.colour, box), (0, 0), _shape_mask(attributes.section, box))
    noise = rng.integers(-8, 9, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _shape_mask(section: str, box: _Box) -> Image.Image:
    """The section's shape in box as a 0/255 mask."""
    canvas = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (0, 0, 0))
    _SHAPES[section](ImageDraw.Draw(canvas), box, (255, 255, 255))
    return canvas.convert("L").point(lambda v: 255 if v > 128 else 0)


def _bands(colourway: str, box: _Box) -> Image.Image:
    """The colourway's colours as equal vertical bands across box's width; the first
    and last colours run on to the image's edges."""
    colours = [_COLOURS[name] for name in colourway.split("/")]
    bands = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), colours[0])
    draw = ImageDraw.Draw(bands)
    x0, width = box[0], box[2] - box[0] + 1
    for j, colour in enumerate(colours):
        left = x0 + j * width // len(colours)
        right = x0 + (j + 1) * width // len(colours) if j < len(colours) - 1 else IMAGE_SIZE
        draw.rectangle((left, 0, right, IMAGE_SIZE), fill=colour)
    return bands
