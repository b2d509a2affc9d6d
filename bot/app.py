"""The composition root: every long-lived part is built here, once, from one ``Settings``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from bot.commands import Commands, default_commands
from bot.config import Settings
from bot.controls import ControlStore
from bot.core import Core, TurnLimits
from bot.database import Database
from bot.erasure import Eraser
from bot.inbox import MemoryInbox
from bot.learner import Batching, Learner
from bot.ledger import PostgresLedger
from bot.linking import Linking, LinkPolicy
from bot.linkstore import LinkStore
from bot.logs import TurnLog
from bot.memory import Mem0Memory
from bot.memorycommands import MemoryCommands
from bot.metrics import Metrics
from bot.models import ModelClients, OpenAIChat, OpenAIEmbedder
from bot.placesettings import SettingsCommands
from bot.purger import Purger
from bot.queue import MemoryQueue
from bot.readiness import CachedReadiness, DatabaseCheck, ModelCheck
from bot.receipts import ReceiptRouter
from bot.supabase import SupabaseAuth
from bot.transcript import PostgresTranscript
from bot.writer import MemoryWriter

__all__ = ["Services", "services"]

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
    jobs: MemoryWriter
    linking: Linking
    links: LinkStore
    purger: Purger
    receipts: ReceiptRouter
    controls: ControlStore
    metrics: Metrics
    readiness: CachedReadiness


@asynccontextmanager
async def services(settings: Settings, *, start_worker: bool = True) -> AsyncIterator[Services]:
    """Build everything before the first message is served, with a memory worker in this
    process when ``IN_PROCESS_WORKER`` is on and ``start_worker`` (``membot worker`` runs its
    own). On exit the worker's running jobs get ``SHUTDOWN_GRACE`` seconds; nothing queued is
    lost, since the queue is in Postgres.

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
        links = LinkStore(database.pool, memory_table=settings.memory_table)
        auth = None
        if settings.supabase_url is not None and settings.supabase_key is not None:
            auth = SupabaseAuth(settings.supabase_url, settings.supabase_key.get_secret_value())
            stack.push_async_callback(auth.close)
        linking = Linking(
            links,
            auth,
            LinkPolicy(public_url=settings.public_url, ttl=timedelta(seconds=settings.link_ttl)),
        )
        transcript = PostgresTranscript(database.pool)
        controls = ControlStore(database.pool)
        receipts = ReceiptRouter()
        metrics = Metrics()
        queue = MemoryQueue(settings, database, observer=metrics)
        await queue.open()
        stack.push_async_callback(queue.close)
        inbox = MemoryInbox(database.pool, keep=settings.context_turns,
                            batch_size=settings.memory_batch_size,
                            wake=lambda owner, full: queue.wake(
                                owner, delay=0.0 if full else settings.memory_batch_idle))
        learner = Learner(
            memory=memory, inbox=inbox, owners=links, people=controls,
            move=links.move_memories, receipts=receipts,
            wake=lambda owner, delay: queue.wake(owner, delay=delay),
            batching=Batching(size=settings.memory_batch_size, idle=settings.memory_batch_idle,
                              max_wait=settings.memory_batch_max_wait),
        )
        writer = MemoryWriter(inbox, queue, learner)
        if settings.in_process_worker and start_worker:
            await writer.start_worker(settings.memory_write_threads)
        stack.push_async_callback(writer.stop, settings.shutdown_grace)
        eraser = Eraser(tombstones=controls, writes=writer, memory=memory, turns=transcript)
        purger = Purger(links, eraser)
        sweeping = asyncio.create_task(purger.run(), name="purge-deleted-users")
        stack.push_async_callback(_cancel, sweeping)
        writer.watch()
        metrics.watch_queue(lambda: writer.depth)
        core = Core(
            memory=memory,
            chat=OpenAIChat(clients, settings),
            transcript=transcript,
            exchanges=inbox,
            ledger=PostgresLedger(database.pool),
            owners=links,
            controls=controls,
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
        yield Services(
            settings=settings,
            core=core,
            commands=default_commands(linking, [
                MemoryCommands(memory=memory, owners=links, controls=controls,
                               transcript=transcript, writes=writer,
                               eraser=eraser).command(),
                SettingsCommands(controls).command(),
            ]),
            database=database,
            memory=memory,
            jobs=writer,
            linking=linking,
            links=links,
            purger=purger,
            receipts=receipts,
            controls=controls,
            metrics=metrics,
            readiness=CachedReadiness([DatabaseCheck(database.pool),
                                       ModelCheck(clients.async_client)]),
        )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
