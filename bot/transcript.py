"""The recent turns of each conversation, in Postgres (the production ``Transcript``); they are
written with each exchange by :class:`bot.learning.inbox.MemoryInbox`."""

from __future__ import annotations

from typing import Any

import asyncpg

from bot.ports import Turn

__all__ = ["PostgresTranscript"]


class PostgresTranscript:
    """Reads the recent turns (the inbox keeps only the newest ``CONTEXT_TURNS`` of each
    conversation, so raw messages do not pile up)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

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
