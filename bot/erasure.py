"""Erasing everything membot keeps about one person: the one path that "forget everything" and
the purge of a deleted Supabase user share.

::

    tombstone (owner_settings.forgotten_at = now(), under the owner's erase lock)
      → queued writes cancelled (inbox rows, waiting and failed jobs)
      → memories, their history and Mem0's copy of recent messages deleted
      → recorded turns deleted

The tombstone comes first and stays: a memory write already running stores, then reads it and
deletes what it stored (:class:`bot.learner.Learner`); a turn being answered records nothing
for a message said before it (:class:`bot.inbox.MemoryInbox`). Every step is idempotent, so an
interrupted erase is simply run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bot.ports import MemoryStore

__all__ = ["Erased", "Eraser"]

log = logging.getLogger(__name__)


class Tombstones(Protocol):
    """Where the time of an owner's last erase is kept (``bot.controls.ControlStore``)."""

    async def mark_forgotten(self, owner_id: str, *, reset: bool = False) -> object: ...


class QueuedWrites(Protocol):
    """The owner's memory writes not yet learned (``bot.writer.MemoryWriter``)."""

    async def forget_owner(self, owner_id: str) -> int: ...
    async def busy(self, owner_id: str) -> bool: ...


class Turns(Protocol):
    """The recorded turns (``bot.transcript.PostgresTranscript``)."""

    async def forget_owner(self, owner_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class Erased:
    """What one erase deleted: memories, recorded turns, and messages still queued."""

    memories: int
    turns: int
    queued: int


class Eraser:
    """Erases an owner. Guarantees: the tombstone is written (by the database's clock) before
    anything is deleted; afterwards nothing said before it is left anywhere membot or Mem0
    keeps it, once :meth:`busy` is false (a write that was running has then checked the
    tombstone and removed what it stored)."""

    def __init__(self, *, tombstones: Tombstones, writes: QueuedWrites, memory: MemoryStore,
                 turns: Turns) -> None:
        self._tombstones = tombstones
        self._writes = writes
        self._memory = memory
        self._turns = turns

    async def erase(self, owner_id: str, *, deleted_user: bool = False) -> Erased:
        """Erase everything of ``owner_id``. ``deleted_user``: their Supabase user is gone, so
        their choices (pause, receipts) are reset too; the tombstone stays either way."""
        await self._tombstones.mark_forgotten(owner_id, reset=deleted_user)
        queued = await self._writes.forget_owner(owner_id)
        memories = await self._memory.forget_owner(owner_id)
        turns = await self._turns.forget_owner(owner_id)
        log.info("erased one owner: %d memories, %d turns, %d queued messages", memories, turns,
                 queued)
        return Erased(memories=memories, turns=turns, queued=queued)

    async def busy(self, owner_id: str) -> bool:
        """Whether a memory write of the owner is running now (an erase is final only after
        it has finished)."""
        return await self._writes.busy(owner_id)
