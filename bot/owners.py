"""Memory owners as they change: writes that land after a link, and purges after a user is
deleted from Supabase."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.linkstore import LinkStore
from bot.ports import MemoryStore, MemoryWrite, Owners
from bot.transcript import PostgresTranscript

__all__ = ["OwnedLearner", "Purger"]

log = logging.getLogger(__name__)


class OwnedLearner:
    """Learns each write under the owner its account has when the write runs, not when the
    message was answered: a write still queued when its account gets linked lands with the
    Supabase user. If the link is made while the write is running, the write's memories are
    moved after it, so none stay behind with the unlinked account."""

    def __init__(
        self,
        memory: MemoryStore,
        owners: Owners,
        move: Callable[[str, str], Awaitable[int]],
    ) -> None:
        self._memory = memory
        self._owners = owners
        self._move = move

    async def learn(self, write: MemoryWrite) -> int:
        owner = await self._owners.owner_of(write.account)
        added = await self._memory.learn(replace(write, owner_id=owner))
        if owner == write.account:
            now = await self._owners.owner_of(write.account)
            if now != owner:
                moved = await self._move(owner, now)
                log.info("moved %d memories written while their account was linked", moved)
        return added


class Purger:
    """Deletes the memories of owners queued for purging: Postgres queues a Supabase user's id
    when the user is deleted (``on delete cascade`` from ``auth.users`` and a trigger). Every
    process sweeps at start and then every ``every`` seconds; a purge is finished (its queue row
    removed) only after the memories, Mem0's history of them and the owner's recorded turns are
    gone, so an interrupted purge runs again."""

    def __init__(
        self,
        store: LinkStore,
        memory: MemoryStore,
        transcript: PostgresTranscript,
        every: float = 60.0,
    ) -> None:
        self._store = store
        self._memory = memory
        self._transcript = transcript
        self._every = every

    async def sweep(self) -> int:
        """Purge every queued owner; returns how many were purged."""
        purged = 0
        for owner in await self._store.pending_purges():
            memories = await self._memory.forget_owner(owner)
            turns = await self._transcript.forget_owner(owner)
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
