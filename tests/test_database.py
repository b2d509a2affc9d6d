"""Migrations and the event ledger on a real PostgreSQL: each applied or claimed once, also when
processes race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.database import Database, apply_migrations
from bot.ledger import PostgresLedger
from tests.conftest import MIGRATIONS


async def test_processes_starting_together_apply_each_migration_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        assert sorted(v for applied in results for v in applied) == MIGRATIONS
        assert await apply_migrations(conns[0]) == []
        rows = await conns[0].fetch("select version from membot_migrations")
        assert sorted(r["version"] for r in rows) == MIGRATIONS
    finally:
        for conn in conns:
            await conn.close()


async def test_processes_starting_together_on_a_new_database_all_start(
    database_url: str,
) -> None:
    settings = Settings(database_url=SecretStr(database_url), db_pool_size=1)
    opened = await asyncio.gather(*(Database.open(settings) for _ in range(4)),
                                  return_exceptions=True)
    try:
        assert [type(d) for d in opened] == [Database] * 4, opened
    finally:
        for database in opened:
            if isinstance(database, Database):
                await database.close()


@pytest.fixture
async def migrated_pool(database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A pool of four connections on a database with membot's tables."""
    pool = await asyncpg.create_pool(database_url, min_size=4, max_size=4)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        yield pool
    finally:
        await pool.close()


async def test_an_event_is_claimed_once_across_connections(
    migrated_pool: asyncpg.Pool[Any],
) -> None:
    ledger = PostgresLedger(migrated_pool)
    results = await asyncio.gather(*(ledger.claim("discord:123") for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await ledger.claim("discord:124") is True


async def test_old_event_ids_are_pruned(migrated_pool: asyncpg.Pool[Any]) -> None:
    ledger = PostgresLedger(migrated_pool, keep=timedelta(hours=1), prune_every=3)
    await ledger.claim("old")
    await migrated_pool.execute(
        "update processed_events set claimed_at = now() - interval '2 hours'"
        " where event_id = 'old'")
    await ledger.claim("new-1")
    await ledger.claim("new-2")  # the third claim prunes
    rows = await migrated_pool.fetch("select event_id from processed_events")
    assert {r["event_id"] for r in rows} == {"new-1", "new-2"}
    assert await ledger.claim("old") is True  # forgotten, so it counts as new again
