"""Build the demo's retrieval, gap and label figures with the SQL of several git
revisions on the same data, and compare them value by value with the first.

    python bench/figures_parity.py 79a6b9d f5fa2ca WORKTREE

Run `embed-udfs demo run` first: its database (catalog, vectors, backfill errors,
cluster assignments) is the template. Each revision gets a copy of that database
(`create database ... template`) and its own checkout (`git worktree add` under
/tmp), and dbt seeds and runs the three marts there with the demo's spaces and
pairs, taken from this tree's dbt_project.yml, so that every revision scores the
same vectors. WORKTREE is the working tree as it is. --all-marts builds every
model instead, with the demo's rerankers and ANN tuning, and compares every
table of the `metrics` schema. The figures are compared as
Postgres prints them (bench/compare_figures.py): equal text is equal bits.

--same-samples removes, in every copy, the products without a vector in every
configured space (the demo's failed images), so that the label sample, drawn on
the text spaces alone since samples per purpose, holds the same products as the
retrieval sample the label metrics used before: every revision then scores the
same products.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from _scratch import PROJECT_DIR, machine
from compare_figures import compare, compare_all, dump, dump_all
from psycopg import sql

from embed_udfs.db import ConnectionSettings, admin_connect, drop_database, resolve_settings

log = logging.getLogger("figures_parity")

WORKTREE = "WORKTREE"
CHECKOUTS = Path(tempfile.gettempdir()) / "embed_metrics_figures_parity"
MARTS = ["fct_retrieval_metrics", "fct_embedding_gaps", "fct_label_metrics"]
# The vars every revision gets: what the vectors were embedded with. No reranker,
# so the neighbour lists are max(K) deep at every revision.
SHARED_VARS = ["embed_spaces", "embed_pairs"]


def checkout(revision: str) -> Path:
    """The project at `revision`: this tree for WORKTREE, else a detached worktree."""
    if revision == WORKTREE:
        return PROJECT_DIR
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", revision],
        cwd=PROJECT_DIR,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = CHECKOUTS / sha
    if not path.exists():
        CHECKOUTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), sha],
            cwd=PROJECT_DIR,
            check=True,
            capture_output=True,
        )
    return path


def copy_database(template: ConnectionSettings, name: str) -> ConnectionSettings:
    """A copy of the demo database (no session may be open on the template)."""
    copy = template.for_database(name)
    drop_database(copy)
    with admin_connect(template, "postgres") as conn:
        conn.execute(
            sql.SQL("create database {} template {} owner {}").format(
                sql.Identifier(name), sql.Identifier(template.dbname), sql.Identifier(template.user)
            )
        )
    return copy


def keep_complete_products(settings: ConnectionSettings, spaces: list[str]) -> int:
    """Delete the products that lack a vector in any of `spaces`; return how many."""
    with admin_connect(settings, settings.dbname) as conn:
        deleted = conn.execute(
            "delete from catalog.products as p where (select count(distinct v.space) "
            "from embeddings.vectors as v where v.product_id = p.product_id::text "
            "and v.space = any(%s)) < %s",
            (spaces, len(spaces)),
        ).rowcount
    return deleted


def build(
    project: Path, settings: ConnectionSettings, dbt_vars: dict, everything: bool = False
) -> None:
    env = dict(
        os.environ,
        PGHOST=settings.host,
        PGPORT=str(settings.port),
        PGUSER=settings.user,
        PGPASSWORD=settings.password,
        PGDATABASE=settings.dbname,
    )
    dbt = str(Path(sys.executable).parent / "dbt")
    common = ["--project-dir", str(project), "--profiles-dir", str(project)]
    common += ["--target-path", str(CHECKOUTS / f"target_{settings.dbname}")]
    common += ["--vars", json.dumps(dbt_vars)]
    selection = [] if everything else ["--select", *(f"+{mart}" for mart in MARTS)]
    for args in (["seed"], ["run", *selection]):
        done = subprocess.run([dbt, *args, *common], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"dbt {args[0]} failed in {project}:\n{done.stdout[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("revisions", nargs="+", help=f"git revisions, or {WORKTREE}")
    parser.add_argument("--keep", action="store_true", help="keep the database copies")
    parser.add_argument(
        "--same-samples",
        action="store_true",
        help="drop the products without a vector in every space from each copy",
    )
    parser.add_argument(
        "--all-marts",
        action="store_true",
        help="build every model with the demo's rerankers and ANN tuning, and compare every "
        "table of the metrics schema (all columns but run ids and timestamps)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    template = resolve_settings(PROJECT_DIR)
    project_vars = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    dbt_vars = {key: project_vars[key] for key in SHARED_VARS}
    if args.all_marts:
        from embed_udfs.demo.training import demo_rerankers

        dbt_vars["rerankers"] = demo_rerankers()
        dbt_vars["ann_tuning"] = True
    else:
        dbt_vars["rerankers"] = []
    print(f"machine: {machine()}; template database {template.dbname}")

    dumps = []
    for index, revision in enumerate(args.revisions):
        project = checkout(revision)
        settings = copy_database(template, f"figures_parity_{index}")
        if args.same_samples:
            spaces = [space["name"] for space in dbt_vars["embed_spaces"]]
            removed = keep_complete_products(settings, spaces)
            log.info("%s: removed %d products without a vector in every space", revision, removed)
        built = "every model" if args.all_marts else ", ".join(MARTS)
        log.info("%s: building %s in %s", revision, built, settings.dbname)
        try:
            build(project, settings, dbt_vars, everything=args.all_marts)
            out = CHECKOUTS / f"figures_{index}"
            if args.all_marts:
                log.info("%s: %d tables dumped", revision, len(dump_all(out, settings)))
            else:
                dump(out, settings)
            dumps.append(out)
        finally:
            if not args.keep:
                drop_database(settings)

    failed = 0
    for revision, out in zip(args.revisions[1:], dumps[1:], strict=True):
        print(f"\n== {args.revisions[0]} -> {revision}")
        failed |= (compare_all if args.all_marts else compare)(dumps[0], out)
    sys.exit(failed)


if __name__ == "__main__":
    main()
