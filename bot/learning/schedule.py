"""When a person's waiting messages are learned, and the one way to wake their job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.learning.inbox import InboxItem
    from bot.learning.queue import MemoryQueue
    from bot.ports import Connection

__all__ = ["Batching", "Schedule"]


@dataclass(frozen=True, slots=True)
class Batching:
    """When a person's waiting messages are learned: once ``size`` are waiting, or the newest
    is ``idle`` seconds old (the conversation paused), or the oldest ``max_wait`` seconds old;
    at most ``limit`` messages in one extraction."""

    size: int
    idle: float
    max_wait: float
    limit: int = 20


class Schedule:
    """Owns the batching policy and wakes the owners' jobs; nothing else defers a job.

    Guarantees: after :meth:`recorded`, a job will look at the owner's inbox (at once when a
    batch is full, else once the conversation may have paused); a job that finds it is too
    early reschedules itself through :meth:`wait` and :meth:`later`, so the policy lives here
    alone. :attr:`hurry` (this process is stopping) makes every wait 0."""

    def __init__(self, batching: Batching, jobs: MemoryQueue) -> None:
        self.batching = batching
        self._jobs = jobs
        self.hurry = False

    async def recorded(self, conn: Connection, waiting: Mapping[str, int]) -> None:
        """Messages of these owners were queued, and ``waiting`` says how many of each
        owner's now wait: their jobs are woken on ``conn`` (in its transaction, if any)."""
        if waiting:
            await self._jobs.wake_in(conn, {
                owner: 0.0 if count >= self.batching.size else self.batching.idle
                for owner, count in waiting.items()})

    def wait(self, items: Sequence[InboxItem]) -> float:
        """Seconds to wait for more of the conversation before learning ``items`` (the owner's
        waiting messages); 0 to learn now."""
        batching = self.batching
        if self.hurry or len(items) >= batching.size:
            return 0.0
        newest, oldest = min(i.age for i in items), max(i.age for i in items)
        return max(0.0, min(batching.idle - newest, batching.max_wait - oldest))

    async def later(self, owner_id: str, delay: float) -> None:
        """Look at the owner's inbox again in ``delay`` seconds (a waiting job is enough)."""
        await self._jobs.wake(owner_id, delay=delay)

    async def now(self, owner_id: str) -> None:
        """Look at the owner's inbox at once (a waiting job due later is replaced)."""
        await self._jobs.wake(owner_id, delay=0.0)
