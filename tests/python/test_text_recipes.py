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


# (name, variant, text_fields or None for the default fields, prompt, max_words)
INPUT_SPACES = (
    ("raw", "raw", None, "", None),
    ("clean_prompted", "clean", None, "a photo of ", 12),
    ("no_boilerplate", "clean_no_boilerplate", None, "", None),
    ("name_no_boilerplate", "clean_no_boilerplate", ["product_name"], "", None),
    ("description_raw", "raw", ["product_description"], "", None),
)
REJECTED = {
    "clean_no_boilerplate": "empty text: nothing left after cleaning and removing boilerplate "
    "and noise tokens",
    "raw": "empty text: the product has no name or description left after cleaning",
    "clean": "empty text: the product has no name or description left after cleaning",
}


def _recipe(variant: str, fields: list[str], product: demo.catalog.DemoProduct) -> str | None:
    """The reference text of a recipe over product_name and/or product_description."""
    values = [getattr(product, field) for field in fields]
    if variant == "raw":
        return raw_text(values)
    if variant == "clean":
        return clean(raw_text(values))
    name = product.product_name if "product_name" in fields else None
    description = product.product_description if "product_description" in fields else None
    return clean_no_boilerplate(name, description, product.store_name)


def _expected_input(
    space: tuple[str, str, list[str] | None, str, int | None], product: demo.catalog.DemoProduct
) -> tuple:
    """(model_input, rejection_reason, text_variant, n_words, max_words, is_truncated,
    n_noise_words_removed) as int_space_inputs documents them."""
    _, variant, fields, prompt, max_words = space
    fields = fields or ["product_name", "product_description"]
    limit = max_words or 128  # vars.text_max_words
    body = _recipe(variant, fields, product)
    removed = 0
    if variant == "clean_no_boilerplate":
        cleaned = _recipe("clean", fields, product)
        removed = len((cleaned or "").split()) - len((body or "").split())
    if body is None:
        return (None, REJECTED[variant], variant, None, limit, False, removed)
    words = body.split()
    n_words = len(prompt.split()) + len(words)
    kept = limit - len(prompt.split())
    text = " ".join(words[:kept]) if len(words) > kept else body
    return (prompt + text, None, variant, n_words, limit, n_words > limit, removed)


def test_space_inputs_equal_the_reference_recipes_on_default_and_own_fields(
    db, demo_texts, tmp_path
):
    """Spaces on the default fields read int_product_texts_cleaned (here built
    incrementally: the products added below are cleaned by a second build); spaces
    with fields of their own clean in int_space_inputs. Both give, for every recipe,
    what the independent Python recipes give, rejections and word counts included."""
    products, _ = demo_texts
    boilerplate, store = demo.catalog._BOILERPLATE[0], demo.catalog._STORES[1]
    product = demo.catalog.DemoProduct
    added = [
        product("added-empty", None, None, "bags", None, None),
        product("added-boilerplate", None, boilerplate, "bags", None, None),
        product("added-store", f"{store} Red Tote", boilerplate, "bags", store, None),
    ]
    with connection(db) as conn:
        demo.load_catalog(conn, added, replace=False)
    catalog = {**products, **{p.product_id: p for p in added}}
    spaces = []
    for name, variant, fields, prompt, max_words in INPUT_SPACES:
        space = {**planted_space(name, "text", 4), "text_variant": variant, "prompt": prompt}
        space.update({"text_fields": fields} if fields else {})
        space.update({"max_words": max_words} if max_words else {})
        spaces.append(space)
    dbt_build(db, planted_config(spaces, []), tmp_path, "+int_space_inputs")
    rows = query(
        db,
        "select space, product_id, model_input, rejection_reason, text_variant, n_words, "
        "max_words, is_truncated, n_noise_words_removed from intermediate.int_space_inputs",
    )
    got = {(row[0], row[1]): row[2:] for row in rows}
    assert len(rows) == len(got) == len(INPUT_SPACES) * len(catalog)
    for space in INPUT_SPACES:
        for product_id, product in catalog.items():
            expected = _expected_input(space, product)
            assert got[space[0], product_id] == expected, (space[0], product_id)
    # the planted products reach each case: every rejection, truncation, noise removed
    reasons = {(row[0], row[3]) for row in rows if row[3] is not None}
    assert ("raw", REJECTED["raw"]) in reasons
    for space in ("no_boilerplate", "name_no_boilerplate"):
        assert (space, REJECTED["clean_no_boilerplate"]) in reasons
    assert any(row[7] for row in rows if row[0] == "clean_prompted")
    assert got["no_boilerplate", "added-store"][0] == "red tote"
