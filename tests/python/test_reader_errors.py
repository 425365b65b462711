"""A reader's login given to a command that needs the application role ends in one
sentence naming the role and what it may do, exit status 2, never a traceback."""

from __future__ import annotations

import uuid

import pytest
from conftest import PROJECT_DIR, query

from embed_udfs import cli, roles, store
from embed_udfs.config import load_config
from embed_udfs.db import connection


@pytest.fixture(scope="module")
def reader(db):
    """A reader on a database whose embeddings schema exists (as after a first backfill)."""
    with connection(db) as conn:
        store.bootstrap(conn, load_config(PROJECT_DIR))
        conn.commit()
    name = f"reader_{uuid.uuid4().hex[:8]}"
    roles.create_reader(db, name)
    yield name
    roles.drop_reader(db, name)


@pytest.mark.parametrize("command", [["baseline", "show"], ["backfill"]])
def test_a_reader_dsn_gets_a_sentence_not_a_traceback(db, reader, monkeypatch, capsys, command):
    before = query(db, "select count(*) from embeddings.vectors")
    monkeypatch.setenv(
        "EMBED_UDFS_DSN", f"host={db.host} port={db.port} user={reader} dbname={db.dbname}"
    )
    code = cli.main(["--project-dir", str(PROJECT_DIR), *command])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: role '{reader}' (from EMBED_UDFS_DSN) is a read-only reader")
    assert "select from the metrics schema only" in err
    assert f"Run `embed-udfs {' '.join(command)}` as the application role" in err
    assert "unset EMBED_UDFS_DSN" in err
    assert "Traceback" not in err and err.count("\n") == 1
    monkeypatch.delenv("EMBED_UDFS_DSN")
    assert query(db, "select count(*) from embeddings.vectors") == before


@pytest.mark.parametrize("html", [False, True])
def test_a_report_before_any_refresh_is_a_sentence(db, monkeypatch, capsys, tmp_path, html):
    monkeypatch.setenv("PGDATABASE", db.dbname)
    extra = ["--html", str(tmp_path / "r.html")] if html else []
    code = cli.main(["--project-dir", str(PROJECT_DIR), "report", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: nothing to report in {db.dbname}")
    assert "Run `embed-udfs refresh`" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()
