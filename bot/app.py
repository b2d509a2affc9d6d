"""The composition root: every long-lived part is built here, once, from one ``Settings``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from bot.choices import ChoiceStore
from bot.clients import ModelClients, OpenAIChat
from bot.commands.memory import MemoryCommands
from bot.commands.place import SettingsCommands
from bot.commands.registry import Commands, default_commands
from bot.config import Settings
from bot.core import Core, TurnLimits
from bot.database import Database
from bot.embedder import OpenAIEmbedder
from bot.learning.inbox import MemoryInbox
from bot.learning.learner import Learner
from bot.learning.pipeline import LearningPipeline
from bot.learning.queue import MemoryQueue
from bot.learning.schedule import Batching, Schedule
from bot.linking.emails import EmailLimits, LoginEmails
from bot.linking.flow import Linking
from bot.linking.purge import Purger
from bot.linking.steps import LinkPolicy
from bot.linking.store import LinkStore
from bot.linking.supabase import SupabaseAuth
from bot.logs import TurnLog
from bot.memory.owners import Eraser, OwnerMove
from bot.memory.ranking import plan_search
from bot.memory.store import Mem0Memory
from bot.metrics import Metrics
from bot.opening import PostgresTurnStart
from bot.readiness import CachedReadiness, DatabaseCheck, ModelCheck
from bot.receipts import ReceiptRouter
from bot.transcript import PostgresTranscript

__all__ = ["Services", "learning_admin", "services"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """What an entry point needs: the core and the commands, and the parts it may want to look
    at."""

    settings: Settings
    core: Core
    commands: Commands
    database: Database
    memory: Mem0Memory
    jobs: LearningPipeline
    linking: Linking
    links: LinkStore
    purger: Purger
    receipts: ReceiptRouter
    choices: ChoiceStore
    metrics: Metrics
    readiness: CachedReadiness


@asynccontextmanager
async def services(settings: Settings, *, start_worker: bool = True,
                   answering: bool = True) -> AsyncIterator[Services]:
    """Build everything before the first message is served, with a memory worker in this
    process when ``IN_PROCESS_WORKER`` is on and ``start_worker`` (``membot worker`` runs its
    own). On exit the worker's running jobs get ``SHUTDOWN_GRACE`` seconds; nothing queued is
    lost, since the queue is in Postgres.

    A process ``answering`` messages also opens its database connections ahead, each with the
    turn's statements planned (:meth:`Database.warm`), and then takes what it built out of the
    garbage collector's sight until exit: those objects live as long as the services, and a
    full collection walking them (over 200,000) holds the event loop for more than a tenth of
    a second (``python -m bench.startup``); one fell in the middle of the first burst of
    messages.

    Raises :class:`bot.errors.ConfigError` or :class:`bot.errors.StartupError` (one sentence
    each) when a setting or a service is not fit to start with.
    """
    async with AsyncExitStack() as stack:
        clients = ModelClients(settings)
        stack.push_async_callback(clients.close)
        embedder = OpenAIEmbedder(clients, settings)
        await embedder.check(settings.embedding_dims)
        database = await Database.open(settings)
        stack.push_async_callback(database.close)
        memory = await Mem0Memory.open(settings, database, clients, embedder)
        stack.callback(memory.close)
        links = LinkStore(database.pool, move=OwnerMove(settings.memory_table))
        auth = None
        if settings.supabase_url is not None and settings.supabase_key is not None:
            auth = SupabaseAuth(settings.supabase_url, settings.supabase_key.get_secret_value())
            stack.push_async_callback(auth.close)
        linking = Linking(
            links,
            auth,
            LinkPolicy(
                public_url=settings.public_url,
                ttl=timedelta(seconds=settings.link_ttl),
                emails=EmailLimits(per_account=settings.link_emails_per_account,
                                   per_bot=settings.link_emails_per_hour),
                create_users=settings.link_create_users,
            ),
            LoginEmails(database.pool),
        )
        transcript = PostgresTranscript(database.pool)
        choices = ChoiceStore(database.pool)
        receipts = ReceiptRouter()
        metrics = Metrics()
        queue = MemoryQueue(settings, database, observer=metrics)
        await queue.open()
        stack.push_async_callback(queue.close)
        schedule = _schedule(settings, queue)
        inbox = MemoryInbox(database.pool, keep=settings.context_turns, schedule=schedule)
        learner = Learner(memory=memory, inbox=inbox, owners=links, people=choices,
                          move=links.move_memories, receipts=receipts, schedule=schedule)
        learning = LearningPipeline(inbox, schedule, queue, learner,
                                    sweep_every=max(1.0, settings.worker_stalled_after / 2),
                                    unrecorded_after=_longest_turn(settings) * 2)
        if settings.in_process_worker and start_worker:
            await learning.start_worker(settings.memory_write_threads)
        stack.push_async_callback(learning.stop, settings.shutdown_grace)
        eraser = Eraser(tombstones=choices, writes=learning, memory=memory, turns=transcript)
        purger = Purger(links, eraser)
        sweeping = asyncio.create_task(purger.run(), name="purge-deleted-users")
        stack.push_async_callback(_cancel, sweeping)
        learning.watch()
        metrics.watch_queue(lambda: learning.depth)
        start = PostgresTurnStart(database.pool)
        core = Core(
            memory=memory,
            chat=OpenAIChat(clients, settings),
            start=start,
            exchanges=inbox,
            limits=TurnLimits(
                memory_top_k=settings.memory_top_k,
                context_turns=settings.context_turns,
                context_chars=settings.context_chars,
                max_message_chars=settings.max_message_chars,
                max_answer_chars=settings.max_answer_chars,
                memory_search_timeout=settings.memory_search_timeout,
            ),
            observers=[metrics, await TurnLog.open(database.pool)],
        )
        if answering:
            await database.warm([start.warm, functools.partial(
                plan_search, table=settings.memory_table, dims=settings.embedding_dims)])
            gc.collect()
            gc.freeze()
            stack.callback(gc.unfreeze)
        yield Services(
            settings=settings,
            core=core,
            commands=default_commands(linking, [
                MemoryCommands(memory=memory, owners=links, choices=choices,
                               transcript=transcript, writes=learning,
                               eraser=eraser).command(),
                SettingsCommands(choices).command(),
            ]),
            database=database,
            memory=memory,
            jobs=learning,
            linking=linking,
            links=links,
            purger=purger,
            receipts=receipts,
            choices=choices,
            metrics=metrics,
            readiness=CachedReadiness([DatabaseCheck(database.pool),
                                       ModelCheck(clients.async_client)]),
        )


@asynccontextmanager
async def learning_admin(settings: Settings) -> AsyncIterator[LearningPipeline]:
    """The learning pipeline with no worker and no Mem0 (``membot queue``): it counts what
    waits and retries what failed."""
    async with AsyncExitStack() as stack:
        database = await Database.open(settings)
        stack.push_async_callback(database.close)
        queue = MemoryQueue(settings, database)
        await queue.open()
        stack.push_async_callback(queue.close)
        schedule = _schedule(settings, queue)
        inbox = MemoryInbox(database.pool, keep=settings.context_turns, schedule=schedule)
        yield LearningPipeline(inbox, schedule, queue)


def _schedule(settings: Settings, queue: MemoryQueue) -> Schedule:
    return Schedule(Batching(size=settings.memory_batch_size, idle=settings.memory_batch_idle,
                             max_wait=settings.memory_batch_max_wait), queue)


def _longest_turn(settings: Settings) -> float:
    """Seconds a turn can take at most between its claim and its reply: the memory search's
    budget, then the chat call with every retry."""
    return (settings.memory_search_timeout
            + settings.model_timeout * (settings.model_max_retries + 1))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
