"""The report of a 2,000-product catalog with a thumbnail for every product stays
under its size budget (4 MiB: the thumbnails' default cap of
`--max-thumbnail-mb`, 3 MiB, and 1 MiB for the rest of the page), and a
thumbnail the cap leaves out is counted on the page."""

from __future__ import annotations

import re

import numpy as np
from conftest import PROJECT_DIR, config_for, plant, planted_config, planted_space
from PIL import Image

from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.report.html import write_report
from embed_udfs.report.thumbnails import DEFAULT_MAX_BYTES

N_PRODUCTS = 2000
N_SECTIONS = 20
DIM = 24
# the whole page: the thumbnails' cap plus 1 MiB for the rest of it
REPORT_BUDGET_BYTES = DEFAULT_MAX_BYTES + 1024 * 1024


def test_a_2000_product_report_with_thumbnails_stays_under_its_budget(db, tmp_path):
    rng = np.random.default_rng(5)
    ids = [f"P{i:05d}" for i in range(N_PRODUCTS)]
    sections = [f"section {i % N_SECTIONS:02d}" for i in range(N_PRODUCTS)]
    centres = rng.normal(size=(N_SECTIONS, DIM))
    base = centres[[i % N_SECTIONS for i in range(N_PRODUCTS)]] + rng.normal(size=(N_PRODUCTS, DIM))
    vectors = {
        "t": base + rng.normal(size=base.shape),
        "i": base + rng.normal(size=base.shape),
    }
    dbt_vars = planted_config(
        [planted_space("t", "text", DIM), planted_space("i", "image", DIM)],
        [{"name": "p", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 5, 10],
        retrieval_search="exact",
    )
    config = config_for(dbt_vars)
    plant(db, config, list(zip(ids, sections, strict=True)), vectors)
    images = tmp_path / "images"
    images.mkdir()
    with connection(db) as conn:
        with conn.cursor() as cursor:
            for product_id in ids:
                # noise: the worst case for JPEG, so the largest thumbnails there are
                pixels = rng.integers(0, 256, size=(160, 160, 3), dtype=np.uint8)
                path = images / f"{product_id}.png"
                Image.fromarray(pixels).save(path)
                cursor.execute(
                    "update catalog.products set image_uri = %s where product_id = %s",
                    (str(path), product_id),
                )
        conn.commit()
    # cautious: the threshold tests of the marts not built here stay out
    run_dbt(
        [
            "build",
            "--indirect-selection",
            "cautious",
            "--select",
            "+dim_metric_thresholds",
            "+fct_retrieval_metrics",
            "+fct_retrieval_failure_neighbours",
            "+fct_retrieval_confusions",
        ],
        db,
        PROJECT_DIR,
        dbt_vars=dbt_vars,
        target_path=tmp_path / "target",
        quiet=True,
    )
    with connection(db) as conn:
        text = write_report(conn, config, tmp_path / "report.html").read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    thumbnails = re.findall(r'url\("(data:image/jpeg;base64,[^"]+)"\)', text)
    print(f"report: {size / 1024:.0f} KiB, {len(thumbnails)} thumbnails")
    assert thumbnails, "no thumbnail embedded"
    assert sum(len(t) for t in thumbnails) <= DEFAULT_MAX_BYTES
    assert size <= REPORT_BUDGET_BYTES, f"{size:,} bytes over the budget {REPORT_BUDGET_BYTES:,}"
    # a thumbnail the cap left out says so where it stands, and the page counts them
    assert ("thumbnail(s) left out" in text) == ("thumbnail budget was spent" in text)
