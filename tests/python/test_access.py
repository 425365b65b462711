"""Who can reach the database and as whom, and what the tool prints about it.

The embedded server's socket directory is private, dbt and the jobs run as a
role that is not a superuser, BI readers see the metrics schema and nothing
else (over TCP only with their SCRAM password), passwords never reach the
terminal, and text from the data is made safe before it is printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from conftest import PROJECT_DIR, dbt_build, plant, planted_config, planted_space, query
from psycopg import sql

from embed_udfs import cli, roles
from embed_udfs.db import (
    APP_ROLE,
    SUPERUSER,
    Listen,
    connect,
    embedded_datadir,
    resolve_settings,
    set_listen,
    start_embedded,
    stop_embedded,
)
from embed_udfs.errors import DatabaseError
from embed_udfs.terminal import clean

EXTERNAL = bool(os.environ.get("EMBED_UDFS_DSN") or os.environ.get("PGHOST"))
embedded_only = pytest.mark.skipif(EXTERNAL, reason="checks the embedded server")

SECRET = "s3cret-Pw-never-shown"
ANSI_SECTION = "\x1b[31mred\x1b[0m\x1b]0;owned\x07lamps"
LONG_SECTION = "S" * 5000
SECTIONS = ["bags", ANSI_SECTION, LONG_SECTION]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the socket and the TCP listener ----------------------------------------------


@pytest.fixture(scope="module")
def long_project():
    """An embedded server whose project path is too long for a socket beside its data,
    listening on a loopback port as well."""
    # Not under pytest's basetemp: pytest keeps that 0700, and run as root the
    # server's own OS user must be able to reach its data directory.
    base = Path(tempfile.mkdtemp(prefix="embed_metrics_access_"))
    project = base / ("a-long-project-directory-name-" * 4)
    project.mkdir()
    assert len(str(embedded_datadir(project))) > 107
    set_listen(project, Listen("127.0.0.1", _free_port()))
    try:
        info = start_embedded(project)
        yield project, info
    finally:
        stop_embedded(project)
        shutil.rmtree(base, ignore_errors=True)


@embedded_only
def test_long_project_path_gets_a_private_socket_directory(long_project):
    project, info = long_project
    datadir = embedded_datadir(project)
    socket_dir = Path(info.socket_dir)
    assert socket_dir != datadir
    mode = os.lstat(socket_dir)
    assert stat.S_ISDIR(mode.st_mode) and not stat.S_ISLNK(mode.st_mode)
    assert stat.S_IMODE(mode.st_mode) == 0o700
    assert mode.st_uid == datadir.stat().st_uid  # the server's OS user, nobody else
    assert (socket_dir / f".s.PGSQL.{info.port}").is_socket()


@embedded_only
def test_no_short_private_directory_is_a_clear_refusal(tmp_path, monkeypatch):
    project = tmp_path / ("p" * 120)
    project.mkdir()
    long_tmp = tmp_path / ("t" * 100)
    long_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    with pytest.raises(DatabaseError, match="107 bytes.*shorter path.*TMPDIR"):
        start_embedded(project)
    assert not (embedded_datadir(project) / "PG_VERSION").exists()


@embedded_only
def test_tcp_listener_wants_the_readers_password(long_project):
    project, info = long_project
    settings = resolve_settings(project)
    name = f"bi_{uuid.uuid4().hex[:8]}"
    password = roles.create_reader(settings, name)
    reader = roles.reader_settings(settings, project, name)
    assert (reader.host, reader.port, reader.user) == ("127.0.0.1", info.port, name)
    tcp = {"host": "127.0.0.1", "port": info.port, "dbname": settings.dbname}

    with psycopg.connect(**tcp, user=name, password=password) as conn:
        assert conn.execute("select current_user").fetchone()[0] == name
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**tcp, user=name, password=password[:-1] + "x")
    # Over TCP pg_hba.conf admits readers only: the others are turned away at the door.
    for role in (SUPERUSER, APP_ROLE):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(**tcp, user=role, password="")
        with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects"):
            psycopg.connect(**tcp, user=role, password="postgres")

    psql = shutil.which("psql")
    if psql:
        uri = f"postgresql://{name}@127.0.0.1:{info.port}/{settings.dbname}"
        run = {"capture_output": True, "text": True, "timeout": 30}
        good = subprocess.run(
            [psql, uri, "-tAc", "select current_user"],
            env={**os.environ, "PGPASSWORD": password},
            **run,
        )
        assert good.returncode == 0 and good.stdout.strip() == name, good.stderr
        bad = subprocess.run(
            [psql, uri, "-tAc", "select 1"], env={**os.environ, "PGPASSWORD": "wrong"}, **run
        )
        assert bad.returncode != 0 and "password authentication failed" in bad.stderr
    assert roles.drop_reader(settings, name)


@embedded_only
def test_a_password_the_app_role_sets_itself_does_not_open_tcp(long_project):
    project, info = long_project
    settings = resolve_settings(project)
    tcp = {"host": "127.0.0.1", "port": info.port, "dbname": settings.dbname}
    with connect(settings, autocommit=True) as conn:
        # PostgreSQL lets every role change its own password.
        conn.execute(sql.SQL("alter role {} password 'x'").format(sql.Identifier(APP_ROLE)))
    try:
        with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects"):
            psycopg.connect(**tcp, user=APP_ROLE, password="x")
    finally:
        with connect(settings, autocommit=True) as conn:
            conn.execute(sql.SQL("alter role {} password null").format(sql.Identifier(APP_ROLE)))


@embedded_only
@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_readers_cannot_connect_to_the_maintenance_databases(long_project, database):
    project, info = long_project
    settings = resolve_settings(project)
    name = f"bi_{uuid.uuid4().hex[:8]}"
    password = roles.create_reader(settings, name)
    try:
        with psycopg.connect(
            host="127.0.0.1", port=info.port, dbname=settings.dbname, user=name, password=password
        ):
            pass  # the reader's own way in works
        with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects"):
            psycopg.connect(
                host="127.0.0.1", port=info.port, dbname=database, user=name, password=password
            )
        # Over the socket too (trusted, so the grants decide).
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(host=settings.host, port=settings.port, dbname=database, user=name)
    finally:
        roles.drop_reader(settings, name)


@embedded_only
def test_readers_create_nothing_anywhere_they_can_connect(long_project):
    project, info = long_project
    settings = resolve_settings(project)
    name = f"bi_{uuid.uuid4().hex[:8]}"
    password = roles.create_reader(settings, name)
    with connect(settings) as conn:
        databases = [
            datname
            for (datname,) in conn.execute(
                "select datname from pg_database where datallowconn order by 1"
            ).fetchall()
        ]
    assert "postgres" in databases and "template1" in databases
    statements = [
        "create temporary table planted (a int)",
        "create function pg_temp.planted() returns int language sql as 'select 1'",
        "create function public.planted() returns int language sql as 'select 1'",
        "create function metrics.planted() returns int language sql as 'select 1'",
    ]
    reached = []
    try:
        for database in databases:
            for host, port in ((settings.host, settings.port), ("127.0.0.1", info.port)):
                try:
                    conn = psycopg.connect(
                        host=host,
                        port=port,
                        dbname=database,
                        user=name,
                        password=password,
                        autocommit=True,
                    )
                except psycopg.OperationalError:
                    continue
                with conn:
                    reached.append(database)
                    conn.execute("set default_transaction_read_only = off")
                    for statement in statements:
                        with pytest.raises(
                            (psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidSchemaName)
                        ):
                            conn.execute(statement)
    finally:
        roles.drop_reader(settings, name)
    assert set(reached) == {settings.dbname}


# --- roles: the application role and a BI reader ---------------------------------


def _vars() -> dict:
    return planted_config(
        [planted_space("t", "text", 8), planted_space("i", "image", 8)],
        [{"name": "planted", "text_space": "t", "image_space": "i"}],
        eval_k_values=[1, 5],
    )


@pytest.fixture(scope="module")
def reader(db, tmp_path_factory):
    """A reader created before dbt builds the marts (so default privileges must cover them),
    on a catalog whose sections carry escape sequences and a 5,000-character name."""
    name = f"reader_{uuid.uuid4().hex[:8]}"
    roles.create_reader(db, name)
    rng = np.random.default_rng(3)
    products = [(f"P{i:03d}", SECTIONS[i % len(SECTIONS)]) for i in range(60)]
    vectors = rng.normal(size=(60, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    dbt_vars = _vars()
    from conftest import config_for

    plant(db, config_for(dbt_vars), products, {"t": vectors, "i": vectors})
    dbt_build(db, dbt_vars, tmp_path_factory.mktemp("access_build"))
    yield name
    roles.drop_reader(db, name)


def _as(db, role: str) -> psycopg.Connection:
    # Over the private socket (trust): these tests are about grants, not passwords.
    return psycopg.connect(host=db.host, port=db.port, user=role, dbname=db.dbname, autocommit=True)


def test_dbt_and_the_jobs_run_as_a_role_that_is_not_a_superuser(db, reader, capsys, monkeypatch):
    with connect(db) as conn:
        flags = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user"
        ).fetchone()
    assert flags == (False, False, False)
    owners = query(
        db, "select distinct tableowner from pg_tables where schemaname in ('metrics', 'catalog')"
    )
    assert owners == [(db.user,)]  # dbt built the marts as that role
    if not EXTERNAL:
        assert db.user == APP_ROLE
        # What the CLI hands dbt and psql: `db env`, `db url`.
        monkeypatch.setenv("PGDATABASE", db.dbname)
        assert cli.main(["--project-dir", str(PROJECT_DIR), "db", "env"]) == 0
        exports = dict(
            shlex.split(line)[1].split("=", 1) for line in capsys.readouterr().out.splitlines()
        )
        assert exports["PGUSER"] == APP_ROLE
        with psycopg.connect(
            host=exports["PGHOST"],
            port=exports["PGPORT"],
            user=exports["PGUSER"],
            dbname=exports["PGDATABASE"],
        ) as conn:
            assert conn.execute(
                "select rolsuper from pg_roles where rolname = current_user"
            ).fetchone() == (False,)
        assert cli.main(["--project-dir", str(PROJECT_DIR), "db", "url"]) == 0
        assert capsys.readouterr().out.startswith(f"postgresql://{APP_ROLE}@")


def test_reader_selects_every_mart(db, reader):
    marts = [
        name
        for (name,) in query(
            db,
            "select table_name from information_schema.tables where table_schema = 'metrics' "
            "order by 1",
        )
    ]
    assert {"fct_retrieval_metrics", "fct_embedding_gaps", "fct_retrieval_ranks"} <= set(marts)
    with _as(db, reader) as conn:
        for mart in marts:
            own = query(db, f'select count(*) from metrics."{mart}"')[0][0]
            assert conn.execute(f'select count(*) from metrics."{mart}"').fetchone()[0] == own


@pytest.mark.parametrize(
    "relation",
    [
        "catalog.products",
        "embeddings.vectors",
        "staging.stg_catalog__products",
        "intermediate.int_space_inputs",
        "intermediate.int_eval_vectors",
    ],
)
def test_reader_cannot_read_the_catalog_or_the_vectors(db, reader, relation):
    assert query(db, f"select count(*) from {relation}")[0][0] > 0  # it exists, with rows
    with _as(db, reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"select * from {relation} limit 1")


@pytest.mark.parametrize(
    "statement",
    [
        "insert into metrics.fct_retrieval_metrics (pair) values ('x')",
        "update metrics.fct_retrieval_metrics set value = 1",
        "delete from metrics.fct_retrieval_metrics",
        "truncate metrics.fct_retrieval_metrics",
        "drop table metrics.fct_retrieval_metrics",
        "create table metrics.planted (a int)",
        "create table public.planted (a int)",
        "create temporary table planted (a int)",
        "create schema planted",
        "create view metrics.planted as select 1",
        "insert into catalog.products (product_id) values ('x')",
    ],
)
def test_reader_cannot_write_or_create_anything(db, reader, statement):
    before = query(db, "select count(*) from metrics.fct_retrieval_metrics")[0][0]
    with _as(db, reader) as conn:
        # Lift the read-only default first: the grants alone must refuse.
        conn.execute("set default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    assert query(db, "select count(*) from metrics.fct_retrieval_metrics")[0][0] == before


# --- what reaches the terminal ----------------------------------------------------


def _dsn(db, port: int | None = None) -> str:
    host = "127.0.0.1" if port else db.host
    return f"host={host} port={port or db.port} user={db.user} password={SECRET} dbname={db.dbname}"


def test_dsn_password_is_masked_in_db_status(db, monkeypatch, capsys):
    monkeypatch.setenv("EMBED_UDFS_DSN", _dsn(db))
    assert cli.main(["--project-dir", str(PROJECT_DIR), "db", "status"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and "****" in out


def test_dsn_password_is_masked_in_connection_errors(db, monkeypatch, capsys):
    closed = _free_port()
    monkeypatch.setenv("EMBED_UDFS_DSN", _dsn(db, port=closed))
    with pytest.raises(DatabaseError) as refused:
        connect(resolve_settings(PROJECT_DIR))
    assert SECRET not in str(refused.value) and "****" in str(refused.value)
    assert cli.main(["--project-dir", str(PROJECT_DIR), "report"]) == 2
    captured = capsys.readouterr()
    assert "cannot connect" in captured.err
    assert SECRET not in captured.err + captured.out
    # A URI-style DSN that does not parse is refused without echoing it either.
    monkeypatch.setenv("EMBED_UDFS_DSN", f"postgresql://u:{SECRET}@host:notaport/db")
    with pytest.raises(DatabaseError) as invalid:
        resolve_settings(PROJECT_DIR)
    assert SECRET not in str(invalid.value)


def test_report_masks_the_password_and_sanitises_section_names(db, reader, monkeypatch, capsys):
    import json

    monkeypatch.setenv("EMBED_UDFS_DSN", _dsn(db))  # trust on the socket ignores the password
    args = ["--project-dir", str(PROJECT_DIR), "--vars", json.dumps(_vars()), "report"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert f"Connect: psql 'postgresql://{db.user}:****@" in out
    assert "\x1b" not in out and "\x07" not in out
    assert all(ch == "\n" or ch.isprintable() for ch in out)
    assert max(len(line) for line in out.splitlines()) < 200
    assert "redlamps" in out  # the text survives, its escape sequences do not
    assert "S" * 39 + "…" in out and "S" * 41 not in out


def test_clean_removes_control_and_escape_characters():
    assert clean("\x1b[1;31mbold\x1b[0m") == "bold"
    assert clean("title\x1b]2;pwned\x07 ok") == "title ok"
    assert clean("a\tb\nc\rd\x00e\x7f\x9bf") == "abcdef"
    assert clean("\u202eevil") == "evil"
    assert clean("Küche 厨房") == "Küche 厨房"
    assert clean("x" * 100) == "x" * 39 + "…"
    assert len(clean("y" * 5000, max_width=10)) == 10
