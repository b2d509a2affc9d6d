"""Migrations on a real PostgreSQL: applied once, also when processes start together."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from bot.database import apply_migrations
from bot.ledger import PostgresLedger


async def test_processes_starting_together_apply_each_migration_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        assert sorted(v for applied in results for v in applied) == [1, 2]
        assert await apply_migrations(conns[0]) == []
        rows = await conns[0].fetch("select version from membot_migrations")
        assert sorted(r["version"] for r in rows) == [1, 2]
    finally:
        for conn in conns:
            await conn.close()


async def test_an_event_is_claimed_once_across_connections(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=4, max_size=4)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        ledger = PostgresLedger(pool)
        results = await asyncio.gather(*(ledger.claim("discord:123") for _ in range(8)))
        assert sorted(results) == [False] * 7 + [True]
        assert await ledger.claim("discord:124") is True
    finally:
        await pool.close()


async def test_old_event_ids_are_pruned(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        ledger = PostgresLedger(pool, keep=timedelta(hours=1), prune_every=3)
        await ledger.claim("old")
        await pool.execute(
            "update processed_events set claimed_at = now() - interval '2 hours'"
            " where event_id = 'old'")
        await ledger.claim("new-1")
        await ledger.claim("new-2")  # the third claim prunes
        left = {r["event_id"] for r in await pool.fetch("select event_id from processed_events")}
        assert left == {"new-1", "new-2"}
        assert await ledger.claim("old") is True  # forgotten, so it counts as new again
    finally:
        await pool.close()
