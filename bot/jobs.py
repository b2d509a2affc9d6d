"""Memory writes in the background of this process (the in-process ``Jobs``).

A durable, Postgres-backed queue can replace it behind the same port; until then a crash loses
the writes in flight, and :meth:`InProcessJobs.drain` says how many on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.ports import MemoryWrite, WriteObserver

__all__ = ["InProcessJobs"]

log = logging.getLogger(__name__)


class InProcessJobs:
    """Runs each write as an owned background task.

    Guarantees: ``enqueue`` returns at once; writes of one owner run one at a time in the order
    enqueued, writes of different owners run concurrently; a failing write is logged and does
    not stop the ones after it; after :meth:`drain` nothing new is accepted, and every write is
    either finished or counted and logged as lost. ``observer`` hears of each write that ends
    (not of those cancelled on shutdown, which :meth:`drain` counts).
    """

    def __init__(
        self,
        handler: Callable[[MemoryWrite], Awaitable[object]],
        observer: WriteObserver | None = None,
    ) -> None:
        self._handler = handler
        self._observer = observer
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_of_owner: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self.failed = 0
        self.done = 0

    @property
    def pending(self) -> int:
        """Writes accepted and not yet finished."""
        return len(self._tasks)

    async def enqueue(self, write: MemoryWrite) -> None:
        if self._closed:
            log.error("memory write of event %s arrived after shutdown began; it is lost",
                      write.event_id)
            return
        before = self._last_of_owner.get(write.owner_id)
        task = asyncio.create_task(self._run(write, before), name=f"memory-write:{write.event_id}")
        self._tasks.add(task)
        self._last_of_owner[write.owner_id] = task
        task.add_done_callback(lambda t: self._forget(write.owner_id, t))

    async def _run(self, write: MemoryWrite, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        try:
            await self._handler(write)
        except Exception:
            self.failed += 1
            log.exception("memory write of event %s failed", write.event_id)
            ok = False
        else:
            self.done += 1
            ok = True
        if self._observer is not None:
            self._observer.write_finished(ok=ok)

    def _forget(self, owner_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._last_of_owner.get(owner_id) is task:
            del self._last_of_owner[owner_id]

    async def wait_idle(self) -> None:
        """Wait until every write accepted so far has finished (for tests and benchmarks)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def drain(self, grace: float) -> int:
        """Stop accepting writes, give the pending ones ``grace`` seconds, cancel the rest.
        Returns how many were lost (and logs that count when it is not zero)."""
        self._closed = True
        if not self._tasks:
            return 0
        log.info("finishing %d pending memory writes (up to %gs)", len(self._tasks), grace)
        _, unfinished = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished)
            log.error("%d memory writes did not finish within %gs and are lost",
                      len(unfinished), grace)
        return len(unfinished)
