"""Run bookkeeping: the vars that stamp a dbt run (label, git revision) and the
pinned baseline that metrics.fct_metric_deltas compares every run against."""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from embed_udfs import contract
from embed_udfs.config import ProjectConfig
from embed_udfs.errors import ConfigError, EmbedUdfsError
from embed_udfs.terminal import clean

log = logging.getLogger(__name__)


class BaselineError(EmbedUdfsError):
    """A baseline cannot be pinned (no such run, no runs yet)."""


@dataclass(frozen=True)
class Run:
    run_id: str
    started_at: datetime
    label: str | None
    git_revision: str | None
    config_hash: str


def git_revision(project_dir: Path) -> str | None:
    """The project's commit, `-dirty` when the work tree has changes; None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        # not a git checkout, or no git: the run simply has no revision
        log.debug("no git revision for %s: %s", project_dir, exc)
        return None
    return head + ("-dirty" if status else "") if head else None


# dbt renders every top-level string var as Jinja in a context that can run SQL
# (run_query, adapter), when a model first reads it: a brace in a label would run
# minutes into a refresh, as the owner. Values handed to dbt are therefore plain.
_JINJA = re.compile(r"\{[{%#]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def check_plain(option: str, value: object, example: str) -> None:
    """Refuse a value dbt would render as Jinja, or one with control characters."""
    if not isinstance(value, str):
        return
    shown = clean(repr(value), max_width=60)
    jinja = _JINJA.search(value)
    if jinja:
        raise ConfigError(
            f"{option} is {shown}, which holds Jinja syntax ({jinja.group()!r}) that dbt would "
            f"run as a template; it must be plain text. {example}"
        )
    control = _CONTROL.search(value)
    if control:
        raise ConfigError(
            f"{option} is {shown}, which holds a control character "
            f"({control.group()!r}); it must be one line of plain text. {example}"
        )


def check_cli_vars(dbt_vars: dict[str, Any]) -> None:
    """--vars values reach dbt's var(), which renders top-level strings as Jinja: refuse
    Jinja and control characters there (Jinja belongs in dbt_project.yml's vars)."""
    for key, value in dbt_vars.items():
        check_plain(
            f"--vars {clean(key)}",
            value,
            'Let the shell fill a value in (--vars "{hnsw_ef_search: $EF_SEARCH}") or put '
            "the Jinja in the vars block of dbt_project.yml.",
        )


def run_vars(
    project_dir: Path, dbt_vars: dict[str, Any], label: str | None = None
) -> dict[str, Any]:
    """dbt vars with run_label and git_revision added (the user's --vars win); a label or
    revision that dbt would render as Jinja is refused before anything runs."""
    stamped = dict(dbt_vars)
    if label is not None:
        check_plain("--label", label, "For example: --label 'new prompt'.")
        stamped["run_label"] = label
    if "git_revision" not in stamped:
        revision = git_revision(project_dir)
        if revision:
            check_plain("the git revision", revision, "Set one with --vars '{git_revision: ...}'.")
            stamped["git_revision"] = revision
    return stamped


def _runs_exist(conn: psycopg.Connection) -> None:
    if not contract.exists(conn, contract.RUNS):
        raise BaselineError(
            f"{contract.RUNS} does not exist yet: run `embed-udfs refresh` (or `dbt build`) "
            "first, then pin one of its runs."
        )


def _run(conn: psycopg.Connection, run_id: str | None) -> Run | None:
    query = sql.SQL(
        "select run_id, run_started_at, run_label, git_revision, config_hash from {} "
        + ("where run_id = %s " if run_id else "")
        + "order by run_started_at desc, run_id desc limit 1"
    ).format(contract.RUNS.identifier)
    row = conn.execute(query, (run_id,) if run_id else ()).fetchone()
    return Run(*row) if row else None


def set_baseline(conn: psycopg.Connection, config: ProjectConfig, run_id: str) -> Run:
    """Pin RUN_ID (or `latest`) as the baseline; returns the pinned run."""
    _runs_exist(conn)
    run = _run(conn, None if run_id == "latest" else run_id)
    if run is None:
        raise BaselineError(
            f"no run {run_id!r} in {contract.RUNS}"
            if run_id != "latest"
            else f"{contract.RUNS} has no runs yet: run `embed-udfs refresh` first."
        )
    table = contract.baseline(config).identifier
    conn.execute(
        sql.SQL(
            "create table if not exists {} (run_id text not null, pinned_at timestamptz not null)"
        ).format(table)
    )
    conn.execute(sql.SQL("delete from {}").format(table))
    conn.execute(sql.SQL("insert into {} values (%s, now())").format(table), (run.run_id,))
    conn.commit()
    return run


def show_baseline(conn: psycopg.Connection, config: ProjectConfig) -> Run | None:
    """The pinned run, or None when no baseline is pinned."""
    table = contract.baseline(config)
    if not contract.exists(conn, table):
        return None
    row = conn.execute(sql.SQL("select run_id from {}").format(table.identifier)).fetchone()
    if row is None:
        return None
    _runs_exist(conn)
    run = _run(conn, row[0])
    if run is None:
        raise BaselineError(
            f"the pinned baseline {row[0]!r} is not in {contract.RUNS} (was the table rebuilt "
            "with --full-refresh?): pin another with `embed-udfs baseline set RUN_ID|latest`."
        )
    return run


def clear_baseline(conn: psycopg.Connection, config: ProjectConfig) -> bool:
    """Unpin the baseline; whether one was pinned."""
    table = contract.baseline(config)
    if not contract.exists(conn, table):
        return False
    cleared = conn.execute(sql.SQL("delete from {}").format(table.identifier)).rowcount
    conn.commit()
    return bool(cleared)
