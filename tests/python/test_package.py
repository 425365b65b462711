"""The package path (docs/package.md): a user's own dbt project installs this checkout
with a `local:` entry in packages.yml, names its own tables and columns through vars
(another schema, other table and column names, vectors as halfvec or real[]), runs
`dbt deps` and `dbt build --select package:embed_metrics`, and gets the metrics in a
schema of its own. Retrieval figures are recomputed with numpy from the user's rows.
dbt runs as a separate process, as the user runs it, on the embedded server.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import yaml
from conftest import PROJECT_DIR, query
from psycopg import sql
from reference import rank_bounds, recall_at

from embed_udfs.db import ConnectionSettings, connect_kwargs, drop_database

DBT = str(Path(sys.executable).parent / "dbt")
SECTIONS = ("kitchen", "garden", "toys")
DIM = 16
K_VALUES = [1, 5, 10]
PACKAGE_SCHEMA = "analytics_embed_metrics"  # dbt's default naming: <target schema>_embed_metrics


def _space(name: str, modality: str) -> dict[str, Any]:
    return {"name": name, "modality": modality, "family": "shop-clip", "model": "shop", "dim": DIM}


SPACES = [_space("txt", "text"), _space("img", "image")]
PAIRS = [{"name": "shop", "text_space": "txt", "image_space": "img"}]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def planted(n: int = 60, seed: int = 5) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """(item key, category) rows and unit text and image vectors: noisy pairs, so ranks
    spread (recall@1 well below 1) without being at chance."""
    rng = np.random.default_rng(seed)
    items = [(f"sku-{i:03d}", SECTIONS[i % len(SECTIONS)]) for i in range(n)]
    base = rng.normal(size=(n, DIM))
    texts = unit_rows(base + 0.7 * rng.normal(size=base.shape))
    images = unit_rows(base + 0.7 * rng.normal(size=base.shape))
    return items, texts, images


def literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in vector) + "]"


def user_project(
    tmp_path: Path, settings: ConnectionSettings, user: str, dbt_vars: Mapping[str, Any]
) -> Path:
    """A dbt project of the user's own (its name, profile and target schema), with this
    checkout as a local package."""
    project = tmp_path / "shop_analytics"
    project.mkdir()
    (project / "dbt_project.yml").write_text(
        yaml.safe_dump(
            {
                "name": "shop_analytics",
                "version": "1.0.0",
                "config-version": 2,
                "profile": "shop",
                "vars": dict(dbt_vars),
            },
            sort_keys=False,
        )
    )
    (project / "profiles.yml").write_text(
        yaml.safe_dump(
            {
                "shop": {
                    "target": "dev",
                    "outputs": {
                        "dev": {
                            "type": "postgres",
                            "host": settings.host,
                            "port": settings.port,
                            "user": user,
                            "password": "",
                            "dbname": settings.dbname,
                            "schema": "analytics",
                            "threads": 2,
                        }
                    },
                }
            }
        )
    )
    (project / "packages.yml").write_text(
        yaml.safe_dump({"packages": [{"local": str(PROJECT_DIR)}]})
    )
    return project


def dbt(project: Path, *args: str, vars_: Mapping[str, Any] | None = None) -> tuple[int, str]:
    command = [DBT, *args, "--project-dir", str(project), "--profiles-dir", str(project)]
    if vars_:
        command += ["--vars", yaml.safe_dump(dict(vars_), default_flow_style=True).strip()]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=1500, cwd=project, check=False
    )
    return done.returncode, done.stdout + done.stderr


def admin(settings: ConnectionSettings) -> psycopg.Connection:
    return psycopg.connect(**connect_kwargs(settings.as_admin()), autocommit=True)


def write_user_tables(
    conn: psycopg.Connection,
    items: list[tuple[str, str]],
    texts: np.ndarray,
    images: np.ndarray,
    vector_type: str,
) -> None:
    """The user's catalog and vectors, in their schema and with their names: one row per
    (item, model) with the vector stored as `vector_type`."""
    conn.execute("create schema shop")
    conn.execute(
        "create table shop.items (item_key text primary key, title text, blurb text, "
        "category text, price numeric)"
    )
    conn.execute(
        f"create table shop.item_embeddings (item_key text, model_name text, vec {vector_type}, "
        "primary key (item_key, model_name))"
    )
    with conn.cursor() as cursor:
        cursor.executemany(
            "insert into shop.items values (%s, %s, %s, %s, 9.99)",
            [(key, f"item {key}", f"about {key}", category) for key, category in items],
        )
        for space, matrix in (("txt", texts), ("img", images)):
            if vector_type == "real[]":
                rows = [
                    (key, space, [float(x) for x in v])
                    for (key, _), v in zip(items, matrix, strict=True)
                ]
                statement = "insert into shop.item_embeddings values (%s, %s, %s::real[])"
            else:
                rows = [(key, space, literal(v)) for (key, _), v in zip(items, matrix, strict=True)]
                statement = f"insert into shop.item_embeddings values (%s, %s, %s::{vector_type})"
            cursor.executemany(statement, rows)


def user_vectors(conn: psycopg.Connection, space: str) -> tuple[list[str], np.ndarray]:
    """The user's vectors of one space as stored (halfvec rounding included), read back
    from the user's table, not from anything the package built."""
    rows = conn.execute(
        "select item_key, vec::text from shop.item_embeddings where model_name = %s "
        "order by item_key",
        (space,),
    ).fetchall()
    keys = [row[0] for row in rows]
    matrix = np.array([[float(x) for x in row[1].strip("[]{}").split(",")] for row in rows])
    return keys, matrix


def retrieval_metrics(settings: ConnectionSettings) -> dict[tuple[str, str, str], tuple]:
    rows = query(
        settings,
        f"select direction, section, metric, value, n from {PACKAGE_SCHEMA}.fct_retrieval_metrics "
        "where pair = 'shop' and gallery_scope = 'sample'",
    )
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


def package_vars(**extra: Any) -> dict[str, Any]:
    return {
        "products_relation": "shop.items",
        "products_columns": {
            "product_id": "item_key",
            "product_name": "title",
            "product_description": "blurb",
            "collection_section": "category",
            "store_name": None,
            "image_uri": None,
        },
        "vectors_relation": "shop.item_embeddings",
        "vectors_columns": {
            "space": "model_name",
            "product_id": "item_key",
            "embedding": "vec",
            "input_hash": None,
            "model_ref": None,
            "embedded_at": None,
        },
        "embed_spaces": SPACES,
        "embed_pairs": PAIRS,
        "eval_k_values": K_VALUES,
        "bootstrap_replicates": 20,
        "label_kmeans_seeds": [0],
        **extra,
    }


def relations(settings: ConnectionSettings, schema: str) -> set[str]:
    rows = query(
        settings,
        "select table_name from information_schema.tables where table_schema = %s",
        (schema,),
    )
    return {row[0] for row in rows}


@pytest.fixture(scope="module")
def shop(db: ConnectionSettings, tmp_path_factory: pytest.TempPathFactory):
    """The user's tables (halfvec vectors) and project, deps installed, package built."""
    items, texts, images = planted()
    with admin(db) as conn:
        write_user_tables(conn, items, texts, images, "halfvec(16)")
        conn.execute(sql.SQL("grant usage on schema shop to {}").format(sql.Identifier(db.user)))
        conn.execute(
            sql.SQL("grant select on all tables in schema shop to {}").format(
                sql.Identifier(db.user)
            )
        )
    project = user_project(tmp_path_factory.mktemp("user"), db, db.user, package_vars())
    code, output = dbt(project, "deps")
    assert code == 0, output
    code, output = dbt(project, "build", "--select", "package:embed_metrics")
    assert code == 0, output
    return project, items


def test_package_builds_retrieval_figures_that_numpy_recomputes(db, shop):
    _, items = shop
    categories = dict(items)
    with admin(db) as conn:
        keys, texts = user_vectors(conn, "txt")
        image_keys, images = user_vectors(conn, "img")
    assert keys == image_keys == sorted(categories)
    metrics = retrieval_metrics(db)
    sections = np.array([categories[key] for key in keys])
    for direction, (q, g) in {
        "text_to_image": (texts, images),
        "image_to_text": (images, texts),
    }.items():
        low, high = rank_bounds(q, g)
        assert 0.2 < recall_at(low, 1) < 0.95, "planted data should not be trivial"
        for section in [*SECTIONS, "ALL"]:
            chosen = np.ones(len(keys), bool) if section == "ALL" else sections == section
            for k in K_VALUES:
                value, n = metrics[(direction, section, f"recall_at_{k}")]
                assert n == chosen.sum()
                # near-ties (float32 in pgvector, float64 here) may fall either side
                assert (
                    recall_at(high[chosen], k) - 1e-12 <= value <= recall_at(low[chosen], k) + 1e-12
                )


def test_package_models_land_in_their_own_schema(db, shop):
    built = relations(db, PACKAGE_SCHEMA)
    assert {"fct_retrieval_metrics", "fct_embedding_gaps", "fct_label_metrics"} <= built
    assert {"fct_metric_history", "dim_runs", "stg_embeddings__vectors"} <= built
    # nothing of the package lands beside the user's tables or in the project's own schemas
    assert relations(db, "shop") == {"items", "item_embeddings"}
    for schema in ("metrics", "staging", "intermediate", "catalog", "embeddings", "analytics"):
        assert not relations(db, schema), schema


def test_package_reads_only_the_columns_it_needs(db, shop):
    """The user's products relation has a price column; the staging view never reads it.
    (information_schema shows a table's columns to its owner: ask as the admin.)"""
    with admin(db) as conn:
        rows = conn.execute(
            "select column_name from information_schema.view_column_usage "
            "where view_schema = %s and table_schema = 'shop' and table_name = 'items'",
            (PACKAGE_SCHEMA,),
        ).fetchall()
    assert rows, "the staging view should read shop.items"
    assert "price" not in {row[0] for row in rows}


def test_a_family_switched_off_is_absent_and_the_rest_builds(db, shop, tmp_path):
    """labels, rerank, dedup and ANN tuning off: their models are not built (the old
    tables are dropped first, to see that), and retrieval, gaps and history still build."""
    project, _ = shop
    with admin(db) as conn:
        conn.execute(f"drop schema {PACKAGE_SCHEMA} cascade")
    code, output = dbt(
        project,
        "build",
        "--select",
        "package:embed_metrics",
        vars_={
            "enable_labels": False,
            "enable_rerank": False,
            "enable_dedup": False,
            "enable_ann_tuning": False,
        },
    )
    assert code == 0, output
    built = relations(db, PACKAGE_SCHEMA)
    assert not {r for r in built if r.startswith(("fct_label", "int_label_neighbours"))}
    assert "fct_space_comparisons" not in built
    assert not {r for r in built if "rerank" in r}
    assert not {"int_near_duplicate_neighbours", "int_dedup_vectors", "fct_ann_tuning"} & built
    assert not query(db, f"select 1 from {PACKAGE_SCHEMA}.int_duplicate_pairs")
    assert {"fct_retrieval_metrics", "fct_embedding_gaps", "fct_metric_history"} <= built
    families = query(db, f"select distinct family from {PACKAGE_SCHEMA}.fct_metric_history")
    assert {row[0] for row in families} == {"retrieval", "gap"}


@pytest.fixture
def bare_database(server: ConnectionSettings) -> Iterator[ConnectionSettings]:
    """A database without the vector extension, and an ordinary login role."""
    settings = server.for_database(f"embed_metrics_role_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(
        **connect_kwargs(settings.as_admin().for_database("postgres")), autocommit=True
    ) as conn:
        conn.execute(
            sql.SQL("create database {} template template0").format(sql.Identifier(settings.dbname))
        )
    yield settings
    drop_database(settings)


def test_an_ordinary_role_builds_once_a_superuser_created_the_extension(
    bare_database: ConnectionSettings, tmp_path: Path
):
    """The role may read the user's tables and create in one schema, nothing else. Without
    the extension, dbt stops and names the statement; a superuser runs it once, and the
    same role builds the package. Its vectors are real[], one column per space (a wide
    table: vectors_columns.space null, each space's vector_column)."""
    settings = bare_database
    role = f"shop_dbt_{uuid.uuid4().hex[:6]}"
    items, texts, images = planted(n=30, seed=9)
    with admin(settings) as conn:
        conn.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
        write_user_tables(conn, items, texts, images, "real[]")
        conn.execute(
            "create table shop.item_vectors as select item_key, "
            "max(vec) filter (where model_name = 'txt') as text_vec, "
            "max(vec) filter (where model_name = 'img') as image_vec "
            "from shop.item_embeddings group by item_key"
        )
        conn.execute(sql.SQL("grant usage on schema shop to {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("grant select on all tables in schema shop to {}").format(sql.Identifier(role))
        )
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(PACKAGE_SCHEMA)))
        conn.execute(
            sql.SQL("grant usage, create on schema {} to {}").format(
                sql.Identifier(PACKAGE_SCHEMA), sql.Identifier(role)
            )
        )
        conn.execute(
            sql.SQL("revoke create on database {} from public").format(
                sql.Identifier(settings.dbname)
            )
        )
    try:
        wide = package_vars(
            enable_labels=False,
            eval_k_values=[1, 5],
            vectors_relation="shop.item_vectors",
            vectors_columns={
                "space": None,
                "product_id": "item_key",
                "input_hash": None,
                "model_ref": None,
                "embedded_at": None,
            },
            embed_spaces=[
                {**SPACES[0], "vector_column": "text_vec"},
                {**SPACES[1], "vector_column": "image_vec"},
            ],
        )
        project = user_project(tmp_path, settings, role, wide)
        assert dbt(project, "deps")[0] == 0
        code, output = dbt(project, "build", "--select", "package:embed_metrics")
        assert code != 0
        assert "create extension vector" in output, output
        assert f"role {role} may not create it" in output, output

        with admin(settings) as conn:
            conn.execute("create extension vector")
        code, output = dbt(project, "build", "--select", "package:embed_metrics")
        assert code == 0, output
        with admin(settings) as conn:
            stored = conn.execute(
                "select text_vec, image_vec from shop.item_vectors order by item_key"
            ).fetchall()
            stored_texts = np.array([row[0] for row in stored], dtype=np.float64)
            stored_images = np.array([row[1] for row in stored], dtype=np.float64)
            value, n = conn.execute(
                f"select value, n from {PACKAGE_SCHEMA}.fct_retrieval_metrics where pair = 'shop' "
                "and direction = 'text_to_image' and section = 'ALL' and metric = 'recall_at_1' "
                "and gallery_scope = 'sample'"
            ).fetchone()
        low, high = rank_bounds(stored_texts, stored_images)
        assert n == 30
        assert recall_at(high, 1) - 1e-12 <= value <= recall_at(low, 1) + 1e-12
    finally:
        with admin(settings) as conn:
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"vectors_columns": {"vector": "vec"}},
            r"vars\.vectors_columns is .*vector is not a contract column; use space, product_id",
        ),
        (
            {"products_columns": {"product_id": None}},
            r"vars\.products_columns is .*product_id is required",
        ),
        (
            {"vectors_columns": {"embedding": 'vec"; drop table x; --'}},
            r"vars\.vectors_columns is .*embedding maps to .*which is not a column name",
        ),
        (
            {"products_columns": ["item_key"]},
            r"vars\.products_columns is .*it must map contract columns",
        ),
        ({"enable_labels": "false"}, r"vars\.enable_labels is 'false'; it must be true or false"),
    ],
)
def test_bad_column_maps_and_switches_are_refused_with_where(overrides, message):
    from embed_udfs.config import load_config
    from embed_udfs.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(PROJECT_DIR, overrides)


def test_column_maps_default_to_the_contract_names():
    from embed_udfs.config import load_config

    config = load_config(
        PROJECT_DIR, {"products_columns": {"collection_section": "category", "image_uri": None}}
    )
    assert config.products_columns["collection_section"] == "category"
    assert config.products_columns["image_uri"] is None
    assert config.products_columns["product_name"] == "product_name"
    assert config.vectors_columns["embedding"] == "embedding"
