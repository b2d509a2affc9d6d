"""When a person's waiting messages are learned, and the one way to wake their job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.learning.queue import LOCK_PREFIX, QUEUE, TASK

if TYPE_CHECKING:
    from bot.learning.inbox import InboxItem
    from bot.learning.queue import MemoryQueue

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

    Guarantees: a call of ``membot_record`` given :meth:`on_record` leaves a job to look at
    each of its owners' inboxes (at once when a batch is full, else once the conversation may
    have paused); a job that finds it is too early reschedules itself through :meth:`wait`
    and :meth:`later`, so the policy lives here alone (``membot_record`` applies the rule it
    is given). :attr:`hurry` (this process is stopping) makes every wait 0."""

    def __init__(self, batching: Batching, jobs: MemoryQueue) -> None:
        self.batching = batching
        self._jobs = jobs
        self.hurry = False

    def on_record(self) -> tuple[int, float, str, str, str]:
        """The last five arguments of ``membot_record`` (migration 009), which wakes the job
        of each owner whose messages it queued, in the same call: due at once when the batch
        size or more of their messages wait (or the idle time is 0), else after the idle time,
        when a job already waiting is enough; the job's row written as procrastinate's
        ``defer`` writes it (its queue, task and lock prefix; this version of it is pinned)."""
        return (self.batching.size, self.batching.idle, QUEUE, TASK, LOCK_PREFIX)

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
