"""The demo: a synthetic catalog (catalog.py) and small CLIP-style models trained on
a separate catalog from the same generator (training.py), so cross-modal figures mean something.
"""

from embed_udfs.demo.catalog import (
    COLOURWAY_SIZE,
    GENERATOR_VERSION,
    IMAGE_SIZE,
    PRODUCTS_DDL,
    SECTION_SHARES,
    DemoProduct,
    generate_catalog,
    load_catalog,
)

__all__ = [
    "COLOURWAY_SIZE",
    "GENERATOR_VERSION",
    "IMAGE_SIZE",
    "PRODUCTS_DDL",
    "SECTION_SHARES",
    "DemoProduct",
    "generate_catalog",
    "load_catalog",
]
