"""The whole-catalog gallery scope on planted data: the sampled queries ranked against
the sample, against every product in the catalog and against the tiers between them
(the sample and a fixed md5 draw of the catalog), each checked against numpy, and the
rule that a larger gallery holding the sample never ranks a positive better."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import (
    PROJECT_DIR,
    config_for,
    dbt_build,
    plant,
    planted_config,
    planted_space,
    query,
)
from reference import recall_at, unit, wilson

from embed_udfs import store
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.jobs.tune import store as tune_store
from embed_udfs.jobs.tune.job import tune

K_VALUES = [1, 5, 10, 50]
SECTIONS = ["bags", "shoes", "lamps", "toys"]
N_PRODUCTS = 900
SAMPLE = 240
DIM = 24
RANKED = ("int_text_to_image_neighbours+", "int_image_to_text_neighbours+")
TIERS = [2, 3, 10]  # 480 and 720 products of 900; ten times the sample is past the catalog


def _vars(**extra) -> dict:
    settings = {
        "eval_k_values": K_VALUES,
        "hnsw_ef_search": 400,
        "retrieval_search": "exact",
        "eval_sample_size": SAMPLE,
        "gallery_tiers": TIERS,
        **extra,
    }
    return planted_config(
        [planted_space("t", "text", DIM), planted_space("i", "image", DIM)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        **settings,
    )


def _numpy_ranks(queries: np.ndarray, gallery: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """1 + gallery items strictly closer (cosine) than each query's positive (a gallery row)."""
    sims = unit(queries) @ unit(gallery).T
    own = sims[np.arange(len(queries)), positive]
    return 1 + (sims > own[:, None]).sum(axis=1)


@pytest.fixture(scope="module")
def planted(db, tmp_path_factory):
    """Section clusters with noisy text/image pairs; the sample is a quarter of the catalog."""
    rng = np.random.default_rng(23)
    sections = rng.choice(SECTIONS, size=N_PRODUCTS)
    products = [(f"P{i:05d}", str(s)) for i, s in enumerate(sections)]
    centres = {s: rng.normal(size=DIM) * 1.2 for s in SECTIONS}
    base = np.stack([centres[s] + rng.normal(size=DIM) for _, s in products])
    texts = base + 1.0 * rng.normal(size=base.shape)
    images = base + 1.0 * rng.normal(size=base.shape)
    dbt_vars = _vars()
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})
    dbt_build(db, dbt_vars, tmp_path_factory.mktemp("gallery"))
    sampled = {p for (p,) in query(db, "select product_id from intermediate.int_eval_sample")}
    return products, texts, images, sampled


def _tiers(ids: np.ndarray, in_sample: np.ndarray, tiers=TIERS) -> dict[str, np.ndarray]:
    """The galleries between the sample and the catalog, as the rule in
    macros/gallery_tiers.sql states it: for each multiple m with s < m s < N, the sample
    and every other product whose first 32 bits of md5(product_id) fall below
    ceil((m s - s) 2^32 / (N - s)). {scope: row indexes of the catalog}."""
    s, n = int(in_sample.sum()), len(ids)
    draw = np.array([int(hashlib.md5(p.encode()).hexdigest()[:8], 16) for p in ids])
    out = {}
    for m in tiers:
        if s < m * s < n:
            bound = -(-(m * s - s) * 2**32 // (n - s))
            out[f"sample_x{m}"] = np.flatnonzero(in_sample | (draw < bound))
    return out


def _expected(products, texts, images, sampled):
    """numpy ranks per (scope, direction): {product_id: rank} for the sampled queries."""
    ids = np.array([p for p, _ in products])
    in_sample = np.array([p in sampled for p in ids])
    q_index = np.flatnonzero(in_sample)
    galleries = {"sample": q_index, **_tiers(ids, in_sample), "catalog": np.arange(len(ids))}
    out = {}
    for direction, (q, g) in {
        "text_to_image": (texts, images),
        "image_to_text": (images, texts),
    }.items():
        # each gallery: those products' other modality; the positive is in every one
        for scope, rows in galleries.items():
            position = {row: i for i, row in enumerate(rows)}
            ranks = _numpy_ranks(q[q_index], g[rows], np.array([position[i] for i in q_index]))
            out[(scope, direction)] = dict(zip(ids[q_index], ranks, strict=True))
    return out


def _gallery_sizes(products, sampled) -> dict[str, int]:
    ids = np.array([p for p, _ in products])
    in_sample = np.array([p in sampled for p in ids])
    tiers = {scope: len(rows) for scope, rows in _tiers(ids, in_sample).items()}
    return {"sample": len(sampled), **tiers, "catalog": len(ids)}


def test_both_galleries_match_numpy(db, planted):
    products, texts, images, sampled = planted
    assert len(sampled) == SAMPLE
    expected = _expected(products, texts, images, sampled)
    section_of = dict(products)
    sizes = {
        (scope, direction): (size, is_sample)
        for scope, direction, size, is_sample in query(
            db,
            "select distinct gallery_scope, direction, gallery_size, gallery_is_sample "
            "from metrics.fct_retrieval_metrics",
        )
    }
    want_sizes = _gallery_sizes(products, sampled)
    assert list(want_sizes) == ["sample", "sample_x2", "sample_x3", "catalog"]
    assert SAMPLE < want_sizes["sample_x2"] < want_sizes["sample_x3"] < N_PRODUCTS
    for direction in ("text_to_image", "image_to_text"):
        for scope, size in want_sizes.items():
            assert sizes.pop((scope, direction)) == (size, False)
    assert not sizes, f"galleries numpy does not draw: {sizes}"
    ranks = query(
        db,
        "select gallery_scope, direction, product_id, positive_rank, gallery_size "
        "from metrics.fct_retrieval_ranks",
    )
    assert len(ranks) == 2 * len(want_sizes) * SAMPLE
    for scope, direction, product_id, rank, _ in ranks:
        want = int(expected[(scope, direction)][product_id])
        assert rank == (want if want <= max(K_VALUES) else None), (scope, direction, product_id)
    metrics = {
        (r[0], r[1], r[2], r[3]): r[4:]
        for r in query(
            db,
            "select gallery_scope, direction, section, metric, value, n, hits, "
            "ci_low_independent, ci_high_independent, search_method "
            "from metrics.fct_retrieval_metrics",
        )
    }
    for (scope, direction), by_product in expected.items():
        for section in [*SECTIONS, "ALL"]:
            rows = np.array([r for p, r in by_product.items() if section in ("ALL", section_of[p])])
            for k in K_VALUES:
                value, n, hits, ci_low, ci_high, method = metrics[
                    (scope, direction, section, f"recall_at_{k}")
                ]
                assert method == "exact"
                assert n == len(rows)
                assert hits == int((rows <= k).sum())
                assert value == pytest.approx(recall_at(rows, k), abs=1e-12)
                # the independent-query interval; the published one resamples clusters
                assert (ci_low, ci_high) == pytest.approx(wilson(hits, n), abs=1e-9)
    # the planting is not trivial, and each bigger gallery is measurably harder
    t2i = [
        np.array(list(expected[(scope, "text_to_image")].values()))
        for scope in ("sample", "sample_x2", "sample_x3", "catalog")
    ]
    assert 0.1 < recall_at(t2i[0], 1) < 0.9
    assert all(recall_at(b, 10) < recall_at(a, 10) for a, b in zip(t2i, t2i[1:], strict=False))


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [("sample", "sample_x2"), ("sample_x2", "sample_x3"), ("sample_x3", "catalog")],
)
def test_catalog_never_ranks_a_positive_better_than_the_sample(db, planted, smaller, larger):
    """The rule: each gallery holds the one before it (the sample, the tiers, the
    catalog) and the positive is in all, so every item strictly closer in the smaller is
    strictly closer in the larger: rank(larger) >= rank(smaller) per query, hence
    R@K(larger) <= R@K(smaller) per section."""
    rows = query(
        db,
        "select s.direction, s.product_id, s.positive_rank, c.positive_rank "
        "from metrics.fct_retrieval_ranks as s "
        "join metrics.fct_retrieval_ranks as c using (pair, direction, product_id) "
        "where s.gallery_scope = %s and c.gallery_scope = %s",
        (smaller, larger),
    )
    assert len(rows) == 2 * SAMPLE
    worse = 0
    for _, _, sample_rank, catalog_rank in rows:
        if sample_rank is None:
            assert catalog_rank is None
        elif catalog_rank is not None:
            assert catalog_rank >= sample_rank
            worse += catalog_rank > sample_rank
    assert worse > SAMPLE // 10, "the larger gallery should push positives down"
    recalls = query(
        db,
        "select s.value, c.value from metrics.fct_retrieval_metrics as s "
        "join metrics.fct_retrieval_metrics as c using (pair, direction, section, metric) "
        "where s.gallery_scope = %s and c.gallery_scope = %s "
        "and s.metric like 'recall_at_%%'",
        (smaller, larger),
    )
    assert recalls and all(c <= s for s, c in recalls)


def test_history_and_deltas_carry_the_scope(db, planted):
    rows = query(
        db,
        "select gallery_scope, min(gallery_size), max(gallery_size), count(*) "
        "from metrics.fct_metric_history where family = 'retrieval' group by gallery_scope",
    )
    got = {scope: (low, high) for scope, low, high, _ in rows}
    products, _, _, sampled = planted
    assert got == {scope: (n, n) for scope, n in _gallery_sizes(products, sampled).items()}
    other = query(
        db,
        "select distinct gallery_scope from metrics.fct_metric_history where family <> 'retrieval'",
    )
    assert other == [("sample",)]


def test_catalog_over_budget_takes_the_index(db, planted, tmp_path):
    """Past vars.catalog_exact_max_pairs the catalog is searched through its own HNSW
    index; the sample's figures stay exact and unchanged."""
    products, texts, images, sampled = planted
    before = query(
        db,
        "select direction, section, metric, value from metrics.fct_retrieval_metrics "
        "where gallery_scope = 'sample' order by 1, 2, 3",
    )
    dbt_vars = _vars(retrieval_search="auto", catalog_exact_max_pairs=1000)
    dbt_build(db, dbt_vars, tmp_path, "int_catalog_gallery_vectors+")
    indexes = query(
        db,
        "select count(*) from pg_indexes where schemaname = 'intermediate' "
        "and tablename = 'int_catalog_gallery_vectors' and indexdef like '%%hnsw%%'",
    )
    assert indexes == [(2,)]
    methods = dict(
        query(
            db,
            "select distinct gallery_scope, search_method from metrics.fct_retrieval_metrics",
        )
    )
    assert methods == {"sample": "exact", "catalog": "hnsw"}
    after = query(
        db,
        "select direction, section, metric, value from metrics.fct_retrieval_metrics "
        "where gallery_scope = 'sample' order by 1, 2, 3",
    )
    assert after == before
    # ef_search 400 over 900 items: the index finds (almost) every true neighbour
    expected = _expected(products, texts, images, sampled)
    ranks = query(
        db,
        "select direction, product_id, positive_rank from metrics.fct_retrieval_ranks "
        "where gallery_scope = 'catalog'",
    )
    agree = sum(
        rank == (int(expected[("catalog", d)][p]) if expected[("catalog", d)][p] <= 50 else None)
        for d, p, rank in ranks
    )
    assert agree / len(ranks) >= 0.98


def test_a_tier_past_the_budget_is_left_out(db, planted, tmp_path):
    """Each tier is searched exactly, so only while sampled queries x its products stays
    within vars.catalog_exact_max_pairs: at a budget between the two tiers the smaller
    stays (exact, equal to numpy) and the larger is left out; the catalog takes its index."""
    products, texts, images, sampled = planted
    sizes = _gallery_sizes(products, sampled)
    budget = SAMPLE * (SAMPLE * 2 + SAMPLE * 3) // 2  # between 2 and 3 times the sample
    dbt_build(
        db,
        _vars(retrieval_search="auto", catalog_exact_max_pairs=budget),
        tmp_path,
        "int_catalog_gallery_vectors+",
    )
    methods = dict(
        query(
            db,
            "select distinct gallery_scope, search_method from metrics.fct_retrieval_metrics",
        )
    )
    assert methods == {"sample": "exact", "sample_x2": "exact", "catalog": "hnsw"}
    expected = _expected(products, texts, images, sampled)
    ranks = query(
        db,
        "select direction, product_id, positive_rank, gallery_size "
        "from metrics.fct_retrieval_ranks where gallery_scope = 'sample_x2'",
    )
    assert len(ranks) == 2 * SAMPLE
    for direction, product_id, rank, size in ranks:
        want = int(expected[("sample_x2", direction)][product_id])
        assert rank == (want if want <= max(K_VALUES) else None)
        assert size == sizes["sample_x2"]
    dbt_build(db, _vars(), tmp_path, "int_catalog_gallery_vectors+")


def _catalog_lists(settings, space: str, queries: list[str], ef: int, depth: int) -> dict:
    """Each query's top-depth list through the catalog gallery's own HNSW index at this
    ef_search, the query vectors read from the sample; one query per statement, as the
    tune job searches (`lateral`: all in one statement, as the catalog list models)."""
    with connection(settings) as conn:
        conn.execute("select set_config('hnsw.ef_search', %s, false)", (str(ef),))
        conn.execute("set enable_seqscan = off")
        lists = {}
        for product_id, other_space in queries:
            rows = conn.execute(
                "select g.product_id from intermediate.int_catalog_gallery_vectors as g "
                f"where g.space = %s order by g.embedding::vector({DIM}) <=> ("
                f"select q.embedding::vector({DIM}) from intermediate.int_eval_vectors as q "
                "where q.space = %s and q.product_id = %s) limit %s",
                (space, other_space, product_id, depth),
            ).fetchall()
            lists[product_id] = [r[0] for r in rows]
        return lists


def _lateral_lists(settings, space: str, query_space: str, ef: int, depth: int) -> dict:
    """Every sampled query's top-depth list through the catalog gallery's own HNSW index
    at this ef_search, in one statement (a lateral scan per query), as a set."""
    with connection(settings) as conn:
        conn.execute("select set_config('hnsw.ef_search', %s, false)", (str(ef),))
        conn.execute("set enable_seqscan = off")
        rows = conn.execute(
            "select q.product_id, listed.ids from intermediate.int_eval_vectors as q "
            "cross join lateral (select array_agg(g.product_id) as ids from ("
            "select g.product_id from intermediate.int_catalog_gallery_vectors as g "
            f"where g.space = %s order by g.embedding::vector({DIM}) <=> "
            f"q.embedding::vector({DIM}) limit %s) as g) as listed where q.space = %s",
            (space, depth, query_space),
        ).fetchall()
        return {product_id: set(ids) for product_id, ids in rows}


def test_tune_measures_the_catalog_index_and_its_rows_carry_that_bias(db, planted, tmp_path):
    """Past the budget `embed-udfs tune` measures the catalog gallery's own index: its
    exact figures equal numpy's catalog ranks over the tuned queries, its index figures
    and bias equal lists read through that index; the catalog search then runs at the
    catalog's tuned ef_search, and the catalog rows carry the catalog index's bias."""
    products, texts, images, sampled = planted
    grid = [50, 52, 56, 64, 100, 200]
    queries = 120
    dbt_vars = _vars(
        retrieval_search="auto",
        catalog_exact_max_pairs=1000,
        ann_ef_search_grid=grid,
        ann_tuning_queries=queries,
    )
    config = config_for(dbt_vars)
    # a table from before the catalog targets: its check knows two kinds
    with connection(db, autocommit=True) as conn:
        tune_store.bootstrap(conn, config)
        conn.execute("delete from embeddings.ann_tuning")
        for (name,) in conn.execute(
            "select conname from pg_constraint where conrelid = 'embeddings.ann_tuning'::regclass "
            "and contype = 'c'"
        ).fetchall():
            conn.execute(f"alter table embeddings.ann_tuning drop constraint {name}")
        conn.execute(
            "alter table embeddings.ann_tuning add check (target_kind in ('space', 'relation'))"
        )
    dbt_build(
        db,
        dbt_vars,
        tmp_path,
        "int_catalog_gallery_vectors",
        "int_ann_tuning_vectors",
        "int_ann_catalog_gallery",
    )
    summary = tune(db, config)
    kinds = query(
        db,
        "select pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = 'embeddings.ann_tuning'::regclass and contype = 'c'",
    )
    assert len(kinds) == 1 and "'catalog'" in kinds[0][0]
    catalog = {t.target: t for t in summary.targets if t.target.endswith("/catalog")}
    assert set(catalog) == {"planted/text_to_image/catalog", "planted/image_to_text/catalog"}
    ids = np.array([p for p, _ in products])
    row_of = {p: i for i, p in enumerate(ids)}
    tuned_queries = sorted(sampled, key=lambda p: (hashlib.md5(p.encode()).hexdigest(), p))[
        :queries
    ]
    rows = np.array([row_of[p] for p in tuned_queries])
    chosen = {}
    for direction, (q, g, q_space, g_space) in {
        "text_to_image": (texts, images, "t", "i"),
        "image_to_text": (images, texts, "i", "t"),
    }.items():
        target = catalog[f"planted/{direction}/catalog"]
        assert (target.gallery_rows, target.queries) == (N_PRODUCTS, queries)
        assert target.chosen is not None
        chosen[direction] = target.chosen.setting.value
        curve = {
            (r[0], r[1], r[2]): r[3:]
            for r in query(
                db,
                "select search_value, metric, k, value, exact_value, bias "
                "from embeddings.ann_tuning where target = %s and target_kind = 'catalog'",
                (target.target,),
            )
        }
        exact_ranks = _numpy_ranks(q[rows], g, rows)
        for k in K_VALUES:
            assert curve[0, "recall", k][0] == pytest.approx(recall_at(exact_ranks, k), abs=1e-12)
        for ef in grid:
            lists = _catalog_lists(db, g_space, [(p, q_space) for p in tuned_queries], ef, 50)
            ranks = np.array(
                [lists[p].index(p) + 1 if p in lists[p] else 10**6 for p in tuned_queries]
            )
            for k in K_VALUES:
                value, exact_value, bias = curve[ef, "recall", k]
                assert value == pytest.approx(recall_at(ranks, k), abs=1e-12), (direction, ef, k)
                assert bias == pytest.approx(recall_at(ranks, k) - recall_at(exact_ranks, k))
    # the catalog's search and rows follow its own tuning, not the sample's (untuned
    # here, so vars.hnsw_ef_search, 400) nor a default
    with connection(db, autocommit=True) as conn:
        conn.execute("delete from embeddings.ann_tuning where target_kind = 'space'")
    dbt_build(
        db,
        dbt_vars,
        tmp_path,
        "int_catalog_text_to_image_neighbours+",
        "int_catalog_image_to_text_neighbours+",
    )
    biases = query(
        db,
        "select direction, metric, search_method, index_bias from metrics.fct_retrieval_metrics "
        "where gallery_scope = 'catalog' and section = 'ALL' and metric like 'recall_at_%%'",
    )
    assert len(biases) == 2 * len(K_VALUES)
    for direction, metric, method, bias in biases:
        k = int(metric.rpartition("_at_")[2])
        expected = query(
            db,
            "select bias from embeddings.ann_tuning where target = %s and search_value = %s "
            "and metric = 'recall' and k = %s",
            (f"planted/{direction}/catalog", chosen[direction], k),
        )
        assert method == "hnsw" and bias == pytest.approx(expected[0][0], abs=1e-12)
    for direction, q_space, g_space in (("text_to_image", "t", "i"), ("image_to_text", "i", "t")):
        got = dict(
            query(
                db,
                "select query_product_id, array_agg(neighbour_product_id) "
                f"from intermediate.int_catalog_{direction}_neighbours group by 1",
            )
        )
        lists = _lateral_lists(db, g_space, q_space, chosen[direction], 50)
        assert {p: set(ids) for p, ids in got.items()} == lists, direction
        # the setting matters on this index: at 400 some list differs
        wide = _lateral_lists(db, g_space, q_space, 400, 50)
        assert wide != lists, (direction, chosen[direction])


def test_catalog_no_larger_than_the_sample_is_copied_and_says_so(db, planted, tmp_path):
    dbt_vars = _vars(eval_sample_size=5000)
    dbt_build(db, dbt_vars, tmp_path, "int_eval_candidates+")
    rows = query(
        db,
        "select s.value, c.value, c.gallery_size, c.gallery_is_sample "
        "from metrics.fct_retrieval_metrics as s "
        "join metrics.fct_retrieval_metrics as c using (pair, direction, section, metric) "
        "where s.gallery_scope = 'sample' and c.gallery_scope = 'catalog'",
    )
    assert rows
    for sample_value, catalog_value, size, is_sample in rows:
        assert catalog_value == sample_value
        assert size == N_PRODUCTS
        assert is_sample is True


def test_scorecard_and_report_show_both_galleries_with_sizes(db, planted):
    from embed_udfs import report
    from embed_udfs.report.html import render_report

    config = config_for(_vars())
    with connection(db) as conn:
        card = report.scorecard(conn, config)
        page = render_report(conn, config)
    # the figures as the marts hold them now (an earlier test may have rebuilt the sample)
    figures = {
        scope: (size, value)
        for scope, size, value in query(
            db,
            "select gallery_scope, gallery_size, value from metrics.fct_retrieval_metrics "
            "where section = 'ALL' and metric = 'recall_at_10' and direction = 'text_to_image'",
        )
    }
    sampled = query(db, "select count(*) from intermediate.int_eval_sample")[0][0]
    assert figures["sample"][0] == sampled and figures["catalog"][0] == N_PRODUCTS
    lines = [line for line in card.splitlines() if "text_to_image" in line]
    for scope, (size, value) in figures.items():
        line = next(line for line in lines if f" {scope} " in line)
        assert f"{size:,}" in line and f"{value:.3f}" in line, line
    assert "Recall against gallery size" in page
    assert f"{N_PRODUCTS:,}" in page and f"{sampled:,}" in page


def test_catalog_lists_are_kept_until_what_they_are_made_of_changes(db, planted, tmp_path):
    """A build with nothing changed keeps the whole-catalog lists (no search: no row is
    rewritten); a catalog image outside the sample that moves makes the text_to_image
    build search again, equal to a full rebuild, and leaves image_to_text (its queries
    and its gallery unchanged) as it was; a new exact budget that switches the search
    searches both again. The tiers' lists keep to the same state."""
    products, texts, images, sampled = planted
    dbt_vars = _vars()
    lists = ("int_catalog_text_to_image_neighbours", "int_catalog_image_to_text_neighbours")
    tiers = "int_tier_retrieval_neighbours"
    built = ("+" + lists[0], "+" + lists[1], "+" + tiers)

    def tier_stamps() -> dict:
        return dict(
            query(
                db,
                "select concat_ws('/', gallery_scope, pair, direction, query_product_id, "
                f"neighbour_rank), xmin::text from intermediate.{tiers}",
            )
        )

    def stamps() -> dict:
        return {
            model: dict(
                query(
                    db,
                    "select query_product_id || '/' || neighbour_rank, xmin::text "
                    f"from intermediate.{model}",
                )
            )
            for model in lists
        }

    def rows(model: str) -> list[tuple]:
        return query(
            db,
            "select pair, query_product_id, neighbour_rank, neighbour_product_id, distance, "
            f"is_positive, lists_state from intermediate.{model} order by 1, 2, 3",
        )

    dbt_build(db, dbt_vars, tmp_path, *built)
    before, tiers_before = stamps(), tier_stamps()
    assert all(before.values()) and tiers_before
    dbt_build(db, dbt_vars, tmp_path, *built)
    assert stamps() == before, "nothing changed, yet the lists were written again"
    assert tier_stamps() == tiers_before, "nothing changed, yet the tiers were searched again"

    # one catalog image outside the sample moves onto a sampled text's own image
    outside = next(i for i, (p, _) in enumerate(products) if p not in sampled)
    inside = next(i for i, (p, _) in enumerate(products) if p in sampled)
    config = config_for(dbt_vars)
    with connection(db) as conn:
        store.write_vectors(
            conn,
            config,
            config.space("i"),
            [products[outside][0]],
            ["moved"],
            unit(images[inside][None]),
            "p",
        )
        conn.commit()
    dbt_build(db, dbt_vars, tmp_path, *built)
    after = stamps()
    # its gallery changed: searched again; the other direction's queries and gallery did not
    text_to_image, image_to_text = lists
    assert set(after[text_to_image].values()).isdisjoint(before[text_to_image].values())
    assert after[image_to_text] == before[image_to_text]
    # the tiers' state holds the catalog's: searched again, both directions in one model
    assert set(tier_stamps().values()).isdisjoint(tiers_before.values())
    moved = query(
        db,
        "select count(*) from intermediate.int_catalog_text_to_image_neighbours "
        "where query_product_id = %s and neighbour_product_id = %s",
        (products[inside][0], products[outside][0]),
    )
    assert moved == [(1,)]

    def tier_rows() -> list[tuple]:
        return query(
            db,
            "select gallery_scope, pair, direction, query_product_id, neighbour_rank, "
            f"neighbour_product_id, distance, is_positive, lists_state from intermediate.{tiers} "
            "order by 1, 2, 3, 4, 5",
        )

    incremental = {model: rows(model) for model in lists}
    incremental_tiers = tier_rows()
    run_dbt(
        ["build", "--full-refresh", "--select", *lists, tiers],
        db,
        PROJECT_DIR,
        dbt_vars=dbt_vars,
        target_path=tmp_path / "target",
        quiet=True,
    )
    for model in lists:
        assert rows(model) == incremental[model], model
    assert tier_rows() == incremental_tiers
    # the search itself changing (exact to the index) searches again
    kept = stamps()
    dbt_build(db, _vars(retrieval_search="auto", catalog_exact_max_pairs=1000), tmp_path, *built)
    assert all(set(stamps()[model].values()).isdisjoint(kept[model].values()) for model in lists)
