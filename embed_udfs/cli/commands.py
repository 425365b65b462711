"""The commands that are not jobs (check, db, demo, load, refresh, baseline, report) and the
one that runs any job (`embed-udfs backfill|cluster|rerank|tune`): each parses nothing,
takes argparse's namespace and calls the library.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from embed_udfs import contract, db, extras, load, report, roles, runs, store
from embed_udfs.check import check
from embed_udfs.config import find_project_dir, load_config
from embed_udfs.encoders import check_backends
from embed_udfs.errors import EmbedUdfsError, EmptySampleError
from embed_udfs.jobs.base import options_from
from embed_udfs.jobs.registry import job as registered_job
from embed_udfs.jobs.registry import jobs
from embed_udfs.jobs.rerank.report import rerank_scorecard
from embed_udfs.pipeline import refresh
from embed_udfs.report.html import write_report

log = logging.getLogger("embed_udfs")


def _parse_vars(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EmbedUdfsError(f"--vars is not valid YAML or JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EmbedUdfsError("--vars must be a mapping, e.g. --vars '{eval_sample_size: 10000}'")
    runs.check_cli_vars(value)
    return value


class _Context:
    """What every command needs: the project, its config and the database."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.project_dir = find_project_dir(Path(args.project_dir) if args.project_dir else None)
        self.vars = _parse_vars(args.vars)
        self.config = load_config(self.project_dir, overrides=self.vars)
        check_backends(self.config.spaces)

    def settings(self, *, start: bool = True) -> db.ConnectionSettings:
        return db.resolve_settings(self.project_dir, start=start)


def cmd_check(args: argparse.Namespace) -> int:
    project_dir = find_project_dir(Path(args.project_dir) if args.project_dir else None)
    config = load_config(project_dir, overrides=_parse_vars(args.vars))
    outcome = check(config, lambda: db.resolve_settings(project_dir), [j.name for j in jobs()])
    print("\n".join(outcome.lines))
    for problem in outcome.problems:
        print(f"not ready: {problem}", file=sys.stderr)
    print("ready" if outcome.ready else f"not ready: {len(outcome.problems)} problem(s)")
    return 0 if outcome.ready else 2


def cmd_db(args: argparse.Namespace) -> int:
    ctx = _Context(args)
    external = os.environ.get("EMBED_UDFS_DSN") or os.environ.get("PGHOST")
    if args.db_command == "stop":
        stopped = db.stop_embedded(ctx.project_dir)
        print("stopped the embedded server" if stopped else "the embedded server was not running")
        return 0
    if args.db_command == "status":
        info = db.embedded_status(ctx.project_dir)
        state = "stopped"
        if info is not None:
            tcp = f", TCP {db.Listen(info.hostname, info.port)}" if info.hostname else ""
            state = f"running (socket {info.socket_dir}{tcp})"
        print(f"embedded server ({db.embedded_datadir(ctx.project_dir)}): {state}")
        if external:
            settings = ctx.settings(start=False)
            print(f"in use: {settings.uri} (from {settings.origin})")
        return 0
    if args.db_command == "start" and args.listen is not None:
        if external:
            raise EmbedUdfsError(
                "--listen applies to the embedded server only; EMBED_UDFS_DSN or PGHOST point "
                "embed-udfs at your own server, whose listeners are yours to configure."
            )
        db.set_listen(ctx.project_dir, db.parse_listen(args.listen))
    settings = ctx.settings()
    if args.db_command == "start":
        with db.connection(settings) as conn:
            conn.execute(store.products_ddl(ctx.config.products_relation))
            store.bootstrap(conn, ctx.config)
        print(f"ready: {settings.uri} (from {settings.origin})")
        info = db.embedded_status(ctx.project_dir) if not external else None
        if info is not None and info.hostname:
            print(f"TCP: {db.Listen(info.hostname, info.port)} (readers only, SCRAM passwords)")
    elif args.db_command == "url":
        if args.role:
            settings = roles.reader_settings(settings, ctx.project_dir, args.role)
        print(settings.secret_uri() if args.show_password else settings.uri)
    elif args.db_command == "env":
        for key, value in settings.env().items():
            print(f"export {key}={shlex.quote(value)}")
    elif args.db_command == "reader":
        return _reader(args, ctx, settings)
    return 0


def _reader(args: argparse.Namespace, ctx: _Context, settings: db.ConnectionSettings) -> int:
    if args.reader_command == "create":
        password = roles.create_reader(settings, args.name)
        try:
            where = roles.reader_settings(settings, ctx.project_dir, args.name)
            uri = replace(where, password=password).secret_uri()
        except EmbedUdfsError:
            uri = None
        print(f"created reader {args.name}: select on the metrics schema only")
        print(f"password (shown once, not stored): {password}")
        if uri:
            print(f"URI: {uri}")
        else:
            print("For TCP (BI tools): embed-udfs db start --listen 127.0.0.1:5433, then")
            print(f"  embed-udfs db url --role {args.name}")
    elif args.reader_command == "drop":
        dropped = roles.drop_reader(settings, args.name)
        print(f"dropped reader {args.name}" if dropped else f"no role {args.name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    # the demo trains and runs models: without them it stops here, before any work
    extras.require(extras.DEMO, f"embed-udfs demo {args.demo_command}")
    from embed_udfs import demo
    from embed_udfs.demo import training as demo_training

    ctx = _Context(args)
    image_dir = ctx.project_dir / ".embed_metrics" / "demo_images"
    products = demo.generate_catalog(image_dir, n_products=args.products, seed=args.seed)
    if args.demo_command != "train":
        settings = ctx.settings()
        with db.connection(settings) as conn:
            count = demo.load_catalog(conn, products)
        log.info("loaded %d demo products into catalog.products (images in %s)", count, image_dir)
    # The demo's CLIP spaces load these checkpoints; a cached one is reused. The demo
    # catalog is drawn even for `train`: the training catalog must not overlap it.
    print("demo models (trained on a separate synthetic catalog):")
    for trained in demo_training.ensure_demo_models(ctx.project_dir, products):
        print("  " + trained.line())
    if args.demo_command == "train":
        return 0
    if args.demo_command == "load":
        print(f"loaded {count} products into catalog.products")
        return 0
    # the demo shows every gallery's tuning curve (metrics.fct_ann_tuning)
    ctx.vars.setdefault("ann_tuning", True)
    if "rerankers" not in ctx.vars:
        ctx.vars["rerankers"] = demo_training.demo_rerankers()
    ctx.config = load_config(ctx.project_dir, overrides=ctx.vars)
    ctx.vars = runs.run_vars(ctx.project_dir, ctx.vars, "demo")
    return _refresh_and_report(ctx, settings, {})


def cmd_load(args: argparse.Namespace) -> int:
    ctx = _Context(args)
    mapping = load.parse_mapping(args.map or [])
    load.require_reader(Path(args.path))  # Parquet needs its extra: said before connecting
    with db.connection(ctx.settings()) as conn:
        summary = load.load_catalog(
            conn, ctx.config, Path(args.path), mapping=mapping, replace=args.replace
        )
    print(summary.line())
    print("next: `embed-udfs refresh` embeds the new rows and builds every metric")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    ctx = _Context(args)
    # the label and the project's revision land in metrics.dim_runs
    ctx.vars = runs.run_vars(ctx.project_dir, ctx.vars, args.label)
    # the jobs' refresh flags (--space, --skip-backfill, --workers) go to their jobs
    return _refresh_and_report(ctx, ctx.settings(), vars(args))


def _refresh_and_report(
    ctx: _Context, settings: db.ConnectionSettings, options: dict[str, Any]
) -> int:
    empty: EmptySampleError | None = None
    try:
        summaries = refresh(settings, ctx.config, dbt_vars=ctx.vars, options=options)
    except EmptySampleError as exc:  # the rest is published: show it, then fail
        empty, summaries = exc, exc.summaries
    for summary in summaries:
        print(f"{summary.job}:")
        for line in summary.lines:
            print("  " + line)
    with db.connection(settings) as conn:
        print(report.scorecard(conn, ctx.config))
        print(report.label_scorecard(conn))
        print(rerank_scorecard(conn))
        thresholds = report.thresholds_notice(conn)
    if thresholds:
        print("\n" + thresholds)
    notice = report.random_weight_notice(ctx.config)
    if notice:
        print("\n" + notice)
    print("\n" + report.where_to_look(settings.uri))
    print("\nHTML report: " + str(_write_html(ctx, settings, DEFAULT_HTML_REPORT)))
    if empty is not None:
        print(f"error: {empty}", file=sys.stderr)
        return 2
    return 0


DEFAULT_HTML_REPORT = Path(".embed_metrics") / "report.html"


def _write_html(
    ctx: _Context,
    settings: db.ConnectionSettings,
    path: Path,
    *,
    fetch_images: bool = False,
    max_thumbnail_mb: float | None = None,
) -> Path:
    target = path if path.is_absolute() else ctx.project_dir / path
    cap = {} if max_thumbnail_mb is None else {"max_thumbnail_bytes": int(max_thumbnail_mb * 2**20)}
    with db.connection(settings) as conn:
        return write_report(conn, ctx.config, target, fetch_images=fetch_images, **cap)


def cmd_job(args: argparse.Namespace) -> int:
    """`embed-udfs <job>`: the job's options from its declared flags, checked before any
    work, then the job; its lines, then what it says comes next."""
    ctx = _Context(args)
    job = registered_job(args.job)
    options = options_from(job.Options, vars(args), dbt_vars=ctx.vars)
    job.check(ctx.config, options)
    summary = job.run(ctx.settings(), ctx.config, options)
    for line in (*summary.lines, *summary.footer):
        print(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    ctx = _Context(args)
    settings = ctx.settings()
    with db.connection(settings) as conn:
        if not contract.exists(conn, contract.RETRIEVAL_METRICS):
            raise EmbedUdfsError(
                f"nothing to report in {settings.dbname}: {contract.RETRIEVAL_METRICS} does not "
                "exist, so no refresh has published metrics here yet. Run `embed-udfs refresh` "
                "(or `embed-udfs demo run`) first."
            )
    if args.html:
        print(
            _write_html(
                ctx,
                settings,
                Path(args.html).absolute(),
                fetch_images=args.fetch_images,
                max_thumbnail_mb=args.max_thumbnail_mb,
            )
        )
        return 0
    with db.connection(settings) as conn:
        print(report.scorecard(conn, ctx.config))
        print(report.label_scorecard(conn))
        print(rerank_scorecard(conn))
    print("\n" + report.where_to_look(settings.uri))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    ctx = _Context(args)
    with db.connection(ctx.settings()) as conn:
        if args.action == "set":
            run = runs.set_baseline(conn, ctx.config, args.run_id)
            print(f"baseline: {_describe_run(run)}")
            print(
                "next: `embed-udfs refresh` (or `dbt build`) compares against it in "
                "metrics.fct_metric_deltas"
            )
        elif args.action == "show":
            pinned = runs.show_baseline(conn, ctx.config)
            print(f"baseline: {_describe_run(pinned)}" if pinned else "no baseline is pinned")
        else:
            cleared = runs.clear_baseline(conn, ctx.config)
            print("baseline cleared" if cleared else "no baseline was pinned")
    return 0


def _describe_run(run: runs.Run) -> str:
    label = f" ({run.label})" if run.label else ""
    revision = f", revision {run.git_revision}" if run.git_revision else ""
    return (
        f"{run.run_id}{label}, started {run.started_at:%Y-%m-%d %H:%M:%S %Z}{revision}, "
        f"config {run.config_hash[:12]}"
    )


BASELINE_EPILOG = """Every dbt build appends a row to metrics.dim_runs (run_id, run_started_at,
run_label, git_revision, config_hash, config_digest) and its figures to
metrics.fct_metric_history. metrics.fct_metric_deltas compares the latest run
with the pinned baseline (reference = 'baseline') and with the previous run
(reference = 'previous'): difference, 95% interval, verdict.

examples:
  embed-udfs refresh --label before-recipe-change
  embed-udfs baseline set latest
  embed-udfs baseline set 3f2a9c1e-...      (a run_id from metrics.dim_runs)
  embed-udfs baseline show
  embed-udfs baseline clear
"""
