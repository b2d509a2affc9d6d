"""The memory writer: learns one queued write, under the rules that hold when it runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from bot.controls import Person
from bot.ports import MemoryStore, MemoryWrite, Owners, Receipts

__all__ = ["Learner"]

log = logging.getLogger(__name__)


class People(Protocol):
    """An owner's own choices (``bot.controls.ControlStore``)."""

    async def person(self, owner_id: str) -> Person: ...


class Learner:
    """Learns each write under the owner its account has when the write runs, not when the
    message was answered, and only if that owner still wants it.

    Guarantees:
    - A write still queued when its account gets linked lands with the Supabase user; if the
      link is made while the write runs, its memories are moved after it.
    - Nothing is stored for a message sent before the owner's last "forget everything", even
      when the forget happened while the write was running: the write checks before it starts
      and again after it stored, and then deletes what it stored.
    - Nothing is stored while the owner has memory paused.
    - The learned receipt is asked for only when something new was kept.
    """

    def __init__(
        self,
        *,
        memory: MemoryStore,
        owners: Owners,
        people: People,
        move: Callable[[str, str], Awaitable[int]],
        receipts: Receipts,
    ) -> None:
        self._memory = memory
        self._owners = owners
        self._people = people
        self._move = move
        self._receipts = receipts

    async def learn(self, write: MemoryWrite) -> int:
        """Learn ``write``; returns how many memories were kept."""
        owner = await self._owners.owner_of(write.account)
        person = await self._people.person(owner)
        if person.paused or _forgotten_since(person.forgotten_at, write.at):
            log.info("skipped the memory write of event %s: memory %s", write.event_id,
                     "paused" if person.paused else "forgotten since the message")
            return 0
        added = await self._memory.learn(replace(write, owner_id=owner))
        after = await self._people.person(owner)
        if _forgotten_since(after.forgotten_at, write.at):
            gone = await self._memory.forget(owner, added)
            log.info("dropped %d memories of event %s: forgotten while it was written", gone,
                     write.event_id)
            return 0
        if owner == write.account:
            now = await self._owners.owner_of(write.account)
            if now != owner:
                moved = await self._move(owner, now)
                log.info("moved %d memories written while their account was linked", moved)
        if added and write.source is not None:
            await self._receipts.learned(write.source)
        return len(added)


def _forgotten_since(forgotten_at: datetime | None, said_at: datetime) -> bool:
    return forgotten_at is not None and said_at <= forgotten_at
