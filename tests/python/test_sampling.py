"""The balanced eval sample at N = 5,000 and 10,000: exact per-section counts
and exact rows against a Python round robin, caps, too-small sections
reported, and the same seed giving the same rows."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from dedup_reference import round_robin_sample

from embed_udfs import report
from embed_udfs.db import connection
from embed_udfs.errors import DbtError, EmptySampleError
from embed_udfs.pipeline import refresh

SECTION_SIZES = {"shoes": 6000, "dresses": 3000, "bags": 1500, "lamps": 900, "rugs": 590, "odd": 12}
SECTION_MIN = 20
SECTION_CAP = 2500


def _vars(size: int, seed: int = 42, **extra) -> dict:
    return planted_config(
        [planted_space("t", "text", 4), planted_space("i", "image", 4)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_sample_size=size,
        eval_seed=seed,
        eval_section_min=SECTION_MIN,
        eval_section_cap=SECTION_CAP,
        **extra,
    )


@pytest.fixture(scope="module")
def catalog(db):
    """12,002 distinct products (no duplicates) in six sections of very different sizes."""
    rng = np.random.default_rng(2)
    sections = [section for section, size in SECTION_SIZES.items() for _ in range(size)]
    products = [(f"P{i:05d}", section) for i, section in enumerate(sections)]
    vectors = rng.normal(size=(len(products), 4))
    plant(db, config_for(_vars(5000)), products, {"t": vectors, "i": vectors})
    return dict(products)


def _sample(db) -> list[str]:
    rows = query(db, "select product_id from intermediate.int_eval_sample order by 1")
    return [p for (p,) in rows]


@pytest.mark.parametrize("size", [5000, 10000])
def test_sample_matches_the_round_robin_reference(db, catalog, tmp_path, size):
    dbt_build(db, _vars(size), tmp_path, "+int_eval_sample")
    expected = round_robin_sample(catalog, 42, size, SECTION_MIN, SECTION_CAP)
    assert _sample(db) == sorted(expected)
    counts = dict(
        query(
            db, "select collection_section, count(*) from intermediate.int_eval_sample group by 1"
        )
    )
    assert counts == dict(Counter(catalog[p] for p in expected))
    assert "odd" not in counts  # 12 eligible, below the minimum of 20
    if size == 5000:
        # rugs (590) and lamps (900) are taken whole; the other three share the rest
        assert counts == {"shoes": 1170, "dresses": 1170, "bags": 1170, "lamps": 900, "rugs": 590}
    else:
        # capped sections stop at 2,500; the sample is smaller than N and says so
        assert counts == {"shoes": 2500, "dresses": 2500, "bags": 1500, "lamps": 900, "rugs": 590}


def test_same_seed_same_rows_other_seed_other_rows(db, catalog, tmp_path):
    dbt_build(db, _vars(5000, seed=7), tmp_path, "+int_eval_sample")
    first = _sample(db)
    dbt_build(db, _vars(5000, seed=7), tmp_path, "int_eval_sample")
    assert _sample(db) == first
    assert first == sorted(round_robin_sample(catalog, 7, 5000, SECTION_MIN, SECTION_CAP))
    dbt_build(db, _vars(5000, seed=8), tmp_path, "int_eval_candidates", "int_eval_sample")
    other = _sample(db)
    assert len(other) == len(first) and other != first


def test_too_small_and_capped_sections_are_reported(db, catalog, tmp_path):
    dbt_build(db, _vars(10000), tmp_path, "+fct_pipeline_steps", "int_eval_sample")
    rows = {
        (section, reason): (n, rows_in, rows_out)
        for section, reason, n, rows_in, rows_out in query(
            db,
            "select section, reason, n_rows, rows_in, rows_out from metrics.fct_pipeline_steps "
            "where step = 'sampling'",
        )
    }
    too_small = "section too small: fewer eligible products than eval_section_min"
    capped = "section capped: beyond eval_section_cap"
    assert rows[("odd", too_small)] == (12, 12, 0)
    assert rows[("shoes", capped)] == (6000 - SECTION_CAP, 6000, SECTION_CAP)
    assert rows[("ALL", "kept")][0] == 2500 + 2500 + 1500 + 900 + 590
    assert ("odd", "kept") not in rows


def _no_image_vars(**extra) -> dict:
    return planted_config(
        [planted_space("t", "text", 4), planted_space("i", "image", 4)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        retrieval_search="exact",
        eval_section_min=3,
        **extra,
    )


EMPTY_SAMPLE_NODES = (
    "+dim_metric_thresholds",
    "+fct_retrieval_metrics",
    "+fct_embedding_gaps",
    "+int_label_neighbours",
    "+fct_eval_sample_sizes",
    "assert_eval_samples_not_empty",
    "--indirect-selection",
    "buildable",
)


def test_failed_images_leave_the_label_sample_and_the_pair_is_not_evaluable(db, tmp_path):
    """Every image failed: the label sample (text spaces only) keeps every sectioned
    product; the pair's empty retrieval sample is reported as not evaluable, with
    the reason fct_pipeline_steps gives, in the mart and the scorecard, and the
    build goes on. With vars.strict_samples the same build fails with the reason."""
    dbt_vars = _no_image_vars()
    config = config_for(dbt_vars)
    products = [(f"P{i:02d}", f"s{i % 3}") for i in range(30)] + [("U0", None)]
    rng = np.random.default_rng(3)
    plant(db, config, products, {"t": rng.normal(size=(len(products), 4))})  # no image vectors
    reason = (
        "retrieval sample for planted is empty: sampling removed "
        "no valid vector in every paired space (31 of 31)"
    )
    dbt_build(db, dbt_vars, tmp_path, *EMPTY_SAMPLE_NODES)
    labelled = query(db, "select product_id from intermediate.int_label_vectors where space = 't'")
    assert {p for (p,) in labelled} == {p for p, s in products if s is not None}
    hits = query(db, "select count(*) from intermediate.int_label_neighbours where space = 't'")
    assert hits == [(30,)]
    sizes = query(
        db, "select purpose, scope, n_products, empty_reason from metrics.fct_eval_sample_sizes"
    )
    assert sorted(sizes) == [("label", "t", 30, None), ("retrieval", "planted", 0, reason)]
    with connection(db) as conn:
        card = report.scorecard(conn, config)
    assert f"not evaluable: {reason}" in card and "configure vars.embed_pairs" not in card

    with pytest.raises(DbtError, match=re.escape(reason)):
        dbt_build(db, _no_image_vars(strict_samples=True), tmp_path, *EMPTY_SAMPLE_NODES)


def test_a_refresh_with_an_empty_retrieval_sample_publishes_the_rest(db, caplog):
    """The same catalog through the whole refresh: the label metrics of the text
    space are published, the pair is reported as not evaluable with a warning, and
    the refresh succeeds. With vars.strict_samples the refresh still publishes the
    rest but ends in an error that says why the sample is empty."""
    dbt_vars = _no_image_vars()
    config = config_for(dbt_vars)
    products = [(f"P{i:02d}", f"s{i % 3}") for i in range(30)]
    plant(db, config, products, {"t": np.random.default_rng(5).normal(size=(30, 4))})
    with caplog.at_level("WARNING", logger="embed_udfs.pipeline"):
        summaries = refresh(db, config, dbt_vars=dbt_vars, options={"skip_backfill": True})
    # no reranker configured: the refresh skips rerank
    assert [summary.job for summary in summaries] == ["cluster"]
    assert any(
        "not evaluable: retrieval sample for planted is empty" in record.getMessage()
        for record in caplog.records
    )
    published = query(
        db,
        "select metric, n from metrics.fct_label_metrics "
        "where space = 't' and section = 'ALL' and metric = 'nn1_accuracy'",
    )
    assert published == [("nn1_accuracy", 30)]
    assert query(db, "select count(*) from metrics.fct_retrieval_metrics") == [(0,)]
    assert query(
        db, "select n_products, is_empty from metrics.fct_eval_sample_sizes where scope = 'planted'"
    ) == [(0, True)]

    strict = _no_image_vars(strict_samples=True)
    with pytest.raises(EmptySampleError, match="retrieval sample for planted is empty") as failed:
        refresh(db, config_for(strict), dbt_vars=strict, options={"skip_backfill": True})
    assert [summary.job for summary in failed.value.summaries] == ["cluster"]


# A small skewed catalog like a real marketplace sample: one section holds 71%, ten
# sections hold one or two products (below the minimum of 3), 9% have no section.
SKEWED_SIZES = {"toys": 710, None: 90, "bags": 40, "lamps": 35, "books": 28, "rugs": 24}
SKEWED_SIZES |= {"mugs": 20, "hats": 16, "pens": 12, "cups": 10}
SKEWED_SIZES |= {f"tiny{i}": 1 + i % 2 for i in range(10)}


def _plant_sections(db, dbt_vars: dict, sizes: dict[str | None, int]) -> dict[str, str]:
    sections = [section for section, size in sizes.items() for _ in range(size)]
    products = [(f"P{i:05d}", section) for i, section in enumerate(sections)]
    vectors = np.random.default_rng(4).normal(size=(len(products), 4))
    plant(db, config_for(dbt_vars), products, {"t": vectors, "i": vectors})
    return {product: section or "unknown" for product, section in products}


def _default_cap_vars() -> dict:
    """The project's own sampling defaults (eval_section_cap: auto, its factor, the
    minimum of 3 and N = 5,000), with planted spaces."""
    return planted_config(
        [planted_space("t", "text", 4), planted_space("i", "image", 4)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
    )


def test_auto_cap_balances_a_small_skewed_catalog(db, tmp_path):
    dbt_vars = _default_cap_vars()
    config = config_for(dbt_vars)
    assert config.eval.section_cap == "auto"
    assert config.eval.sample_size > sum(SKEWED_SIZES.values())  # round robin alone cannot help
    catalog = _plant_sections(db, dbt_vars, SKEWED_SIZES)
    dbt_build(db, dbt_vars, tmp_path, "+int_eval_sample", "+int_label_sample")

    sizes = np.array(list(Counter(catalog.values()).values()))
    kept = sizes[sizes >= config.eval.section_min]
    cap = int(np.ceil(config.eval.section_cap_factor * np.median(kept)))
    assert cap == 5 * (28 + 24) // 2  # the median of the ten kept sections is (28 + 24) / 2

    expected = round_robin_sample(catalog, config.eval.seed, config.eval.sample_size, 3, cap)
    assert _sample(db) == sorted(expected)
    counts = dict(
        query(
            db, "select collection_section, count(*) from intermediate.int_eval_sample group by 1"
        )
    )
    assert counts["toys"] == cap and counts["unknown"] == 90 and counts["bags"] == 40
    # the one cap in force is on every candidate row, for both samples
    for candidates in ("intermediate.int_eval_candidates", "intermediate.int_label_candidates"):
        assert query(db, f"select distinct section_cap from {candidates}") == [(cap,)]
    labelled = query(db, "select product_id from intermediate.int_label_sample order by 1")
    assert [p for (p,) in labelled] == sorted(expected)
    shares = np.array([min(n, cap) for n in kept]) / sum(min(n, cap) for n in kept)
    assert shares.max() < 0.5  # no longer dominated (it held 71% of the catalog)


def test_auto_cap_does_not_bind_on_the_demo_catalogs_shares(db, tmp_path):
    """The demo's Zipf-like sections (largest 25%, median 7%) are left as they are, so
    its figures do not depend on the cap; an explicit null cap gives the same sample."""
    from embed_udfs.demo.catalog import NULL_SECTION_SHARE, SECTION_SHARES

    n = 2400
    sizes: dict[str | None, int] = {s: round(n * share) for s, share in SECTION_SHARES.items()}
    sizes[None] = round(n * NULL_SECTION_SHARE)
    counts = np.array(list(sizes.values()))
    assert counts.max() < 5 * np.median(counts)
    dbt_vars = _default_cap_vars()
    catalog = _plant_sections(db, dbt_vars, sizes)
    dbt_build(db, dbt_vars, tmp_path, "+int_eval_sample")
    capped = query(
        db,
        "select count(*) from intermediate.int_eval_candidates "
        "where exclusion_reason = 'section capped: beyond eval_section_cap'",
    )
    assert capped == [(0,)]
    assert _sample(db) == sorted(catalog)
    dbt_build(
        db,
        {**dbt_vars, "eval_section_cap": None},
        tmp_path,
        "int_eval_candidates",
        "int_eval_sample",
    )
    assert _sample(db) == sorted(catalog)
    assert query(db, "select distinct section_cap from intermediate.int_eval_candidates") == [
        (None,)
    ]
