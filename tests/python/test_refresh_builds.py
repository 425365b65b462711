"""A refresh builds each model at most once: a job's inputs only where no earlier build
made them, the final build the rest and whatever a job's output made stale; jobs with
nothing to do build nothing."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from conftest import PROJECT_DIR, config_for, plant, planted_config, planted_space, query

from embed_udfs import contract, pipeline
from embed_udfs.build_plan import BuildPlan, DbtGraph

N = 90
SECTIONS = ["bags", "shoes", "lamps"]


def _graph() -> DbtGraph:
    """seed -> a -> b (read by job 1); source s (written by job 1) -> c -> d (read by
    job 2); b, d -> mart."""
    parents = {
        "seed.p.seed": (),
        "model.p.a": ("seed.p.seed",),
        "model.p.b": ("model.p.a",),
        "model.p.c": ("source.p.emb.s", "model.p.a"),
        "model.p.d": ("model.p.c",),
        "model.p.mart": ("model.p.b", "model.p.d"),
        "test.p.not_null_mart": ("model.p.mart",),
    }
    names = {node: node.rsplit(".", 1)[1] for node in parents if not node.startswith("test.")}
    return DbtGraph(parents, names, {("emb", "s"): "source.p.emb.s"})


@pytest.mark.unit
def test_each_node_is_built_once_and_stale_ones_again_at_the_end():
    plan = BuildPlan(_graph())
    first = plan.inputs_of(contract.Relation("intermediate", "b"))
    assert first == ["a", "b", "seed"]
    plan.mark_built(first)
    plan.wrote(contract.Relation("emb", "s"))  # c, d were not built: nothing goes stale
    second = plan.inputs_of(contract.Relation("intermediate", "d"))
    assert second == ["c", "d"]  # a and the seed are there already
    plan.mark_built(second)
    assert plan.final_selection() == ["resource_type:test", "resource_type:unit_test", "mart"]
    plan.wrote(contract.Relation("emb", "s"))  # a job rewrote s after c and d were built
    assert plan.final_selection() == [
        "resource_type:test",
        "resource_type:unit_test",
        "c",
        "d",
        "mart",
    ]


@pytest.mark.unit
def test_nothing_built_before_means_a_plain_build():
    assert BuildPlan(_graph()).final_selection() is None


def _vars() -> dict:
    return planted_config(
        [planted_space("t", "text", 8), planted_space("i", "image", 8)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 5, 50],
        label_pca_dims=["none"],
        label_kmeans_seeds=[0],
    )


def test_a_refresh_builds_every_model_once(db, monkeypatch):
    rng = np.random.default_rng(3)
    products = [(f"P{i:03d}", SECTIONS[i % len(SECTIONS)]) for i in range(N)]
    base = rng.normal(size=(N, 8))
    plant(db, config_for(_vars()), products, {"t": base + rng.normal(size=(N, 8)), "i": base})
    invocations: list[list[str]] = []
    built: Counter[str] = Counter()
    real_run_dbt = pipeline.run_dbt

    def recording_run_dbt(args, *rest, **kwargs):
        result = real_run_dbt(args, *rest, **kwargs)
        invocations.append(list(args))
        for node in getattr(result.result, "results", None) or []:
            if node.node.resource_type in ("model", "seed") and str(node.status) == "success":
                built[node.node.unique_id] += 1
        return result

    monkeypatch.setattr(pipeline, "run_dbt", recording_run_dbt)
    summaries = pipeline.refresh(
        db, config_for(_vars()), dbt_vars=_vars(), options={"skip_backfill": True}
    )
    # no reranker and no tuning: only cluster ran, after one build of its inputs
    assert [s.job for s in summaries] == ["cluster"]
    builds = [args for args in invocations if args[0] == "build"]
    assert len(builds) == 2
    assert "int_label_vectors" in builds[0] and "int_rerank_candidates" not in builds[0]
    manifest = json.loads((PROJECT_DIR / "target" / "manifest.json").read_text())
    expected = {
        node_id
        for node_id, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed")
        and node["config"].get("materialized") != "ephemeral"
        and node["config"].get("enabled", True)
    }
    assert max(built.values()) == 1, [n for n, c in built.items() if c > 1]
    assert set(built) == expected
    # and the set was tested and published
    assert query(db, "select count(distinct run_id) from metrics.fct_metric_history") == [(1,)]
    assert query(db, "select count(*) > 0 from metrics.fct_label_metrics") == [(True,)]
