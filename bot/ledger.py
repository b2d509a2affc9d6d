"""The ledger of inbound events already taken, in Postgres (the production ``EventLedger``)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import asyncpg

__all__ = ["PostgresLedger"]

log = logging.getLogger(__name__)


class PostgresLedger:
    """Claims event ids with one atomic insert; forgets ids older than ``keep``.

    Platforms redeliver within minutes to an hour (Slack retries for up to an hour), so ids are
    kept a day by default; every ``prune_every`` claims the older ones are deleted.
    """

    def __init__(
        self, pool: asyncpg.Pool[Any], keep: timedelta = timedelta(days=1), prune_every: int = 500
    ) -> None:
        self._pool = pool
        self._keep = keep
        self._prune_every = prune_every
        self._claims = 0

    async def claim(self, event_id: str) -> bool:
        claimed = await self._pool.fetchval(
            "insert into processed_events (event_id) values ($1)"
            " on conflict (event_id) do nothing returning true",
            event_id,
        )
        self._claims += 1
        if self._claims % self._prune_every == 0:
            await self.prune()
        return bool(claimed)

    async def prune(self) -> int:
        """Delete ids older than ``keep``; returns how many."""
        status = await self._pool.execute(
            "delete from processed_events where claimed_at < now() - $1::interval", self._keep
        )
        removed = int(status.split()[-1])
        if removed:
            log.info("pruned %d processed event ids", removed)
        return removed
