"""Long-term memory on Mem0's ``pgvector`` provider, with what Mem0 gets wrong put right.

- Writes go through Mem0 (extraction, dedup by hash, storage) on a thread pool of their own,
  so a slow extraction never holds up anybody's search.
- Reads do not go through Mem0: the reply path embeds the query on the async client and runs
  one per-owner query on the asyncpg pool. Mem0's own search filters the owner after an
  approximate HNSW walk once Postgres picks a generic plan, and silently returns a fraction of
  the owner's memories; ours reads the owner's rows through an index on the owner id, whatever
  plan the server prefers, and ranks all of them (see :class:`Mem0Memory.search`).
- Mem0's own lookups inside ``add`` run on connections that plan every query with its real
  parameters (no server-side prepared statements, ``plan_cache_mode=force_custom_plan``) and,
  on pgvector 0.8+, keep scanning HNSW until the owner filter is satisfied.
- Mem0's history and recent raw messages live in Postgres (:mod:`bot.mem0history`), not in a
  SQLite file on each machine, so forgetting reaches them wherever they were written.
- Telemetry is off and Mem0's home folder is in the app's data folder; both must be set before
  Mem0 is imported, which only this module does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import asyncpg
import openai
import psycopg
from asyncpg.pool import PoolConnectionProxy
from psycopg import Connection
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.config import Settings
from bot.database import Database
from bot.dates import dates_named
from bot.errors import ConfigError, MemoryUnavailable
from bot.extraction import CheckedExtraction, ExtractionUnparseable
from bot.mem0history import PostgresHistory, session_scope
from bot.models import Mem0Embedder, ModelClients, OpenAIEmbedder, describe_failure
from bot.ports import MemoryHit, MemoryRecord
from bot.ranking import add_lexemes, search_sql

__all__ = ["Mem0Memory", "import_mem0", "move_owner"]

log = logging.getLogger(__name__)

# Failures of a memory write that trying again later may fix: the model API unreachable, slow,
# rate-limited or failing on its side (after the SDK's own retries), or the database away.
_TRANSIENT = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
    psycopg.OperationalError,
    PoolTimeout,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    OSError,
    ExtractionUnparseable,
)

_SETUP_LOCK = 7_291_002  # pg_advisory_lock key for creating the memory table and its indexes


def import_mem0(settings: Settings) -> Any:
    """Import mem0 with telemetry off and its home folder inside ``MEMBOT_DATA_DIR``."""
    os.environ["MEM0_TELEMETRY"] = "false"
    mem0_dir = settings.data_dir / "mem0"
    mem0_dir.mkdir(parents=True, exist_ok=True)
    os.environ["MEM0_DIR"] = str(mem0_dir)
    import mem0

    # mem0 warns on every start that spaCy is missing; membot does not use mem0's keyword or
    # entity scoring (it searches on its own), so that warning would only mislead operators.
    logging.getLogger("mem0.utils.spacy_models").setLevel(logging.ERROR)
    return mem0


def _entities(table: str) -> str:
    """Mem0's side table of entities named in memories (made when it first finds one)."""
    return f"{table}_entities"


async def move_owner(
    conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any], table: str, old: str,
    new: str,
) -> int:
    """Give ``old``'s memories to ``new`` inside the caller's transaction, dropping any that
    ``new`` already has (same text, by Mem0's hash; the oldest copy stays). Mem0's entity rows
    move too. Returns how many memories ``new`` gained. Idempotent."""
    moved = await conn.execute(
        f'update "{table}" set payload = jsonb_set(payload, \'{{user_id}}\', to_jsonb($2::text))'
        " where payload->>'user_id' = $1",
        old,
        new,
    )
    dropped = await conn.execute(
        f'delete from "{table}" later using "{table}" earlier'
        " where later.payload->>'user_id' = $1 and earlier.payload->>'user_id' = $1"
        " and later.payload->>'hash' = earlier.payload->>'hash'"
        " and (later.payload->>'created_at', later.id::text)"
        " > (earlier.payload->>'created_at', earlier.id::text)",
        new,
    )
    entities = _entities(table)
    if await conn.fetchval("select to_regclass($1) is not null", f'public."{entities}"'):
        await conn.execute(
            f'update "{entities}" set payload = jsonb_set(payload, \'{{user_id}}\','
            " to_jsonb($2::text)) where payload->>'user_id' = $1",
            old,
            new,
        )
    await conn.execute(
        "update mem0_messages set session_scope = $2 where session_scope = $1",
        session_scope(old),
        session_scope(new),
    )
    await conn.execute("update mem0_history set owner_id = $2 where owner_id = $1", old, new)
    return int(moved.split()[-1]) - int(dropped.split()[-1])


async def stored_dims(database: Database, table: str) -> int | None:
    """The vector size of an existing memory table, or None when there is no such table."""
    declared: str | None = await database.pool.fetchval(
        "select format_type(a.atttypid, a.atttypmod) from pg_attribute a"
        " join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relname = $1 and a.attname = 'vector'"
        " and not a.attisdropped",
        table,
    )
    if declared is None:
        return None
    match = re.search(r"\((\d+)\)", declared)
    return int(match[1]) if match else None


def _mem0_pool(database: Database, size: int) -> ConnectionPool[Connection[Any]]:
    iterative = database.has_iterative_scan

    def configure(conn: Connection[Any]) -> None:
        conn.execute("set plan_cache_mode = force_custom_plan")
        if iterative:
            conn.execute("set hnsw.iterative_scan = relaxed_order")
        conn.commit()

    return ConnectionPool(
        conninfo=database.dsn,
        min_size=1,
        max_size=size,
        kwargs={"prepare_threshold": None},
        configure=configure,
        check=ConnectionPool.check_connection,  # replace connections a restart broke
        open=True,
        name="mem0-writes",
    )


def _build_mem0(
    settings: Settings, clients: ModelClients, pool: ConnectionPool[Connection[Any]]
) -> Any:
    """Build mem0's ``Memory`` (slow: about half a second) and create its table."""
    mem0 = import_mem0(settings)
    key = clients.sync_client.api_key
    embedding_key = clients.embedding_sync.api_key
    config = {
        "vector_store": {
            "provider": "pgvector",
            "config": {
                "collection_name": settings.memory_table,
                "embedding_model_dims": settings.embedding_dims,
                "connection_pool": pool,
                "hnsw": True,
            },
        },
        "llm": {
            "provider": "openai",
            "config": {
                "model": settings.extraction_model_name,
                "api_key": key,
                "openai_base_url": clients.base_url,
            },
        },
        "embedder": {
            "provider": "openai",
            "config": {
                "model": settings.embedding_model,
                "api_key": embedding_key,
                "openai_base_url": clients.embedding_base_url,
                "embedding_dims": settings.embedding_dims if settings.send_embedding_dims else None,
            },
        },
        # Nothing on disk: the history manager is replaced by Postgres tables just below.
        "history_db_path": ":memory:",
    }
    memory = mem0.Memory.from_config(config)
    memory.db.close()
    memory.db = PostgresHistory(pool)
    _remove_old_history(settings)
    # One client of ours, with our timeout and retries, instead of the ones mem0 built from the
    # environment (mem0's LLM silently switches to OpenRouter when OPENROUTER_API_KEY is set).
    memory.llm.client = clients.sync_client
    memory.llm = CheckedExtraction(memory.llm)
    memory.embedding_model.client = clients.embedding_sync
    memory.embedding_model = Mem0Embedder(memory.embedding_model, settings.embedding_query_prefix,
                                          settings.embedding_document_prefix)
    memory.vector_store.create_col()
    return memory


def _remove_old_history(settings: Settings) -> None:
    """Earlier versions let mem0 keep its history in ``MEMBOT_DATA_DIR/mem0/history.db``, out of
    reach of forgetting; it holds copies of memory texts and raw messages, so it goes."""
    old = settings.data_dir / "mem0" / "history.db"
    if old.exists():
        old.unlink()
        log.warning("removed %s: mem0's history now lives in Postgres, where forgetting "
                    "reaches it", old)


_HIDDEN = frozenset({"data", "user_id", "hash", "text_lemmatized", "created_at", "updated_at"})


def _record(row: asyncpg.Record) -> MemoryRecord:
    payload: dict[str, Any] = json.loads(row["payload"])
    return MemoryRecord(
        id=row["id"],
        text=str(payload.get("data") or ""),
        created_at=_parse_time(payload.get("created_at")),
        updated_at=_parse_time(payload.get("updated_at")),
        metadata={k: str(v) for k, v in payload.items() if k not in _HIDDEN and v is not None},
    )


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it (Mem0 wraps the model's errors in its own) is a failure
    that trying again later may fix."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _TRANSIENT):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _cause_name(exc: BaseException) -> str:
    """The class name of what went wrong: the innermost cause Mem0 wrapped, if it wrapped."""
    seen: set[int] = set()
    current: BaseException = exc
    while current.__cause__ is not None and id(current) not in seen:
        seen.add(id(current))
        current = current.__cause__
    return current.__class__.__name__


def _parse_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


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
        table: str,
        writes: ThreadPoolExecutor,
        write_pool: ConnectionPool[Connection[Any]],
    ) -> None:
        self._mem0 = mem0
        self._history: PostgresHistory = mem0.db
        self._pool = database.pool
        self._table = table
        self._embedder = embedder
        self._writes = writes
        self._write_pool = write_pool
        self._search_sql = search_sql(table)
        self._records_sql = (
            f'select id::text as id, payload::text as payload from "{table}"'
            " where payload->>'user_id' = $1 order by payload->>'created_at' desc, id"
        )

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
        write_pool = await asyncio.to_thread(_mem0_pool, database, settings.memory_write_threads)
        async with database.pool.acquire() as conn:
            await conn.execute("select pg_advisory_lock($1)", _SETUP_LOCK)
            try:
                mem0 = await asyncio.to_thread(_build_mem0, settings, clients, write_pool)
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
        try:
            vector = await self._embedder.embed(query)
            rows = await self._pool.fetch(self._search_sql, owner_id, vector, query,
                                          dates_named(query), limit)
        except Exception as exc:
            raise MemoryUnavailable(f"memory search failed: {describe_failure(exc)}") from exc
        return [
            MemoryHit(
                id=row["id"],
                text=row["text"] or "",
                created_at=_parse_time(row["created_at"]),
                score=float(row["score"]),
            )
            for row in rows
        ]

    async def learn(self, owner_id: str, messages: Sequence[str],
                    metadata: dict[str, str]) -> list[str]:
        def add() -> Any:
            with self._history.writing_for(owner_id):
                return self._mem0.add([{"role": "user", "content": text} for text in messages],
                                      user_id=owner_id, metadata=metadata)

        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._writes, add)
        except Exception as exc:
            raise MemoryUnavailable(f"memory write failed: {_cause_name(exc)}",
                                    transient=_transient(exc)) from exc
        added = [str(entry["id"]) for entry in result.get("results", []) if entry.get("id")]
        log.debug("learned %d memories from %d messages", len(added), len(messages))
        return added

    async def forget_batch(self, owner_id: str, batch: str) -> int:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                gone = await self._delete(conn, owner_id, "payload->>'batch' = $2", batch)
        except Exception as exc:
            raise MemoryUnavailable(f"forgetting failed: {exc.__class__.__name__}") from exc
        if gone:
            log.info("deleted %d memories an interrupted write had stored", len(gone))
        return len(gone)

    async def page(self, owner_id: str, limit: int, offset: int) -> tuple[list[MemoryRecord], int]:
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(self._records_sql + " limit $2 offset $3",
                                        owner_id, limit, offset)
                total = await conn.fetchval(
                    f'select count(*) from "{self._table}" where payload->>\'user_id\' = $1',
                    owner_id,
                )
        except Exception as exc:
            raise MemoryUnavailable(f"listing memories failed: {exc.__class__.__name__}") from exc
        return [_record(row) for row in rows], int(total)

    async def records(self, owner_id: str) -> list[MemoryRecord]:
        try:
            rows = await self._pool.fetch(self._records_sql, owner_id)
        except Exception as exc:
            raise MemoryUnavailable(f"reading memories failed: {exc.__class__.__name__}") from exc
        return [_record(row) for row in rows]

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
        return [_record(row) for row in rows]

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
        table, entities = self._table, _entities(self._table)
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
