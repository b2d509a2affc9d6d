"""Purges after a Supabase user is deleted."""

from __future__ import annotations

import asyncio
import logging

from bot.erasure import Eraser
from bot.linkstore import LinkStore

__all__ = ["Purger"]

log = logging.getLogger(__name__)


class Purger:
    """Erases the owners queued for purging: Postgres queues a Supabase user's id when the user
    is deleted (``on delete cascade`` from ``auth.users`` and a trigger). Every process sweeps
    at start and then every ``every`` seconds.

    Each purge goes through :class:`bot.erasure.Eraser` (the path "forget everything" takes),
    which leaves a tombstone so that a write or a turn still running under the deleted id stores
    nothing. A purge is finished (its queue row removed) only when no memory write of the owner
    is running any more; until then every sweep erases again, so even a write whose worker died
    between storing and checking is cleaned up."""

    def __init__(self, store: LinkStore, eraser: Eraser, every: float = 60.0) -> None:
        self._store = store
        self._eraser = eraser
        self._every = every

    async def sweep(self) -> int:
        """Erase every queued owner; returns how many were erased."""
        erased = 0
        for owner in await self._store.pending_purges():
            gone = await self._eraser.erase(owner, deleted_user=True)
            erased += 1
            if await self._eraser.busy(owner):
                log.info("purged a deleted user's data (%d memories, %d turns); a memory write "
                         "of theirs is still running, so the purge runs again next sweep",
                         gone.memories, gone.turns)
                continue
            await self._store.finish_purge(owner)
            log.info("purged a deleted user's data: %d memories, %d turns", gone.memories,
                     gone.turns)
        await self._store.prune_requests()
        return erased

    async def run(self) -> None:
        """Sweep until cancelled; a failed sweep is logged and retried next time."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("purging deleted users failed; retrying in %.0f s", self._every)
            await asyncio.sleep(self._every)
