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
