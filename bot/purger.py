"""Purges after a Supabase user is deleted."""

from __future__ import annotations

import asyncio
import logging

from bot.controls import ControlStore
from bot.linkstore import LinkStore
from bot.ports import MemoryStore, PendingWrites
from bot.transcript import PostgresTranscript

__all__ = ["Purger"]

log = logging.getLogger(__name__)


class Purger:
    """Deletes the memories of owners queued for purging: Postgres queues a Supabase user's id
    when the user is deleted (``on delete cascade`` from ``auth.users`` and a trigger). Every
    process sweeps at start and then every ``every`` seconds; a purge is finished (its queue row
    removed) only after the owner's queued writes, memories, Mem0's history of them and recorded
    turns are gone (and their settings), so an interrupted purge runs again."""

    def __init__(
        self,
        store: LinkStore,
        memory: MemoryStore,
        transcript: PostgresTranscript,
        controls: ControlStore,
        writes: PendingWrites,
        every: float = 60.0,
    ) -> None:
        self._store = store
        self._writes = writes
        self._controls = controls
        self._memory = memory
        self._transcript = transcript
        self._every = every

    async def sweep(self) -> int:
        """Purge every queued owner; returns how many were purged."""
        purged = 0
        for owner in await self._store.pending_purges():
            await self._writes.forget_owner(owner)
            memories = await self._memory.forget_owner(owner)
            turns = await self._transcript.forget_owner(owner)
            await self._controls.forget_owner(owner)
            await self._store.finish_purge(owner)
            log.info("purged a deleted user's data: %d memories, %d turns", memories, turns)
            purged += 1
        await self._store.prune_requests()
        return purged

    async def run(self) -> None:
        """Sweep until cancelled; a failed sweep is logged and retried next time."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("purging deleted users failed; retrying in %.0f s", self._every)
            await asyncio.sleep(self._every)
