"""Bootstrap: resolving the settings (starting the embedded server when it is the
database), creating the database, the vector extension and the roles, and the
read-only logins BI tools use.

The superuser (`postgres`) only creates roles, databases and extensions. The
application role owns the project's schemas and is what dbt and the jobs run
as; it is not a superuser and cannot create roles or databases. Readers are
login roles in one group that may select from the `metrics` schema and nothing
else, over the socket or over TCP with a SCRAM password. Nobody but the
superuser may connect to the maintenance databases (`postgres`, `template1`).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg import sql

from embed_udfs.db.server import embedded_status, start_embedded
from embed_udfs.db.session import admin_connect, connect_kwargs
from embed_udfs.db.settings import (
    APP_ROLE,
    DEFAULT_DATABASE,
    DEFAULT_PORT,
    READER_GROUP,
    READER_SCHEMA,
    SUPERUSER,
    ConnectionSettings,
    embedded_datadir,
    environment_settings,
)
from embed_udfs.errors import DatabaseError

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = {SUPERUSER, APP_ROLE, READER_GROUP, "public"}
# Schemas that belong to PostgreSQL or to an extension, never handed to the app role.
_SYSTEM_SCHEMAS = ("information_schema", "public")


def ensure_roles(conn: psycopg.Connection) -> None:
    """Create the application role and the readers' group if missing (as the superuser)."""
    for role, options in (
        (APP_ROLE, "login nosuperuser nocreatedb nocreaterole noreplication nobypassrls"),
        (READER_GROUP, "nologin nosuperuser nocreatedb nocreaterole noreplication nobypassrls"),
    ):
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create role {} " + options).format(sql.Identifier(role)))
    close_maintenance_databases(conn)


def close_maintenance_databases(conn: psycopg.Connection) -> None:
    """Revoke CONNECT and TEMPORARY on `postgres` and `template1` from PUBLIC (as the
    superuser): a reader would otherwise connect there and create temporary tables
    and functions. Only the superuser uses them (creating roles and databases)."""
    for database in ("postgres", "template1"):
        open_to_public = conn.execute(
            "select has_database_privilege('public', %(db)s, 'connect') "
            "or has_database_privilege('public', %(db)s, 'temporary')",
            {"db": database},
        ).fetchone()
        if open_to_public and open_to_public[0]:
            conn.execute(
                sql.SQL("revoke connect, temporary on database {} from public").format(
                    sql.Identifier(database)
                )
            )


# DO blocks take no parameters: _hand_over_sql inlines :app and :system as literals.
_HAND_OVER = """
do $$
declare
    item record;
begin
    for item in
        select n.nspname
        from pg_namespace as n
        where n.nspowner <> :app::regrole
            and n.nspname not like 'pg\\_%'
            and n.nspname <> all(:system)
    loop
        execute format('alter schema %I owner to %I', item.nspname, :app);
    end loop;
    for item in
        select c.oid::regclass as relation, c.relkind
        from pg_class as c
        inner join pg_namespace as n on c.relnamespace = n.oid
        where c.relowner <> :app::regrole
            and c.relkind in ('r', 'p', 'v', 'm', 'f')
            and n.nspname not like 'pg\\_%'
            and n.nspname <> all(:system)
            and not exists (
                select 1 from pg_depend as d
                where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
            )
    loop
        execute format(
            case when item.relkind = 'm' then 'alter materialized view %s owner to %I'
                 else 'alter table %s owner to %I' end,
            item.relation, :app
        );
    end loop;
end
$$
"""


def prepare_database(conn: psycopg.Connection, dbname: str) -> None:
    """Make APP_ROLE own `dbname` and everything in its schemas; set up the readers' access.

    Run as the superuser, connected to `dbname`. Objects an older version made
    as the superuser are handed over, so dbt can replace them as the app role.
    Once done, this only checks: every command runs it, and grants on tables
    while another command's dbt replaces them would wait on that dbt run.
    """
    if _prepared(conn):
        return
    conn.execute(
        sql.SQL("alter database {} owner to {}").format(
            sql.Identifier(dbname), sql.Identifier(APP_ROLE)
        )
    )
    conn.execute(_hand_over_sql(conn))
    grant_reader_access(conn, dbname, APP_ROLE)


def _prepared(conn: psycopg.Connection) -> bool:
    # The default privileges are granted last, so they mark a finished preparation.
    row = conn.execute(
        """
        select
            (select datdba from pg_database where datname = current_database())
                = %(app)s::regrole
            and exists (
                select 1
                from pg_default_acl as d
                inner join pg_namespace as n on d.defaclnamespace = n.oid
                where n.nspname = %(schema)s and d.defaclrole = %(app)s::regrole
            )
        """,
        {"app": APP_ROLE, "schema": READER_SCHEMA},
    ).fetchone()
    return row is not None and bool(row[0])


def _hand_over_sql(conn: psycopg.Connection) -> str:
    app = sql.Literal(APP_ROLE).as_string(conn)
    system = sql.Literal(list(_SYSTEM_SCHEMAS)).as_string(conn) + "::name[]"
    return _HAND_OVER.replace(":app", app).replace(":system", system)


def grant_reader_access(
    conn: psycopg.Connection, dbname: str, owner: str, *, embedded: bool = True
) -> None:
    """Readers may connect to `dbname` and select from every table and view in `metrics`.

    Default privileges cover the tables `owner` (who runs dbt) creates there
    later. On the embedded server nobody else gets CONNECT or TEMPORARY, so
    readers cannot create even temporary tables; on the user's own server the
    database-wide defaults are theirs and left alone. Idempotent; rerun it if
    the `metrics` schema is replaced.
    """
    group, schema = sql.Identifier(READER_GROUP), sql.Identifier(READER_SCHEMA)
    database, owner_role = sql.Identifier(dbname), sql.Identifier(owner)
    statements = [
        sql.SQL("create schema if not exists {} authorization {}").format(schema, owner_role),
        *([sql.SQL("revoke all on database {} from public").format(database)] if embedded else []),
        sql.SQL("grant connect on database {} to {}").format(database, group),
        sql.SQL("revoke all on schema {} from public").format(schema),
        sql.SQL("grant usage on schema {} to {}").format(schema, group),
        sql.SQL("grant select on all tables in schema {} to {}").format(schema, group),
        sql.SQL(
            "alter default privileges for role {} in schema {} grant select on tables to {}"
        ).format(owner_role, schema, group),
    ]
    for statement in statements:
        conn.execute(statement)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name in _RESERVED or name.startswith("pg_"):
        raise DatabaseError(
            f"reader name {name!r} is not allowed: use lowercase letters, digits and _ "
            f"(at most 63, not starting with a digit or pg_), and not one of "
            f"{', '.join(sorted(_RESERVED))}. Example: embed-udfs db reader create metabase"
        )


def create_reader(settings: ConnectionSettings, name: str) -> str:
    """Create login role `name` in the readers' group; return its generated password.

    Only the SCRAM verifier reaches the server (computed here by libpq), so the
    password is in no server log and cannot be shown again.
    """
    _check_name(name)
    password = secrets.token_urlsafe(24)
    with admin_connect(settings) as conn:
        if conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone():
            raise DatabaseError(
                f"role {name!r} already exists. To give it a new password, drop it and create "
                f"it again: embed-udfs db reader drop {name} && embed-udfs db reader create {name}"
            )
        ensure_group = not conn.execute(
            "select 1 from pg_roles where rolname = %s", (READER_GROUP,)
        ).fetchone()
        if ensure_group:
            conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(READER_GROUP)))
        grant_reader_access(
            conn, settings.dbname, settings.user, embedded=bool(settings.admin_user)
        )
        verifier = conn.pgconn.encrypt_password(
            password.encode(), name.encode(), b"scram-sha-256"
        ).decode()
        role = sql.Identifier(name)
        conn.execute(
            sql.SQL(
                "create role {} login nosuperuser nocreatedb nocreaterole password {} in role {}"
            ).format(role, sql.Literal(verifier), sql.Identifier(READER_GROUP))
        )
        conn.execute(sql.SQL("alter role {} set default_transaction_read_only = on").format(role))
    return password


def drop_reader(settings: ConnectionSettings, name: str) -> bool:
    """Drop reader `name`; False if there was none. Refuses roles that are not readers."""
    _check_name(name)
    with admin_connect(settings) as conn:
        if not conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone():
            return False
        if name not in list_readers(conn):
            raise DatabaseError(
                f"role {name!r} is not a reader (not in {READER_GROUP}); not dropped"
            )
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))
    return True


def list_readers(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select r.rolname from pg_roles as r "
        "inner join pg_auth_members as m on m.member = r.oid "
        "inner join pg_roles as g on m.roleid = g.oid "
        "where g.rolname = %s order by r.rolname",
        (READER_GROUP,),
    ).fetchall()
    return [name for (name,) in rows]


def reader_settings(
    settings: ConnectionSettings, project_dir: Path, name: str
) -> ConnectionSettings:
    """Where reader `name` connects: the embedded server's TCP listener, or the user's server.

    No password: it was printed once when the reader was created.
    """
    _check_name(name)

    if settings.origin != "embedded":
        return replace(settings, user=name, password="", admin_user="")
    info = embedded_status(project_dir)
    if info is None or not info.hostname:
        raise DatabaseError(
            "the embedded server listens on its private socket only, which a BI tool cannot "
            "reach. Start the TCP listener first: embed-udfs db start --listen 127.0.0.1:5433"
        )
    return replace(
        settings, host=info.hostname, port=int(info.port), user=name, password="", admin_user=""
    )


def resolve_settings(project_dir: Path, *, start: bool = True) -> ConnectionSettings:
    """EMBED_UDFS_DSN, else PGHOST and friends, else the embedded server (started on demand).

    On the user's own server, the user is the one they give (libpq's default,
    the OS user, when they give none); on the embedded server it is APP_ROLE.
    """
    chosen = environment_settings()
    if chosen is not None:
        return chosen
    server = start_embedded(project_dir) if start else embedded_status(project_dir)
    if server is None:
        raise DatabaseError(
            f"the embedded server in {embedded_datadir(project_dir)} is not running; "
            "start it with `embed-udfs db start`."
        )
    settings = ConnectionSettings(
        host=str(server.socket_dir),
        port=int(server.port or DEFAULT_PORT),
        user=APP_ROLE,
        password="",
        dbname=os.environ.get("PGDATABASE", DEFAULT_DATABASE),
        origin="embedded",
        admin_user=SUPERUSER,
    )
    if start:
        ensure_database(settings)
    return settings


def ensure_database(settings: ConnectionSettings) -> None:
    """Create the target database if it does not exist yet, ready for settings.user.

    On the embedded server the superuser creates the roles, the database (owned
    by APP_ROLE) and the vector extension, hands over objects an older version
    left to the superuser, and grants the BI readers' group its access.
    """
    embedded = bool(settings.admin_user)
    admin = settings.as_admin()
    with psycopg.connect(**connect_kwargs(admin.for_database("postgres")), autocommit=True) as conn:
        # Roles are cluster-wide and commands start concurrently: one at a time.
        conn.execute("select pg_advisory_lock(hashtext('embed_metrics bootstrap'))")
        if embedded:
            ensure_roles(conn)
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (settings.dbname,)
        ).fetchone()
        if not exists:
            owner = sql.SQL(" owner {}").format(sql.Identifier(settings.user))
            # The builtin C.UTF-8 locale gives Unicode-aware regex classes whatever
            # the host's LANG, so text cleaning treats non-Latin words as words.
            conn.execute(
                sql.SQL(
                    "create database {}{} template template0 encoding 'UTF8' "
                    "locale_provider builtin builtin_locale 'C.UTF-8' locale 'C.UTF-8'"
                ).format(sql.Identifier(settings.dbname), owner if embedded else sql.SQL(""))
            )
        if embedded:
            with psycopg.connect(**connect_kwargs(admin), autocommit=True) as target:
                target.execute("create extension if not exists vector")
                prepare_database(target, settings.dbname)


def drop_database(settings: ConnectionSettings) -> None:
    """Drop settings.dbname (as the admin role), closing its sessions."""
    admin = settings.as_admin().for_database("postgres")
    with psycopg.connect(**connect_kwargs(admin), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(settings.dbname)
            )
        )
