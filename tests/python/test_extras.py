"""The split install: `pip install embed-udfs` pulls no model stack, each extra brings
what embed_udfs/extras.py checks for, and a command whose extra is missing stops
before any work with the exact pip line (tests/python/test_core_install.py runs the
same in a core-only environment)."""

from __future__ import annotations

import argparse
import contextlib

import pytest
from conftest import PROJECT_DIR, planted_config, planted_space
from core_env import MODEL_STACK, closure, installed_core, pyproject, pyproject_core
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from embed_udfs import encoders, extras
from embed_udfs.cli import commands
from embed_udfs.config import load_config
from embed_udfs.errors import MissingExtra
from embed_udfs.jobs.backfill.job import BackfillJob
from embed_udfs.jobs.base import options_from
from embed_udfs.jobs.rerank.job import RerankJob

ABSENT = "embed_udfs_test_no_such_module"


def _pyproject_extra(name: str) -> list[Requirement]:
    """The requirements of one extra as pyproject.toml declares them, references to
    embed-udfs's other extras expanded."""
    found: list[Requirement] = []
    for text in pyproject()["project"]["optional-dependencies"][name]:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == "embed-udfs":
            for nested in sorted(requirement.extras):
                found += _pyproject_extra(nested)
        else:
            found.append(requirement)
    return found


def _names(requirements: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements}


def test_the_installed_core_requirements_are_pyproject_s():
    installed = sorted(map(str, installed_core()))
    declared = sorted(map(str, pyproject_core()))
    assert installed == declared, (
        "the installed embed-udfs declares other core requirements than pyproject.toml: "
        "reinstall (make install)"
    )


def test_the_core_install_pulls_no_model_stack():
    core = closure(installed_core())
    assert {"dbt-core", "dbt-postgres", "psycopg", "numpy", "scikit-learn"} <= set(core)
    assert not set(core) & MODEL_STACK, sorted(set(core) & MODEL_STACK)
    assert not [name for name in core if name.startswith("nvidia-")]
    # the same walk finds torch where it is asked for: the check above can fail
    assert {"torch", "triton"} & set(closure(_pyproject_extra("encoders")))


def test_the_core_declares_none_of_the_model_stack_and_the_extras_do():
    assert not _names(pyproject_core()) & (MODEL_STACK | {"pillow", "pyarrow"})
    assert {"torch", "torchvision", "open-clip-torch", "sentence-transformers"} <= _names(
        _pyproject_extra("encoders")
    )
    assert {"torch", "open-clip-torch", "transformers"} <= _names(_pyproject_extra("rerank"))
    assert _names(_pyproject_extra("demo")) == _names(
        _pyproject_extra("encoders") + _pyproject_extra("rerank")
    )
    every = ("encoders", "rerank", "demo", "parquet")
    assert _names(_pyproject_extra("all")) == _names(
        [r for extra in every for r in _pyproject_extra(extra)]
    )


@pytest.mark.parametrize("name", sorted(extras.EXTRAS))
def test_each_extra_brings_the_modules_its_check_looks_for(name):
    extra = extras.EXTRAS[name]
    brought = set(closure(_pyproject_extra(name)))
    wanted = {canonicalize_name(extras.DISTRIBUTIONS[m]) for m in extra.modules}
    assert wanted <= brought, sorted(wanted - brought)
    assert extra.install_line == f"pip install 'embed-udfs[{name}]'"


def test_a_missing_module_is_refused_with_the_pip_line():
    extras.require(extras.ENCODERS, "embed-udfs backfill", ["json"])  # present: no error
    with pytest.raises(MissingExtra) as caught:
        extras.require(extras.ENCODERS, "embed-udfs backfill", ["json", ABSENT])
    message = str(caught.value)
    assert message.startswith(f"`embed-udfs backfill` needs {ABSENT}, which the core install")
    assert message.splitlines()[1] == "  pip install 'embed-udfs[encoders]'"
    assert caught.value.extra == "encoders"
    assert extras.missing(["json", ABSENT, "torch.nope"]) == [ABSENT, "torch.nope"]


@contextlib.contextmanager
def _backend_needing(module: str):
    encoders.register_backend(
        "needs_module", ("text",), lambda space, runtime: None, requires=(module,)
    )
    try:
        yield
    finally:
        encoders.unregister_backend("needs_module")


def _one_space(backend: str) -> dict:
    space = {"name": "s", "modality": "text", "backend": backend, "family": "x", "model": "m"}
    return {"embed_spaces": [{**space, "dim": 4}], "embed_pairs": []}


def test_the_backfill_checks_its_spaces_backends_before_any_work():
    job = BackfillJob()
    with _backend_needing(ABSENT):
        config = load_config(PROJECT_DIR, overrides=_one_space("needs_module"))
        with pytest.raises(MissingExtra, match=r"pip install 'embed-udfs\[encoders\]'"):
            job.check(config, options_from(job.Options, {}))
        # a dry run loads no model, and a refresh that skips the backfill needs none
        job.check(config, options_from(job.Options, {"dry_run": True}))
        job.check(config, options_from(job.Options, {"skip_backfill": True}, refresh=True))
    with _backend_needing("json"):
        job.check(load_config(PROJECT_DIR, overrides=_one_space("needs_module")), job.Options())


def test_the_rerank_checks_only_the_rerankers_that_would_run(monkeypatch):
    job = RerankJob()
    vars_ = planted_config(
        [planted_space("t", "text", 4), planted_space("i", "image", 4)],
        [{"name": "p", "text_space": "t", "image_space": "i"}],
    )
    job.check(load_config(PROJECT_DIR, overrides=vars_), job.Options())  # none configured
    reranker = {"name": "r", "backend": "blip_itm", "model": "/nowhere", "pairs": ["p"]}
    config = load_config(PROJECT_DIR, overrides={**vars_, "rerankers": [reranker]})
    from embed_udfs.jobs.rerank import scorers

    monkeypatch.setitem(scorers.SCORER_MODULES, "blip_itm", ("torch", ABSENT))
    with pytest.raises(MissingExtra, match=r"pip install 'embed-udfs\[rerank\]'"):
        job.check(config, job.Options())


def test_the_demo_and_a_parquet_load_are_refused_first(monkeypatch, tmp_path):
    monkeypatch.setattr(extras, "DEMO", extras.Extra("demo", (ABSENT,)))
    monkeypatch.setattr(extras, "PARQUET", extras.Extra("parquet", (ABSENT,)))

    def no_project(*args, **kwargs):
        raise AssertionError("reached the project before checking the extra")

    monkeypatch.setattr(commands, "_Context", no_project)
    args = argparse.Namespace(demo_command="run", project_dir=None, vars=None)
    with pytest.raises(MissingExtra, match=r"pip install 'embed-udfs\[demo\]'"):
        commands.cmd_demo(args)
    from embed_udfs import load

    with pytest.raises(MissingExtra, match=r"pip install 'embed-udfs\[parquet\]'"):
        load.require_reader(tmp_path / "catalog.Parquet")
    load.require_reader(tmp_path / "catalog.csv")


def test_check_says_which_extras_are_installed(monkeypatch):
    from embed_udfs.check import _plan

    config = load_config(PROJECT_DIR, overrides=_one_space("open_clip"))
    assert "extras: encoders installed, rerank installed, demo installed, parquet installed" in (
        _plan(config, ["backfill"])
    )
    monkeypatch.setattr(extras, "PARQUET", extras.Extra("parquet", (ABSENT,)))
    monkeypatch.setitem(extras.EXTRAS, "parquet", extras.PARQUET)
    assert "parquet not installed" in _plan(config, ["backfill"])[-2]
