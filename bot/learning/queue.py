"""The durable memory-write queue: procrastinate jobs on Postgres, one lock per owner.

The work itself is the owner's rows in ``memory_inbox`` (:mod:`bot.learning.inbox`), written in the
same transaction as the exchange. A job only says "learn owner X's inbox": its lock
(``memory:<owner>``) makes one owner's jobs run one at a time, in the order they were deferred, on
any number of workers (procrastinate claims jobs with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
never hands out a job while another job with its lock is running); its queueing lock keeps at most
one waiting job per owner, since one job takes every row waiting. So a lost, repeated or extra job
loses or repeats nothing.

Why procrastinate: Postgres is the only shared state membot has, and procrastinate is a
maintained queue on nothing but Postgres with exactly the parts needed (``SKIP LOCKED``
claiming, per-key locks, retries with backoff, worker heartbeats, LISTEN/NOTIFY wake-ups, an
admin view of every job). Its schema is applied with membot's migrations
(:func:`bot.database.apply_migrations`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import procrastinate
import procrastinate.worker
from procrastinate.exceptions import AlreadyEnqueued

from bot.config import Settings
from bot.database import Database
from bot.ports import WriteObserver

__all__ = ["LOCK_PREFIX", "QUEUE", "TASK", "LearnJob", "MemoryQueue", "QueueCounts"]

log = logging.getLogger(__name__)

TASK = "membot.learn_memories"
QUEUE = "memory"
LOCK_PREFIX = "memory:"


def _lock(owner_id: str) -> str:
    return LOCK_PREFIX + owner_id


@dataclass(frozen=True, slots=True)
class LearnJob:
    """One run of an owner's learning job: ``attempt`` counts from 1, ``last`` is true when no
    retry will follow a failure of this run."""

    owner_id: str
    attempt: int
    last: bool


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """What is waiting: messages in the inbox, and jobs by procrastinate status."""

    messages: int
    failed_messages: int
    jobs: dict[str, int]


class MemoryQueue:
    """Deferring, cancelling and running the owners' learning jobs.

    Guarantees: :meth:`wake` after a committed inbox row means a job will take that row (a
    waiting job takes it; a running one is followed by a new one); one owner's jobs never run
    at the same time; a job that raises is retried with exponential backoff up to
    ``MEMORY_WRITE_ATTEMPTS`` times, then kept with status ``failed``; a job whose worker died
    is handed out again once the worker's heartbeat is ``WORKER_STALLED_AFTER`` seconds old,
    and so is one that ended in this process when its end could not be written (the database
    was away then: procrastinate leaves such a job running for good, under a live worker).
    """

    def __init__(self, settings: Settings, database: Database,
                 observer: WriteObserver | None = None) -> None:
        self._settings = settings
        self._observer = observer
        self._pool = database.pool
        connector = procrastinate.PsycopgConnector(
            conninfo=database.dsn, min_size=1, max_size=max(2, settings.memory_write_threads + 1),
            kwargs={"prepare_threshold": None},
        )
        self._app = procrastinate.App(connector=connector)
        self._handler: Callable[[LearnJob], Awaitable[None]] | None = None
        attempts = settings.memory_write_attempts
        self._attempts = attempts
        # procrastinate's max_attempts counts the retries after the first run.
        retry: procrastinate.RetryStrategy | bool = False
        if attempts > 1:
            retry = procrastinate.RetryStrategy(
                max_attempts=attempts - 1, exponential_wait=settings.memory_retry_backoff
            )
        self._task = self._app.task(name=TASK, queue=QUEUE, retry=retry, pass_context=True)(
            self._run
        )
        self.failed = 0  # job runs of this process that raised
        self._workers: list[procrastinate.worker.Worker] = []  # running in this process
        # job id: when its run here ended (monotonic) and the attempts it had then
        self._ended: dict[int, tuple[float, int]] = {}

    async def open(self) -> None:
        await self._app.open_async()

    async def close(self) -> None:
        await self._app.close_async()

    async def _run(self, context: procrastinate.JobContext, owner_id: str) -> None:
        if self._handler is None:  # pragma: no cover - only a worker registers the task
            raise RuntimeError("no memory writer in this process")
        attempt = context.job.attempts + 1
        try:
            await self._handler(LearnJob(owner_id=owner_id, attempt=attempt,
                                         last=attempt >= self._attempts))
        except Exception:
            self.failed += 1
            if self._observer is not None:
                self._observer.write_finished(ok=False)
            raise
        finally:
            if context.job.id is not None:
                self._ended[context.job.id] = (time.monotonic(), context.job.attempts)
        if self._observer is not None:
            self._observer.write_finished(ok=True)

    async def wake(self, owner_id: str, *, delay: float = 0.0) -> None:
        """Make sure a job will learn the owner's inbox ``delay`` seconds from now. A job
        already waiting is enough when ``delay`` is not 0; with 0, a waiting job due later is
        replaced by one due now. The job itself decides whether the conversation has paused
        long enough (see :class:`bot.learning.learner.Learner`)."""
        lock = _lock(owner_id)
        if delay > 0:
            deferrer = self._task.configure(lock=lock, queueing_lock=lock,
                                            schedule_in={"seconds": math.ceil(delay)})
        else:
            deferrer = self._task.configure(lock=lock, queueing_lock=lock)
        try:
            await deferrer.defer_async(owner_id=owner_id)
        except AlreadyEnqueued:
            if delay > 0:
                return
            await self.cancel(owner_id)
            with contextlib.suppress(AlreadyEnqueued):
                await deferrer.defer_async(owner_id=owner_id)

    async def cancel(self, owner_id: str) -> int:
        """Delete the owner's waiting jobs (a running one finishes). Returns how many."""
        manager = self._app.job_manager
        cancelled = 0
        for job in await manager.list_jobs_async(lock=_lock(owner_id), status="todo"):
            if job.id is not None and await manager.cancel_job_by_id_async(job.id,
                                                                          delete_job=True):
                cancelled += 1
        return cancelled

    async def forget(self, owner_id: str) -> None:
        """Leave no job of the owner: the waiting ones are cancelled and the failed ones, which
        name the owner, deleted. A running one finishes; its writer checks the forget itself."""
        await self.cancel(owner_id)
        # procrastinate cancels only waiting jobs; failed ones are rows of its table.
        await self._pool.execute(
            "delete from procrastinate_jobs where lock = $1 and status = 'failed'",
            _lock(owner_id))

    async def running(self, owner_id: str) -> bool:
        """Whether a job of the owner is running now, on any worker."""
        found: bool = await self._pool.fetchval(
            "select exists (select from procrastinate_jobs where lock = $1"
            " and status = 'doing')", _lock(owner_id))
        return found

    async def hurry(self) -> int:
        """Make every waiting job due now (a process that learns them is stopping: the pause it
        waited for will not be seen). Returns how many owners."""
        rows = await self._pool.fetch(
            "select distinct args->>'owner_id' as owner_id from procrastinate_jobs"
            " where queue_name = $1 and status = 'todo' and scheduled_at > now()", QUEUE)
        for row in rows:
            await self.cancel(row["owner_id"])
            await self.wake(row["owner_id"])
        return len(rows)

    async def job_counts(self) -> dict[str, int]:
        """The queue's jobs by procrastinate status."""
        rows = await self._pool.fetch(
            "select status::text as status, count(*) as n from procrastinate_jobs"
            " where queue_name = $1 group by status", QUEUE)
        return {row["status"]: int(row["n"]) for row in rows}

    async def owners_with_jobs(self) -> set[str]:
        """Owners with a job waiting, running or failed."""
        rows = await self._pool.fetch(
            "select distinct args->>'owner_id' as owner_id from procrastinate_jobs"
            " where queue_name = $1 and status in ('todo', 'doing', 'failed')", QUEUE)
        return {row["owner_id"] for row in rows}

    async def retry_failed(self) -> int:
        """Run every failed job again (an operator's fix is in). Returns how many."""
        manager = self._app.job_manager
        failed = list(await manager.list_jobs_async(queue=QUEUE, status="failed"))
        for job in failed:
            if job.id is not None:
                await manager.retry_job_by_id_async(job.id, retry_at=datetime.now(UTC))
        return len(failed)

    async def sweep(self) -> int:
        """Hand out again the jobs of workers that stopped sending heartbeats, and those whose
        end this process could not write. Returns how many."""
        stalled = list(await self._app.job_manager.get_stalled_jobs(
            queue=QUEUE, seconds_since_heartbeat=self._settings.worker_stalled_after
        ))
        for job in stalled:
            log.warning("memory-write job %s was left running by a stopped worker; it runs "
                        "again", job.id)
            await self._app.job_manager.retry_job(job)
        return len(stalled) + await self._unsettled()

    async def _unsettled(self) -> int:
        """Hand out again the jobs whose run here ended ``WORKER_STALLED_AFTER`` seconds ago
        or more but are still marked running: their end was not written (procrastinate
        writes it once, after the run, and only logs a failure). Running one again repeats
        nothing: it learns whatever its owner's inbox still holds."""
        old = time.monotonic() - self._settings.worker_stalled_after
        ended = {job_id: attempts for job_id, (at, attempts) in self._ended.items()
                 if at <= old}
        ours = [w.worker_id for w in self._workers if w.worker_id is not None]
        if not ended or not ours:
            return 0
        # Still marked running by this process's worker, with the attempts of the run that
        # ended: a retry, written by procrastinate or by this sweep, counts one more (and that
        # run may be going on here now).
        rows = await self._pool.fetch(
            "select id, attempts from procrastinate_jobs where id = any($1::bigint[])"
            " and status = 'doing' and worker_id = any($2::bigint[])", list(ended), ours)
        unsettled = [row["id"] for row in rows if row["attempts"] == ended[row["id"]]]
        for job_id in ended.keys() - set(unsettled):
            del self._ended[job_id]
        for job_id in unsettled:
            log.warning("memory-write job %s ended while its end could not be written; it "
                        "runs again", job_id)
            await self._app.job_manager.retry_job_by_id_async(job_id, datetime.now(UTC))
            del self._ended[job_id]
        return len(unsettled)

    async def work(self, handler: Callable[[LearnJob], Awaitable[None]], *,
                   concurrency: int, name: str = "membot-worker") -> None:
        """Run jobs with ``handler`` until cancelled; on cancel, running jobs get
        ``SHUTDOWN_GRACE`` seconds, and whatever does not finish is run again elsewhere."""
        self._handler = handler
        # procrastinate's own worker, built as ``run_worker_async`` builds it, kept so that
        # ``other_workers`` can tell this process's heartbeat from the others'.
        worker = procrastinate.worker.Worker(
            app=self._app,
            queues=[QUEUE], name=name, concurrency=concurrency, wait=True,
            install_signal_handlers=False, listen_notify=True,
            fetch_job_polling_interval=self._settings.worker_poll_interval,
            update_heartbeat_interval=max(0.5, self._settings.worker_stalled_after / 4),
            stalled_worker_timeout=self._settings.worker_stalled_after,
            shutdown_graceful_timeout=self._settings.shutdown_grace,
            delete_jobs="successful",
        )
        self._workers.append(worker)
        try:
            await worker.run()  # type: ignore[no-untyped-call]
        finally:
            self._workers.remove(worker)

    async def other_workers(self) -> int:
        """Workers of other processes alive now (a heartbeat within ``WORKER_STALLED_AFTER``):
        any of them will learn what is queued."""
        ours = [w.worker_id for w in self._workers if w.worker_id is not None]
        count = await self._pool.fetchval(
            "select count(*) from procrastinate_workers where last_heartbeat > now() -"
            " make_interval(secs => $1) and not (id = any($2::bigint[]))",
            self._settings.worker_stalled_after, ours)
        return int(count or 0)

