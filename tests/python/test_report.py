"""The HTML report and the similarity histogram mart, on a small planted
database: the histogram bins agree with numpy, and the page, opened in a
real headless Chromium, loads without console errors and draws every plot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT_DIR, config_for, dbt_build, plant, planted_config, planted_space, query

from embed_udfs.contract import RERANK_UPLIFT
from embed_udfs.db import connection
from embed_udfs.jobs.cluster import cluster_spaces
from embed_udfs.report.fetchers import (
    Estimate,
    GalleryCurves,
    GalleryPoint,
    ReportData,
    Retrieval,
    Rows,
)
from embed_udfs.report.html import render, write_report

# a section name that would break the page (and run a script) if it were not escaped
HOSTILE = '<script>alert("x")</script> & "co"'
SECTIONS = ["bags", "shoes", "lamps", HOSTILE]
N_PRODUCTS = 160
DIM = 16
BINS = 40
ARTIFACTS = PROJECT_DIR / "tests" / "artifacts"
# elements that draw something inside an <svg>
DRAWN = {"rect", "path", "line", "polyline", "circle", "polygon"}


def _vars(**overrides) -> dict:
    return planted_config(
        [
            planted_space("t", "text", DIM),
            planted_space("t_noisy", "text", DIM),
            planted_space("i", "image", DIM),
        ],
        [
            {"name": "clean", "text_space": "t", "image_space": "i"},
            {"name": "noisy", "text_space": "t_noisy", "image_space": "i"},
        ],
        eval_k_values=[1, 5, 10],
        retrieval_search="exact",
        label_pca_dims=[8, "none"],
        label_kmeans_seeds=[0, 1],
        bootstrap_replicates=30,
        similarity_histogram_bins=BINS,
        **overrides,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def planted(db, tmp_path_factory):
    rng = np.random.default_rng(3)
    sections = [SECTIONS[i % len(SECTIONS)] for i in range(N_PRODUCTS)]
    products = [(f"P{i:04d}", s) for i, s in enumerate(sections)]
    centres = {s: rng.normal(size=DIM) * 2 for s in SECTIONS}
    base = np.stack([centres[s] + rng.normal(size=DIM) for s in sections])
    vectors = {
        "t": base + 0.5 * rng.normal(size=base.shape),
        "t_noisy": base + 2.0 * rng.normal(size=base.shape),
        "i": base + 0.5 * rng.normal(size=base.shape),
    }
    dbt_vars = _vars()
    config = config_for(dbt_vars)
    plant(db, config, products, vectors)
    target = tmp_path_factory.mktemp("report")
    dbt_build(db, dbt_vars, target, "+int_label_vectors")
    cluster_spaces(db, config)
    dbt_build(db, dbt_vars, target)
    # a second run, so the history chart has a line to draw and the deltas a previous run
    dbt_build(db, dbt_vars, target, "dim_runs", "fct_metric_history+")
    return {
        "vars": dbt_vars,
        "config": config,
        "products": products,
        "vectors": vectors,
        "target": target,
    }


def _histogram(db, pair: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, set[str]]:
    rows = query(
        db,
        "select bin_low, bin_high, positive_count, negative_count, negatives_method "
        "from metrics.fct_similarity_histograms where pair = %s order by bin",
        (pair,),
    )
    edges = np.array([r[0] for r in rows] + [rows[-1][1]])
    return (
        edges,
        np.array([r[2] for r in rows]),
        np.array([r[3] for r in rows]),
        {r[4] for r in rows},
    )


def _assert_counts_match(got: np.ndarray, cosines: np.ndarray, edges: np.ndarray) -> None:
    """Counts equal numpy's, except where a value within float error of an edge falls."""
    expected, _ = np.histogram(np.clip(cosines, -1, 1), bins=edges)
    near_edge = int((np.abs(cosines[:, None] - edges[None, 1:-1]) < 1e-5).sum())
    assert got.sum() == len(cosines)
    assert np.abs(got - expected).sum() <= 2 * near_edge, (got, expected)


def test_histogram_bins_match_numpy_all_pairs(db, planted):
    texts = {"clean": "t", "noisy": "t_noisy"}
    image = _unit(planted["vectors"]["i"])
    for pair, space in texts.items():
        edges, positives, negatives, methods = _histogram(db, pair)
        assert len(edges) == BINS + 1
        np.testing.assert_allclose(edges, np.linspace(-1, 1, BINS + 1), atol=1e-12)
        assert methods == {"all_pairs"}
        cosines = _unit(planted["vectors"][space]) @ image.T
        off_diagonal = ~np.eye(N_PRODUCTS, dtype=bool)
        _assert_counts_match(positives, np.diag(cosines), edges)
        _assert_counts_match(negatives, cosines[off_diagonal], edges)
    # the planted noise really separates the two pairs: noisy positives sit lower
    centres = (edges[:-1] + edges[1:]) / 2
    clean_mean = (centres * _histogram(db, "clean")[1]).sum() / N_PRODUCTS
    noisy_mean = (centres * _histogram(db, "noisy")[1]).sum() / N_PRODUCTS
    assert clean_mean > noisy_mean + 0.1


def test_histogram_sampled_negatives_match_numpy(db, planted, tmp_path):
    per_query = 7
    dbt_vars = {**planted["vars"], "similarity_histogram_negatives": per_query}
    try:
        dbt_build(db, dbt_vars, tmp_path, "fct_similarity_histograms")
        edges, positives, negatives, methods = _histogram(db, "clean")
        assert methods == {f"offsets_{per_query}"}
        # the documented sample: in product_id order, text j meets image (j + shift) mod N
        # for shift = 1 + floor(s (N - 1) / S), s = 0 .. S - 1
        ids = [p for p, _ in planted["products"]]
        order = np.argsort(ids)
        text = _unit(planted["vectors"]["t"])[order]
        image = _unit(planted["vectors"]["i"])[order]
        shifts = sorted({1 + (s * (N_PRODUCTS - 1)) // per_query for s in range(per_query)})
        rows = np.arange(N_PRODUCTS)
        sampled = np.concatenate(
            [(text * image[(rows + shift) % N_PRODUCTS]).sum(axis=1) for shift in shifts]
        )
        assert negatives.sum() == N_PRODUCTS * per_query
        _assert_counts_match(negatives, sampled, edges)
        _assert_counts_match(positives, (text * image).sum(axis=1), edges)
    finally:
        dbt_build(db, planted["vars"], tmp_path, "fct_similarity_histograms")


class _Page(HTMLParser):
    """Each <svg>'s drawn elements, and every external reference, in a document."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[int] = []
        self.depth = 0
        self.external: list[str] = []
        self.scripts = 0
        self.text = ""  # what the page shows, entities decoded
        # each figure's caption and the rows of its table, as cell texts
        self.figures: dict[str, list[list[str]]] = {}
        self._caption: list[str] | None = None
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.depth += 1
            if self.depth == 1:
                self.svgs.append(0)
        elif self.depth and tag in DRAWN:
            self.svgs[-1] += 1
        if tag == "figure":
            self._rows = []
        elif tag == "figcaption":
            self._caption = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag == "td" and self._rows is not None:
            self._cell = []
        if tag in ("script", "link", "iframe", "img"):
            self.scripts += tag == "script"
            self.external.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.depth -= 1
        elif tag == "figcaption" and self._caption is not None:
            self.figures["".join(self._caption)] = self._rows = []
            self._caption = None
        elif tag == "td" and self._cell is not None and self._rows:
            self._rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "figure":
            self._rows = None


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _browse(browser: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_report_is_escaped_and_self_contained(db, planted, tmp_path):
    with connection(db) as conn:
        path = write_report(conn, planted["config"], tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert HOSTILE not in text
    page = _Page()
    page.feed(text)
    # the name is shown as text, in the tables and the charts' labels alike
    # (a row of each pair's and direction's table at least; escaped once, not twice)
    assert page.text.count(HOSTILE) >= 2 * 2, page.text.count(HOSTILE)
    assert page.external == [], "the report must not load anything"
    assert page.scripts == 0
    for block in (
        "pair clean",
        "pair noisy",
        "Recall@K over K",
        "cosine similarity",
        "1-NN section accuracy",
        "difference between spaces",
        "over the last 2 run(s)",
    ):
        assert block in text, block
    # the blocks for relations that are absent or empty (no reranker configured) are left out
    assert 'id="rerank"' not in text
    # two runs: the second is compared with the first
    deltas = text.split('id="deltas"', 1)[1].split("</section>", 1)[0]
    assert "previous" in deltas and "recall_at_10" in deltas


def test_the_retrieval_tables_show_the_marts_figures_weakest_first(db, planted, tmp_path):
    with connection(db) as conn:
        page = _Page()
        page.feed(write_report(conn, planted["config"], tmp_path / "r.html").read_text())
    marts = query(
        db,
        "select pair, direction, section, k, value, ci_low, ci_high, n, weakness_rank, "
        "is_weaker_than_all, is_small_section "
        "from metrics.fct_retrieval_metrics where starts_with(metric, 'recall_at_') "
        "and gallery_scope = 'sample'",
    )
    recall: dict[tuple[str, str], dict[str, dict[int, tuple]]] = {}
    for pair, direction, section, k, *figure in marts:
        recall.setdefault((pair, direction), {}).setdefault(section, {})[k] = tuple(figure)
    assert {pair for pair, _ in recall} == {"clean", "noisy"}
    shown = {"text_to_image": "text → image", "image_to_text": "image → text"}
    for (pair, direction), sections in recall.items():
        rows = [r for r in page.figures[f"{pair}, {shown[direction]}: Recall@K by section"] if r]
        # weakest on evidence at R@10 first: the mart's weakness_rank
        weakest_first = sorted(
            (s for s in sections if s != "ALL"), key=lambda s: sections[s][10][4]
        )
        assert [r[0] for r in rows] == ["ALL", *weakest_first]
        for section, evidence, n, *cells in rows:
            figures = sections[section]
            assert int(n) == figures[1][3]
            if section == "ALL":
                assert evidence == "overall"
            else:
                weaker, small = figures[10][5:7]
                assert evidence.startswith("weaker than ALL" if weaker else "no evidence")
                assert ("small section" in evidence) == small
            for k, cell, interval in zip((1, 5, 10), cells[:3], cells[3:], strict=True):
                value, low, high, *_ = figures[k]
                assert float(cell) == pytest.approx(value, abs=5e-5), (pair, section, k)
                assert interval == f"[{low:.3f}, {high:.3f}]"


def test_the_template_cleans_and_escapes_every_value_it_is_given():
    """Raw strings, not cleaned by a fetcher, in every kind of place the page shows one:
    the header, the notice, a chart's labels, a caption, a table's cells."""
    nasty = '\x1b[31m<i>x</i>"\x07\x00'
    seen = '<i>x</i>"'
    figure = Estimate(0.5, 0.25, 0.75, 12)
    data = ReportData(
        database=nasty,
        generated_at=datetime(2025, 1, 2, 3, 4, tzinfo=timezone.utc),
        version="0",
        k_values=(1,),
        notice=f"first line {nasty}\nsecond line",
        retrieval=Retrieval(
            (1,), {(nasty, "text_to_image"): {"ALL": {1: figure}, nasty: {1: figure}}}
        ),
        curves=None,
        galleries=GalleryCurves(
            (1,),
            {
                (nasty, "text_to_image"): (
                    GalleryPoint("sample", 12, False, "exact", {1: figure}),
                    GalleryPoint("catalog", 120, False, "exact", {1: figure}),
                )
            },
        ),
        similarity=(),
        labels=None,
        comparisons=(),
        rerank=Rows(RERANK_UPLIFT, (nasty, "uplift"), ((nasty, 0.125), ("better", None))),
        history=None,
        deltas=None,
    )
    text = render(data)
    assert not [ch for ch in text if ord(ch) < 0x20 and ch not in "\n\t\r"]
    assert "<i>" not in text and "[31m" not in text
    page = _Page()
    page.feed(text)
    assert page.scripts == 0 and page.svgs and all(page.svgs)
    # header, notice, pair heading, chart title and label, caption, table cells, rerank table
    assert page.text.count(seen) >= 8, page.text.count(seen)
    assert f"first line {seen}\nsecond line" in page.text  # the notice keeps its line break
    assert 'class="text better">better</td>' in text and "0.1250" in text


def test_optional_blocks_appear_when_their_relation_exists(db, planted, tmp_path):
    with connection(db) as conn:
        # the build made an empty uplift mart (no reranker): set it aside for a planted one
        conn.execute("alter table if exists metrics.fct_rerank_uplift rename to uplift_as_built")
        conn.execute(
            "create table metrics.fct_rerank_uplift as "
            "select 'clean'::text as pair, '<b>r</b>'::text as reranker, 0.125::float8 as uplift"
        )
        conn.commit()
        try:
            text = write_report(conn, planted["config"], tmp_path / "r.html").read_text()
        finally:
            conn.execute("drop table metrics.fct_rerank_uplift")
            conn.execute(
                "alter table if exists metrics.uplift_as_built rename to fct_rerank_uplift"
            )
            conn.commit()
    block = text.split('id="rerank"', 1)[1].split("</section>", 1)[0]
    assert "&lt;b&gt;r&lt;/b&gt;" in block and "<b>r</b>" not in block
    assert "0.1250" in block


def test_report_renders_in_headless_chromium(db, planted, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no Chromium found (tried $CHROMIUM, chromium, chromium-browser, google-chrome): "
            "`make test` installs Debian's chromium when run as root; or apt-get install chromium"
        )
    with connection(db) as conn:
        path = write_report(conn, planted["config"], tmp_path / "report.html")
    loaded = _browse(browser, path, tmp_path / "profile", "--dump-dom")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    console = [line for line in loaded.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page logged to the console:\n" + "\n".join(console)
    dom = _Page()
    dom.feed(loaded.stdout)
    # 2 pairs x 2 directions, the curves, 2 histograms, 4 label metrics,
    # 3 comparison metrics, the history
    assert len(dom.svgs) >= 2 * 2 + 1 + 2 + 4 + 3 + 1, dom.svgs
    assert all(count >= 3 for count in dom.svgs), (
        f"an empty plot: drawn elements per svg {dom.svgs}"
    )
    assert re.search(r"<table", loaded.stdout)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    shot = _browse(
        browser, path, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,2400"
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000, "a blank screenshot"


def test_cli_writes_the_report_and_refuses_an_unwritable_path(
    db, planted, tmp_path, monkeypatch, capsys
):
    import json

    from embed_udfs.cli import main

    for key, value in db.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EMBED_UDFS_DSN", raising=False)
    target = tmp_path / "out" / "report.html"
    assert main(["--vars", json.dumps(planted["vars"]), "report", "--html", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target.resolve())
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = main(
        ["--vars", json.dumps(planted["vars"]), "report", "--html", str(blocker / "r.html")]
    )
    assert code == 2
    assert "cannot write the HTML report" in capsys.readouterr().err


def test_escape_sequences_and_control_characters_from_the_data_never_reach_the_page(
    db, planted, tmp_path
):
    """Sections (and a reranker) whose names carry ESC and BEL: the page keeps the text
    and drops the bytes. The marts are changed inside one transaction, rolled back after."""
    hostile = "\x1b[31m\x1b]0;owned\x07"
    with connection(db) as conn:
        tables = conn.execute(
            "select table_name from information_schema.columns "
            "where table_schema = 'metrics' and column_name = 'section' "
            "and data_type = 'text' and table_name in (select table_name from "
            "information_schema.tables where table_type = 'BASE TABLE')"
        ).fetchall()
        assert tables
        for (table,) in tables:
            conn.execute(
                f"update metrics.{table} set section = section || %s where section = 'bags'",
                (hostile + "red\x07bags",),
            )
        conn.execute("alter table if exists metrics.fct_rerank_uplift rename to uplift_as_built")
        conn.execute(
            "create table metrics.fct_rerank_uplift as "
            "select 'clean'::text as pair, %s::text as reranker, 0.125::float8 as uplift",
            (hostile + "blip",),
        )
        try:
            text = write_report(conn, planted["config"], tmp_path / "r.html").read_text()
        finally:
            conn.rollback()
    raw = text.encode("utf-8")
    assert not [byte for byte in raw if byte < 0x20 and byte not in b"\n\t\r"]
    assert b"\x7f" not in raw
    assert "bagsredbags" in text and "blip" in text  # the text stays, its escapes go


def test_the_rerank_scorecard_cleans_names_from_the_data(db, planted):
    from embed_udfs.jobs.rerank.report import rerank_scorecard

    columns = (
        "reranker text, pair text, direction text, section text, metric text, n int, "
        "before float8, after float8, difference float8, ci_low float8, ci_high float8, "
        "n_improved int, n_worsened int, stage1_ceiling float8, n_not_reranked int, "
        "n_candidates int"
    )
    rows = [
        ("\x1b[31mblip\x07", "clean", "text_to_image", section, "recall_at_1", 10)
        + (0.5, 0.6, diff, -0.1, 0.3, 3, 1, 0.9, 0, 20)
        for section, diff in (("ALL", 0.1), ("\x1b]0;owned\x07red\x1b[0mlamps", 0.2))
    ]
    with connection(db) as conn:
        conn.execute("alter table if exists metrics.fct_rerank_uplift rename to uplift_as_built")
        conn.execute(f"create table metrics.fct_rerank_uplift ({columns})")
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into metrics.fct_rerank_uplift values "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        try:
            out = rerank_scorecard(conn)
        finally:
            conn.rollback()
    assert "blip on clean" in out and "helps most: redlamps +0.200" in out
    assert all(ch == "\n" or ch.isprintable() for ch in out)
