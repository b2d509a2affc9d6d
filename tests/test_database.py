"""Migrations on a real PostgreSQL: applied once, also when processes start together."""

from __future__ import annotations

import asyncio

import asyncpg

from bot.database import apply_migrations


async def test_processes_starting_together_apply_each_migration_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        assert sorted(v for applied in results for v in applied) == [1]
        assert await apply_migrations(conns[0]) == []
        rows = await conns[0].fetch("select version from membot_migrations")
        assert [r["version"] for r in rows] == [1]
    finally:
        for conn in conns:
            await conn.close()
