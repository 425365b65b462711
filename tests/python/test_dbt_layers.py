"""The dbt project's shape, read from the manifest `dbt parse` writes: models sit in
models/<domain>/<layer>/, each layer reads only the layers before it, staging alone
reads sources, every model's SQL is in its own file, one yml per folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import PROJECT_DIR

from embed_udfs.dbt_runner import run_dbt

LAYERS = ("staging", "intermediate", "marts")
SCHEMAS = {"staging": "staging", "intermediate": "intermediate", "marts": "metrics"}
PREFIXES = {"staging": ("stg_",), "intermediate": ("int_",), "marts": ("fct_", "dim_")}
JINJA = re.compile(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", re.S)


@pytest.fixture(scope="module")
def manifest(server, tmp_path_factory) -> dict:
    target = tmp_path_factory.mktemp("parse") / "target"
    run_dbt(["parse"], server, PROJECT_DIR, target_path=target, quiet=True)
    return json.loads((target / "manifest.json").read_text())


@pytest.fixture(scope="module")
def models(manifest) -> dict[str, dict]:
    return {
        unique_id: node
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
    }


def layer(node: dict) -> str:
    """The layer folder of a model at models/<domain>/<layer>/<name>.sql."""
    parts = Path(node["original_file_path"]).parts
    assert len(parts) == 4 and parts[0] == "models" and parts[2] in LAYERS, (
        f"{node['original_file_path']} is not at models/<domain>/<layer>/<name>.sql"
    )
    return parts[2]


def test_every_model_sits_in_its_layer_with_its_layers_name_and_schema(models):
    for node in models.values():
        where = layer(node)
        assert node["name"].startswith(PREFIXES[where]), f"{node['name']} in {where}/"
        # the refresh builds the metrics schema's models into metrics__staging
        assert node["schema"] in (SCHEMAS[where], SCHEMAS[where] + "__staging"), node["name"]


def test_no_model_reads_a_later_layer(models):
    for node in models.values():
        for upstream in node["depends_on"]["nodes"]:
            if upstream in models:
                assert LAYERS.index(layer(models[upstream])) <= LAYERS.index(layer(node)), (
                    f"{node['name']} ({layer(node)}) reads {models[upstream]['name']} "
                    f"({layer(models[upstream])})"
                )


def test_only_staging_reads_sources(models):
    for node in models.values():
        sources = [n for n in node["depends_on"]["nodes"] if n.startswith("source.")]
        if sources:
            assert layer(node) == "staging", f"{node['name']} reads {sources}"


def test_every_model_has_its_own_sql(models):
    """A model file holds its select, not only a macro call that writes it."""
    for node in models.values():
        own = JINJA.sub("", node["raw_code"])
        assert re.search(r"\bselect\b", own), f"{node['original_file_path']} has no SQL of its own"


def test_one_yml_per_folder_and_exposures_in_one_file(manifest):
    models_dir = PROJECT_DIR / "models"
    for folder in [models_dir, *(p for p in models_dir.rglob("*") if p.is_dir())]:
        ymls = sorted(p.name for p in folder.glob("*.yml"))
        if folder == models_dir:
            assert ymls == ["_exposures.yml"], ymls
            continue
        domain = folder.relative_to(models_dir).parts[0]
        allowed = {f"_{domain}__models.yml", f"_{domain}__sources.yml"}
        assert set(ymls) <= allowed, f"{folder}: {ymls}"
        if any(folder.glob("*.sql")):
            assert f"_{domain}__models.yml" in ymls, f"{folder} has models but no yml"
    files = {exposure["original_file_path"] for exposure in manifest["exposures"].values()}
    assert files == {"models/_exposures.yml"}, files
