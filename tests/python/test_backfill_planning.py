"""Planning a backfill of local images reads and hashes each file once: a later plan
takes the hash of an untouched file from the stat cache, reads a rewritten file
again, and every hash equals sha256 of the recipe and the file's bytes."""

from __future__ import annotations

import hashlib
import os

import pytest
from conftest import PROJECT_DIR, dbt_build
from loopback import png_bytes

from embed_udfs import store
from embed_udfs.config import load_config
from embed_udfs.db import connection
from embed_udfs.jobs.backfill import plan as planning
from embed_udfs.jobs.base import Shard

N = 12


def _expected(recipe: str, path) -> str:
    return hashlib.sha256(recipe.encode() + b"\0" + path.read_bytes()).hexdigest()


@pytest.fixture
def counted_reads(monkeypatch):
    reads: list[str] = []
    real = planning.read_image_bytes

    def counting(uri, *args, **kwargs):
        reads.append(uri)
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(planning, "read_image_bytes", counting)
    return reads


def test_unchanged_files_are_not_read_again(db, tmp_path, counted_reads):
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(N):
        path = folder / f"p{i}.png"
        path.write_bytes(png_bytes((i * 20, 40, 90)))
        paths.append(path)
    config = load_config(PROJECT_DIR)
    space = config.space("clip_image")
    with connection(db) as conn:
        conn.execute(store.PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("truncate catalog.products")
        with conn.cursor().copy("copy catalog.products from stdin") as copy:
            for i, path in enumerate(paths):
                copy.write_row((f"P{i:02d}", f"item {i}", "planted", "s", "store", str(path)))
        conn.commit()
    dbt_build(db, {}, tmp_path, "+int_space_inputs")
    recipe = planning.recipe_ref(space)

    def hashes() -> dict[str, str]:
        with connection(db) as conn:
            done = planning.plan(conn, config, space, Shard())
        return {item.product_id: item.input_hash for item in done.todo}

    first = hashes()
    assert len(counted_reads) == N
    assert first == {f"P{i:02d}": _expected(recipe, p) for i, p in enumerate(paths)}

    counted_reads.clear()
    assert hashes() == first
    assert counted_reads == []  # nothing touched, nothing read

    # a file rewritten with other bytes (same size or not) is read again
    paths[3].write_bytes(png_bytes((1, 2, 3)))
    os.utime(paths[5])  # touched only: read again, same hash
    counted_reads.clear()
    third = hashes()
    assert sorted(counted_reads) == sorted([str(paths[3]), str(paths[5])])
    assert third["P03"] == _expected(recipe, paths[3]) != first["P03"]
    assert {k: v for k, v in third.items() if k != "P03"} == {
        k: v for k, v in first.items() if k != "P03"
    }
