"""End to end on a small demo catalog: real MiniLM and tiny open_clip
encoders, the real dbt project, the embedded Postgres."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from conftest import PROJECT_DIR, query
from psycopg import sql

from embed_udfs import contract, demo, report
from embed_udfs.config import load_config, require_checkpoints
from embed_udfs.contract import Relation
from embed_udfs.db import connection
from embed_udfs.errors import ConfigError
from embed_udfs.jobs.backfill import backfill_space
from embed_udfs.jobs.base import Job, JobSummary
from embed_udfs.jobs.registry import register_job, unregister_job
from embed_udfs.pipeline import refresh

COUNTS = Relation("embeddings", "test_space_input_counts")


@dataclass(frozen=True)
class CountInputsJob(Job):
    """A job added from outside the package: one class and one registration."""

    name: str = "count_inputs"
    reads: Relation = contract.SPACE_INPUTS
    writes: Relation = COUNTS
    after: tuple[str, ...] = ("backfill",)

    def run(self, settings, config, options) -> JobSummary:
        with connection(settings) as conn:
            conn.execute(
                sql.SQL(
                    "create table {} as select space, count(*) as n from {} group by space"
                ).format(self.writes.identifier, self.reads.identifier)
            )
            conn.commit()
        return JobSummary(self.name, ("counted",))


@pytest.fixture(scope="module")
def demo_run(db, tmp_path_factory, demo_models):
    config = load_config(PROJECT_DIR)
    products = demo.generate_catalog(tmp_path_factory.mktemp("images"), n_products=240, seed=3)
    with connection(db) as conn:
        demo.load_catalog(conn, products)
    register_job(CountInputsJob())
    try:
        ran = refresh(db, config)
    finally:
        unregister_job("count_inputs")
    # rerank has no reranker configured in the demo: the refresh skips it
    assert [job.job for job in ran] == ["backfill", "cluster", "count_inputs"]
    return config, products, ran[0].details


def test_a_registered_job_runs_in_the_refresh(db, demo_run):
    counted = query(db, "select space, n from embeddings.test_space_input_counts order by 1")
    expected = query(
        db, "select space, count(*) from intermediate.int_space_inputs group by 1 order by 1"
    )
    assert counted == expected and len(counted) == len(demo_run[0].spaces)


def test_refresh_fills_every_mart_for_all_and_every_section(db, demo_run):
    config, products, summaries = demo_run
    assert {s.space for s in summaries} == {s.name for s in config.spaces}
    sections = {p.collection_section or "unknown" for p in products}
    rows = query(
        db,
        "select distinct pair, direction, section from metrics.fct_retrieval_metrics "
        "where gallery_scope = 'sample' and section_level = 'leaf'",
    )
    sampled = dict(
        query(
            db, "select collection_section, count(*) from intermediate.int_eval_sample group by 1"
        )
    )
    # a section whose every product lacks an image cannot be sampled
    assert len(sampled) >= len(sections) - 1
    # a section under vars.section_min_queries queries is folded into `other`
    reported = {s for s, n in sampled.items() if n >= config.sections.min_queries}
    folded = set(sampled) - reported
    for pair in config.pairs:
        for direction in ("text_to_image", "image_to_text"):
            got = {s for p, d, s in rows if p == pair.name and d == direction}
            assert got == {"ALL", *reported, *(["other"] if folded else [])}
    gaps = query(db, "select distinct pair, section from metrics.fct_embedding_gaps")
    assert {p for p, _ in gaps} == {p.name for p in config.pairs}
    n_all = query(db, "select max(n) from metrics.fct_retrieval_metrics where section = 'ALL'")
    assert n_all[0][0] == query(db, "select count(*) from intermediate.int_eval_sample")[0][0]


def test_vectors_are_unit_norm_and_carry_provenance(db, demo_run):
    rows = query(
        db,
        "select space, min(vector_norm(embedding)), max(vector_norm(embedding)), "
        "min(model_ref) from embeddings.vectors group by space",
    )
    for space, low, high, model_ref in rows:
        assert abs(low - 1) < 1e-5 and abs(high - 1) < 1e-5, space
        assert "pretrained=" in model_ref and "dtype=" in model_ref
    refs = dict((s, r) for s, _, _, r in rows)
    assert "prompt='a product photo of '" in refs["clip_text_prompted"]


def test_demo_defects_are_recorded_with_reasons(db, demo_run):
    reasons = {r for (r,) in query(db, "select distinct reason from embeddings.backfill_errors")}
    assert any(r.startswith("missing image") for r in reasons)
    assert "corrupt image" in reasons


def test_rerun_embeds_nothing_and_a_changed_text_re_embeds_one_row(db, demo_run, tmp_path):
    config, products, _ = demo_run
    space = config.space("clip_text")
    before = dict(
        query(
            db, "select product_id, embedded_at from embeddings.vectors where space = 'clip_text'"
        )
    )
    again = backfill_space(db, config, space)
    assert again.embedded == 0 and again.unchanged == len(before)
    target = sorted(before)[0]
    with connection(db) as conn:
        conn.execute(
            "update catalog.products set product_name = product_name || ' XL' "
            "where product_id = %s",
            (target,),
        )
        conn.commit()
    from conftest import dbt_build

    dbt_build(db, {}, tmp_path, "+int_space_inputs")
    changed = backfill_space(db, config, space)
    assert changed.embedded == 1
    after = dict(
        query(
            db, "select product_id, embedded_at from embeddings.vectors where space = 'clip_text'"
        )
    )
    assert [p for p in after if after[p] != before[p]] == [target]


def test_scorecard_lists_every_pair_and_the_notice_only_for_random_weights(db, demo_run):
    config, _, _ = demo_run
    with connection(db) as conn:
        card = report.scorecard(conn, config)
        labels = report.label_scorecard(conn)
    for pair in config.pairs:
        assert f"pair {pair.name}" in card
    assert "ALL" in card
    for space in config.spaces:
        if space.modality == "text":
            assert f"\n  {space.name} " in labels
    # The demo's CLIP spaces load trained checkpoints: no random-weight notice.
    assert report.random_weight_notice(config) is None
    random = replace(config, spaces=(replace(config.space("clip_image"), pretrained=None),))
    notice = report.random_weight_notice(random)
    assert notice and "RANDOM weights" in notice and "clip_image" in notice


def test_missing_checkpoints_are_refused_before_any_work(db, tmp_path):
    config = load_config(PROJECT_DIR)
    demo_dir = config.project_dir / ".embed_metrics" / "demo_models"
    gone = {
        "clip_text": str(demo_dir / "not_trained_yet.pt"),
        "clip_image": str(tmp_path / "elsewhere" / "weights.bin"),
    }
    spaces = tuple(
        replace(space, pretrained=gone.get(space.name, space.pretrained)) for space in config.spaces
    )
    relations = "select count(*) from pg_class where relkind in ('r', 'v', 'm')"
    before = query(db, relations)
    with pytest.raises(ConfigError) as refused:
        refresh(db, replace(config, spaces=spaces))
    message = str(refused.value)
    assert all(f"{name}: {path}" in message for name, path in gone.items())
    assert "embed-udfs demo train" in message  # one of them is a demo model
    assert query(db, relations) == before
    # the backfill of other spaces only is not held up by them
    require_checkpoints(replace(config, spaces=spaces), ["minilm_text"])
