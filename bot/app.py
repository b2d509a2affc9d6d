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
from bot.jobs import InProcessJobs
from bot.learner import Learner
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
from bot.readiness import CachedReadiness, DatabaseCheck, ModelCheck
from bot.receipts import ReceiptRouter
from bot.supabase import SupabaseAuth
from bot.transcript import PostgresTranscript

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
    jobs: InProcessJobs
    linking: Linking
    links: LinkStore
    purger: Purger
    receipts: ReceiptRouter
    controls: ControlStore
    metrics: Metrics
    readiness: CachedReadiness


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[Services]:
    """Build everything before the first message is served; on exit, finish pending memory
    writes within ``SHUTDOWN_GRACE`` seconds (logging how many were lost) and release it all.

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
        transcript = PostgresTranscript(database.pool, keep=settings.context_turns)
        controls = ControlStore(database.pool)
        purger = Purger(links, memory, transcript, controls)
        sweeping = asyncio.create_task(purger.run(), name="purge-deleted-users")
        stack.push_async_callback(_cancel, sweeping)
        receipts = ReceiptRouter()
        learner = Learner(memory=memory, owners=links, people=controls,
                          move=links.move_memories, receipts=receipts)
        metrics = Metrics()
        jobs = InProcessJobs(learner.learn, observer=metrics)
        metrics.watch_queue(lambda: jobs.pending)
        core = Core(
            memory=memory,
            chat=OpenAIChat(clients, settings),
            transcript=transcript,
            jobs=jobs,
            ledger=PostgresLedger(database.pool),
            owners=links,
            controls=controls,
            limits=TurnLimits(
                memory_top_k=settings.memory_top_k,
                context_turns=settings.context_turns,
                max_message_chars=settings.max_message_chars,
                memory_search_timeout=settings.memory_search_timeout,
            ),
            observers=[metrics, await TurnLog.open(database.pool)],
        )
        try:
            yield Services(
                settings=settings,
                core=core,
                commands=default_commands(linking, [
                    MemoryCommands(memory=memory, owners=links, controls=controls,
                                   transcript=transcript).command(),
                    SettingsCommands(controls).command(),
                ]),
                database=database,
                memory=memory,
                jobs=jobs,
                linking=linking,
                links=links,
                purger=purger,
                receipts=receipts,
                controls=controls,
                metrics=metrics,
                readiness=CachedReadiness([DatabaseCheck(database.pool),
                                           ModelCheck(clients.async_client)]),
            )
        finally:
            await jobs.drain(settings.shutdown_grace)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
