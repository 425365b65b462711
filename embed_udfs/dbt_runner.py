"""Runs dbt in-process through dbtRunner, pointed at the same database as
embed_udfs, and turns a failed invocation into an error the user can act on.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embed_udfs.config import stamp_vars
from embed_udfs.db import ConnectionSettings
from embed_udfs.errors import DbtError

log = logging.getLogger(__name__)


def run_dbt(
    args: Sequence[str],
    settings: ConnectionSettings,
    project_dir: Path,
    *,
    dbt_vars: Mapping[str, Any] | None = None,
    target_path: Path | None = None,
    quiet: bool = False,
    validate: bool = True,
) -> Any:
    """Invoke `dbt <args>` on the project; raise DbtError if it fails.

    The vars (the project's, `dbt_vars` on top) are validated first and dbt gets their
    digest, which its on-run-start guard checks (macros/config_guard.sql). validate=False
    runs dbt as a user running it directly would: unvalidated, without a digest.
    """
    from dbt.cli.main import dbtRunner

    if validate:
        dbt_vars = stamp_vars(project_dir, dbt_vars)

    command = [
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
    ]
    if dbt_vars:
        command += ["--vars", json.dumps(dict(dbt_vars))]
    if target_path is not None:
        command += ["--target-path", str(target_path)]
    if quiet:
        command = ["--quiet", *command]
    log.info("dbt %s", " ".join(command))
    saved = {key: os.environ.get(key) for key in settings.env()}
    os.environ.update(settings.env())  # profiles.yml reads the PG* variables
    try:
        result = dbtRunner().invoke(command)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if result.success:
        return result
    failed, skipped, failed_tests = [], 0, {}
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result, "status", ""))
        if status in ("error", "fail", "runtime error"):
            failed.append((node_result.node.unique_id, node_result.message))
            compiled = getattr(node_result.node, "compiled_code", None)
            if status == "fail" and compiled:
                failed_tests[node_result.node.unique_id] = compiled
        skipped += status == "skipped"
    detail = (
        "\n".join(f"  {node}: {message}" for node, message in failed)
        if failed
        else f"  {result.exception}"
    )
    raise DbtError(
        f"`dbt {' '.join(args)}` failed:\n{detail}\n"
        "See the dbt log above (or logs/dbt.log) for the SQL that ran.",
        failed_nodes=tuple(node for node, _ in failed) if not result.exception else (),
        skipped=skipped,
        failed_tests=failed_tests,
    )
