"""Deduplication on planted duplicates whose groups are known, checked against
a Python reference (text recipe, union-find, brute-force distances) on the real
database; the near-duplicate search's plan; dedup-tolerant retrieval against
numpy."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from conftest import PROJECT_DIR, config_for, dbt_build, planted_config, planted_space, query
from dedup_reference import (
    classes,
    clean_no_boilerplate,
    components,
    near_pairs,
)
from psycopg import sql
from reference import TIE_EPS, exact_ranks, recall_at, unit

from embed_udfs import store
from embed_udfs.config import ProjectConfig
from embed_udfs.db import ConnectionSettings, connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.store import PRODUCTS_DDL

SECTIONS = ["bags", "shoes", "lamps", "toys"]
WORDS = ["red", "blue", "green", "leather", "canvas", "wool", "vintage", "modern", "tote", "lamp"]
STORES = ["Shop4U", "TrendyHub", "Corner Shop", None]
MAX_DISTANCE = 0.02

Listing = tuple[str, str | None, str | None, str, str | None]


def _spaces(dim_m: int = 32, dim: int = 16) -> list[dict]:
    marked = {**planted_space("m", "text", dim_m, family="minilm"), "near_duplicates": True}
    return [planted_space("t", "text", dim), planted_space("i", "image", dim), marked]


def _vars(**extra) -> dict:
    return planted_config(
        _spaces(),
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        near_duplicate_max_distance=MAX_DISTANCE,
        **extra,
    )


def plant_listings(
    settings: ConnectionSettings,
    config: ProjectConfig,
    listings: Sequence[Listing],
    vectors: Mapping[str, tuple[list[str], np.ndarray, list[str]]],
) -> None:
    """Replace the catalog with full listings; write (ids, matrix, input hashes) per space."""
    with connection(settings) as conn:
        conn.execute(PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("truncate catalog.products")
        conn.execute(sql.SQL("truncate {}").format(store.vectors_table(config)))
        conn.execute(sql.SQL("truncate {}").format(store.errors_table(config)))
        with conn.cursor().copy(
            "copy catalog.products (product_id, product_name, product_description, "
            "collection_section, store_name) from stdin"
        ) as copy:
            for listing in listings:
                copy.write_row(listing)
        for space, (ids, matrix, hashes) in vectors.items():
            store.write_vectors(conn, config, config.space(space), ids, hashes, matrix, "planted")
        conn.commit()


def _near(vector: np.ndarray, rng: np.random.Generator, distance: float) -> np.ndarray:
    """A unit vector at about the given cosine distance from `vector`."""
    v = vector / np.linalg.norm(vector)
    noise = rng.normal(size=v.shape)
    noise -= (noise @ v) * v
    noise /= np.linalg.norm(noise)
    angle = np.arccos(1 - distance)
    return np.cos(angle) * v + np.sin(angle) * noise


@pytest.fixture(scope="module")
def planted(db, tmp_path_factory):
    """300 distinct listings plus planted exact-text, exact-image and near duplicates,
    decoys just beyond the threshold, a chain and a triple."""
    rng = np.random.default_rng(21)
    pick = random.Random(21)
    listings: list[Listing] = []
    for i in range(300):
        words = " ".join(pick.sample(WORDS, 3))
        listings.append(
            (
                f"P{i:04d}",
                f"{words.title()} model {i}",
                f"A {pick.choice(WORDS)} piece, number {i}.",
                SECTIONS[i % len(SECTIONS)],
                pick.choice(STORES),
            )
        )
    m = {p[0]: rng.normal(size=32) for p in listings}
    images = {p[0]: f"h{p[0]}" for p in listings}
    next_id = iter(range(300, 1000))

    def add(base: Listing, name: str | None, description: str | None, store_name=None) -> str:
        product_id = f"P{next(next_id):04d}"
        listings.append((product_id, name, description, base[3], store_name))
        m[product_id] = rng.normal(size=32)
        images[product_id] = f"h{product_id}"
        return product_id

    # exact text: the same listing, shouted, with emoji, a store tag and boilerplate
    text_copies = []
    for base in listings[10:22]:
        copy = add(
            base,
            f"[Shop4U] {base[1].upper()} 🔥!!!",
            f"{base[2]} Free shipping on orders over $50.",
            "Shop4U",
        )
        text_copies.append((base[0], copy))
    # a triple: two more copies of one listing
    for _ in range(2):
        add(listings[3], listings[3][1], listings[3][2] + " 30-day hassle-free returns.")
    # exact image: new words, the same image bytes
    for base in listings[30:40]:
        copy = add(base, f"Other thing {base[0]}", None)
        images[copy] = images[base[0]]
    # near: new words, a vector at distance 0.002 in the marked space
    for base in listings[50:60]:
        copy = add(base, f"Relisted item {base[0]}", None)
        m[copy] = _near(m[base[0]], rng, 0.002)
    # decoys: distance 0.05, beyond the threshold
    for base in listings[70:80]:
        copy = add(base, f"Similar item {base[0]}", None)
        m[copy] = _near(m[base[0]], rng, 0.05)
    # a chain: copy of P0001's text, and a near duplicate of the copy
    chain_copy = add(listings[1], listings[1][1], listings[1][2], listings[1][4])
    chain_near = add(listings[1], "Unrelated words", None)
    m[chain_near] = _near(m[chain_copy], rng, 0.003)
    # P0002 has no image vector, so its copy represents their group
    add(listings[2], listings[2][1].lower(), listings[2][2])
    # no text at all: not duplicates of each other
    add(listings[0], None, None)
    add(listings[0], None, None)

    ids = [p[0] for p in listings]
    with_image = [p for p in ids if p != "P0002"]
    t = rng.normal(size=(len(ids), 16))
    i = rng.normal(size=(len(with_image), 16))
    matrix_m = np.stack([m[p] for p in ids])
    dbt_vars = _vars()
    plant_listings(
        db,
        config_for(dbt_vars),
        listings,
        {
            "t": (ids, t, [f"t{p}" for p in ids]),
            "i": (with_image, i, [images[p] for p in with_image]),
            "m": (ids, matrix_m, [f"m{p}" for p in ids]),
        },
    )
    dbt_build(db, dbt_vars, tmp_path_factory.mktemp("dedup"))
    return listings, matrix_m, images, set(with_image), text_copies


def _reference_groups(listings, matrix_m, images, evaluable):
    ids = [p[0] for p in listings]
    texts = {p[0]: clean_no_boilerplate(p[1], p[2], p[4]) for p in listings}
    text_classes = classes(texts)
    image_classes = classes({p: images[p] for p in evaluable})
    near = near_pairs(ids, matrix_m, MAX_DISTANCE)
    links = [(c[0], other) for c in text_classes + image_classes for other in c[1:]]
    group_of = components(ids, [*links, *near])
    reasons: dict[str, set[str]] = {p: set() for p in ids}
    for kind, found in (("exact_text", text_classes), ("exact_image", image_classes)):
        for members in found:
            for p in members:
                reasons[p].add(kind)
    for a, b in near:
        reasons[a].add("near_duplicate")
        reasons[b].add("near_duplicate")
    members: dict[str, list[str]] = {}
    for p, g in group_of.items():
        members.setdefault(g, []).append(p)
    representative = {
        g: min((p for p in ms if p in evaluable), default=min(ms)) for g, ms in members.items()
    }
    return group_of, members, representative, reasons, near


def test_near_duplicates_match_brute_force(db, planted):
    listings, matrix_m, *_ = planted
    expected = near_pairs([p[0] for p in listings], matrix_m, MAX_DISTANCE)
    assert len(expected) == 11  # 10 planted + the chain; decoys at 0.05 stay out
    found = {
        (a, b)
        for a, b in query(
            db, "select product_id, neighbour_id from intermediate.int_near_duplicate_neighbours"
        )
    }
    assert found == expected


def test_duplicate_groups_match_the_reference(db, planted):
    listings, matrix_m, images, evaluable, text_copies = planted
    group_of, members, representative, reasons, _ = _reference_groups(
        listings, matrix_m, images, evaluable
    )
    rows = query(
        db,
        "select product_id, duplicate_group_id, group_size, is_representative, "
        "representative_id, reason from intermediate.int_duplicate_groups",
    )
    assert len(rows) == len(listings)
    for product_id, group_id, size, is_rep, rep_id, reason in rows:
        group = group_of[product_id]
        assert group_id == group, product_id
        assert size == len(members[group]), product_id
        assert rep_id == representative[group], product_id
        assert is_rep == (product_id == representative[group]), product_id
        assert reason == ("+".join(sorted(reasons[product_id])) or "unique"), product_id
    # the planted structure, spelled out
    for base, copy in text_copies:
        assert group_of[base] == group_of[copy]
    assert len(members[group_of["P0003"]]) == 3
    assert len(members[group_of["P0001"]]) == 3  # text copy + near duplicate of the copy
    assert representative[group_of["P0002"]] != "P0002"  # it has no image vector
    assert sum(len(ms) > 1 for ms in members.values()) == 12 + 1 + 10 + 10 + 1 + 1
    deduped = {p for (p,) in query(db, "select product_id from intermediate.int_products_deduped")}
    assert deduped == set(representative.values())


def test_pipeline_steps_report_each_removed_duplicate(db, planted):
    listings, matrix_m, images, evaluable, _ = planted
    group_of, members, representative, reasons, _ = _reference_groups(
        listings, matrix_m, images, evaluable
    )
    expected = Counter(
        "duplicate: " + "+".join(sorted(reasons[p]))
        for p in group_of
        if p != representative[group_of[p]]
    )
    rows = query(
        db,
        "select reason, n_rows, rows_in, rows_out from metrics.fct_pipeline_steps "
        "where step = 'dedup' and section = 'ALL' and outcome = 'removed'",
    )
    assert {reason: n for reason, n, _, _ in rows} == dict(expected)
    assert {(rows_in, rows_out) for *_, rows_in, rows_out in rows} == {
        (len(listings), len(members))
    }


def test_near_duplicate_search_uses_the_hnsw_index(db, planted, tmp_path):
    """The search compiled from analyses/ (as int_near_duplicate_neighbours runs it) is one
    HNSW index scan per product, not a sequential N^2 scan."""
    run_dbt(
        ["compile", "--select", "near_duplicate_search"],
        db,
        PROJECT_DIR,
        dbt_vars=_vars(),
        target_path=tmp_path / "target",
        quiet=True,
    )
    compiled = next((tmp_path / "target" / "compiled").rglob("near_duplicate_search.sql"))
    search = "\n".join(
        line for line in compiled.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    with connection(db) as conn:
        conn.execute("set hnsw.ef_search = 100")
        conn.execute("set enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.execute("explain " + search).fetchall())
        index_method = conn.execute(
            "select am.amname from pg_index i join pg_class c on c.oid = i.indexrelid "
            "join pg_am am on am.oid = c.relam "
            "where i.indrelid = 'intermediate.int_dedup_vectors'::regclass"
        ).fetchall()
    assert index_method == [("hnsw",)]
    assert "Index Scan using int_dedup_vectors_embedding_idx" in plan, plan
    assert "Order By" in plan and "<=>" in plan, plan
    assert "Seq Scan on int_dedup_vectors gallery" not in plan, plan


# dedup-tolerant retrieval -------------------------------------------------------------


def _tolerant_reference(queries, gallery, group_of, max_k):
    """Rank of the closest member of the positive's group, with tie bounds (float32 vs 64)."""
    sims = unit(queries) @ unit(gallery).T
    n = len(sims)
    groups = np.array(group_of)
    low = np.empty(n, dtype=np.int64)
    high = np.empty(n, dtype=np.int64)
    for q in range(n):
        members = np.nonzero(groups == groups[q])[0]
        best = sims[q, members].max()
        low[q] = 1 + (sims[q] > best + TIE_EPS).sum()
        high[q] = (sims[q] > best - TIE_EPS).sum()
    return low, high


@pytest.fixture(scope="module")
def duplicated_gallery(db, tmp_path_factory):
    """Groups of identical listings whose vectors are close copies: a duplicate's
    image often beats the positive, so strict and tolerant recall differ."""
    rng = np.random.default_rng(4)
    n_groups, dim = 120, 16
    sizes = rng.choice([1, 1, 2, 3], size=n_groups)
    listings, group_of, base = [], [], []
    for g, size in enumerate(sizes):
        centre = rng.normal(size=dim)
        for copy in range(size):
            listings.append(
                (f"G{g:03d}C{copy}", f"listing {g}", "the same words", SECTIONS[g % 4], None)
            )
            group_of.append(g)
            base.append(centre + 0.15 * rng.normal(size=dim))
    base = np.array(base)
    texts = base + 0.6 * rng.normal(size=base.shape)
    images = base + 0.6 * rng.normal(size=base.shape)
    ids = [p[0] for p in listings]
    spaces = [planted_space("t", "text", dim), planted_space("i", "image", dim)]
    pair = [{"name": "planted", "text_space": "t", "image_space": "i"}]
    dbt_vars = planted_config(
        spaces, pair, retrieval_search="exact", eval_dedup=False, eval_k_values=[1, 5, 10, 50]
    )
    plant_listings(
        db,
        config_for(dbt_vars),
        listings,
        {
            "t": (ids, texts, [f"t{p}" for p in ids]),
            "i": (ids, images, [f"i{p}" for p in ids]),
        },
    )
    dbt_build(db, dbt_vars, tmp_path_factory.mktemp("tolerant"))
    return ids, texts, images, group_of, dbt_vars


def test_dedup_tolerant_ranks_and_recall_match_numpy(db, duplicated_gallery):
    ids, texts, images, group_of, _ = duplicated_gallery
    ranks = dict(
        query(
            db,
            "select product_id, dedup_tolerant_rank from metrics.fct_retrieval_ranks "
            "where direction = 'text_to_image' and gallery_scope = 'sample'",
        )
    )
    strict = exact_ranks(texts, images)
    low, high = _tolerant_reference(texts, images, group_of, 50)
    assert (high - low).sum() <= 5, "too many near-ties for an exact comparison"
    assert (low < strict).sum() > 20, "planted duplicates should often beat the positive"
    for q, product_id in enumerate(ids):
        rank = ranks[product_id]
        if low[q] > 50:
            assert rank is None, product_id
        else:
            assert rank is not None and low[q] <= rank <= high[q], (product_id, rank, low[q])
    metrics = {
        m: (v, h, tv, th, share)
        for m, v, h, tv, th, share in query(
            db,
            "select metric, value, hits, dedup_tolerant_value, dedup_tolerant_hits, "
            "duplicate_miss_share from metrics.fct_retrieval_metrics "
            "where direction = 'text_to_image' and section = 'ALL' and gallery_scope = 'sample'",
        )
    }
    n = len(ids)
    for k in (1, 5, 10, 50):
        value, hits, tolerant, tolerant_hits, share = metrics[f"recall_at_{k}"]
        assert value == pytest.approx(recall_at(strict, k), abs=1e-12)  # strict unchanged
        assert tolerant == pytest.approx(recall_at(low, k), abs=1e-12)
        assert tolerant_hits == int((low <= k).sum())
        if hits == n:
            assert share is None  # no strict miss to explain
        else:
            assert share == pytest.approx((tolerant_hits - hits) / (n - hits), abs=1e-12)


def test_with_dedup_the_gallery_has_one_product_per_group(db, duplicated_gallery, tmp_path):
    ids, texts, images, group_of, dbt_vars = duplicated_gallery
    dbt_build(db, {**dbt_vars, "eval_dedup": True}, tmp_path, "int_eval_candidates+")
    sampled = [p for (p,) in query(db, "select product_id from intermediate.int_eval_sample")]
    assert len(sampled) == len(set(group_of))
    assert {p.split("C")[0] for p in sampled} == {p.split("C")[0] for p in ids}
    differing = query(
        db,
        "select count(*) from metrics.fct_retrieval_ranks "
        "where dedup_tolerant_rank is distinct from positive_rank or n_gallery_duplicates > 0",
    )
    assert differing == [(0,)]
