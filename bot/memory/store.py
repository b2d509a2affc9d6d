"""Long-term memory on Mem0's ``pgvector`` provider, with what Mem0 gets wrong put right.

- Learning is membot's own extraction (:mod:`bot.memory.extraction`): it sees the owner's
  nearest current memories and the new messages, and answers with dated facts, the messages
  each came from, and the memories they replace or the person retracted. The facts are stored
  through Mem0 as they are (``add(infer=False)``: embedding, row, history), on a thread pool of
  their own, so a slow write never holds up anybody's search; a replaced or retracted memory is
  marked ``superseded`` through Mem0's ``update`` (kept with its history, never searched).
- Reads do not go through Mem0: the reply path embeds the query on the async client and runs
  one per-owner query on the asyncpg pool. Mem0's own search filters the owner after an
  approximate HNSW walk once Postgres picks a generic plan, and silently returns a fraction of
  the owner's memories; ours reads the owner's rows through an index on the owner id, whatever
  plan the server prefers, and ranks all of them (see :class:`Mem0Memory.search`).
- Mem0's own lookups inside ``add`` run on connections that plan every query with its real
  parameters (no server-side prepared statements, ``plan_cache_mode=force_custom_plan``) and,
  on pgvector 0.8+, keep scanning HNSW until the owner filter is satisfied.
- Mem0's history and recent raw messages live in Postgres (:mod:`bot.memory.history`), not in a
  SQLite file on each machine, so forgetting reaches them wherever they were written.
- Mem0 itself is built in :mod:`bot.memory.mem0` (telemetry off, its pieces replaced).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from asyncpg.pool import PoolConnectionProxy
from psycopg import Connection
from psycopg_pool import ConnectionPool

from bot.clients import ModelClients, OpenAIChat, describe_failure
from bot.config import Settings
from bot.database import Database
from bot.embedder import Embedding, OpenAIEmbedder
from bot.errors import ConfigError, MemoryUnavailable, is_transient
from bot.memory.dates import dates_named
from bot.memory.extraction import Extracted, Extractor, Known
from bot.memory.history import PostgresHistory, session_scope
from bot.memory.mem0 import build_mem0, mem0_pool, stored_dims
from bot.memory.owners import entities_table
from bot.memory.ranking import add_lexemes, search_sql
from bot.memory.records import parse_time, record_of, stored_source
from bot.ports import MemoryHit, MemoryRecord, Source

__all__ = ["Mem0Memory"]

log = logging.getLogger(__name__)

_SETUP_LOCK = 7_291_002  # pg_advisory_lock key for creating the memory table and its indexes


NEAREST = 10  # current memories shown to an extraction
QUERY_CHARS = 2_000  # of a batch's messages, to find those memories
_CURRENT = "not (payload ? 'superseded')"


class Mem0Memory:
    """The ``MemoryStore`` port on Mem0 and Postgres. See the module docstring for why reads and
    writes take different roads. Build it with :meth:`open` before serving the first message;
    one per process."""

    def __init__(
        self,
        *,
        mem0: Any,
        database: Database,
        embedder: OpenAIEmbedder,
        learning_embedder: OpenAIEmbedder,
        extractor: Extractor,
        table: str,
        writes: ThreadPoolExecutor,
        write_pool: ConnectionPool[Connection[Any]],
    ) -> None:
        self._mem0 = mem0
        self._extractor = extractor
        self._history: PostgresHistory = mem0.db
        self._pool = database.pool
        self._table = table
        self._embedder = embedder
        self._learning_embedder = learning_embedder
        self._writes = writes
        self._write_pool = write_pool
        self._search_sql = search_sql(table)
        every = (f'select id::text as id, payload::text as payload from "{table}"'
                 " where payload->>'user_id' = $1")
        order = " order by payload->>'created_at' desc, id"
        self._records_sql = {False: every + f" and {_CURRENT}" + order, True: every + order}
        self._count_sql = {
            False: f'select count(*) from "{table}" where payload->>\'user_id\' = $1'
                   f" and {_CURRENT}",
            True: f'select count(*) from "{table}" where payload->>\'user_id\' = $1'}

    @classmethod
    async def open(
        cls,
        settings: Settings,
        database: Database,
        clients: ModelClients,
        embedder: OpenAIEmbedder,
    ) -> Mem0Memory:
        """Check the stored vector size against ``EMBEDDING_DIMS``, build Mem0 off the event
        loop, and make sure the owner index exists. Raises :class:`ConfigError` on a size
        mismatch."""
        table = settings.memory_table
        dims = await stored_dims(database, table)
        if dims is not None and dims != settings.embedding_dims:
            raise ConfigError(
                f"The memory table '{table}' holds {dims}-dimensional vectors but EMBEDDING_DIMS "
                f"is {settings.embedding_dims}: set EMBEDDING_DIMS={dims} with the embedding "
                "model that made them, or set MEMORY_TABLE to a new table."
            )
        writes = ThreadPoolExecutor(settings.memory_write_threads, thread_name_prefix="mem0-write")
        write_pool = await asyncio.to_thread(mem0_pool, database, settings.memory_write_threads)
        async with database.pool.acquire() as conn:
            await conn.execute("select pg_advisory_lock($1)", _SETUP_LOCK)
            try:
                mem0 = await asyncio.to_thread(build_mem0, settings, clients, write_pool)
                index = f"{table}_owner_idx"
                if await conn.fetchval("select to_regclass($1) is null", f'public."{index}"'):
                    await conn.execute(
                        f'create index "{index}" on "{table}" ((payload->>\'user_id\'))'
                    )
                    # Statistics for the new expression, so the planner uses the index at once
                    # on a table that already held memories; autovacuum keeps them after.
                    await conn.execute(f'analyze "{table}"')
                await add_lexemes(conn, table)
            finally:
                await conn.execute("select pg_advisory_unlock($1)", _SETUP_LOCK)
        return cls(
            mem0=mem0,
            database=database,
            embedder=embedder,
            learning_embedder=OpenAIEmbedder.for_learning(clients, settings),
            extractor=Extractor(OpenAIChat.for_extraction(clients, settings)),
            table=table,
            writes=writes,
            write_pool=write_pool,
        )

    async def search(self, owner_id: str, query: str, limit: int) -> list[MemoryHit]:
        """The owner's ``limit`` best memories for ``query``: one embedding call, then one
        statement over that owner's rows alone (another owner's memory is never returned, nor
        counted in any statistic). Each memory is ranked by cosine similarity to the query
        (exact, over all the owner's memories), by BM25 keyword score within the owner's
        memories, and, when the query names a calendar date ("on 13 October", "in July
        2023"), by whether it was recorded then; the ranks are fused by reciprocal rank. When
        the query shares no word with any of the owner's memories (after stemming and stop
        words) and names no date, the result is exactly the owner's vector top-k.
        ``score`` is the cosine similarity. Raises :class:`MemoryUnavailable`."""
        return await self._ranked(owner_id, query, limit, self._embedder)

    async def search_for(self, owner: Awaitable[str | None], query: str,
                         limit: int) -> list[MemoryHit]:
        """:meth:`search`, embedding the query while ``owner`` is found; none if it is None
        (a failed embedding is then not raised either)."""
        try:
            vector = await self._embed(query, self._embedder)
        except MemoryUnavailable:
            if await owner is None:
                return []
            raise
        owner_id = await owner
        if owner_id is None:
            return []
        return await self._rows(owner_id, query, limit, vector)

    async def _ranked(self, owner_id: str, query: str, limit: int,
                      embedder: OpenAIEmbedder) -> list[MemoryHit]:
        return await self._rows(owner_id, query, limit, await self._embed(query, embedder))

    @staticmethod
    async def _embed(query: str, embedder: OpenAIEmbedder) -> Embedding:
        try:
            return await embedder.embed(query)
        except Exception as exc:
            raise MemoryUnavailable(f"memory search failed: {describe_failure(exc)}") from exc

    async def _rows(self, owner_id: str, query: str, limit: int,
                    vector: Embedding) -> list[MemoryHit]:
        try:
            rows = await self._pool.fetch(self._search_sql, owner_id, vector, query,
                                          dates_named(query), limit)
        except Exception as exc:
            raise MemoryUnavailable(f"memory search failed: {describe_failure(exc)}") from exc
        return [
            MemoryHit(
                id=row["id"],
                text=row["text"] or "",
                created_at=parse_time(row["created_at"]),
                score=float(row["score"]),
            )
            for row in rows
        ]

    async def learn(self, owner_id: str, said: Sequence[Source], *, batch: str,
                    metadata: dict[str, str]) -> list[str]:
        """One extraction over ``said`` with the owner's nearest current memories in view, then
        its facts stored through Mem0 with their sources and ``metadata`` (plus ``batch``), and
        the memories they replace or the person retracted marked superseded (in the same
        batch, so :meth:`forget_batch` undoes all of it). A fact the owner's current memories
        already hold word for word is not stored again. Returns the ids added."""
        # What the messages are about, to find the memories they may change (cut: an
        # embedding model takes a few hundred tokens at most).
        query = " ".join(s.quote for s in said)[:QUERY_CHARS]
        try:
            nearest = (await self._ranked(owner_id, query, NEAREST, self._learning_embedder)
                       if query.strip() else [])
            known = [Known(id=h.id, text=h.text, recorded=h.created_at) for h in nearest]
            extracted = await self._extractor.extract(known, said)
        except MemoryUnavailable:
            raise
        except Exception as exc:
            raise MemoryUnavailable(f"memory extraction failed: {describe_failure(exc)}",
                                    transient=is_transient(exc)) from exc
        loop = asyncio.get_running_loop()
        try:
            added = await loop.run_in_executor(
                self._writes, self._store, owner_id, known, said, extracted,
                {**metadata, "batch": batch})
        except Exception as exc:
            raise MemoryUnavailable(f"memory write failed: {describe_failure(exc)}",
                                    transient=is_transient(exc)) from exc
        log.debug("learned %d memories from %d messages", len(added), len(said))
        return added

    def _store(self, owner_id: str, known: list[Known], said: Sequence[Source],
               extracted: Extracted, metadata: dict[str, str]) -> list[str]:
        """Mem0's part of :meth:`learn`, on a write thread."""
        current = {" ".join(k.text.split()).casefold() for k in known}
        added: list[str] = []
        successor: dict[int, tuple[str | None, str]] = {}  # known index -> (by, event id)
        with self._history.writing_for(owner_id):
            for fact in extracted.facts:
                key = fact.text.casefold()
                if key in current and not fact.replaces:
                    continue  # already known, word for word
                current.add(key)
                sources = [said[i] for i in fact.sources]
                payload: dict[str, Any] = {
                    **metadata,
                    "sources": [stored_source(s) for s in sources],
                    "event_ids": " ".join(s.event_id for s in sources),
                    # "recorded" is when the person said it, not when the job ran.
                    "created_at": max(s.said_at for s in sources).isoformat(),
                }
                if fact.when is not None:
                    payload["happened"] = fact.when.isoformat()
                result = self._mem0.add([{"role": "user", "content": fact.text}],
                                        user_id=owner_id, metadata=payload, infer=False)
                ids = [str(e["id"]) for e in result.get("results", []) if e.get("id")]
                added.extend(ids)
                for index in fact.replaces:
                    successor.setdefault(index, (ids[0] if ids else None, sources[-1].event_id))
            for index in extracted.retracted:
                successor.setdefault(index, (None, said[-1].event_id))
            now = datetime.now(UTC).isoformat()
            for index, (by, event_id) in successor.items():
                mark = {"at": now, "by": by, "event_id": event_id, "batch": metadata["batch"]}
                try:
                    self._mem0.update(known[index].id, metadata={"superseded": mark})
                except ValueError:
                    log.info("a memory to mark superseded was forgotten meanwhile")
        if successor:
            log.info("marked %d memories superseded", len(successor))
        return added

    async def forget_batch(self, owner_id: str, batch: str) -> int:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                gone = await self._delete(conn, owner_id, "payload->>'batch' = $2", batch)
                await conn.execute(
                    f'update "{self._table}" set payload = payload - \'superseded\''
                    " where payload->>'user_id' = $1"
                    " and payload->'superseded'->>'batch' = $2", owner_id, batch)
                # History the write left for memories already gone (a forget-all that ran
                # while it stored them).
                await conn.execute(
                    "delete from mem0_history history where owner_id = $1 and not exists ("
                    f' select from "{self._table}" memory where memory.id::text ='
                    " history.memory_id)", owner_id)
        except Exception as exc:
            raise MemoryUnavailable(f"forgetting failed: {exc.__class__.__name__}") from exc
        if gone:
            log.info("deleted %d memories an interrupted write had stored", len(gone))
        return len(gone)

    async def page(self, owner_id: str, limit: int, offset: int, *,
                   superseded: bool = False) -> tuple[list[MemoryRecord], int]:
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(self._records_sql[superseded] + " limit $2 offset $3",
                                        owner_id, limit, offset)
                total = await conn.fetchval(self._count_sql[superseded], owner_id)
        except Exception as exc:
            raise MemoryUnavailable(f"listing memories failed: {exc.__class__.__name__}") from exc
        return [record_of(row) for row in rows], int(total)

    async def records(self, owner_id: str, *, superseded: bool = True) -> list[MemoryRecord]:
        try:
            rows = await self._pool.fetch(self._records_sql[superseded], owner_id)
        except Exception as exc:
            raise MemoryUnavailable(f"reading memories failed: {exc.__class__.__name__}") from exc
        return [record_of(row) for row in rows]

    async def find(self, owner_id: str, id_prefix: str) -> list[MemoryRecord]:
        prefix = id_prefix.strip().lower()
        if not re.fullmatch(r"[0-9a-f-]+", prefix):
            return []
        try:
            rows = await self._pool.fetch(
                f'select id::text as id, payload::text as payload from "{self._table}"'
                " where payload->>'user_id' = $1 and starts_with(id::text, $2)"
                " order by payload->>'created_at' desc, id limit 10",
                owner_id,
                prefix,
            )
        except Exception as exc:
            raise MemoryUnavailable(f"finding a memory failed: {exc.__class__.__name__}") from exc
        return [record_of(row) for row in rows]

    async def forget(self, owner_id: str, memory_ids: Sequence[str]) -> int:
        ids = list(memory_ids)
        return await self._forget(owner_id, "id = any($2::uuid[])", ids, history=(
            "owner_id = $1 and memory_id = any($2::text[])", ids))

    async def forget_owner(self, owner_id: str) -> int:
        return await self._forget(owner_id, "true", history=("owner_id = $1", None))

    async def _forget(self, owner_id: str, which: str, *args: object,
                      history: tuple[str, object]) -> int:
        """:meth:`_delete` in one transaction, with Mem0's copy of the owner's last raw
        messages, which may repeat what was forgotten, and the history rows ``history`` names
        (SQL on ``mem0_history`` with ``$1`` the owner, and its ``$2``): those written for the
        owner after their memory was already gone."""
        where, value = history
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                gone = await self._delete(conn, owner_id, which, *args)
                await conn.execute(f"delete from mem0_history where {where}", owner_id,
                                   *(() if value is None else (value,)))
                await conn.execute("delete from mem0_messages where session_scope = $1",
                                   session_scope(owner_id))
        except Exception as exc:
            raise MemoryUnavailable(f"forgetting failed: {exc.__class__.__name__}") from exc
        log.info("forgot %d memories of one owner", len(gone))
        return len(gone)

    async def _delete(
        self, conn: PoolConnectionProxy[Any], owner_id: str, which: str, *args: object
    ) -> list[str]:
        """Delete the owner's memories matching ``which`` (SQL on the memory table, with ``$2``
        onwards bound to ``args``), their history, and their links from entity rows (an entity
        row of the owner left naming no stored memory goes). Returns the ids deleted."""
        table, entities = self._table, entities_table(self._table)
        gone = [
            row["id"]
            for row in await conn.fetch(
                f'delete from "{table}" where payload->>\'user_id\' = $1 and {which}'
                " returning id::text as id",
                owner_id,
                *args,
            )
        ]
        await conn.execute("delete from mem0_history where memory_id = any($1::text[])", gone)
        if await conn.fetchval("select to_regclass($1) is not null", f'public."{entities}"'):
            await conn.execute(
                f'update "{entities}" set payload = jsonb_set(payload, \'{{linked_memory_ids}}\','
                " coalesce((select jsonb_agg(linked) from jsonb_array_elements_text("
                " payload->'linked_memory_ids') linked where linked <> all($2::text[])),"
                " '[]'::jsonb)) where payload->>'user_id' = $1",
                owner_id,
                gone,
            )
            await conn.execute(
                f'delete from "{entities}" entity where payload->>\'user_id\' = $1'
                f' and not exists (select from "{table}" memory where memory.id in ('
                " select linked::uuid from jsonb_array_elements_text("
                "entity.payload->'linked_memory_ids') linked))",
                owner_id,
            )
        return gone

    def close(self) -> None:
        """Release the write threads and Mem0's connections. Call after the jobs are drained:
        a write still running on a thread by then was already counted as lost."""
        self._writes.shutdown(wait=False, cancel_futures=True)
        self._write_pool.close()

