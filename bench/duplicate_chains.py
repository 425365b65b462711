"""Benchmark: duplicate groups of one long chain of near-duplicate links, by the
label propagation of int_duplicate_components (macros/dedup.sql, run on the same
table the model builds) against the recursive transitive closure it replaced,
which stops at --timeout.

    python bench/duplicate_chains.py [--products 5045] [--timeout 180]

The chain joins every product (ids shuffled, so the smallest sits anywhere) with
shortcuts two or three steps ahead, as real near-duplicate links give.
"""

from __future__ import annotations

import argparse
import random
import time

import psycopg
from _scratch import PROJECT_DIR, machine, scratch_database

from embed_udfs.db import connection

CLOSURE = """
with recursive edges as (
    select product_id, duplicate_id as linked_id from pairs
    union select duplicate_id, product_id from pairs
),
reachable (product_id, member_id) as (
    select distinct product_id, product_id from edges
    union
    select reachable.product_id, edges.linked_id
    from reachable inner join edges on reachable.member_id = edges.product_id
)
select count(*) from (select product_id, min(member_id) from reachable group by product_id) as c
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=5045)
    parser.add_argument("--timeout", type=int, default=180)
    args = parser.parse_args()
    print(machine())
    rng = random.Random(1)
    ids = [f"P{i:06d}" for i in range(args.products)]
    rng.shuffle(ids)
    links = {tuple(sorted(pair)) for pair in zip(ids, ids[1:], strict=False)}
    for _ in range(3 * args.products):
        i = rng.randrange(args.products - 3)
        links.add(tuple(sorted((ids[i], ids[i + rng.randint(2, 3)]))))
    macro = (PROJECT_DIR / "macros" / "dedup.sql").read_text()
    start = macro.index("do $$")
    propagate = macro[start : macro.index("{% endmacro %}", start)]
    propagate = propagate.replace("{{ components }}", "components").replace("{{ pairs }}", "pairs")
    with scratch_database() as settings, connection(settings) as conn:
        conn.autocommit = True
        conn.execute("create table pairs (product_id text, duplicate_id text)")
        with conn.cursor().copy("copy pairs from stdin") as copy:
            for pair in sorted(links):
                copy.write_row(pair)
        conn.execute("analyze pairs")
        started = time.perf_counter()
        conn.execute(
            "create table components as select product_id, "
            "least(product_id, min(linked_id)) as duplicate_group_id from ("
            "select product_id, duplicate_id as linked_id from pairs union all "
            "select duplicate_id, product_id from pairs) as ends group by product_id"
        )
        conn.execute(propagate)
        took = time.perf_counter() - started
        (groups,) = conn.execute(
            "select count(distinct duplicate_group_id) from components"
        ).fetchone()  # type: ignore[misc]
        print(
            f"{args.products} products, {len(links)} links: label propagation {took:.2f}s, "
            f"{groups} group(s)"
        )
        conn.execute(f"set statement_timeout = '{args.timeout}s'")
        started = time.perf_counter()
        try:
            conn.execute(CLOSURE).fetchone()
            print(f"recursive closure {time.perf_counter() - started:.2f}s")
        except psycopg.errors.QueryCanceled:
            print(f"recursive closure: stopped at the {args.timeout} s timeout")


if __name__ == "__main__":
    main()
