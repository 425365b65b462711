"""Text recipes on the real database: every demo listing cleaned by SQL equals an
independent Python cleaning; the recipe names and settings are checked the same
way by dbt and by embed_udfs.config."""

from __future__ import annotations

import re
import uuid

import pytest
from conftest import PROJECT_DIR, config_for, dbt_build, planted_config, planted_space, query
from dedup_reference import clean, clean_no_boilerplate, raw_text
from psycopg import sql

from embed_udfs import demo
from embed_udfs.config import TEXT_VARIANTS
from embed_udfs.db import admin_connect, connection, drop_database, ensure_database
from embed_udfs.errors import ConfigError
from embed_udfs.store import PRODUCTS_DDL


def test_text_variants_are_the_same_in_dbt_and_python():
    macro = (PROJECT_DIR / "macros" / "text_recipes.sql").read_text()
    listed = re.search(r"macro text_variants\(\).*?return\(\[(.*?)\]\)", macro, re.S)
    assert listed is not None
    assert tuple(re.findall(r"'([a-z_]+)'", listed.group(1))) == TEXT_VARIANTS


@pytest.fixture(scope="module")
def demo_texts(db, tmp_path_factory):
    products = demo.generate_catalog(tmp_path_factory.mktemp("images"), n_products=400, seed=5)
    with connection(db) as conn:
        demo.load_catalog(conn, products)
    dbt_build(db, {}, tmp_path_factory.mktemp("texts"), "+int_product_texts_cleaned")
    rows = query(
        db,
        "select product_id, text_raw, text_clean, text_clean_no_boilerplate, "
        "n_noise_words_removed from intermediate.int_product_texts_cleaned",
    )
    return {p.product_id: p for p in products}, {r[0]: r[1:] for r in rows}


def test_sql_recipes_match_python_on_messy_demo_listings(demo_texts):
    products, rows = demo_texts
    assert len(rows) == len(products)
    for product_id, product in products.items():
        name, description = product.product_name, product.product_description
        raw, cleaned, stripped, removed = rows[product_id]
        assert raw == raw_text([name, description]), product_id
        assert cleaned == clean(raw_text([name, description])), product_id
        expected = clean_no_boilerplate(name, description, product.store_name)
        assert stripped == expected, (product_id, cleaned)
        assert removed == len((cleaned or "").split()) - len((expected or "").split())


def test_boilerplate_and_store_noise_leave_the_product_words(demo_texts):
    """No listing keeps a planted boilerplate sentence or a store name; product words stay."""
    products, rows = demo_texts
    stripped = [rows[p][2] or "" for p in products]
    for planted in demo.catalog._BOILERPLATE + demo.catalog._STORES:
        needle = clean(planted)
        assert not any(re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", t) for t in stripped)
    for product_id in products:
        words = set((rows[product_id][1] or "").split()) - set((rows[product_id][2] or "").split())
        # colour, material and section words are never removed
        assert not words & {"red", "leather", "cotton", "lamp", "rug", "watch"}, product_id
    assert sum(rows[p][3] > 0 for p in products) > len(products) / 2


def test_bad_recipe_settings_are_refused_before_dbt_runs(db, tmp_path):
    """The configuration schema refuses them, and every dbt run started by embed-udfs
    validates first, so dbt never builds with them."""
    text = planted_space("t", "text", 4)
    bad_variant = planted_config([{**text, "text_variant": "stemmed"}], [])
    short = planted_config([{**text, "prompt": "a photo of ", "max_words": 3}], [])
    marked = {**text, "near_duplicates": True}
    two = planted_config([marked, {**marked, "name": "u"}], [])
    for bad, message, model in (
        (bad_variant, "text_variant is 'stemmed'", "int_space_inputs"),
        (short, "max_words 3 but its prompt", "int_space_inputs"),
        (two, "near_duplicates", "int_dedup_vectors"),
    ):
        with pytest.raises(ConfigError, match=message):
            config_for(bad)
        with pytest.raises(ConfigError, match=message):
            dbt_build(db, bad, tmp_path, model)
    assert query(db, "select to_regclass('intermediate.int_space_inputs')") == [(None,)]


LOCALE_LISTINGS = [
    ("1", "Сумка кожаная 2.5 л — ХИТ", "Été: crème brûlée, Ærø. 高品质 革のバッグ 3/4", None),
    ("2", 'Chest Freezer −20°C, 8.625" wide', "C++ & C# for Rubik's fans — #1 pick", "Shop4U"),
    ("3", "حقيبة جلدية ١٢٣", "हिन्दी किताब. Νέο μοντέλο!", None),
]


def test_cleaning_does_not_depend_on_the_database_locale(server, tmp_path):
    """In a database whose locale is libc "C", [[:alpha:]] and lower() know ASCII only;
    the cleaning rules run under pg_c_utf8, so non-Latin text is cleaned as anywhere."""
    settings = server.for_database(f"embed_metrics_test_c_{uuid.uuid4().hex[:8]}")
    with admin_connect(server, "postgres") as admin:
        admin.execute(
            sql.SQL(
                "create database {} owner {} template template0 encoding 'UTF8' "
                "locale_provider libc locale 'C'"
            ).format(sql.Identifier(settings.dbname), sql.Identifier(settings.user))
        )
    try:
        ensure_database(settings)
        with connection(settings, autocommit=True) as conn:
            # the trap this guards against is really there in this database
            assert conn.execute("select 'Ж' ~ '[[:alpha:]]', lower('Ж')").fetchone() == (False, "Ж")
            conn.execute(PRODUCTS_DDL)
            for row in LOCALE_LISTINGS:
                conn.execute(
                    "insert into catalog.products (product_id, product_name, "
                    "product_description, store_name) values (%s, %s, %s, %s)",
                    row,
                )
        dbt_build(settings, {}, tmp_path, "+int_product_texts_cleaned")
        rows = dict(
            query(
                settings,
                "select product_id, text_clean from intermediate.int_product_texts_cleaned",
            )
        )
    finally:
        drop_database(settings)
    for product_id, name, description, _ in LOCALE_LISTINGS:
        assert rows[product_id] == clean(raw_text([name, description])), product_id
    assert rows["1"].startswith("сумка кожаная 2.5 л хит été crème brûlée ærø")
