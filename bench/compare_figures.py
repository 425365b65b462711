"""Dump the demo's retrieval, gap and label figures to CSV, or compare two
dumps exactly: a refactor of the SQL must leave every figure unchanged.

    python bench/compare_figures.py dump DIR       # the current database's marts
    python bench/compare_figures.py compare BEFORE AFTER

Values are compared as Postgres prints them (float8 output is the shortest
text that round-trips, so equal text is equal bits). `computed_at` is left
out; rows are keyed by each mart's grain. New metrics in AFTER (rows whose
key is absent from BEFORE) are listed, not counted as differences.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from psycopg import sql

from embed_udfs.config import find_project_dir
from embed_udfs.db import ConnectionSettings, connection, resolve_settings

MARTS = {
    "fct_retrieval_metrics": ["pair", "direction", "section", "metric"],
    "fct_embedding_gaps": ["pair", "section", "metric"],
    "fct_label_metrics": ["space", "metric", "reduction", "section"],
}


def dump(out: Path, settings: ConnectionSettings | None = None) -> None:
    """Write each mart of `settings`' database (default: the project's) to out/<mart>.csv."""
    out.mkdir(parents=True, exist_ok=True)
    if settings is None:
        settings = resolve_settings(find_project_dir(Path(__file__).parent))
    with connection(settings) as conn:
        for mart, keys in MARTS.items():
            cursor = conn.execute(
                sql.SQL("select * from metrics.{} order by {}").format(
                    sql.Identifier(mart), sql.SQL(", ").join(map(sql.Identifier, keys))
                )
            )
            columns = [c.name for c in cursor.description if c.name != "computed_at"]
            # text output, so that nothing is rounded on the way to the file
            as_text = [sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns]
            text = conn.execute(
                sql.SQL("select {} from metrics.{} order by {}").format(
                    sql.SQL(", ").join(as_text),
                    sql.Identifier(mart),
                    sql.SQL(", ").join(map(sql.Identifier, keys)),
                )
            ).fetchall()
            with open(out / f"{mart}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                writer.writerows(text)
            print(f"{mart}: {len(text)} rows -> {out / (mart + '.csv')}")


# Columns that say when or by which invocation a row was made, not what it measures.
VOLATILE = {"run_id", "reference_run_id", "git_revision", "config_hash", "config_digest"}


def _volatile(column: str) -> bool:
    return column in VOLATILE or column.endswith("_at")


def dump_all(out: Path, settings: ConnectionSettings) -> list[str]:
    """Every table of the `metrics` schema to out/<table>.csv, all columns but the
    volatile ones, rows sorted as text; returns the tables dumped."""
    out.mkdir(parents=True, exist_ok=True)
    with connection(settings) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "select tablename from pg_tables where schemaname = 'metrics' order by 1"
            )
        ]
        for table in tables:
            relation = sql.Identifier("metrics", table)
            described = conn.execute(sql.SQL("select * from {} limit 0").format(relation))
            columns = [c.name for c in described.description or () if not _volatile(c.name)]
            as_text = sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns
            )
            rows = conn.execute(sql.SQL("select {} from {}").format(as_text, relation)).fetchall()
            rows.sort(key=lambda row: tuple("" if v is None else v for v in row))
            with open(out / f"{table}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                writer.writerows(rows)
    return tables


def compare_all(before: Path, after: Path) -> int:
    """Every table dumped by dump_all: the same columns and the same rows, exactly."""
    differences = 0
    old_tables = {p.stem for p in before.glob("*.csv")}
    new_tables = {p.stem for p in after.glob("*.csv")}
    for table in sorted(old_tables - new_tables):
        print(f"{table}: missing after")
        differences += 1
    for table in sorted(new_tables - old_tables):
        print(f"{table}: new after (not compared)")
    for table in sorted(old_tables & new_tables):
        old = (before / f"{table}.csv").read_text().splitlines()
        new = (after / f"{table}.csv").read_text().splitlines()
        same = old == new
        differences += not same
        print(f"{table}: {len(old) - 1} rows, {'identical' if same else 'DIFFERENT'}")
        if not same:
            print(f"  columns before: {old[:1]}\n  columns after:  {new[:1]}")
            for line in sorted(set(old[1:]) ^ set(new[1:]))[:5]:
                print(f"  {'-' if line in old else '+'} {line[:200]}")
    print("identical" if differences == 0 else f"{differences} tables differ")
    return 1 if differences else 0


def _read(path: Path, keys: list[str]) -> dict[tuple, dict[str, str]]:
    with open(path, newline="") as f:
        return {tuple(row[k] for k in keys): row for row in csv.DictReader(f)}


def compare(before: Path, after: Path) -> int:
    differences = 0
    for mart, keys in MARTS.items():
        old, new = _read(before / f"{mart}.csv", keys), _read(after / f"{mart}.csv", keys)
        missing = sorted(set(old) - set(new))
        added = sorted(set(new) - set(old))
        changed = [
            (key, column, old[key][column], new[key].get(column))
            for key in sorted(set(old) & set(new))
            for column in old[key]
            if old[key][column] != new[key].get(column)
        ]
        differences += len(missing) + len(changed)
        print(
            f"{mart}: {len(old)} rows before, {len(set(old) & set(new))} compared, "
            f"{len(changed)} values differ, {len(missing)} rows missing, {len(added)} new rows"
        )
        for key, column, a, b in changed[:10]:
            print(f"  {key} {column}: {a} -> {b}")
        for key in missing[:10]:
            print(f"  missing {key}")
        if added:
            print(f"  new metrics: {sorted({key[-1] for key in added})}")
    print("identical" if differences == 0 else f"{differences} differences")
    return 1 if differences else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dump").add_argument("out", type=Path)
    compare_parser = commands.add_parser("compare")
    compare_parser.add_argument("before", type=Path)
    compare_parser.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.out)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
