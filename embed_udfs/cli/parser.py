"""The `embed-udfs` argument parser. The commands that are not jobs are spelled out
here; each job's sub-command, and the job flags of `refresh`, are built from the
options the job declares (embed_udfs.jobs.base.option), so a flag is written once."""

from __future__ import annotations

import argparse
from typing import Any

from embed_udfs import __version__
from embed_udfs.cli import commands
from embed_udfs.encoders import backend, backend_names
from embed_udfs.jobs.base import Job, Option, declared_options
from embed_udfs.jobs.registry import jobs
from embed_udfs.report.thumbnails import DEFAULT_MAX_BYTES

DESCRIPTION = """\
Embedding-quality metrics for product catalogs in PostgreSQL + pgvector.

Typical use:
  embed-udfs demo run          load the demo catalog, embed it, build every metric
  embed-udfs check             validate the configuration and the database, show what would run
  embed-udfs load FILE         load your catalog (CSV, Parquet, JSON lines) into the products table
  embed-udfs refresh           the pipeline on your data: dbt inputs, backfill, dbt build
  embed-udfs cluster           PCA + KMeans of each text space, scored against sections by dbt
  embed-udfs rerank            rescore each query's stage-1 candidates with the configured rerankers
  embed-udfs tune              recall/latency curve of the HNSW index per gallery (or --relation)
  embed-udfs report            print the per-section scorecard
  embed-udfs baseline set latest   pin a run; metrics.fct_metric_deltas compares later runs to it
  embed-udfs report --html report.html   the same and more as plots, in one offline HTML file
  embed-udfs db url            a connection URI for psql or a BI tool
  embed-udfs db reader create  a read-only login for BI (metrics schema only)

Configuration (spaces, pairs, K, sample size) lives in dbt_project.yml vars.
The database is the embedded server unless EMBED_UDFS_DSN or PGHOST is set.

Install: `pip install embed-udfs` (the core, no model stack) runs every SQL metric on
vectors already in the database (`refresh --skip-backfill`), cluster, tune, load,
report and baseline. Extras add the rest; a command that needs a missing one says so
before any work:
  embed-udfs[encoders]   backfill (torch, open_clip, sentence-transformers)
  embed-udfs[rerank]     rerank (torch, open_clip, transformers)
  embed-udfs[demo]       demo (both of the above)
  embed-udfs[parquet]    load FILE.parquet (pyarrow)
  embed-udfs[all]        everything
"""


def _command(subcommands: Any, name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002
    """A sub-command whose --help opens with its one-line summary."""
    return subcommands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    backends = "\n".join(
        f"  {name:<22}{', '.join(backend(name).modalities):<13}{backend(name).description}"
        for name in backend_names()
    )
    parser = argparse.ArgumentParser(
        prog="embed-udfs",
        description=DESCRIPTION,
        epilog=f"Encoder backends (a space's `backend:`):\n{backends}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"embed-udfs {__version__}")
    parser.add_argument("--project-dir", help="the dbt project (default: found upwards from cwd)")
    parser.add_argument(
        "--vars", help="override dbt_project.yml vars for this run, as YAML/JSON (like dbt --vars)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = _command(
        subcommands,
        "check",
        help="validate the configuration and the database, and show what a refresh would run",
    )
    check.set_defaults(func=commands.cmd_check)

    db = _command(
        subcommands, "db", help="the database: start/stop the embedded server, URIs, BI readers"
    )
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_start = db_commands.add_parser(
        "start", help="start the embedded server and create the tables"
    )
    db_start.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="also listen on this loopback TCP address (e.g. 127.0.0.1:5433) with SCRAM "
        "passwords, for BI readers; kept across restarts; `off` for socket-only (the default)",
    )
    db_commands.add_parser("stop", help="stop the embedded server")
    db_commands.add_parser("status", help="is the embedded server running, and where")
    db_url = db_commands.add_parser("url", help="a URI for psql or a BI tool (password masked)")
    db_url.add_argument(
        "--role", metavar="NAME", help="the URI reader NAME uses over TCP (no password)"
    )
    db_url.add_argument(
        "--show-password", action="store_true", help="print the password instead of ****"
    )
    db_commands.add_parser("env", help="PG* exports for running dbt or psql yourself")
    reader = db_commands.add_parser(
        "reader", help="read-only logins for BI tools: select on the metrics schema only"
    )
    reader_commands = reader.add_subparsers(
        dest="reader_command", required=True, metavar="READER_COMMAND"
    )
    reader_create = reader_commands.add_parser(
        "create", help="create a reader with a generated password, printed once"
    )
    reader_create.add_argument("name", help="the role name, e.g. metabase")
    reader_drop = reader_commands.add_parser("drop", help="drop a reader")
    reader_drop.add_argument("name")
    db.set_defaults(func=commands.cmd_db)

    demo = _command(
        subcommands, "demo", help="the demo: train its models, load its catalog, or run everything"
    )
    demo.add_argument(
        "demo_command",
        choices=["train", "load", "run"],
        help="train: only train (or find cached) the demo's CLIP-style models, which the "
        "default configuration's CLIP spaces load; load: train them and write the demo "
        "products and images; run: load, then refresh and report",
    )
    demo.add_argument("--products", type=int, default=2400, help="catalog size (default 2400)")
    demo.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    demo.set_defaults(func=commands.cmd_demo)

    load = _command(
        subcommands,
        "load",
        help="load a catalog file (CSV, TSV, Parquet, JSON lines) into the products relation",
    )
    load.add_argument("path", help="the file; its type is taken from the extension")
    load.add_argument(
        "--map",
        action="append",
        metavar="COLUMN=FILE_COLUMN,...",
        help="which file column feeds each products column, e.g. "
        "'name=Product Name,section=Category' (id, name, description, section, store, image, "
        "or the full column names); unmapped columns are taken by their own name. A section "
        "that is a category path ('Toys & Games | Puzzles | Jigsaw Puzzles') loads as written "
        "and is reported per level (vars.section_separator)",
    )
    load.add_argument(
        "--replace",
        action="store_true",
        help="empty the table first (default: upsert by product_id, keeping other rows)",
    )
    load.set_defaults(func=commands.cmd_load)

    refresh = _command(
        subcommands,
        "refresh",
        help="the whole pipeline: dbt inputs, backfill, dbt build with tests, scorecard",
    )
    for job in jobs():
        for declared, default in declared_options(job.Options):
            if declared.refresh_help is not None:
                _add_option(refresh, declared, default, declared.refresh_help)
    refresh.add_argument(
        "--label",
        metavar="TEXT",
        help="a label for this run in metrics.dim_runs (the run_label var), e.g. 'new prompt'",
    )
    refresh.set_defaults(func=commands.cmd_refresh)

    for job in jobs():
        if job.help is not None:
            _add_job_command(subcommands, job)

    baseline = _command(
        subcommands,
        "baseline",
        help="pin, show or clear the run that metrics.fct_metric_deltas compares against",
    )
    baseline.formatter_class = argparse.RawDescriptionHelpFormatter
    baseline.epilog = commands.BASELINE_EPILOG
    baseline_commands = baseline.add_subparsers(dest="action", required=True, metavar="ACTION")
    baseline_set = baseline_commands.add_parser(
        "set", help="pin a run: RUN_ID (metrics.dim_runs.run_id) or `latest`"
    )
    baseline_set.add_argument("run_id", metavar="RUN_ID|latest")
    baseline_commands.add_parser("show", help="print the pinned run")
    baseline_commands.add_parser("clear", help="unpin it; the deltas keep only the previous run")
    baseline.set_defaults(func=commands.cmd_baseline)

    report = _command(
        subcommands,
        "report",
        help="print the per-section scorecard (the eval sample as gallery) and R@K against "
        "gallery size (the sample and the whole catalog), or write the HTML report",
    )
    report.add_argument(
        "--html",
        metavar="PATH",
        help="write one self-contained HTML file (plots as inline SVG, works offline) to PATH "
        "and print its path, instead of the terminal scorecard",
    )
    report.add_argument(
        "--fetch-images",
        action="store_true",
        help="with --html: read http(s) image URIs for the failure gallery's thumbnails, with "
        "the backfill's bounds (public addresses only unless allowed, byte cap, deadline, "
        "per-host limits); without it a remote image shows a placeholder and nothing is "
        "fetched. Local paths and file:// are always read",
    )
    report.add_argument(
        "--max-thumbnail-mb",
        type=_positive_float,
        default=DEFAULT_MAX_BYTES / 1024 / 1024,
        metavar="MB",
        help="with --html: the most the embedded thumbnails may add to the page, in MB "
        "(default %(default).0f); the weakest sections get theirs first and the page says "
        "how many were left out",
    )
    report.set_defaults(func=commands.cmd_report)
    return parser


def _add_option(
    parser: argparse.ArgumentParser,
    declared: Option,
    default: Any,
    help: str,  # noqa: A002
) -> None:
    kwargs: dict[str, Any] = {"help": help, "default": default}
    for name in ("action", "type", "metavar", "dest"):
        if getattr(declared, name) is not None:
            kwargs[name] = getattr(declared, name)
    if declared.choices is not None:
        kwargs["choices"] = list(declared.choices)
    parser.add_argument(declared.flag, **kwargs)


def _add_job_command(subcommands: Any, job: Job) -> None:
    """`embed-udfs <job>`: its summary, its epilog, and the flags its options declare."""
    assert job.help is not None  # only jobs with a summary get a sub-command
    parser = _command(subcommands, job.name, help=job.help)
    if job.epilog:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = job.epilog
    for declared, default in declared_options(job.Options):
        if declared.command:
            _add_option(parser, declared, default, declared.help)
    parser.set_defaults(func=commands.cmd_job, job=job.name)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, e.g. 3 or 0.5") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value
