"""The recent turns of each conversation, in Postgres (the production ``Transcript``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from bot.ports import Turn

__all__ = ["PostgresTranscript"]


class PostgresTranscript:
    """Keeps only the newest ``keep`` turns of each conversation; older ones are deleted as
    new ones arrive, so raw messages do not pile up."""

    def __init__(self, pool: asyncpg.Pool[Any], keep: int) -> None:
        self._pool = pool
        self._keep = keep

    async def recent(self, conversation_id: str, limit: int) -> list[Turn]:
        rows = await self._pool.fetch(
            "select role, content, at from ("
            " select id, role, content, at from conversation_turns"
            " where conversation_id = $1 order by id desc limit $2"
            ") newest order by id",
            conversation_id,
            limit,
        )
        return [Turn(role=row["role"], text=row["content"], at=row["at"]) for row in rows]

    async def append(self, conversation_id: str, owner_id: str, turns: Sequence[Turn]) -> None:
        if self._keep == 0 or not turns:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "insert into conversation_turns (conversation_id, owner_id, role, content, at)"
                " values ($1, $2, $3, $4, $5)",
                [(conversation_id, owner_id, t.role, t.text, t.at) for t in turns],
            )
            await conn.execute(
                "delete from conversation_turns where conversation_id = $1 and id <= ("
                " select id from conversation_turns where conversation_id = $1"
                " order by id desc offset $2 limit 1)",
                conversation_id,
                self._keep,
            )

    async def of_owner(self, owner_id: str) -> list[tuple[str, Turn]]:
        """Every recorded turn of the owner, with its conversation id, oldest first."""
        rows = await self._pool.fetch(
            "select conversation_id, role, content, at from conversation_turns"
            " where owner_id = $1 order by id",
            owner_id,
        )
        return [
            (row["conversation_id"], Turn(role=row["role"], text=row["content"], at=row["at"]))
            for row in rows
        ]

    async def forget_owner(self, owner_id: str) -> int:
        """Delete every recorded turn of the owner; returns how many."""
        status = await self._pool.execute(
            "delete from conversation_turns where owner_id = $1", owner_id
        )
        return int(status.split()[-1])
