"""`embed-udfs check`: is the project ready to run? The configuration (the vars, the
encoder backends, the checkpoint files) and the database (reachable, pgvector, the
products relation and its columns), then what a refresh would run, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg import sql

from embed_udfs import contract, extras
from embed_udfs.config import ProjectConfig, check_text_fields, require_checkpoints
from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.encoders import check_backends
from embed_udfs.errors import EmbedUdfsError

# The columns stg_catalog__products reads from the products relation.
PRODUCT_COLUMNS = (
    "product_id",
    "product_name",
    "product_description",
    "collection_section",
    "store_name",
    "image_uri",
)


@dataclass
class CheckReport:
    """What `check` found: the problems (sentences) and what would run."""

    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.problems


def check(
    config: ProjectConfig,
    settings: Callable[[], ConnectionSettings],
    job_names: list[str],
) -> CheckReport:
    """Check `config` (already validated by load_config) and the database that
    `settings()` resolves; `job_names` are the jobs a refresh runs, in order."""
    report = CheckReport()
    _attempt(report, lambda: check_backends(config.spaces))
    _attempt(report, lambda: require_checkpoints(config))
    _attempt(report, lambda: _check_database(config, settings(), report))
    report.lines += _plan(config, job_names)
    return report


def _attempt(report: CheckReport, step: Callable[[], None]) -> None:
    try:
        step()
    except EmbedUdfsError as exc:
        report.problems.append(str(exc))


def _check_database(
    config: ProjectConfig, settings: ConnectionSettings, report: CheckReport
) -> None:
    # connecting checks the server and its pgvector (db.connect refuses an old one)
    with connection(settings) as conn:
        row = conn.execute(
            "select extversion from pg_extension where extname = 'vector'"
        ).fetchone()
        report.lines.append(f"database: {settings.uri} (from {settings.origin})")
        report.lines.append(f"pgvector: {row[0] if row else 'available, not yet created'}")
        products = contract.PRODUCTS.resolve(config)
        if not contract.exists(conn, products):
            raise EmbedUdfsError(
                f"{products} does not exist. Load a catalog with `embed-udfs load FILE` (or "
                "`embed-udfs demo load`), or point vars.products_relation in dbt_project.yml "
                f"at your products table (columns: {', '.join(PRODUCT_COLUMNS)})."
            )
        schema, table = config.products_relation.split(".")
        columns = {
            name
            for (name,) in conn.execute(
                "select column_name from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                (schema, table),
            ).fetchall()
        }
        missing = [name for name in PRODUCT_COLUMNS if name not in columns]
        if missing:
            raise EmbedUdfsError(
                f"{products} lacks the column(s) {', '.join(missing)}; "
                f"stg_catalog__products reads {', '.join(PRODUCT_COLUMNS)}. Add them (empty "
                "is fine for product_description, store_name and image_uri)."
            )
        cluster_column = config.labels.bootstrap_cluster_column
        if cluster_column is not None and cluster_column not in columns:
            raise EmbedUdfsError(
                f"vars.bootstrap_cluster_column is {cluster_column!r}, but {products} has no "
                "such column. Name a column of the products table whose values group products "
                "(e.g. store_name), or set it to null to resample near-duplicate groups."
            )
        check_text_fields(conn, config)
        count = conn.execute(
            sql.SQL("select count(*) from {}").format(products.identifier)
        ).fetchone()
        report.lines.append(f"products: {products}, {count[0] if count else 0} rows")


def _plan(config: ProjectConfig, job_names: list[str]) -> list[str]:
    lines = ["spaces:"]
    lines += [
        f"  {s.name}: {s.modality}, {s.backend} {s.model}, dim {s.dim}" for s in config.spaces
    ]
    lines.append("pairs:" if config.pairs else "pairs: (none)")
    lines += [f"  {p.name}: {p.text_space} <-> {p.image_space}" for p in config.pairs]
    if config.rerank.rerankers:
        lines.append("rerankers:")
        lines += [
            f"  {r.name}: {r.backend} {r.model} on {', '.join(r.pairs)}"
            for r in config.rerank.rerankers
        ]
    lines.append("refresh runs: dbt inputs, " + ", ".join(job_names) + ", dbt build")
    lines.append(
        "extras: "
        + ", ".join(
            f"{name} {'installed' if present else 'not installed'}"
            for name, present in extras.installed().items()
        )
    )
    lines.append(f"config digest: {config.digest}")
    return lines
