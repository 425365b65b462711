"""docs/scale-out.md lists the SQL constructs of models/ and macros/ that Citus
restricts in queries over several shards; this holds the list to the SQL, so
that a model gaining (or losing) one cannot leave the page stale silently.

The constructs are found in the SQL text with its comments removed (dbt's
Jinja stays: a construct a macro emits is found in the macro's file):
    recursive-cte     WITH RECURSIVE
    window            a window function whose PARTITION BY does not name a
                      product id (OVER () included)
    lateral-subquery  LATERAL (SELECT ...): a subquery correlated with the
                      rows before it (LATERAL VALUES and LATERAL unnest() are
                      not subqueries over a table, and are not counted)
    exists-subquery   EXISTS (SELECT ...)
    grouping-sets     GROUPING SETS, ROLLUP, CUBE
    hnsw-index        CREATE INDEX ... USING hnsw
and three that no model may use at all: a session SET (Citus passes no SET
to the workers; SET LOCAL reaches them with citus.propagate_set_commands),
TABLESAMPLE and SELECT ... FOR UPDATE (single-shard only).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "scale-out.md"
START, END = "<!-- citus-constructs:start -->", "<!-- citus-constructs:end -->"

LISTED = (
    "recursive-cte",
    "window",
    "lateral-subquery",
    "exists-subquery",
    "grouping-sets",
    "hnsw-index",
)
FORBIDDEN = ("session-set", "tablesample", "for-update")


def without_comments(text: str) -> str:
    """SQL with Jinja comments and SQL line comments blanked out."""
    text = re.sub(r"\{#.*?#\}", " ", text, flags=re.S)
    return re.sub(r"--[^\n]*", " ", text)


def window_partitions(text: str) -> list[str]:
    """The PARTITION BY list of every OVER (...) in `text` ('' when none)."""
    partitions = []
    for match in re.finditer(r"\bover\s*\(", text, flags=re.I):
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        clause = text[match.end() : end - 1]
        partition = re.search(
            r"\bpartition\s+by\b(.*?)(?:\border\s+by\b|\brows\b|\brange\b|\bgroups\b|$)",
            clause,
            flags=re.I | re.S,
        )
        partitions.append(partition.group(1) if partition else "")
    return partitions


def constructs(sql: str) -> set[str]:
    """The restricted constructs in one file's SQL (see the module docstring)."""
    text = without_comments(sql).lower()
    found = set()
    if re.search(r"\bwith\s+recursive\b", text):
        found.add("recursive-cte")
    if any(not re.search(r"\b\w*product_id\b", p) for p in window_partitions(text)):
        found.add("window")
    if re.search(r"\blateral\s*\(\s*select\b", text):
        found.add("lateral-subquery")
    if re.search(r"\bexists\s*\(\s*select\b", text):
        found.add("exists-subquery")
    if re.search(r"\bgrouping\s+sets\b|\brollup\s*\(|\bcube\s*\(", text):
        found.add("grouping-sets")
    if re.search(r"\bcreate\s+(unique\s+)?index\b[^;]*?\busing\s+hnsw\b", text, flags=re.S):
        found.add("hnsw-index")
    # a statement (at a line's start, after `;` or opening a hook's string) that sets a
    # setting for the session; ALTER ... SET STORAGE, Jinja's {% set %} and the SET of an
    # UPDATE (on its own line or not) do not match
    statements = re.sub(r"\bupdate\s+[^;]*?\bset\b", "update ", text, flags=re.S)
    if re.search(
        r"(?:^|;|[\"'])\s*set\s+(?!local\b)(?:session\s+)?[a-z_][a-z_.]*\s*(?:=|to\b)",
        statements,
        flags=re.M,
    ):
        found.add("session-set")
    if re.search(r"\btablesample\b", text):
        found.add("tablesample")
    if re.search(r"\bfor\s+(no\s+key\s+)?update\b", text):
        found.add("for-update")
    return found


def sql_files() -> list[Path]:
    return sorted([*ROOT.glob("models/**/*.sql"), *ROOT.glob("macros/**/*.sql")])


def found_in_sql() -> dict[str, set[str]]:
    """{file relative to the root: its constructs} for every file that has one."""
    result = {}
    for path in sql_files():
        found = constructs(path.read_text())
        if found:
            result[path.relative_to(ROOT).as_posix()] = found
    return result


def listed_on_page() -> dict[str, set[str]]:
    """{file: constructs} from the page's table between the two markers: the first
    column names the file, the second its constructs, each in backticks."""
    text = PAGE.read_text()
    assert START in text and END in text, f"{PAGE} lost its {START} ... {END} table"
    rows: dict[str, set[str]] = {}
    for line in text.split(START, 1)[1].split(END, 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        file = cells[0].strip("`")
        assert file not in rows, f"{PAGE}: {file} has two rows in the constructs table"
        rows[file] = set(re.findall(r"`([a-z-]+)`", cells[1]))
    return rows


# --- the detectors, on SQL whose answer is known ------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("with recursive r as (select 1) select * from r", {"recursive-cte"}),
        ("-- with recursive, in a comment\nselect 1", set()),
        ("{# with recursive, in a Jinja comment #} select 1", set()),
        ("select row_number() over (partition by product_id order by x) from t", set()),
        ("select row_number() over (partition by q.query_product_id order by d) from q", set()),
        ("select min(product_id) over (partition by text_clean) from t", {"window"}),
        ("select row_number() over () from t", {"window"}),
        ("select rank() over (order by product_id) from t", {"window"}),
        (
            "select sum(x) over (partition by (a) order by b rows 1 preceding)",
            {"window"},
        ),
        (
            "select * from q cross join lateral (select * from g order by d limit 5) as n",
            {"lateral-subquery"},
        ),
        ("select * from m cross join lateral (values ('a', m.a)) as v (k, x)", set()),
        ("select * from m cross join lateral unnest(m.xs) as u (x)", set()),
        ("select * from q where exists (select 1 from g where g.id = q.id)", {"exists-subquery"}),
        ("select a, count(*) from t group by grouping sets ((a), ())", {"grouping-sets"}),
        ("select a, count(*) from t group by rollup (a)", {"grouping-sets"}),
        (
            "create index on t using hnsw ((e::vector(3)) vector_cosine_ops) where s = 'x'",
            {"hnsw-index"},
        ),
        ("create index on t using btree (product_id)", set()),
        ('{{ config(pre_hook="set local hnsw.ef_search = 100") }} select 1', set()),
        ('{{ config(pre_hook="set hnsw.ef_search = 100") }} select 1', {"session-set"}),
        ("set session work_mem to '1GB';\nselect 1", {"session-set"}),
        ("select 1;\nset enable_seqscan = off", {"session-set"}),
        ("alter table t alter column embedding set storage plain;", set()),
        ("alter table t set (toast_tuple_target = 8160);", set()),
        ("update groups as g\n    set label = 1\n    where g.id = 2;\nselect 1", set()),
        ("update groups as g\n    set label = 1;\nset work_mem = '1GB'", {"session-set"}),
        ("{%- set spaces = near_duplicate_space_names() %}\nselect 1", set()),
        ("select * from t tablesample system (1)", {"tablesample"}),
        ("select * from t where id = 1 for update", {"for-update"}),
    ],
)
def test_constructs_are_found(sql: str, expected: set[str]) -> None:
    assert constructs(sql) == expected


def test_page_table_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "scale-out.md"
    page.write_text(
        f"before\n{START}\n| file | constructs | scope |\n|---|---|---|\n"
        "| `models/a.sql` | `window`, `lateral-subquery` | whole catalog |\n"
        "| `macros/b.sql` | `grouping-sets` | eval sample |\n"
        f"{END}\n| `models/c.sql` | `window` | outside the markers |\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PAGE", page)
    assert listed_on_page() == {
        "models/a.sql": {"window", "lateral-subquery"},
        "macros/b.sql": {"grouping-sets"},
    }


# --- the page against the SQL -------------------------------------------------------


def test_no_model_uses_what_citus_runs_on_one_shard_only() -> None:
    offenders = {
        file: sorted(found & set(FORBIDDEN))
        for file, found in found_in_sql().items()
        if found & set(FORBIDDEN)
    }
    assert not offenders, (
        f"{offenders}: a session SET does not reach Citus workers (use SET LOCAL in a "
        "pre_hook), and TABLESAMPLE and FOR UPDATE run on one shard only; "
        "see docs/scale-out.md"
    )


def test_page_lists_every_restricted_construct_the_sql_uses() -> None:
    in_sql = {file: found - set(FORBIDDEN) for file, found in found_in_sql().items()}
    in_sql = {file: found for file, found in in_sql.items() if found}
    on_page = listed_on_page()
    unknown = {file: sorted(c - set(LISTED)) for file, c in on_page.items() if c - set(LISTED)}
    assert not unknown, f"docs/scale-out.md names constructs this test does not know: {unknown}"
    missing = {
        file: sorted(found - on_page.get(file, set()))
        for file, found in in_sql.items()
        if found - on_page.get(file, set())
    }
    stale = {
        file: sorted(listed - in_sql.get(file, set()))
        for file, listed in on_page.items()
        if listed - in_sql.get(file, set())
    }
    assert not missing and not stale, (
        "docs/scale-out.md's constructs table no longer matches the SQL. "
        f"Used but not listed (add them, with what Citus does and what to do): {missing}. "
        f"Listed but no longer used (take them off): {stale}."
    )
