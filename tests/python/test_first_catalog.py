"""A user's first catalog publishes what it can: sections named like the marts'
own rows stay apart, the floors shipped for the demo only warn on another
catalog, and a build that does fail says that nothing was published and why."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import config_for, plant, planted_config, planted_space, query

from embed_udfs import report
from embed_udfs.db import connection
from embed_udfs.errors import NotPublishedError
from embed_udfs.pipeline import refresh
from embed_udfs.store import DEMO_CATALOG_COMMENT, mark_catalog

# `minilm_text` is named by the demo's shipped floor: 1-NN accuracy >= 0.95, error.
SECTIONS = ["bags", "shoes", "lamps", "ALL", "unknown"]


def _vars() -> dict:
    return planted_config(
        [planted_space("minilm_text", "text", 8), planted_space("photo", "image", 8)],
        [{"name": "planted", "text_space": "minilm_text", "image_space": "photo"}],
        retrieval_search="exact",
        eval_section_min=3,
        label_pca_dims=["none"],
        label_kmeans_seeds=[0],
    )


@pytest.fixture(scope="module")
def first_catalog(db):
    """60 products in five sections, two of them named `ALL` and `unknown`, six with
    no section; text vectors that barely separate the sections (1-NN far below
    0.95) and no image vectors at all (every image failed)."""
    products = [(f"P{i:03d}", SECTIONS[i % len(SECTIONS)]) for i in range(60)]
    products += [(f"U{i}", None) for i in range(6)]
    rng = np.random.default_rng(11)
    centres = {section: rng.normal(size=8) for section in SECTIONS}
    text = np.stack(
        [0.3 * centres.get(s or "", np.zeros(8)) + rng.normal(size=8) for _, s in products]
    )
    config = config_for(_vars())
    plant(db, config, products, {"minilm_text": text})
    summaries = refresh(db, config, dbt_vars=_vars(), options={"skip_backfill": True})
    return products, summaries


def test_sections_named_all_or_unknown_keep_their_own_rows(db, first_catalog):
    products, _ = first_catalog
    sections = {
        s
        for (s,) in query(
            db,
            "select distinct section from metrics.fct_label_metrics "
            "where space = 'minilm_text' and metric = 'nn1_accuracy'",
        )
    }
    assert sections == {"ALL", "ALL (section)", "unknown (section)", "bags", "shoes", "lamps"}
    overall = query(
        db,
        "select n from metrics.fct_label_metrics where space = 'minilm_text' "
        "and metric = 'nn1_accuracy' and reduction = 'none' and section = 'ALL'",
    )
    # the overall row counts every sectioned product: the 12 `ALL` ones did not replace it
    assert overall == [(sum(1 for _, s in products if s is not None),)]
    renamed = query(
        db,
        "select collection_section, count(*) from staging.stg_catalog__products "
        "where is_section_renamed group by 1 order by 1",
    )
    assert renamed == [("ALL (section)", 12), ("unknown (section)", 12)]


def test_the_demo_floors_only_warn_on_another_catalog(db, first_catalog):
    nn1 = query(
        db,
        "select value from metrics.fct_label_metrics where space = 'minilm_text' "
        "and metric = 'nn1_accuracy' and reduction = 'none' and section = 'ALL'",
    )[0][0]
    assert nn1 < 0.95  # below the shipped error floor, and published all the same
    relaxed = query(
        db,
        "select metric, pair, effective_severity from metrics.dim_metric_thresholds "
        "where is_relaxed order by pair",
    )
    assert relaxed == [
        ("nn1_accuracy", "minilm_text", "warn"),
        ("nn1_accuracy", "minilm_text_no_boilerplate", "warn"),
    ]
    with connection(db) as conn:
        notice = report.thresholds_notice(conn)
        card = report.scorecard(conn, config_for(_vars()))
    assert notice is not None and "only warn" in notice
    assert "not evaluable: retrieval sample for planted is empty" in card


def test_on_the_demo_catalog_the_floor_fails_and_nothing_is_published(db, first_catalog):
    """The same figures on a table marked as the demo catalog: the floor is an error,
    the build fails, `metrics` keeps the previous set, and the message says so, with
    the row that failed."""

    def published() -> list[tuple]:
        return query(db, "select run_id from metrics.dim_runs order by 1")

    before = published()
    with connection(db) as conn:
        mark_catalog(conn, "catalog.products", DEMO_CATALOG_COMMENT)
        conn.commit()
    try:
        with pytest.raises(NotPublishedError) as failed:
            refresh(db, config_for(_vars()), dbt_vars=_vars(), options={"skip_backfill": True})
    finally:
        with connection(db) as conn:
            conn.execute("comment on table catalog.products is null")
            conn.commit()
    message = str(failed.value)
    assert message.startswith("Nothing was published")
    assert "`metrics` keeps the figures of the last published run" in message
    assert "metrics__staging.fct_label_metrics" in message
    assert "meets_metric_thresholds_fct_label_metrics" in message
    assert "pair=minilm_text, direction=*, section=ALL, metric=nn1_accuracy" in message
    assert "min_value=0.95" in message
    assert published() == before
    staged = query(
        db, "select count(*) from metrics__staging.fct_label_metrics where space = 'minilm_text'"
    )
    assert staged[0][0] > 0
