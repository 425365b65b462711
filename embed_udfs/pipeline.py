"""The whole refresh, in order: dbt builds what each registered job reads, the job
runs (the jobs of embed_udfs.jobs.registry, in their declared order, each when it is
enabled), and a final dbt build makes every metric and runs every test. Each model is
built once per refresh (embed_udfs/build_plan.py): a job's inputs only where no earlier
build made them, the final build the rest and what a job's output made stale.

The marts are built and tested in a staging schema and published only when every
test has passed (embed_udfs/publish.py): BI never sees an untested or partial set."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from embed_udfs import contract, publish, report, store
from embed_udfs.build_plan import BuildPlan, DbtGraph
from embed_udfs.config import ProjectConfig, check_text_fields
from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.errors import DbtError, EmbedUdfsError, EmptySampleError, NotPublishedError
from embed_udfs.jobs.base import JobSummary, options_from
from embed_udfs.jobs.registry import jobs
from embed_udfs.terminal import clean

log = logging.getLogger(__name__)


def check_products(settings: ConnectionSettings, config: ProjectConfig) -> int:
    """Row count of the products relation; a clear error if it is missing or lacks a
    column some space's text_fields name."""
    products = contract.PRODUCTS.resolve(config)
    with connection(settings) as conn:
        store.bootstrap(conn, config)
        if not contract.exists(conn, products):
            raise EmbedUdfsError(
                f"{products} does not exist. Load the demo catalog with "
                "`embed-udfs demo load`, or point vars.products_relation in dbt_project.yml at "
                "your products table (columns: product_id, product_name, product_description, "
                "collection_section, store_name, image_uri)."
            )
        check_text_fields(conn, config)
        count = conn.execute(sql.SQL("select count(*) from {}").format(products.identifier))
        return int(count.fetchone()[0])  # type: ignore[index]  # count(*) always has a row


def refresh(
    settings: ConnectionSettings,
    config: ProjectConfig,
    *,
    dbt_vars: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[JobSummary]:
    """Run the pipeline end to end, publish the tested marts; return what each job did.

    `options` are the values of the jobs' refresh flags by name, as `embed-udfs refresh`
    parses them (e.g. {"space": ["minilm_text"], "skip_backfill": True}); every other
    option of a job keeps its default."""
    planned = [
        (
            job,
            options_from(
                job.Options, options or {}, dbt_vars=dbt_vars, build_inputs=False, refresh=True
            ),
        )
        for job in jobs()
    ]
    for job, job_options in planned:
        job.check(config, job_options)  # bad options are refused before any work
    check_products(settings, config)
    staged_vars = {**(dbt_vars or {}), **publish.STAGING_VARS}
    summaries = []
    with publish.publishing_lock(settings):
        publish.clear_staging(settings)
        # the manifest names every model, its parents and the incremental marts
        run_dbt(["parse"], settings, config.project_dir, dbt_vars=staged_vars)
        plan = BuildPlan(DbtGraph.load(config.project_dir))
        for job, job_options in planned:
            if not job.enabled(config, job_options):
                # before its inputs are built: an off job costs the refresh nothing
                log.info("skipping %s: it is off for this run", job.name)
                continue
            needed = plan.inputs_of(job.reads, *job.also_reads)
            if needed:
                read = ", ".join(str(r) for r in (job.reads, *job.also_reads))
                log.info("dbt: %s reads %s (%d models to build)", job.name, read, len(needed))
                # models and seeds only, each once: the tests run in the final build
                run_dbt(
                    ["build", "--select", *needed]
                    + ["--resource-type", "model", "--resource-type", "seed"],
                    settings,
                    config.project_dir,
                    dbt_vars=staged_vars,
                )
                plan.mark_built(needed)
            summary = job.run(settings, config, job_options)
            log.info("%s", summary.line())
            summaries.append(summary)
            for relation in job.written(config):
                plan.wrote(relation)
        history = publish.incremental_marts(config.project_dir)
        publish.carry_history(settings, history)
        plan.unmark(history)  # the copied history is what the final build appends to
        log.info("dbt: build metrics and tests in %s", publish.STAGING)
        try:
            selection = plan.final_selection()
            run_dbt(
                ["build"] if selection is None else ["build", "--select", *selection],
                settings,
                config.project_dir,
                dbt_vars=staged_vars,
            )
        except DbtError as exc:
            if exc.failed_nodes != (contract.EMPTY_SAMPLE_TEST,) or exc.skipped:
                raise NotPublishedError(
                    not_published_message(settings, exc),
                    exc.failed_nodes,
                    exc.skipped,
                    exc.failed_tests,
                ) from exc
            publish.publish(settings)
            raise EmptySampleError(
                f"{exc}\nEvery other model was built and every other test passed, so the "
                "metrics that could be computed (the label metrics of text spaces among "
                "them) are published. Fix what emptied the sample and run the refresh again.",
                summaries,
            ) from exc
        publish.publish(settings)
    with connection(settings) as conn:
        for reason in report.empty_sample_reasons(conn, "retrieval") + (
            report.empty_sample_reasons(conn, "label")
        ):
            log.warning("not evaluable: %s", reason)
    return summaries


def not_published_message(settings: ConnectionSettings, exc: DbtError) -> str:
    """What a failed final build means for the reader: nothing published, what stays,
    where this run's figures can be inspected, and what failed, with example rows."""
    lines = [
        "Nothing was published: the final `dbt build` failed, so no figure of this run "
        "reached the `metrics` schema.",
        f"  {_published_state(settings)}",
        f"  This run's figures are in schema {publish.STAGING} until the next refresh, e.g. "
        f"psql '{settings.uri}' -c 'select * from {publish.STAGING}.fct_label_metrics'.",
        "What failed:",
        *(f"  {line}" for line in str(exc).splitlines()[1:] if line.startswith("  ")),
    ]
    examples = _failure_examples(settings, exc.failed_tests)
    if examples:
        lines.append("Rows that failed (at most 3 per test):")
        lines.extend(f"  {line}" for line in examples)
    lines.append(
        "Fix what failed (a floor in seeds/metric_thresholds.csv, a test's data) and run "
        "`embed-udfs refresh` again; `--skip-backfill` reuses the vectors."
    )
    return "\n".join(lines)


def _published_state(settings: ConnectionSettings) -> str:
    with connection(settings) as conn:
        runs = contract.RUNS
        if not contract.exists(conn, runs):
            return "Nothing has been published in this database yet, so `metrics` stays empty."
        row = conn.execute(
            sql.SQL("select max(run_started_at) from {}").format(runs.identifier)
        ).fetchone()
    when = f" (the run started {row[0]:%Y-%m-%d %H:%M:%S %Z})" if row and row[0] else ""
    return f"`metrics` keeps the figures of the last published run{when}."


def _failure_examples(settings: ConnectionSettings, failed_tests: Mapping[str, str]) -> list[str]:
    """A few of the rows each failed test returned, read from the staging schema."""
    lines: list[str] = []
    with connection(settings) as conn:
        for node, compiled in sorted(failed_tests.items()):
            try:
                with conn.transaction():
                    conn.execute("set local transaction read only")
                    conn.execute("set local statement_timeout = '30s'")
                    cursor = conn.execute(
                        sql.SQL("select * from ({}) as failures limit 3").format(
                            sql.SQL(compiled.strip().rstrip(";"))
                        )
                    )
                    names = [column.name for column in cursor.description or ()]
                    rows = cursor.fetchall()
            except psycopg.Error as error:
                log.debug("could not read the failures of %s: %s", node, error)
                continue
            test = node.removeprefix("test.embed_metrics.").rsplit(".", 1)[0]
            for row in rows:
                cells = ", ".join(
                    f"{name}={clean(f'{value:.4g}' if isinstance(value, float) else value)}"
                    for name, value in zip(names, row, strict=True)
                )
                lines.append(f"{test}: {cells}")
    return lines
