"""Hostile configuration: every config string that reaches SQL either is refused (names
that become identifiers: space, pair, text fields, relations) or reaches SQL only as a
quoted literal and is stored exactly (family, model, weights path, prompt). Either way
no object outside dbt's own schemas appears or changes, and no catalog row is touched.

The single-quote cases of test_config_quoting.py and the hostile space name of
test_config_parity.py are not repeated here; these add the other strings and payloads
that try to leave a literal by other means (dollar quotes, backslashes, comments).
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import PROJECT_DIR, config_for, dbt_build, plant, planted_config, query

from embed_udfs.config import load_config
from embed_udfs.errors import ConfigError

DROP = "drop table catalog.products"
PAYLOADS = {
    "family": f"x'); {DROP}; --",
    "model": f"$$; {DROP}; $$",
    "pretrained": f"/w/\\'; {DROP}; -- /* ",
    "prompt": f"E'\\''; {DROP}; select '",
}


def _space(name: str, modality: str, **extra: Any) -> dict[str, Any]:
    space = {
        "name": name,
        "modality": modality,
        "backend": "open_clip",
        "family": "planted",
        "model": "planted",
        "dim": 4,
        **extra,
    }
    if modality == "text":
        space.setdefault("text_variant", "clean")
    return space


def _vars(text: dict[str, Any] | None = None, pair: dict[str, Any] | None = None) -> dict:
    return planted_config(
        [{**_space("t", "text"), **(text or {})}, _space("i", "image")],
        [{"name": "p", "text_space": "t", "image_space": "i", **(pair or {})}],
    )


def _outside_dbt(db) -> list[tuple]:
    """Objects outside the schemas dbt builds, and the catalog rows."""
    objects = query(
        db,
        "select n.nspname, c.relname, c.relkind from pg_class as c "
        "join pg_namespace as n on n.oid = c.relnamespace "
        "where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', "
        "'staging', 'intermediate', 'metrics') and n.nspname not like 'pg\\_temp%%' "
        "and n.nspname not like 'pg\\_toast\\_temp%%' "
        "union all select nspname, '', 'schema' from pg_namespace "
        "where nspname not in ('staging', 'intermediate', 'metrics') order by 1, 2",
        (),
    )
    rows = query(db, "select product_id, product_name from catalog.products order by 1")
    return objects + rows


@pytest.fixture(scope="module")
def catalog(db):
    plant(db, config_for(_vars()), [("P1", "bags"), ("P2", "shoes")], {})
    return db


REFUSED = [
    (
        "a space name",
        _vars(text={"name": f"t'; {DROP}; --"}, pair={"text_space": f"t'; {DROP}; --"}),
        "vars.embed_spaces[0].name is",
    ),
    ("a pair name", _vars(pair={"name": f"p$$; {DROP}; $$"}), "vars.embed_pairs[0].name is"),
    (
        "a text field",
        _vars(text={"text_fields": ["product_name", f"product_name) ; {DROP}; --"]}),
        "vars.embed_spaces[0].text_fields[1] is",
    ),
    (
        "a products relation",
        {**_vars(), "products_relation": f"catalog.products; {DROP}"},
        "vars.products_relation is",
    ),
    (
        "a pair's text space",
        _vars(pair={"text_space": "t' or '1'='1"}),
        "vars.embed_pairs[0].text_space is",
    ),
]


@pytest.mark.parametrize(
    ("dbt_vars", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_a_hostile_name_is_refused_before_dbt_runs_and_changes_nothing(
    catalog, tmp_path, dbt_vars, message
):
    with pytest.raises(ConfigError, match="dbt_project.yml: "):
        load_config(PROJECT_DIR, overrides=dbt_vars)
    before = _outside_dbt(catalog)
    with pytest.raises(ConfigError) as refused:
        dbt_build(
            catalog,
            dbt_vars,
            tmp_path,
            "+int_space_inputs",
            "dim_embedding_spaces",
            "dim_retrieval_pairs",
        )
    assert message in str(refused.value)
    assert not (tmp_path / "target").exists()  # dbt never started
    assert _outside_dbt(catalog) == before


def test_hostile_literals_are_quoted_stored_exactly_and_change_nothing(catalog, tmp_path):
    image = {"family": PAYLOADS["family"], "model": PAYLOADS["model"]}
    dbt_vars = planted_config(
        [
            _space("t", "text", **PAYLOADS),
            _space("i", "image", pretrained=PAYLOADS["pretrained"], **image),
        ],
        [{"name": "p", "text_space": "t", "image_space": "i"}],
    )
    load_config(PROJECT_DIR, overrides=dbt_vars)  # free text: accepted, then quoted
    before = _outside_dbt(catalog)
    dbt_build(
        catalog,
        dbt_vars,
        tmp_path,
        "+int_space_inputs",
        "dim_embedding_spaces",
        "dim_retrieval_pairs",
    )
    assert _outside_dbt(catalog) == before
    stored = query(
        catalog,
        "select family, model, pretrained, prompt from metrics.dim_embedding_spaces "
        "where space = 't'",
    )
    assert stored == [tuple(PAYLOADS[k] for k in ("family", "model", "pretrained", "prompt"))]
    assert query(catalog, "select text_family, image_family from metrics.dim_retrieval_pairs") == [
        (PAYLOADS["family"], PAYLOADS["family"])
    ]
    inputs = query(
        catalog,
        "select model_input from intermediate.int_space_inputs where space = 't' order by 1",
    )
    assert [text for (text,) in inputs] == [
        PAYLOADS["prompt"] + "product p1 planted",
        PAYLOADS["prompt"] + "product p2 planted",
    ]
