"""The Supabase schema in deploy/supabase: applies next to membot's own migrations, ties links
to auth.users with on delete cascade, and keeps the API roles out."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import psycopg
import pytest

from bot.database import apply_migrations
from tests.conftest import with_database

SCHEMA = sorted((Path(__file__).parent.parent / "deploy/supabase/migrations").glob("*.sql"))

SUPABASE_LIKE = """
do $$ begin
    if not exists (select from pg_roles where rolname = 'anon') then
        create role anon nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'service_role') then
        create role service_role nologin bypassrls;
    end if;
end $$;
create schema if not exists auth;
create table if not exists auth.users (id uuid primary key, email text);
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
"""


@pytest.fixture
def supabase_db(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SUPABASE_LIKE)
        for migration in SCHEMA:
            conn.execute(migration.read_text())
    return database_url


async def test_membot_migrations_apply_on_top_of_the_pushed_schema(supabase_db: str) -> None:
    conn = await asyncpg.connect(supabase_db)
    try:
        assert 3 in await apply_migrations(conn)
    finally:
        await conn.close()


def test_deleting_a_user_takes_their_links_and_queues_their_memories(supabase_db: str) -> None:
    user = uuid.uuid4()
    with psycopg.connect(supabase_db, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, 'a@example.com')", (user,))
        conn.execute(
            "insert into account_links (platform, workspace, platform_user, account_key, user_id,"
            " email_hint) values ('discord', '', '42', 'discord:42', %s, 'a***@example.com')",
            (user,),
        )
        conn.execute("insert into memory_owners (user_id) values (%s)", (user,))
        conn.execute("delete from auth.users where id = %s", (user,))
        assert conn.execute("select count(*) from account_links").fetchone() == (0,)
        queued = conn.execute("select owner_id from owner_purges").fetchall()
        assert queued == [(str(user),)]


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_the_api_roles_cannot_touch_the_tables(supabase_db: str, role: str) -> None:
    with psycopg.connect(supabase_db, autocommit=True) as conn:
        conn.execute(f"set role {role}")
        for table in ("account_links", "link_requests", "site_keys", "memory_owners",
                      "owner_settings", "workspace_settings", "mem0_history", "mem0_messages",
                      "memory_inbox"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select * from {table}")


def test_the_service_role_can(supabase_db: str) -> None:
    with psycopg.connect(supabase_db, autocommit=True) as conn:
        conn.execute("set role service_role")
        assert conn.execute("select count(*) from account_links").fetchone() == (0,)


def _columns(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return conn.execute(
        "select table_name, column_name, data_type, is_nullable, column_default"
        " from information_schema.columns where table_schema = 'public'"
        " and table_name in ('site_keys', 'link_requests', 'link_email_claims', 'account_links',"
        " 'memory_owners', 'owner_purges', 'owner_settings', 'workspace_settings', 'mem0_history',"
        " 'mem0_messages') order by table_name, column_name"
    ).fetchall()


async def test_the_pushed_schema_matches_membots_own_migration(
    supabase_db: str, postgres: str
) -> None:
    """deploy/supabase repeats migrations 003 and 004 for the Supabase CLI; they must not drift."""
    other = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'create database "{other}"')
    try:
        own = with_database(postgres, other)
        with psycopg.connect(own, autocommit=True) as conn:
            conn.execute(SUPABASE_LIKE)
        migrating = await asyncpg.connect(own)
        try:
            await apply_migrations(migrating)
        finally:
            await migrating.close()
        with psycopg.connect(own) as a, psycopg.connect(supabase_db) as b:
            assert _columns(a) == _columns(b)
            constraints = (
                "select conname, pg_get_constraintdef(oid) from pg_constraint"
                " where conname like '%\\_user\\_fk' order by conname"
            )
            keys = a.execute(constraints).fetchall()
            assert len(keys) == 3 and keys == b.execute(constraints).fetchall()
    finally:
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{other}" with (force)')
