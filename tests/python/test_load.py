"""`embed-udfs load`: a user's catalog file into the products relation, every
row validated first, nothing half-loaded, reloads idempotent."""

from __future__ import annotations

import json

import pytest
from conftest import PROJECT_DIR, query

from embed_udfs import load
from embed_udfs.config import load_config
from embed_udfs.db import connection

HEADER = "Product ID,Product Name,Desc,Category,Image\n"
GOOD = [
    ("A1", "Red bag", 'Leather, 8.625" wide', "bags", "/img/a1.png"),
    ("A2", "Lamp", "", "lamps", ""),
    ("A3", "Café table", "Oak\nsolid", "", "https://example.invalid/a3.jpg"),
]
MAP = ["id=Product ID,name=Product Name", "description=Desc,section=Category,image=Image"]


def _csv(tmp_path, rows, name="catalog.csv", header=HEADER) -> object:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
    path = tmp_path / name
    path.write_bytes((header + buffer.getvalue()).encode())
    return path


def _load(db, path, **kwargs):
    config = load_config(PROJECT_DIR)
    with connection(db) as conn:
        return load.load_catalog(conn, config, path, mapping=load.parse_mapping(MAP), **kwargs)


def _products(db):
    return query(db, "select * from catalog.products order by product_id")


def test_a_mapped_csv_loads_and_reloads_idempotently(db, tmp_path):
    path = _csv(tmp_path, GOOD)
    first = _load(db, path)
    assert (first.rows, first.inserted, first.updated) == (3, 3, 0)
    rows = _products(db)
    assert rows[0] == ("A1", "Red bag", 'Leather, 8.625" wide', "bags", None, "/img/a1.png")
    assert rows[1][2] is None and rows[1][5] is None  # empty fields are NULL
    assert rows[2][2] == "Oak\nsolid" and rows[2][3] is None
    again = _load(db, path)
    assert (again.inserted, again.updated) == (0, 3) and _products(db) == rows
    # upsert keeps rows the file does not mention; --replace does not
    _load(db, _csv(tmp_path, [("B1", "Shoe", "", "shoes", "")], "more.csv"))
    assert len(_products(db)) == 4
    replaced = _load(
        db, _csv(tmp_path, [("B1", "Shoe", "", "shoes", "")], "only.csv"), replace=True
    )
    assert replaced.replaced and [r[0] for r in _products(db)] == ["B1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ((HEADER + "A1,x,,s,\nA2,y,,s,\nA1,z,,s,\n").encode(), r"duplicate product_id.*line 4"),
        (b"Product ID,Desc\nA1,x\n", r"required columns missing: product_name, collection_section"),
        (
            (HEADER + "A1,ok,,s,\n").encode() + b"A2,caf\xe9,,s,\n",
            r"not UTF-8 in product_name: line 3",
        ),
        ((HEADER + "A1,ok,,s,\n,nameless,,s,\n").encode(), r"empty product_id: line 3"),
        ((HEADER + "A1," + "x" * 100_001 + ",,s,\n").encode(), r"product_name longer than 100000"),
    ],
)
def test_bad_files_are_refused_naming_the_rows_and_nothing_is_written(
    db, tmp_path, content, message
):
    _load(db, _csv(tmp_path, GOOD), replace=True)
    before = _products(db)
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(load.LoadError, match=message) as caught:
        _load(db, path, replace=True)
    assert "nothing was loaded" in str(caught.value) or "Map them" in str(caught.value)
    assert _products(db) == before


def test_parquet_and_json_lines_load_the_same_rows(db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [
        {"Product ID": p, "Product Name": n, "Desc": d, "Category": s, "Image": i}
        for p, n, d, s, i in GOOD
    ]
    _load(db, _csv(tmp_path, GOOD), replace=True)
    expected = _products(db)
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "c.parquet")
    _load(db, tmp_path / "c.parquet", replace=True)
    assert _products(db) == expected
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    _load(db, tmp_path / "c.jsonl", replace=True)
    assert _products(db) == expected


def test_mapping_mistakes_are_clear():
    with pytest.raises(load.LoadError, match="not a products column"):
        load.parse_mapping(["title=Name"])
    with pytest.raises(load.LoadError, match="expected COLUMN=FILE COLUMN"):
        load.parse_mapping(["name"])
    assert load.parse_mapping(["name=Title, section = Cat"]) == {
        "product_name": "Title",
        "collection_section": "Cat",
    }
