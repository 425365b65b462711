"""Loading a user's catalog (CSV, Parquet or JSON lines) into the products
relation of the data contract: columns mapped, every row validated before
anything is written, then one transaction that replaces or upserts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from embed_udfs import extras, store
from embed_udfs.config import ProjectConfig
from embed_udfs.errors import EmbedUdfsError
from embed_udfs.terminal import clean

log = logging.getLogger(__name__)

REQUIRED = ("product_id", "product_name", "collection_section")
ALIASES = {
    "id": "product_id",
    "name": "product_name",
    "description": "product_description",
    "section": "collection_section",
    "store": "store_name",
    "image": "image_uri",
}
# Longer values are almost always a mis-mapped column (a whole description in
# the id, a base64 image in image_uri); the text models read far less anyway.
MAX_CHARS = {"product_id": 256, "collection_section": 1_000, "image_uri": 4_096}
MAX_TEXT_CHARS = 100_000
# The csv module refuses fields over 131,072 characters by default; fields well
# past MAX_TEXT_CHARS must still be read, so that they are reported with their lines.
CSV_FIELD_LIMIT = 4 * 1024 * 1024
SHOWN = 10  # offending rows named per problem
# Every mart's overall rows have section = 'ALL'; a catalog section of that name
# (as staging trims it: spaces only, case kept) would be read as the overall figure.
RESERVED_SECTION = "ALL"
# Catalog exports often join a product's images with "|"; image_uri holds one.
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S")


class LoadError(EmbedUdfsError):
    """The file cannot be loaded as it is; nothing was written."""


@dataclass(frozen=True)
class LoadSummary:
    relation: str
    path: Path
    rows: int
    inserted: int
    updated: int
    replaced: bool
    several_images: int = 0  # rows whose image field held several "|"-joined URLs
    # where collection_section is a path: distinct sections per level, level 1 first
    section_levels: tuple[int, ...] = ()
    separator: str | None = None

    def line(self) -> str:
        how = "replaced the table with" if self.replaced else "upserted"
        text = f"{self.relation}: {how} {self.rows} rows from {clean(self.path, max_width=None)}"
        if not self.replaced:
            text += f" ({self.inserted} new, {self.updated} updated)"
        if self.several_images:
            text += (
                f"\n{self.several_images} rows had several image URLs joined by '|'; the first "
                "of each was kept (image_uri holds one image per product)"
            )
        if len(self.section_levels) > 1:
            counts = ", ".join(
                f"{count} at level {level}" for level, count in enumerate(self.section_levels, 1)
            )
            text += (
                f"\ncollection_section is a path ({self.separator!r} between levels): {counts} "
                "(the last are the leaves); the metrics are reported per level "
                "(docs/evaluation-protocol.md#section-levels)"
            )
        return text


@dataclass(frozen=True)
class CheckedRows:
    """A file's rows in store.PRODUCTS_COLUMNS order, ready to write."""

    rows: list[tuple[str | None, ...]]
    several_images: int
    section_levels: tuple[int, ...] = ()


def parse_mapping(specs: Sequence[str]) -> dict[str, str]:
    """'name=Product Name,section=Category' (repeatable) -> {contract column: file column}."""
    mapping: dict[str, str] = {}
    for spec in specs:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            target, sep, source = part.partition("=")
            column = ALIASES.get(target.strip(), target.strip())
            if not sep or not source.strip():
                raise LoadError(f"--map {part!r}: expected COLUMN=FILE COLUMN, e.g. name=Title")
            if column not in store.PRODUCTS_COLUMNS:
                raise LoadError(
                    f"--map {part!r}: {target.strip()!r} is not a products column; use one of "
                    f"{', '.join(store.PRODUCTS_COLUMNS)} (or {', '.join(ALIASES)})."
                )
            mapping[column] = source.strip()
    return mapping


def require_reader(path: Path) -> None:
    """Refuse a file type whose reader is not installed (Parquet needs the parquet
    extra), before any work."""
    if path.name.lower().endswith(".parquet"):
        extras.require(extras.PARQUET, "embed-udfs load FILE.parquet")


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[str, dict[str, object]]]]:
    """The file's column names and its records as (where, {column: value})."""
    suffix = "".join(path.suffixes[-2:]).lower()
    if not path.is_file():
        raise LoadError(f"{clean(path, max_width=None)}: no such file.")
    if suffix.endswith(".parquet"):
        return _read_parquet(path)
    if suffix.endswith((".jsonl", ".ndjson")):
        return _read_jsonl(path)
    if suffix.endswith((".csv", ".tsv", ".txt")):
        return _read_csv(path, delimiter="\t" if suffix.endswith(".tsv") else ",")
    raise LoadError(
        f"{clean(path, max_width=None)}: unknown file type; use .csv, .tsv, .parquet or .jsonl."
    )


def _read_csv(path: Path, delimiter: str):
    # Undecodable bytes become lone surrogates, so the rows that hold them can be named.
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def unreadable(exc: csv.Error) -> LoadError:
        return LoadError(
            f"{clean(path, max_width=None)}: line {reader.line_num} cannot be read ({exc}): "
            f"fields are read up to {CSV_FIELD_LIMIT} characters, and an unclosed quote makes "
            "the rest of the file one field. Nothing was loaded; fix the file and load it again."
        )

    try:
        header = next(reader)
    except StopIteration:
        raise LoadError(f"{clean(path, max_width=None)}: the file is empty.") from None
    except csv.Error as exc:
        raise unreadable(exc) from None

    def rows() -> Iterator[list[str]]:
        try:
            yield from reader
        except csv.Error as exc:
            raise unreadable(exc) from None

    def records():
        for values in rows():
            if not any(values):
                continue
            where = f"line {reader.line_num}"
            if len(values) != len(header):
                yield where, {"__error__": f"{len(values)} fields, the header has {len(header)}"}
                continue
            yield where, dict(zip(header, values, strict=True))

    return header, records()


def _read_jsonl(path: Path):
    lines = path.read_bytes().decode("utf-8", errors="surrogateescape").splitlines()
    parsed: list[tuple[str, dict[str, object]]] = []
    columns: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            parsed.append((f"line {number}", {"__error__": f"not JSON ({exc.msg})"}))
            continue
        if not isinstance(record, dict):
            parsed.append((f"line {number}", {"__error__": "not a JSON object"}))
            continue
        columns.update(dict.fromkeys(record))
        parsed.append((f"line {number}", record))
    return list(columns), iter(parsed)


def _read_parquet(path: Path):
    require_reader(path)
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise LoadError(
            f"{clean(path, max_width=None)}: not a readable Parquet file: "
            f"{clean(exc, max_width=500)}"
        ) from exc
    names = table.column_names
    return names, ((f"row {i + 1}", row) for i, row in enumerate(table.to_pylist()))


def validate(
    header: Sequence[str],
    records: Iterator[tuple[str, Mapping[str, object]]],
    mapping: Mapping[str, str],
    path: Path,
    separator: str | None = "|",
) -> CheckedRows:
    """The rows to write; LoadError naming every offending row. Names from the file are
    cleaned of escape sequences and control characters before a message repeats them.
    A collection_section is kept as written; where it is a path (`separator` between
    levels, "Toys & Games | Puzzles | Jigsaw Puzzles") its levels are counted, and its
    first segment must not be a reserved name either."""
    where_file = clean(path, max_width=None)
    source = {column: mapping.get(column, column) for column in store.PRODUCTS_COLUMNS}
    unknown = [
        f"{c} -> {clean(repr(s), max_width=80)}"
        for c, s in source.items()
        if c in mapping and s not in header
    ]
    missing = [c for c in REQUIRED if source[c] not in header]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"required columns missing: {', '.join(missing)}")
        if unknown:
            parts.append(f"mapped columns not in the file: {', '.join(unknown)}")
        columns = ", ".join(clean(name, max_width=80) for name in header)
        raise LoadError(
            f"{where_file}: {'; '.join(parts)}. The file's columns are: {columns}. "
            "Map them with --map, e.g. --map 'name=Title,section=Category'."
        )
    problems: dict[str, list[str]] = {}
    rows: list[tuple[str | None, ...]] = []
    first_seen: dict[str, str] = {}
    several_images = 0

    def problem(kind: str, where: str) -> None:
        problems.setdefault(kind, []).append(where)

    for where, record in records:
        if "__error__" in record:
            problem(f"unreadable rows ({clean(record['__error__'], max_width=200)})", where)
            continue
        row: list[str | None] = []
        for column in store.PRODUCTS_COLUMNS:
            value = record.get(source[column]) if source[column] in header else None
            text = None if value is None else str(value)
            if text is not None and text.strip() == "":
                text = None
            if column == "image_uri" and text is not None:
                urls = _several_urls(text)
                if urls:
                    text, several_images = urls[0], several_images + 1
            if text is not None and any("\udc80" <= ch <= "\udcff" for ch in text):
                problem(f"bytes that are not UTF-8 in {column}", where)
            elif text is not None and len(text) > MAX_CHARS.get(column, MAX_TEXT_CHARS):
                limit = MAX_CHARS.get(column, MAX_TEXT_CHARS)
                problem(f"{column} longer than {limit} characters", where)
            elif text is not None and "\0" in text:
                problem(f"a NUL character in {column}", where)
            elif column == "collection_section" and _is_reserved_section(text, separator):
                problem(RESERVED_SECTION_PROBLEM, where)
            row.append(text)
        product_id = row[0]
        if product_id is None:
            problem("empty product_id", where)
        elif product_id in first_seen:
            problem(f"duplicate product_id (first at {first_seen[product_id]})", where)
        else:
            first_seen[product_id] = where
        rows.append(tuple(row))
    if problems:
        lines = []
        for kind, places in problems.items():
            shown = ", ".join(places[:SHOWN]) + (
                f" and {len(places) - SHOWN} more" if len(places) > SHOWN else ""
            )
            lines.append(f"  {kind}: {shown}")
        hint = RESERVED_SECTION_HINT if RESERVED_SECTION_PROBLEM in problems else ""
        raise LoadError(
            f"{where_file}: {sum(len(p) for p in problems.values())} problem(s); "
            "nothing was loaded.\n"
            + "\n".join(lines)
            + hint
            + "\nFix the file (or the --map) and load it again."
        )
    if not rows:
        raise LoadError(f"{where_file}: no rows to load.")
    section_at = store.PRODUCTS_COLUMNS.index("collection_section")
    levels = section_level_counts((row[section_at] for row in rows), separator)
    return CheckedRows(rows=rows, several_images=several_images, section_levels=levels)


RESERVED_SECTION_PROBLEM = f"collection_section {RESERVED_SECTION!r}, a reserved name"
RESERVED_SECTION_HINT = (
    f"\n  '{RESERVED_SECTION}' is reserved: every metric table's overall rows have "
    f"section = '{RESERVED_SECTION}', so a section of that name (with or without "
    "surrounding spaces) would be read as the whole catalog. Rename it in the file, e.g. "
    "to 'All products', or map another column with --map section=COLUMN."
)


def section_segments(text: str, separator: str | None) -> list[str]:
    """A section's path as stg_catalog__products normalises it: split on the separator,
    segments trimmed of spaces, empty ones dropped."""
    parts = text.split(separator) if separator else [text]
    return [part.strip(" ") for part in parts if part.strip(" ")]


def section_level_counts(sections: Iterable[str | None], separator: str | None) -> tuple[int, ...]:
    """Distinct sections at each level of the paths, level 1 first; a path shorter than
    the deepest counts as its own section at the deeper levels, as int_section_levels
    has it. () when no section has a value."""
    paths = {tuple(section_segments(s, separator)) for s in sections if s is not None}
    paths.discard(())
    depth = max((len(path) for path in paths), default=0)
    return tuple(len({path[:level] for path in paths}) for level in range(1, depth + 1))


def _is_reserved_section(text: str | None, separator: str | None = None) -> bool:
    # as stg_catalog__products compares it: trim() removes spaces only; on a path, the
    # first segment (the level-1 section) is what could be read as the overall row
    if text is None:
        return False
    segments = section_segments(text, separator)
    return bool(segments) and segments[0] == RESERVED_SECTION


def _several_urls(text: str) -> list[str]:
    """The URLs of a field that joins several with "|", else [] (a single value is kept)."""
    if "|" not in text:
        return []
    parts = [part.strip() for part in text.split("|") if part.strip()]
    return parts if len(parts) > 1 and all(_URL.match(part) for part in parts) else []


def load_catalog(
    conn: psycopg.Connection,
    config: ProjectConfig,
    path: Path,
    *,
    mapping: Mapping[str, str] | None = None,
    replace: bool = False,
) -> LoadSummary:
    """Validate the whole file, then replace or upsert the products relation in one transaction."""
    header, records = read_rows(path)
    separator = config.sections.separator
    checked = validate(header, records, mapping or {}, path, separator)
    rows = checked.rows
    relation = config.products_relation
    schema, _, table = relation.rpartition(".")
    target = sql.Identifier(schema or "public", table)
    columns = sql.SQL(", ").join(map(sql.Identifier, store.PRODUCTS_COLUMNS))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in store.PRODUCTS_COLUMNS[1:]
    )
    try:
        conn.execute(store.products_ddl(relation))
        conn.execute(
            sql.SQL(
                "create temp table _incoming_products (like {} including defaults) on commit drop"
            ).format(target)
        )
        with conn.cursor().copy(
            sql.SQL("copy _incoming_products ({}) from stdin").format(columns)
        ) as copy:
            for row in rows:
                copy.write_row(row)
        if replace:
            conn.execute(sql.SQL("truncate {}").format(target))
        counted = conn.execute(
            sql.SQL(
                "select count(*) from _incoming_products as i where exists "
                "(select 1 from {} as p where p.product_id = i.product_id)"
            ).format(target)
        ).fetchone()
        existing = int(counted[0]) if counted else 0
        conn.execute(
            sql.SQL(
                "insert into {target} ({columns}) select {columns} from _incoming_products "
                "on conflict (product_id) do update set {updates}"
            ).format(target=target, columns=columns, updates=updates)
        )
        # no longer the demo catalog: the floors shipped for the demo only warn now
        store.mark_catalog(conn, relation, f"loaded by `embed-udfs load` from {path.name}")
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        raise LoadError(
            f"could not write {relation}: {str(exc).strip()}\nNothing was loaded. If "
            f"{relation} is a table of your own, it needs the columns "
            f"{', '.join(store.PRODUCTS_COLUMNS)} and a unique product_id; or point "
            "vars.products_relation at a new name and let `embed-udfs load` create it."
        ) from exc
    summary = LoadSummary(
        relation=relation,
        path=path,
        rows=len(rows),
        inserted=len(rows) - existing,
        updated=existing,
        replaced=replace,
        several_images=checked.several_images,
        section_levels=checked.section_levels,
        separator=separator,
    )
    log.info("%s", summary.line())
    return summary
