"""The failure gallery, section confusions and run-against-run moves, on planted
vectors: the marts' worst queries, their top items, the confusion counts and the
rank moves equal a numpy computation on the same rows; the HTML page lists the
same products, escapes every value from the data, embeds re-encoded thumbnails,
and opens in headless Chromium with no console message and no network request."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import config_for, dbt_build, plant, planted_config, planted_space, query
from PIL import Image

from embed_udfs import runs
from embed_udfs.db import connection
from embed_udfs.jobs.cluster import cluster_spaces
from embed_udfs.report.html import write_report
from embed_udfs.report.thumbnails import NOT_FETCHED, thumbnail_jpeg

SCRIPT_NAME = "<script>alert(1)</script>"
QUOTED = "say \"hi\" & 'bye'"
SECTIONS = ["bags", QUOTED, "lamps"]
N_PRODUCTS = 48
DIM = 16
K_VALUES = [1, 5, 10]
MAX_K = max(K_VALUES)
TOP = 5
DIRECTIONS = {"text_to_image": ("t", "i"), "image_to_text": ("i", "t")}
REMOTE = "http://198.51.100.7/never-fetched.png"


def _vars() -> dict:
    return planted_config(
        [planted_space("t", "text", DIM), planted_space("i", "image", DIM)],
        [{"name": "clean", "text_space": "t", "image_space": "i"}],
        eval_k_values=K_VALUES,
        retrieval_search="exact",
        label_pca_dims=["none"],
        label_kmeans_seeds=[0],
        bootstrap_replicates=20,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _name(product_id: str) -> str:
    return SCRIPT_NAME if product_id == "P0000" else f"item {product_id}"


def _plant(db, config, products, vectors, images: dict[str, str]) -> None:
    """The planted catalog with names and image URIs, and its vectors."""
    plant(db, config, products, vectors)
    with connection(db) as conn:
        for product_id, _ in products:
            conn.execute(
                "update catalog.products set product_name = %s, image_uri = %s "
                "where product_id = %s",
                (_name(product_id), images.get(product_id), product_id),
            )
        conn.commit()


def _images(folder: Path, ids: list[str]) -> dict[str, str]:
    """A PNG per product, its colour from its number; three that cannot be shown."""
    folder.mkdir(parents=True, exist_ok=True)
    uris = {}
    for n, product_id in enumerate(ids):
        path = folder / f"{product_id}.png"
        Image.new("RGB", (120, 80), ((n * 53) % 256, (n * 97) % 256, (n * 31) % 256)).save(path)
        uris[product_id] = str(path)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    uris[ids[1]] = str(folder / "absent.png")
    uris[ids[2]] = str(folder / "corrupt.png")
    uris[ids[3]] = REMOTE
    return uris


@pytest.fixture(scope="module")
def planted(db, tmp_path_factory):
    rng = np.random.default_rng(11)
    ids = [f"P{i:04d}" for i in range(N_PRODUCTS)]
    sections = {p: SECTIONS[i % len(SECTIONS)] for i, p in enumerate(ids)}
    centres = {s: rng.normal(size=DIM) for s in SECTIONS}
    base = np.stack([centres[sections[p]] + rng.normal(size=DIM) for p in ids])
    vectors = {
        "t": base + 0.9 * rng.normal(size=base.shape),
        "i": base + 0.9 * rng.normal(size=base.shape),
    }
    changed = {"t": vectors["t"], "i": base + 0.3 * rng.normal(size=base.shape)}
    dbt_vars = _vars()
    config = config_for(dbt_vars)
    target = tmp_path_factory.mktemp("gallery")
    images = _images(target / "images", ids)
    products = [(p, sections[p]) for p in ids]
    _plant(db, config, products, vectors, images)
    dbt_build(db, dbt_vars, target, "+int_label_vectors")
    cluster_spaces(db, config)
    dbt_build(db, dbt_vars, target)
    before = _ranks_from_db(db)
    with connection(db) as conn:
        runs.set_baseline(conn, config, "latest")
        conn.commit()
    # a changed image space: the same products, new vectors, then a refresh
    _plant(db, config, products, changed, images)
    dbt_build(
        db,
        dbt_vars,
        target,
        "+fct_rank_moves",
        "+fct_retrieval_metrics",
        "+fct_retrieval_failure_neighbours",
        "+fct_retrieval_confusions",
        "fct_metric_history+",
    )
    return {
        "config": config,
        "ids": ids,
        "sections": sections,
        "vectors": changed,
        "first_vectors": vectors,
        "first_ranks": before,
        "images": images,
        "target": target,
    }


def _ranks_from_db(db) -> dict[tuple[str, str], int | None]:
    rows = query(
        db,
        "select direction, product_id, positive_rank from metrics.fct_retrieval_ranks "
        "where gallery_scope = 'sample'",
    )
    return {(d, p): r for d, p, r in rows}


def _numpy_lists(vectors, sample: list[str], ids: list[str]):
    """Per direction: each sampled query's distances to the sampled gallery, its rank
    (1 + items strictly closer than its positive) and its top items by (distance, id)."""
    index = {p: i for i, p in enumerate(ids)}
    rows = [index[p] for p in sample]
    out = {}
    for direction, (q_space, g_space) in DIRECTIONS.items():
        queries = _unit(vectors[q_space])[rows]
        gallery = _unit(vectors[g_space])[rows]
        distances = 1.0 - queries @ gallery.T
        result = {}
        for qi, product in enumerate(sample):
            d = distances[qi]
            rank = 1 + int((d < d[qi]).sum())
            order = sorted(range(len(sample)), key=lambda j: (d[j], sample[j]))
            result[product] = {
                "rank": rank if rank <= MAX_K else None,
                "positive_distance": float(d[qi]),
                "top": [sample[j] for j in order[:TOP]],
                "first": sample[order[0]],
            }
        out[direction] = result
    return out


def _sample(db) -> list[str]:
    return sorted(
        p
        for (p,) in query(
            db,
            "select distinct product_id from metrics.fct_retrieval_ranks "
            "where gallery_scope = 'sample'",
        )
    )


def _expected_worst(lists, sections, direction: str, section: str) -> list[tuple[str, int | None]]:
    queries = [(p, v) for p, v in lists[direction].items() if sections[p] == section]
    failed = [(p, v) for p, v in queries if v["rank"] != 1]
    failed.sort(
        key=lambda pv: (
            -(pv[1]["rank"] if pv[1]["rank"] is not None else MAX_K + 1),
            -pv[1]["positive_distance"],
            pv[0],
        )
    )
    return [(p, v["rank"]) for p, v in failed[:TOP]]


def test_worst_queries_and_their_top_items_equal_numpy(db, planted):
    sample = _sample(db)
    assert len(sample) >= N_PRODUCTS - 4  # a sample, not an empty mart
    lists = _numpy_lists(planted["vectors"], sample, planted["ids"])
    mart = query(
        db,
        "select direction, collection_section, query_product_id, positive_rank, query_name "
        "from metrics.fct_retrieval_failures where is_failure and worst_order <= %s "
        "order by direction, collection_section, worst_order",
        (TOP,),
    )
    assert mart, "no failures at all: the planted noise is too small to test anything"
    for direction in DIRECTIONS:
        for section in SECTIONS:
            got = [(p, r) for d, s, p, r, _ in mart if d == direction and s == section]
            assert got == _expected_worst(lists, planted["sections"], direction, section), (
                direction,
                section,
            )
    assert {name for *_, name in mart} <= {_name(p) for p in planted["ids"]}
    neighbours = query(
        db,
        "select direction, query_product_id, neighbour_product_id, is_positive "
        "from metrics.fct_retrieval_failure_neighbours order by direction, query_product_id, "
        "neighbour_rank",
    )
    listed: dict[tuple[str, str], list[str]] = {}
    for direction, product, neighbour, is_positive in neighbours:
        listed.setdefault((direction, product), []).append(neighbour)
        assert is_positive == (neighbour == product)
    failed = set(
        query(
            db,
            "select direction, query_product_id from metrics.fct_retrieval_failures "
            "where is_failure",
        )
    )
    assert set(listed) == failed
    for (direction, product), items in listed.items():
        assert items == lists[direction][product]["top"], (direction, product)


def test_section_confusions_equal_numpy_first_items(db, planted):
    sample = _sample(db)
    lists = _numpy_lists(planted["vectors"], sample, planted["ids"])
    sections = planted["sections"]
    rows = query(
        db,
        "select direction, query_section, retrieved_section, n_retrieved, n_queries, "
        "share_of_queries from metrics.fct_retrieval_confusions",
    )
    for direction in DIRECTIONS:
        expected = Counter((sections[p], sections[v["first"]]) for p, v in lists[direction].items())
        sizes = Counter(sections[p] for p in lists[direction])
        got = {(q, r): (n, of, share) for d, q, r, n, of, share in rows if d == direction}
        assert {key: n for key, (n, _, _) in got.items()} == dict(expected)
        for (q, _), (n, of, share) in got.items():
            assert of == sizes[q] and share == pytest.approx(n / sizes[q])


def test_rank_moves_equal_numpy_ranks_before_and_after(db, planted):
    sample = _sample(db)
    before = _numpy_lists(planted["first_vectors"], sample, planted["ids"])
    after = _numpy_lists(planted["vectors"], sample, planted["ids"])
    rows = query(
        db,
        "select direction, product_id, rank_before, rank_after, rank_change, move "
        "from metrics.fct_rank_moves",
    )
    assert len(rows) == 2 * len(sample)
    moved = 0
    for direction, product, rank_before, rank_after, change, move in rows:
        b = before[direction][product]["rank"]
        a = after[direction][product]["rank"]
        assert (rank_before, rank_after) == (b, a), (direction, product)
        expected = (b or MAX_K + 1) - (a or MAX_K + 1)
        assert change == expected
        assert move == ("better" if expected > 0 else "worse" if expected < 0 else "unchanged")
        moved += expected != 0
    assert moved > 0, "the changed space moved nothing: the test could not fail"
    # the baseline run's ranks were kept in fct_rank_history, not recomputed
    assert {(d, p): r for d, p, r, *_ in rows} == planted["first_ranks"]


def _report(db, planted, path: Path, **kwargs) -> str:
    with connection(db) as conn:
        return write_report(conn, planted["config"], path, **kwargs).read_text(encoding="utf-8")


def _gallery_block(text: str, direction_label: str, section_html: str) -> str:
    """One section's gallery (a <details>) under one pair's and direction's heading."""
    gallery = text.split('id="failures"', 1)[1].split("</section>", 1)[0]
    part = gallery.split(f"<h3>clean: {direction_label}</h3>", 1)[1].split("<h3>", 1)[0]
    block = part.split(f"<summary>{section_html} <span>", 1)[1]
    return block.split("</details>", 1)[0]


def test_the_gallery_shows_the_worst_queries_escaped_with_thumbnails(db, planted, tmp_path):
    text = _report(db, planted, tmp_path / "report.html")
    assert SCRIPT_NAME not in text and "<script" not in text
    assert QUOTED not in text
    sample = _sample(db)
    lists = _numpy_lists(planted["vectors"], sample, planted["ids"])
    labels = {"text_to_image": "text → image", "image_to_text": "image → text"}
    for direction, label in labels.items():
        for section in SECTIONS:
            worst = _expected_worst(lists, planted["sections"], direction, section)
            block = _gallery_block(text, label, _html(section)) if worst else ""
            shown = re.findall(r'<div class="failure" data-query="([^"]+)"', block)
            assert shown == [p for p, _ in worst], (direction, section)
            for product, rank in worst:
                rank_text = "beyond 10" if rank is None else str(rank)
                assert f"positive at rank {rank_text}" in block
                first = block.split(f'data-query="{product}"', 1)[1].split('class="failure"')[0]
                items = re.findall(r'data-product="([^"]+)"', first)
                # the query, its positive, then what it retrieved
                assert items[2:] == lists[direction][product]["top"], (direction, product)
    # thumbnails: JPEG re-encoded from the PNGs, one class per distinct image
    classes = dict(
        re.findall(r'\.(th\d+) \{ background-image: url\("data:image/jpeg;base64,([^"]+)"', text)
    )
    assert classes, "no thumbnail embedded"
    tiles = re.findall(r'data-product="([^"]+)"><div class="thumb (th\d+)"', text)
    assert tiles
    for product, css_class in tiles:
        png = Path(planted["images"][product]).read_bytes()
        assert base64.b64encode(png).decode() not in text, "image bytes embedded as read"
        assert classes[css_class] == base64.b64encode(thumbnail_jpeg(png)).decode(), product
    for payload in classes.values():
        image = Image.open(io.BytesIO(base64.b64decode(payload)))
        assert image.format == "JPEG" and max(image.size) <= 96
    # the remote image was not fetched, the missing and corrupt ones say why
    ids = planted["ids"]
    reasons = _placeholders(text)
    for product, reason in (
        (ids[1], "missing image: not found"),
        (ids[2], "corrupt image"),
        (ids[3], NOT_FETCHED),
    ):
        if product in reasons:
            assert reasons[product].startswith(reason), (product, reasons[product])


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def _placeholders(text: str) -> dict[str, str]:
    """Product id -> the reason its placeholder shows."""
    found = re.findall(
        r'data-product="([^"]+)"><div class="thumb missing" role="img" aria-label="no picture">'
        r"([^<]*)</div>",
        text,
    )
    return {product: reason for product, reason in found}


def test_placeholders_say_why_an_image_is_not_shown(db, planted, tmp_path):
    """Every product with an unreadable image shows once in an image tile of the gallery
    when it is shown at all; force all three in by listing every failure."""
    from embed_udfs.report import thumbnails as t

    made = t.make_thumbnails(
        [planted["images"][p] for p in planted["ids"][1:4]], planted["config"].ingest
    )
    reasons = [made.get(planted["images"][p]).reason for p in planted["ids"][1:4]]
    assert reasons[0] == "missing image: not found"
    assert reasons[1] is not None and reasons[1].startswith("corrupt image")
    assert reasons[2] == NOT_FETCHED
    assert made.data_uris == {}


def test_the_thumbnail_budget_leaves_out_the_rest_and_says_so(db, planted, tmp_path):
    text = _report(db, planted, tmp_path / "small.html", max_thumbnail_bytes=3000)
    embedded = re.findall(r"data:image/jpeg;base64,([^\"]+)", text)
    assert sum(len(e) + len("data:image/jpeg;base64,") for e in embedded) <= 3000
    assert "thumbnail(s) left out" in text and "budget of" in text
    assert "the report&#39;s thumbnail budget was spent" in text


def test_the_run_against_run_view_shows_the_moves_and_section_verdicts(db, planted, tmp_path):
    text = _report(db, planted, tmp_path / "report.html")
    block = text.split('id="moves"', 1)[1].split("</section>", 1)[0]
    top = query(
        db,
        "select product_id, rank_change from metrics.fct_rank_moves "
        "where direction = 'text_to_image' and improvement_order = 1 and rank_change > 0",
    )
    for product, _ in top:
        assert f'<td class="text">{product}</td>' in block
    assert "Per-section deltas against the baseline" in block
    assert "→" in block and "ALL" in block


# ---------------------------------------------------------------- headless Chromium


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class DevTools:
    """Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, JSON messages
    ended by NUL): no websocket client, no driver, nothing installed from PyPI."""

    def __init__(self, browser: str, profile: Path):
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def wire() -> None:
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            pass_fds=(3, 4),
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        message: dict = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next(60.0)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._next(deadline - time.monotonic()))

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.events.append(self._next(deadline - time.monotonic()))
            except TimeoutError:
                return

    def _next(self, timeout: float) -> dict:
        import select

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("no message from Chromium")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)


def test_the_page_opens_in_chromium_without_console_or_network(db, planted, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no Chromium found (tried $CHROMIUM, chromium, chromium-browser, google-chrome): "
            "`make test` installs Debian's chromium when run as root; or apt-get install chromium"
        )
    page = tmp_path / "report.html"
    _report(db, planted, page)
    tools = DevTools(browser, tmp_path / "profile")
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Network", "Runtime", "Log", "Page"):
            tools.send(f"{domain}.enable", session=session)
        tools.events.clear()
        tools.send("Page.navigate", {"url": page.as_uri()}, session=session)
        tools.wait_for("Page.loadEventFired", 60.0)
        tools.drain(1.0)
        found = tools.send(
            "Runtime.evaluate",
            {
                "expression": "JSON.stringify([document.querySelectorAll('.failure').length, "
                "document.querySelectorAll('script').length, "
                "[...document.querySelectorAll('.thumb[class*=th]')].filter(e => "
                "getComputedStyle(e).backgroundImage.startsWith('url(\"data:image/jpeg')).length, "
                "document.body.innerText.includes(" + json.dumps(SCRIPT_NAME) + "), "
                "document.body.innerText.includes(" + json.dumps(QUOTED) + ")])",
                "returnByValue": True,
            },
            session=session,
        )
    finally:
        tools.close()
    failures, scripts, thumbs, script_as_text, quoted_as_text = json.loads(found["result"]["value"])
    assert failures > 0 and scripts == 0 and thumbs > 0
    assert script_as_text and quoted_as_text, "a name from the data did not render as text"
    requests = [
        e["params"]["request"]["url"]
        for e in tools.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requests, "the page load was not observed"
    outside = [u for u in requests if u != page.as_uri() and not u.startswith("data:")]
    assert outside == [], f"the page asked the network for {outside}"
    console = [
        e
        for e in tools.events
        if e.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert console == [], f"the page logged: {console}"
