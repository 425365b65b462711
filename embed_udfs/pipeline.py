"""The whole refresh, in order: dbt staging and inputs, the Python jobs
(backfill, then PCA + KMeans of the label sample), then dbt build of every
metric and test."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from embed_udfs import store
from embed_udfs.backfill import BackfillSummary, backfill_space
from embed_udfs.cluster import refresh_clusters
from embed_udfs.config import ProjectConfig
from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.errors import EmbedUdfsError

log = logging.getLogger(__name__)


def check_products(settings: ConnectionSettings, config: ProjectConfig) -> int:
    """Row count of the products relation; a clear error if it is missing."""
    with connection(settings) as conn:
        store.bootstrap(conn, config)
        exists = conn.execute("select to_regclass(%s)", (config.products_relation,)).fetchone()[0]
        if exists is None:
            raise EmbedUdfsError(
                f"{config.products_relation} does not exist. Load the demo catalog with "
                "`embed-udfs demo load`, or point vars.products_relation in dbt_project.yml at "
                "your products table (columns: product_id, product_name, product_description, "
                "collection_section, store_name, image_uri)."
            )
        return conn.execute(f"select count(*) from {config.products_relation}").fetchone()[0]


def refresh(
    settings: ConnectionSettings,
    config: ProjectConfig,
    *,
    dbt_vars: Mapping[str, Any] | None = None,
    spaces: Sequence[str] | None = None,
    backfill: bool = True,
) -> list[BackfillSummary]:
    """Run the pipeline end to end; return the backfill summaries."""
    check_products(settings, config)
    log.info("dbt: staging and model inputs")
    # build, not run: the text recipes read the boilerplate and noise-token seeds
    run_dbt(
        ["build", "--select", "+int_space_inputs"], settings, config.project_dir, dbt_vars=dbt_vars
    )
    summaries = []
    if backfill:
        for name in spaces or [s.name for s in config.spaces]:
            summary = backfill_space(settings, config, config.space(name))
            log.info("%s", summary.line())
            summaries.append(summary)
    # KMeans needs the label sample, which the final build would make too late
    refresh_clusters(settings, config, dbt_vars=dbt_vars)
    log.info("dbt: build metrics and tests")
    run_dbt(["build"], settings, config.project_dir, dbt_vars=dbt_vars)
    return summaries
