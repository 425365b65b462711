"""Section levels: a catalog whose sections are paths ("Home | Kitchen | Pans") is
reported per level, small sections are folded into their level's `other` row, and
each level's ALL row has the micro and the macro average. Checked against numpy on
planted vectors with a known bad leaf."""

from __future__ import annotations

from collections import defaultdict

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
from reference import exact_ranks, gaps, wilson

from embed_udfs import load, report
from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.errors import ConfigError
from embed_udfs.report.html import write_report

MIN_QUERIES = 10
# leaf path -> products; the deepest paths have three levels
LEAVES = {
    "Home | Kitchen | Knives": 220,
    "Home|Kitchen|Pans": 24,  # the bad leaf, written without spaces: staging normalises it
    "Home | Decor | Lamps": 120,
    "Toys | Puzzles | Jigsaw": 110,
    "Toys | Games | Board": 90,
    "Toys | Games | Dice": 6,  # below MIN_QUERIES: folded into the leaf level's `other`
    "Gift cards": 40,  # one level: its own section at every level
    "ALL": 12,  # a section named like the overall row
}
BAD = "Home|Kitchen|Pans"
LEVELS = ("level_1", "level_2", "leaf")


def _segments(path: str) -> list[str]:
    segments = [part.strip() for part in path.split("|") if part.strip()]
    if segments[0] == "ALL":  # renamed in staging, so that it stays apart from ALL
        segments[0] = "ALL (section)"
    return segments


def _section_at(path: str, level: str) -> str:
    segments = _segments(path)
    depth = len(segments) if level == "leaf" else min(int(level.split("_")[1]), len(segments))
    return " | ".join(segments[:depth])


def _planted(seed: int = 4, dim: int = 32, noise: float = 0.9):
    """Paired text/image vectors around a shared base, noisy enough for R@1 near 0.6;
    the bad leaf's images are unrelated to its texts (R@1 near chance)."""
    rng = np.random.default_rng(seed)
    paths = [path for path, count in LEAVES.items() for _ in range(count)]
    base = rng.normal(size=(len(paths), dim))
    texts = base + noise * rng.normal(size=base.shape)
    images = base + noise * rng.normal(size=base.shape)
    bad = np.array([path == BAD for path in paths])
    images[bad] = rng.normal(size=(int(bad.sum()), dim))
    products = [(f"P{i:05d}", path) for i, path in enumerate(paths)]
    return products, texts, images


def _expected(paths: list[str], scores: np.ndarray) -> dict[tuple[str, str], tuple[int, float]]:
    """numpy: (level, section) -> (n, mean score), small sections folded into `other`."""
    expected: dict[tuple[str, str], tuple[int, float]] = {}
    for level in LEVELS:
        groups: dict[str, list[float]] = defaultdict(list)
        for path, score in zip(paths, scores, strict=True):
            groups[_section_at(path, level)].append(float(score))
        folded: dict[str, list[float]] = defaultdict(list)
        for section, values in groups.items():
            folded["other" if len(values) < MIN_QUERIES else section].extend(values)
        for section, values in folded.items():
            expected[(level, section)] = (len(values), float(np.mean(values)))
    return expected


def _vars() -> dict:
    return planted_config(
        [planted_space("t", "text", 32), planted_space("i", "image", 32)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 5, 10, 50],
        hnsw_ef_search=400,
        retrieval_search="exact",
        eval_sample_size=5000,
        eval_section_cap=None,
        section_min_queries=MIN_QUERIES,
    )


@pytest.fixture(scope="module")
def levelled(db, tmp_path_factory):
    products, texts, images = _planted()
    dbt_vars = _vars()
    plant(db, config_for(dbt_vars), products, {"t": texts, "i": images})
    target = tmp_path_factory.mktemp("levels")
    # the thresholds the mart's tests read, then the mart with its tests
    run_dbt(
        ["build", "--select", "+dim_metric_thresholds"]
        + ["--resource-type", "seed", "--resource-type", "model"],
        db,
        PROJECT_DIR,
        dbt_vars=dbt_vars,
        target_path=target / "target",
        quiet=True,
    )
    dbt_build(db, dbt_vars, target, "+fct_retrieval_metrics", "+fct_embedding_gaps")
    rows = query(
        db,
        "select direction, section_level, section, metric, value, n, hits, ci_low, ci_high, "
        "macro_value, n_sections, ci_low_independent, ci_high_independent "
        "from metrics.fct_retrieval_metrics where pair = 'planted' and gallery_scope = 'sample'",
    )
    metrics = {(r[0], r[1], r[2], r[3]): r[4:] for r in rows}
    assert len(metrics) == len(rows), "one row per (direction, level, section, metric)"
    return products, texts, images, metrics


def test_every_level_matches_numpy_with_small_sections_folded(levelled):
    products, texts, images, metrics = levelled
    paths = [path for _, path in products]
    ranks = exact_ranks(texts, images)
    assert {key[1] for key in metrics} == set(LEVELS)
    for k in (1, 10):
        hits = (ranks <= k).astype(float)
        expected = _expected(paths, hits)
        got = {
            (level, section): row
            for (direction, level, section, metric), row in metrics.items()
            if direction == "text_to_image" and metric == f"recall_at_{k}" and section != "ALL"
        }
        assert set(got) == set(expected)
        for key, (n, value) in expected.items():
            got_value, got_n, got_hits, ci_low, ci_high, _, _, low_independent, high_independent = (
                got[key]
            )
            assert got_n == n, key
            assert got_value == pytest.approx(value, abs=1e-12), key
            # the independent-query interval is Wilson's; the published (cluster) one holds it
            independent = (low_independent, high_independent)
            assert independent == pytest.approx(wilson(got_hits, n), abs=1e-9), key
            assert ci_low <= low_independent + 1e-12 and ci_high >= high_independent - 1e-12, key
    # the six Dice products are folded at the leaf level, kept inside Toys | Games above it
    assert ("leaf", "Toys | Games | Dice") not in {k[1:3] for k in metrics}
    assert metrics[("text_to_image", "leaf", "other", "recall_at_1")][1] == 6
    assert metrics[("text_to_image", "level_2", "Toys | Games", "recall_at_1")][1] == 96
    # a one-level section is itself at every level
    for level in LEVELS:
        assert metrics[("text_to_image", level, "Gift cards", "recall_at_1")][1] == 40


def test_all_has_the_micro_and_the_macro_average(levelled):
    products, texts, images, metrics = levelled
    paths = [path for _, path in products]
    ranks = exact_ranks(texts, images)
    hits = (ranks <= 1).astype(float)
    expected = _expected(paths, hits)
    for level in LEVELS:
        row = metrics[("text_to_image", level, "ALL", "recall_at_1")]
        value, n, _, _, _, macro, n_sections, *_ = row
        sections = [mean for (lvl, _), (_, mean) in expected.items() if lvl == level]
        assert n == len(products)
        assert value == pytest.approx(hits.mean(), abs=1e-12)  # micro: over queries
        assert macro == pytest.approx(np.mean(sections), abs=1e-12)  # macro: over sections
        assert n_sections == len(sections)
        assert abs(macro - value) > 0.01, "the planted sizes make them differ"
    # a section row carries no macro figure
    assert metrics[("text_to_image", "leaf", "Gift cards", "recall_at_1")][5] is None


def test_the_bad_leaf_is_flagged_and_its_parent_is_not(levelled):
    """Flagged: the section's whole interval lies below the overall figure."""
    _, _, _, metrics = levelled

    def flagged(level: str, section: str) -> bool:
        overall = metrics[("text_to_image", level, "ALL", "recall_at_1")][0]
        return metrics[("text_to_image", level, section, "recall_at_1")][4] < overall

    assert flagged("leaf", "Home | Kitchen | Pans")
    assert not flagged("level_2", "Home | Kitchen")
    assert not flagged("level_1", "Home")
    assert not flagged("leaf", "Home | Kitchen | Knives")


def test_a_section_named_all_stays_apart_from_the_overall_row(levelled):
    products, _, _, metrics = levelled
    for level in LEVELS:
        overall = [key for key in metrics if key[1] == level and key[2] == "ALL"]
        one_section = ("text_to_image", level, "Gift cards")
        per_direction = [key for key in metrics if key[:3] == one_section]
        assert len(overall) == 2 * len(per_direction)  # one per direction and metric
        assert metrics[("text_to_image", level, "ALL", "recall_at_1")][1] == len(products)
        assert metrics[("text_to_image", level, "ALL (section)", "recall_at_1")][1] == 12


def test_gaps_per_level_match_numpy(db, levelled):
    products, texts, images, _ = levelled
    paths = [path for _, path in products]
    rows = query(
        db,
        "select section_level, section, metric, value, n from metrics.fct_embedding_gaps "
        "where pair = 'planted'",
    )
    got = {(level, section, metric): (value, n) for level, section, metric, value, n in rows}
    checked = {
        ("leaf", "Home | Kitchen | Pans"): [p == BAD for p in paths],
        ("leaf", "other"): [p == "Toys | Games | Dice" for p in paths],
        ("level_2", "Home | Kitchen"): [
            p.replace(" ", "").startswith("Home|Kitchen") for p in paths
        ],
        ("level_1", "Toys"): [p.startswith("Toys") for p in paths],
        ("level_1", "ALL"): [True] * len(paths),
    }
    for (level, section), members in checked.items():
        for metric, value in gaps(texts, images, members).items():
            got_value, got_n = got[(level, section, metric)]
            assert got_value == pytest.approx(value, abs=2e-5), (level, section, metric)
            assert got_n == sum(members)
    assert {level for level, _, _ in got} == set(LEVELS)
    # ALL: the macro average over the level's (folded) sections beside the micro one
    macro = dict(
        query(
            db,
            "select section_level, macro_value from metrics.fct_embedding_gaps "
            "where pair = 'planted' and section = 'ALL' and metric = 'cosine_gap'",
        )
    )
    for level in LEVELS:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, path in enumerate(paths):
            groups[_section_at(path, level)].append(i)
        folded: dict[str, list[int]] = defaultdict(list)
        for section, members in groups.items():
            folded["other" if len(members) < MIN_QUERIES else section].extend(members)
        per_section = [
            gaps(texts, images, np.isin(np.arange(len(paths)), members))["cosine_gap"]
            for members in folded.values()
        ]
        assert macro[level] == pytest.approx(np.mean(per_section), abs=2e-5), level


def test_the_scorecard_and_the_report_show_every_level(db, levelled, tmp_path):
    _, _, _, metrics = levelled
    with connection(db) as conn:
        card = report.scorecard(conn, config_for(_vars()))
        page = write_report(conn, config_for(_vars()), tmp_path / "r.html").read_text()
    lines = card.splitlines()
    headings = [line.split("  (")[0] for line in lines if line.startswith("pair ")]
    assert headings == [
        "pair planted, leaf sections",
        "pair planted, level_1 sections",
        "pair planted, level_2 sections",
    ]
    leaf = lines[lines.index(next(x for x in lines if x.startswith("pair planted, leaf"))) :]
    rows = [line.split() for line in leaf[2:12]]
    assert rows[0][0] == "ALL" and rows[1][:2] == ["ALL", "(macro)"]
    micro, macro = metrics[("text_to_image", "leaf", "ALL", "recall_at_1")][0::5]
    assert float(rows[0][-7 + 0]) == pytest.approx(micro, abs=5e-4)  # t2i R@1
    assert float(rows[1][-7]) == pytest.approx(macro, abs=5e-4)
    # weakest first: the bad leaf right under the two ALL rows, marked weaker on evidence (*)
    assert rows[2][0].startswith("*")
    assert " ".join(rows[2][:5]).lstrip("*~") == "Home | Kitchen | Pans"
    for level in LEVELS:
        assert f"planted, {level}, text → image: Recall@K by section" in page
    assert "ALL (macro)" in page


def test_load_keeps_a_marketplace_category_path_and_counts_its_levels(db, tmp_path):
    """`embed-udfs load --map` alone: the path is stored as written, and staging and
    int_section_levels split it (levels as numpy counts them above)."""
    rows = [
        ("M1", "Jigsaw 1000", "Toys & Games | Puzzles | Jigsaw Puzzles"),
        ("M2", "Jigsaw 500", "Toys & Games|Puzzles|Jigsaw Puzzles"),
        ("M3", "Cube", "Toys & Games | Puzzles | 3D Puzzles"),
        ("M4", "Chess", "Toys & Games | Games"),
        ("M5", "Kettle", "Home | Kitchen | Kettles"),
    ]
    path = tmp_path / "export.csv"
    path.write_text(
        "ASIN,Title,Category\n" + "".join(f'{a},{t},"{c}"\n' for a, t, c in rows),
        encoding="utf-8",
    )
    config = config_for(_vars())
    with connection(db) as conn:
        summary = load.load_catalog(
            conn,
            config,
            path,
            mapping=load.parse_mapping(["id=ASIN,name=Title,section=Category"]),
            replace=True,
        )
    assert summary.rows == 5
    # level 1: Toys & Games, Home; level 2: + Puzzles, Games, Kitchen; leaves: four paths
    assert summary.section_levels == (2, 3, 4)
    assert "2 at level 1, 3 at level 2, 4 at level 3" in summary.line()
    stored = dict(query(db, "select product_id, collection_section from catalog.products"))
    assert stored["M2"] == "Toys & Games|Puzzles|Jigsaw Puzzles"  # kept as written
    run_dbt(
        ["build", "--select", "stg_catalog__products", "int_section_levels"],
        db,
        PROJECT_DIR,
        dbt_vars=_vars(),
        target_path=tmp_path / "target",
        quiet=True,
    )
    levels = query(
        db,
        "select section_level, count(distinct section) from intermediate.int_section_levels "
        "group by section_level order by section_level",
    )
    assert dict(levels) == {"level_1": 2, "level_2": 3, "leaf": 4}


def test_load_refuses_a_path_whose_first_level_is_all(db, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        'ASIN,Title,Category\nM1,Mug,"Home | Mugs"\nM2,Cup,"ALL | Cups"\nM3,Pot,"Home | ALL"\n',
        encoding="utf-8",
    )
    with connection(db) as conn, pytest.raises(load.LoadError) as caught:
        load.load_catalog(
            conn,
            config_for(_vars()),
            path,
            mapping=load.parse_mapping(["id=ASIN,name=Title,section=Category"]),
        )
    message = str(caught.value)
    assert "collection_section 'ALL', a reserved name: line 3" in message
    assert "line 4" not in message  # a deeper segment named ALL cannot be read as the overall row


@pytest.mark.parametrize(("value", "expected"), [("|", "|"), (">", ">"), (None, None), ("", None)])
def test_the_separator_var_takes_a_mark_or_null(value, expected):
    assert load_config(PROJECT_DIR, overrides={"section_separator": value}).sections.separator == (
        expected
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"section_separator": " | "}, "without spaces"),
        ({"section_separator": "  "}, "non-blank"),
        ({"section_separator": 3}, "non-blank"),
        ({"section_min_queries": 0}, "section_min_queries"),
    ],
)
def test_bad_section_vars_are_refused_with_the_reason(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_config(PROJECT_DIR, overrides=overrides)
    assert message in str(caught.value)


def test_level_counts_follow_the_paths_as_staging_normalises_them():
    sections = ["A | B | C", "A|B|D", " A | E ", "F", None, "A | B | C"]
    # level 1: A, F; level 2: A | B, A | E, F; level 3: A | B | C, A | B | D, A | E, F
    assert load.section_level_counts(sections, "|") == (2, 3, 4)
    assert load.section_level_counts(["A | B", "C"], None) == (2,)
    assert load.section_level_counts([None], "|") == ()
