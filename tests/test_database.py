"""Migrations and the claim of each event on a real PostgreSQL: each applied or claimed once,
also when processes race."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from adapters.console import to_event
from bot.config import Settings
from bot.database import Database, apply_migrations
from bot.events import ChatEvent
from bot.opening import PostgresTurnStart
from bot.ports import MemoryWrite
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


def event(event_id: str) -> ChatEvent:
    return dataclasses.replace(to_event("alice", "hello there", session="s"),
                               event_id=event_id)


async def claimed(start: PostgresTurnStart, event_id: str) -> bool:
    return (await start.open(event(event_id), turns=6, ahead=None)).claimed


async def test_an_event_is_claimed_once_across_connections(
    migrated_pool: asyncpg.Pool[Any],
) -> None:
    start = PostgresTurnStart(migrated_pool)
    results = await asyncio.gather(*(claimed(start, "discord:123") for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await claimed(start, "discord:124") is True


async def test_old_event_ids_are_pruned_once_their_turns_are_recorded(
    migrated_pool: asyncpg.Pool[Any],
) -> None:
    start = PostgresTurnStart(migrated_pool, keep=timedelta(hours=1), prune_every=4)
    await claimed(start, "old")
    unrecorded = event("old-unrecorded")
    await start.open(unrecorded, turns=6, ahead=MemoryWrite(
        owner_id="console:alice", account="console:alice", event_id=unrecorded.event_id,
        text="hello there", at=unrecorded.at))
    await migrated_pool.execute(
        "update processed_events set claimed_at = now() - interval '2 hours'"
        " where event_id like 'old%'")
    await claimed(start, "new-1")
    await claimed(start, "new-2")  # the fourth claim prunes, beside the turn

    async def left() -> set[str]:
        rows = await migrated_pool.fetch("select event_id from processed_events")
        return {r["event_id"] for r in rows}

    async with asyncio.timeout(30):
        while "old" in await left():  # noqa: ASYNC110 - the database has no event to await
            await asyncio.sleep(0.01)
    # A claim whose message was never recorded stays until the sweep queues it.
    assert await left() == {"new-1", "new-2", "old-unrecorded"}
    assert await claimed(start, "old") is True  # forgotten, so it counts as new again


async def test_warming_opens_every_connection_readied_and_readies_those_opened_later(
    database_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(database_url=SecretStr(database_url), db_pool_size=3)
    database = await Database.open(settings)
    readied: list[int] = []

    async def note(conn: asyncpg.Connection[Any]) -> None:
        readied.append(conn.get_server_pid())

    async def broken(conn: asyncpg.Connection[Any]) -> None:
        await conn.execute("select no_such_column from processed_events")

    try:
        await database.warm([note, broken])
        assert database.pool.get_size() == 3
        assert len(set(readied)) == 3  # each connection once
        assert "readying a database connection failed" in caplog.text
        await database.pool.expire_connections()  # replaced, as one idle too long is
        async with database.pool.acquire() as conn:
            # The new connection was readied too, and works despite the failed warm-up.
            assert conn.get_server_pid() in readied[3:]
            assert await conn.fetchval("select 1") == 1
    finally:
        await database.close()


async def test_warming_up_the_opening_claims_nothing(
    migrated_pool: asyncpg.Pool[Any],
) -> None:
    start = PostgresTurnStart(migrated_pool)
    async with migrated_pool.acquire() as conn:
        await start.warm(conn)  # type: ignore[arg-type]  # a pool's connection proxy
        assert await conn.fetchval("select count(*) from processed_events") == 0
        assert not conn.is_in_transaction()
    assert await claimed(start, "discord:200") is True
