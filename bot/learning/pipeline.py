"""The learning pipeline of one process, as the rest of the bot sees it: the inbox that records
messages, the schedule that decides when they are learned, the durable queue, and, where this
process runs one, a worker that learns them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from bot.learning.inbox import MemoryInbox
from bot.learning.learner import Learner
from bot.learning.queue import MemoryQueue, QueueCounts
from bot.learning.schedule import Schedule
from bot.ports import Turn
from bot.wording import plural

__all__ = ["LearningPipeline", "Leftover"]

log = logging.getLogger(__name__)

FLUSH_WAIT = 5.0  # seconds a reader waits for the exchanges this process has not written yet


class LearningPipeline:
    """Owns the inbox, the schedule, the queue and this process's worker task (if any; a
    process without ``learner`` only records and administers).

    Guarantees: :meth:`forget_owner` leaves no message of the owner waiting and no job of theirs
    queued (a job already running checks the forget itself); :meth:`stop` never loses a queued
    write: what a worker does not finish within the grace time stays in Postgres and is run
    again by the next worker; while a worker runs here, every message waiting for longer than
    ``orphan_after`` seconds with no job gets one, and every message whose turn was answered
    but never recorded (see :meth:`sweep`) is queued.
    """

    def __init__(self, inbox: MemoryInbox, schedule: Schedule, queue: MemoryQueue,
                 learner: Learner | None = None, *, sweep_every: float = 15.0,
                 orphan_after: float = 30.0, unrecorded_after: float = 600.0) -> None:
        self.inbox = inbox
        self.queue = queue
        self._schedule = schedule
        self._learner = learner
        self._sweep_every = sweep_every
        self._orphan_after = orphan_after
        self._unrecorded_after = unrecorded_after
        self._worker: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self.depth = 0  # messages waiting, as last counted (see watch)
        self._stopped: Leftover | None = None

    async def start_worker(self, concurrency: int, name: str = "membot-worker") -> None:
        """Start learning queued writes in this process, ``concurrency`` jobs at a time."""
        self._worker = asyncio.create_task(self.work(concurrency, name), name=name)

    @property
    def done(self) -> int:
        """Messages this process's worker learned (or dropped as paused or forgotten)."""
        return self._learner.learned if self._learner is not None else 0

    async def work(self, concurrency: int, name: str = "membot-worker",
                   restart_after: float = 2.0) -> None:
        """Be a worker until cancelled (``membot worker``). A worker that stops on an error
        (the database went away) is started again; jobs it left running are handed out again
        once its heartbeat is old (:meth:`sweep`, every ``sweep_every`` seconds)."""
        if self._learner is None:
            raise RuntimeError("this learning pipeline was built without a learner")
        learner = self._learner
        sweeping = asyncio.create_task(self._sweep_forever(), name="memory-queue-sweep")
        try:
            while True:
                try:
                    await self.queue.work(learner.run, concurrency=concurrency, name=name)
                except Exception as exc:
                    log.error("the memory worker stopped (%s); starting it again in %gs",
                              exc.__class__.__name__, restart_after)
                await asyncio.sleep(restart_after)
        finally:
            sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping

    async def sweep(self) -> int:
        """Hand out again the jobs of stopped workers; queue the messages of turns claimed more
        than ``unrecorded_after`` seconds ago and never recorded (their process stopped
        between the reply and the record); and wake every owner with a message waiting and no
        job. Returns how many owners were woken."""
        await self.queue.sweep()
        await self.inbox.recover(self._unrecorded_after)
        orphans = (await self.inbox.waiting_since(self._orphan_after)
                   - await self.queue.owners_with_jobs())
        for owner in sorted(orphans):
            await self._schedule.now(owner)
        return len(orphans)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_every)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweeping the memory queue failed; trying again in %.0fs",
                              self._sweep_every)

    @property
    def failed(self) -> int:
        """Job runs of this process that raised (each retried or kept as failed)."""
        return self.queue.failed

    async def forget_owner(self, owner_id: str) -> int:
        """Cancel every write of the owner not yet learned; returns how many messages."""
        messages = await self.inbox.forget_owner(owner_id)
        await self.queue.forget(owner_id)
        return messages

    async def busy(self, owner_id: str) -> bool:
        """Whether a learning job of the owner is running now, on any worker."""
        return await self.queue.running(owner_id)

    def watch(self, every: float = 5.0) -> None:
        """Keep :attr:`depth` up to date, counting every ``every`` seconds (for metrics, which
        must not query the database while they are scraped)."""
        async def count() -> None:
            while True:
                try:
                    self.depth = await self.pending()
                except Exception as exc:
                    log.debug("counting the memory queue failed: %s", exc.__class__.__name__)
                await asyncio.sleep(every)

        self._watching = asyncio.create_task(count(), name="memory-queue-depth")

    async def flush(self) -> None:
        """Wait until the exchanges this process was handed are written (at most
        ``FLUSH_WAIT`` seconds: while the database is away they are held): what is read next
        includes the messages just said."""
        if self.inbox.held:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_WAIT):
                    await self.inbox.flush()

    async def waiting(self, owner_id: str) -> int:
        """How many of the owner's messages are queued and not yet learned."""
        await self.flush()
        return await self.inbox.waiting(owner_id)

    async def queued(self, owner_id: str) -> list[Turn]:
        """The owner's messages still in the inbox, oldest first."""
        await self.flush()
        return [Turn(role="user", text=item.text, at=item.said_at)
                for item in await self.inbox.of_owner(owner_id)]

    async def counts(self) -> QueueCounts:
        """Messages waiting and failed, and the queue's jobs by status."""
        await self.flush()
        waiting, failed = await self.inbox.counts()
        return QueueCounts(messages=waiting, failed_messages=failed,
                           jobs=await self.queue.job_counts())

    async def retry_failed(self) -> int:
        """Give every message whose learning failed for good another run, and every failed job
        (an operator's fix is in). Returns how many messages."""
        messages, owners = await self.inbox.unfail()
        await self.queue.retry_failed()
        for owner in owners:
            await self._schedule.now(owner)
        return messages

    async def pending(self) -> int:
        """Messages waiting to be learned, held in this process or queued in Postgres."""
        return self.inbox.held_messages + (await self.inbox.counts())[0]

    async def wait_idle(self, poll: float = 0.05) -> None:
        """Wait until no write is held, waiting or running (for tests and benchmarks; needs a
        worker somewhere)."""
        while True:
            counts = await self.counts()
            if (not self.inbox.held and counts.messages == 0
                    and not counts.jobs.get("todo") and not counts.jobs.get("doing")):
                return
            await asyncio.sleep(poll)

    async def stop(self, grace: float) -> Leftover:
        """Write what the inbox holds from a database outage; then, with a worker in this
        process, learn what is queued within ``grace`` seconds (without waiting for pauses in
        conversations), and stop it. When a worker of another process is alive, nothing is
        waited for: it learns what is queued. Nothing is lost either way: what is left stays
        queued in Postgres for the next worker. Says what was left; a second call does nothing
        more and says the same."""
        if self._stopped is not None:
            return self._stopped
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
        await self.inbox.close(grace)
        others = await self._other_workers()
        if self._worker is not None and not others:
            self._schedule.hurry = True
            try:
                async with asyncio.timeout(grace):
                    await self.queue.hurry()
                    await self.wait_idle()
            except TimeoutError:
                log.warning("memory writes still queued after %gs; the next worker learns them",
                            grace)
            except Exception:
                log.exception("finishing queued memory writes failed; they stay queued")
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        left = Leftover(messages=await self._left(), other_workers=others)
        if left.messages and others:
            log.info("%s left queued; another worker learns them",
                     plural(left.messages, "message"))
        self._stopped = left
        return left

    async def _other_workers(self) -> int:
        try:
            return await self.queue.other_workers()
        except Exception as exc:
            log.warning("could not look for other workers: %s", exc.__class__.__name__)
            return 0

    async def _left(self) -> int:
        try:
            return await self.pending()
        except Exception as exc:
            log.warning("could not count the queued memory writes: %s", exc.__class__.__name__)
            return self.inbox.held_messages


@dataclass(frozen=True, slots=True)
class Leftover:
    """What a stopping process left to learn: ``messages`` waiting (held here or queued in
    Postgres, everyone's), and how many ``other_workers`` (workers of other processes, alive)
    will learn them."""

    messages: int
    other_workers: int
