"""Building Mem0 the way membot needs it: telemetry off and its home folder in the data folder
(both before Mem0 is imported, which only this module does), its table on membot's database
with planner settings that keep its owner filter exact, its history in Postgres
(:mod:`bot.memory.history`), membot's API client with its timeout and retries, and the
embedding prefixes. Mem0 stores what membot's own extraction found
(:mod:`bot.memory.extraction`)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from bot.clients import ModelClients
from bot.config import Settings
from bot.database import Database
from bot.memory.history import PostgresHistory

__all__ = ["Mem0Embedder", "build_mem0", "import_mem0", "mem0_pool", "stored_dims"]

log = logging.getLogger(__name__)


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


def mem0_pool(database: Database, size: int) -> ConnectionPool[Connection[Any]]:
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


def build_mem0(
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
    # membot extracts on its own (bot.memory.extraction) and stores with infer=False, so Mem0's
    # LLM is never asked; it still gets our client, so nothing of Mem0's reaches elsewhere.
    memory.llm.client = clients.sync_client
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


class Mem0Embedder:
    """Mem0's embedder with the configured prefixes: what Mem0 embeds to look something up
    (``memory_action="search"``) gets ``EMBEDDING_QUERY_PREFIX``, what it stores gets
    ``EMBEDDING_DOCUMENT_PREFIX``, so stored memories and membot's own queries are embedded the
    way the model was trained. Everything else is Mem0's embedder, unchanged."""

    def __init__(self, inner: Any, query_prefix: str, document_prefix: str) -> None:
        self._inner = inner
        self._query = query_prefix
        self._document = document_prefix
        self.config = inner.config

    def _prefix(self, memory_action: str | None) -> str:
        return self._query if memory_action == "search" else self._document

    def embed(self, text: str, memory_action: str | None = None) -> Any:
        return self._inner.embed(self._prefix(memory_action) + text, memory_action)

    def embed_batch(self, texts: Sequence[str], memory_action: str = "add") -> Any:
        prefix = self._prefix(memory_action)
        return self._inner.embed_batch([prefix + text for text in texts], memory_action)
