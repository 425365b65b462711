"""`embed-udfs load`: a user's catalog file into the products relation, every
row validated first, nothing half-loaded, reloads idempotent."""

from __future__ import annotations

import json
import re

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


def test_a_field_past_the_csv_modules_limit_is_reported_with_its_line(db, tmp_path):
    """200 KB in one description: past Python's default CSV field limit (131,072)."""
    _load(db, _csv(tmp_path, GOOD), replace=True)
    before = _products(db)
    huge = ("A9", "Big", "d" * 200_000, "bags", "")
    with pytest.raises(load.LoadError) as caught:
        _load(db, _csv(tmp_path, [*GOOD, huge], "huge.csv"), replace=True)
    message = str(caught.value)
    # GOOD's third row spans lines 4 and 5 (a newline in its description)
    assert "product_description longer than 100000 characters: line 6" in message
    assert "nothing was loaded" in message
    assert _products(db) == before


def test_a_field_past_the_read_limit_is_refused_with_its_line(db, tmp_path):
    _load(db, _csv(tmp_path, GOOD), replace=True)
    before = _products(db)
    path = tmp_path / "unclosed.csv"
    path.write_text(HEADER + 'A1,ok,,s,\nA2,"never closed,,s,\n' + "x" * (load.CSV_FIELD_LIMIT + 1))
    with pytest.raises(load.LoadError, match=r"unclosed.csv: line \d+ cannot be read.*unclosed"):
        _load(db, path, replace=True)
    assert _products(db) == before


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def test_escape_sequences_in_headers_are_not_echoed(db, tmp_path):
    path = tmp_path / "hostile.csv"
    path.write_bytes(b"Product ID,\x1b[31mName\x1b]0;owned\x07,Cat\x07\n1,x,y\n")
    with pytest.raises(load.LoadError) as caught:
        _load(db, path)
    message = str(caught.value)
    assert "required columns missing" in message
    assert "Name" in message and "Cat" in message  # the names survive, their escapes do not
    assert not CONTROL.search(message.replace("\n", ""))
    jsonl = tmp_path / "hostile.jsonl"
    jsonl.write_text(json.dumps({"id": "1", "\x1b[2Jname\x07": "x"}) + "\n")
    with pytest.raises(load.LoadError) as caught:
        _load(db, jsonl)
    assert not CONTROL.search(str(caught.value).replace("\n", ""))


@pytest.mark.parametrize("section", ["ALL", " ALL ", "ALL  "])
def test_a_section_named_all_is_refused_as_reserved(db, tmp_path, section):
    _load(db, _csv(tmp_path, GOOD), replace=True)
    before = _products(db)
    # other names that merely look like it are sections of their own, as in staging
    rows = [*GOOD, ("A7", "Mug", "", section, "")] + [
        (f"B{i}", "Cup", "", name, "") for i, name in enumerate(["All products", "all"])
    ]
    with pytest.raises(load.LoadError) as caught:
        _load(db, _csv(tmp_path, rows), replace=True)
    message = str(caught.value)
    assert "collection_section 'ALL', a reserved name: line 6" in message
    assert "line 7" not in message and "line 8" not in message
    assert "reserved" in message and "Rename it" in message
    assert _products(db) == before


def test_several_image_urls_keep_the_first_and_say_so(db, tmp_path):
    rows = [
        ("A1", "Bag", "", "bags", "https://a.invalid/1.jpg|https://a.invalid/2.jpg"),
        ("A2", "Lamp", "", "lamps", " https://a.invalid/3.jpg | https://a.invalid/4.jpg |"),
        ("A3", "Mug", "", "mugs", "https://a.invalid/5.jpg"),
        ("A4", "Cup", "", "mugs", "/images/odd|name.jpg"),  # a path, not a list: kept whole
    ]
    summary = _load(db, _csv(tmp_path, rows), replace=True)
    images = dict(query(db, "select product_id, image_uri from catalog.products"))
    assert images == {
        "A1": "https://a.invalid/1.jpg",
        "A2": "https://a.invalid/3.jpg",
        "A3": "https://a.invalid/5.jpg",
        "A4": "/images/odd|name.jpg",
    }
    assert summary.several_images == 2
    assert "2 rows had several image URLs joined by '|'; the first of each was kept" in (
        summary.line()
    )
