"""The recorded turns of each owner, in Postgres, for exports and erasure; they are written with
each exchange by :class:`bot.learning.inbox.MemoryInbox` and read for a turn by
:class:`bot.opening.PostgresTurnStart`."""

from __future__ import annotations

from typing import Any

import asyncpg

from bot.ports import Turn

__all__ = ["PostgresTranscript"]


class PostgresTranscript:
    """An owner's recorded turns (the inbox keeps only the newest ``CONTEXT_TURNS`` of each
    conversation, so raw messages do not pile up)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

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
