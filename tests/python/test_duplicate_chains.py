"""Duplicate groups grown by long chains of near-duplicate links: the components equal
union-find over the links the database found, the planted chains come out whole, and
the warn test names the group that outgrew the catalog."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from dedup_reference import components

SECTIONS = ["bags", "shoes", "lamps", "toys"]
MAX_DISTANCE = 0.02
STEP = 0.17  # radians between neighbours of a chain: cosine distance 0.0144; two steps 0.029
CHAIN = 160  # past 100 products and 1% of the catalog: the warn test names it
SHORT_CHAIN = 25


def _walk(rng: np.random.Generator, length: int, dim: int) -> np.ndarray:
    """Unit vectors, each STEP radians from the one before, in a fresh direction."""
    out = [rng.normal(size=dim)]
    out[0] /= np.linalg.norm(out[0])
    for _ in range(length - 1):
        v = out[-1]
        turn = rng.normal(size=dim)
        turn -= (turn @ v) * v
        turn /= np.linalg.norm(turn)
        out.append(np.cos(STEP) * v + np.sin(STEP) * turn)
    return np.stack(out)


@pytest.fixture(scope="module")
def chained(db, tmp_path_factory):
    rng = np.random.default_rng(5)
    shuffle = random.Random(5)
    loose = 300
    total = loose + CHAIN + SHORT_CHAIN
    ids = [f"P{i:04d}" for i in range(total)]
    # chain members get shuffled ids, so the smallest sits anywhere along the chain
    order = ids[loose:]
    shuffle.shuffle(order)
    chain, short_chain = order[:CHAIN], order[CHAIN:]
    dim = 64
    m = {p: v for p, v in zip(ids[:loose], rng.normal(size=(loose, dim)), strict=True)}
    m.update(zip(chain, _walk(rng, CHAIN, dim), strict=True))
    m.update(zip(short_chain, _walk(rng, SHORT_CHAIN, dim), strict=True))
    products = [(p, SECTIONS[i % len(SECTIONS)]) for i, p in enumerate(ids)]
    spaces = [
        planted_space("t", "text", 8),
        planted_space("i", "image", 8),
        {**planted_space("m", "text", dim, family="minilm"), "near_duplicates": True},
    ]
    dbt_vars = planted_config(
        spaces,
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        near_duplicate_max_distance=MAX_DISTANCE,
        near_duplicate_k=4,
    )
    plant(
        db,
        config_for(dbt_vars),
        products,
        {
            "t": rng.normal(size=(total, 8)),
            "i": rng.normal(size=(total, 8)),
            "m": np.stack([m[p] for p in ids]),
        },
    )
    target = tmp_path_factory.mktemp("chains")
    dbt_build(db, dbt_vars, target, "+int_duplicate_groups")
    warned = dbt_build(db, dbt_vars, target, "assert_duplicate_groups_stay_small")
    return ids, chain, short_chain, warned


def test_components_equal_union_find_over_the_links(db, chained):
    ids, *_ = chained
    links = query(db, "select product_id, duplicate_id from intermediate.int_duplicate_pairs")
    expected = components(ids, links)
    rows = dict(
        query(db, "select product_id, duplicate_group_id from intermediate.int_duplicate_groups")
    )
    assert rows == expected
    sizes = dict(query(db, "select product_id, group_size from intermediate.int_duplicate_groups"))
    members: dict[str, int] = {}
    for group in expected.values():
        members[group] = members.get(group, 0) + 1
    assert sizes == {p: members[g] for p, g in expected.items()}


def test_planted_chains_are_one_group_each(db, chained):
    _, chain, short_chain, _ = chained
    # each link of a chain is 0.0144 apart and two links 0.029: no shortcut joins it,
    # so only a walk along all of it puts it in one group
    rows = dict(
        query(db, "select product_id, duplicate_group_id from intermediate.int_duplicate_groups")
    )
    assert {rows[p] for p in chain} == {min(chain)}
    assert {rows[p] for p in short_chain} == {min(short_chain)}
    singletons = [p for p, g in rows.items() if p not in chain and p not in short_chain]
    assert all(rows[p] == p for p in singletons)


def test_a_group_past_one_percent_of_the_catalog_is_named(chained):
    _, chain, _, warned = chained
    (result,) = [
        r for r in warned.result.results if r.node.name == "assert_duplicate_groups_stay_small"
    ]
    assert str(result.status) == "warn"
    assert result.failures == 1  # the long chain; the short one stays under 100 products
