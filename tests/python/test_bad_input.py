"""Bad input: each case gets a clear message, and the good rows still land."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

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
from PIL import Image

from embed_udfs import cli, store
from embed_udfs.config import load_config
from embed_udfs.db import admin_connect, connect, connection
from embed_udfs.errors import ConfigError, DbtError, PgvectorMissing
from embed_udfs.jobs.backfill import backfill_space
from embed_udfs.store import PRODUCTS_DDL

PAIR = [{"name": "planted", "text_space": "t", "image_space": "i"}]


def _planted_vars(**extra) -> dict:
    return planted_config(
        [planted_space("t", "text", 8), planted_space("i", "image", 8)],
        PAIR,
        retrieval_search="exact",
        **{"eval_k_values": [1, 5, 10], **extra},  # the planted galleries hold 40 products
    )


def test_unknown_space_names_the_known_ones(capsys):
    config = load_config(PROJECT_DIR)
    with pytest.raises(ConfigError, match="unknown space 'nope'.*clip_image"):
        config.space("nope")
    assert cli.main(["backfill", "--space", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown space 'nope'" in err and "Traceback" not in err


def test_pair_with_unknown_space_is_refused_before_dbt_runs(db, tmp_path):
    dbt_vars = _planted_vars()
    dbt_vars["embed_pairs"] = [{"name": "bad", "text_space": "t", "image_space": "missing"}]
    with pytest.raises(ConfigError, match="not a configured space"):
        config_for(dbt_vars)
    with pytest.raises(ConfigError, match="image_space is 'missing', which is not a configured"):
        dbt_build(db, dbt_vars, tmp_path)
    assert not (tmp_path / "target").exists()  # dbt never started


def test_cross_family_pair_is_refused_unless_overridden(db, tmp_path):
    spaces = [planted_space("t", "text", 8, family="minilm"), planted_space("i", "image", 8)]
    refused = planted_config(spaces, PAIR)
    with pytest.raises(ConfigError, match="across model families.*alignment_override"):
        config_for(refused)
    with pytest.raises(ConfigError, match="retrieves across model families"):
        dbt_build(db, refused, tmp_path, "stg_catalog__products")
    assert not (tmp_path / "target").exists()  # dbt never started
    allowed = planted_config(
        spaces, [{**PAIR[0], "alignment_override": "distilled into the image tower's space"}]
    )
    assert config_for(allowed).pairs[0].alignment_override


def test_zero_nan_and_wrong_dimension_vectors_are_rejected_and_good_rows_land(db):
    config = config_for(_planted_vars())
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 8))
    vectors[2] = 0.0
    vectors[3, 4] = np.nan
    vectors[4, 0] = np.inf
    ids = ["a", "b", "zero", "nan", "inf"]
    with connection(db) as conn:
        conn.execute(PRODUCTS_DDL)
        store.bootstrap(conn, config)
        rejected = store.write_vectors(conn, config, config.space("t"), ids, ids, vectors, "m")
        wrong = store.write_vectors(
            conn, config, config.space("t"), ["w"], ["w"], rng.normal(size=(1, 7)), "m"
        )
        conn.commit()
    assert {r.product_id for r in rejected} == {"zero", "nan", "inf"}
    assert wrong[0].reason.startswith("wrong dimension: 7")
    stored = query(db, "select product_id, vector_norm(embedding) from embeddings.vectors")
    assert {p for p, _ in stored} == {"a", "b"}
    assert all(abs(norm - 1) < 1e-6 for _, norm in stored)  # stored L2-normalised
    reasons = dict(query(db, "select product_id, reason from embeddings.backfill_errors"))
    assert reasons["zero"].startswith("zero vector")
    assert reasons["nan"].startswith("non-finite") and reasons["inf"].startswith("non-finite")
    assert reasons["w"].startswith("wrong dimension")


def test_invalid_vectors_written_by_hand_are_kept_out_of_the_metrics(db, tmp_path):
    """A user's own rows: wrong dimension and zero vectors are flagged, not sampled."""
    dbt_vars = _planted_vars()
    config = config_for(dbt_vars)
    rng = np.random.default_rng(1)
    products = [(f"P{i}", "s1" if i % 2 else None) for i in range(40)]
    vectors = rng.normal(size=(40, 8))
    plant(db, config, products, {"t": vectors, "i": vectors})
    with connection(db) as conn:
        conn.execute(
            "update embeddings.vectors set embedding = %s where product_id = 'P0' and space = 'i'",
            (np.zeros(8, dtype=np.float32),),
        )
        conn.execute(
            "update embeddings.vectors set embedding = %s where product_id = 'P1' and space = 'i'",
            (np.ones(5, dtype=np.float32) / np.sqrt(5),),
        )
        conn.commit()
    dbt_build(db, dbt_vars, tmp_path)
    rejected = dict(
        query(
            db,
            "select product_id, reason from metrics.fct_rejected_inputs where stage = 'validation'",
        )
    )
    assert rejected["P0"].startswith("zero vector")
    assert rejected["P1"].startswith("wrong dimension: 5")
    sampled = {p for (p,) in query(db, "select product_id from intermediate.int_eval_sample")}
    assert sampled == {p for p, _ in products} - {"P0", "P1"}
    # a NULL section is reported as `unknown`, and counted
    unknown_n = query(
        db,
        "select n from metrics.fct_retrieval_metrics where section = 'unknown' "
        "and metric = 'recall_at_1' and direction = 'text_to_image' and gallery_scope = 'sample'",
    )
    assert unknown_n == [(19,)]  # P2, P4, ..., P38 (P0 was rejected)


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_backfill_rejects_empty_text_and_broken_images_and_embeds_the_rest(
    db, tmp_path, demo_models
):
    """Real tiny open_clip encoders; the inputs come from the dbt model."""
    config = load_config(PROJECT_DIR)
    good = tmp_path / "good.png"
    good.write_bytes(_png((200, 30, 30)))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(_png((0, 0, 0))[:40])
    rows = [
        ("ok1", "Red bag", "Leather.", "bags", str(good)),
        ("ok2", "Blue lamp", None, "lamps", good.as_uri()),
        ("empty", "", "", "bags", str(tmp_path / "absent.png")),
        ("nulls", None, None, None, None),
        ("broken", "Green toy", "Wooden!!", "toys", str(corrupt)),
    ]
    with connection(db) as conn:
        conn.execute(PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("truncate catalog.products")
        with conn.cursor().copy("copy catalog.products from stdin") as copy:
            for product_id, name, description, section, image in rows:
                copy.write_row((product_id, name, description, section, "store", image))
        conn.commit()
    dbt_build(db, {}, tmp_path, "+int_space_inputs")
    text = backfill_space(db, config, config.space("clip_text"))
    image = backfill_space(db, config, config.space("clip_image"))
    assert (text.embedded, sum(text.rejected.values())) == (3, 2)
    assert (image.embedded, sum(image.rejected.values())) == (2, 3)
    errors = {
        (space, product_id): reason
        for space, product_id, reason in query(
            db, "select space, product_id, reason from embeddings.backfill_errors"
        )
    }
    assert errors[("clip_text", "empty")].startswith("empty text")
    assert errors[("clip_text", "nulls")].startswith("empty text")
    assert errors[("clip_image", "nulls")].startswith("missing image")
    assert errors[("clip_image", "empty")].startswith("missing image")
    assert errors[("clip_image", "broken")] == "corrupt image"
    # a second run embeds nothing and records no duplicate errors
    again = backfill_space(db, config, config.space("clip_image"))
    assert (again.embedded, again.unchanged, sum(again.rejected.values())) == (0, 2, 3)
    assert query(db, "select count(*) from embeddings.backfill_errors")[0][0] == 5


def test_a_vector_whose_current_input_fails_is_stale_until_embedded_again(
    db, tmp_path, demo_models
):
    """The image behind a stored vector breaks: the backfill records the rejection and
    keeps the vector, dbt keeps it out of the metrics as stale, and once the image is
    back the backfill embeds it again, so it counts again."""
    config = load_config(PROJECT_DIR)
    image = tmp_path / "photo.png"
    image.write_bytes(_png((30, 160, 60)))
    with connection(db) as conn:
        conn.execute(PRODUCTS_DDL)
        store.bootstrap(conn, config)
        conn.execute("truncate catalog.products")
        conn.execute("delete from embeddings.vectors where space = 'clip_image'")
        conn.execute("delete from embeddings.backfill_errors where space = 'clip_image'")
        conn.execute(
            "insert into catalog.products values ('p1', 'Green lamp', 'Glass.', 'lamps', 's', %s)",
            (str(image),),
        )
        conn.commit()
    space = config.space("clip_image")

    def validation() -> list[tuple]:
        dbt_build(db, {}, tmp_path, "int_vectors_validated")
        return query(
            db,
            "select is_valid, rejection_reason from intermediate.int_vectors_validated"
            " where space = 'clip_image' and product_id = 'p1'",
        )

    dbt_build(db, {}, tmp_path, "+int_space_inputs", "+int_vectors_validated")
    assert backfill_space(db, config, space).embedded == 1
    assert validation() == [(True, None)]
    stored = query(db, "select input_hash from embeddings.vectors where product_id = 'p1'")

    image.unlink()
    broken = backfill_space(db, config, space)
    assert (broken.embedded, dict(broken.rejected)) == (0, {"missing image: not found": 1})
    assert query(db, "select input_hash from embeddings.vectors where product_id = 'p1'") == stored
    ((valid, reason),) = validation()
    assert not valid
    assert reason.startswith("stale: the product's current input was rejected (missing image")

    image.write_bytes(_png((30, 160, 60)))  # the same bytes, so the same input hash
    back = backfill_space(db, config, space)
    assert (back.embedded, back.unchanged) == (1, 0)
    assert query(db, "select input_hash from embeddings.vectors where product_id = 'p1'") == stored
    assert validation() == [(True, None)]
    assert backfill_space(db, config, space).unchanged == 1


@pytest.fixture()
def server_without_pgvector(server, tmp_path):
    """A real database on which the vector extension is not available."""
    name = f"embed_metrics_nopgvector_{os.getpid()}"
    # extension_control_path (PostgreSQL 18) pointed at an empty directory the
    # server can read: this database sees no extension at all, pgvector included.
    empty = Path(tempfile.mkdtemp(prefix="embed_metrics_noext_"))
    empty.chmod(0o755)
    with admin_connect(server, "postgres") as admin:
        admin.execute(f'drop database if exists "{name}"')
        # Owned by the role the code under test connects as, as ensure_database does.
        admin.execute(f'create database "{name}" owner "{server.user}"')
        admin.execute(f"alter database \"{name}\" set extension_control_path = '{empty}'")
    yield server.for_database(name)
    with admin_connect(server, "postgres") as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')
    shutil.rmtree(empty, ignore_errors=True)


def test_server_without_pgvector_gets_the_fix(
    server_without_pgvector, tmp_path, monkeypatch, capsys
):
    with pytest.raises(PgvectorMissing, match="has no pgvector extension.*Install pgvector"):
        connect(server_without_pgvector)
    with pytest.raises(DbtError, match="has no pgvector extension"):
        dbt_build(server_without_pgvector, {}, tmp_path, "stg_catalog__products")
    for key, value in server_without_pgvector.env().items():
        monkeypatch.setenv(key, value)
    assert cli.main(["db", "start"]) == 2
    assert "no pgvector" in capsys.readouterr().err
