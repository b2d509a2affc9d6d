"""The plain Mem0 loop: what people build from Mem0's tutorial, as the benchmarks' baseline.

A faithful async port of ``chat_with_memories`` from the "Basic Usage" example in mem0ai 2.2.1's
README (the package's long description on PyPI), which is, without its comments::

    def chat_with_memories(message: str, user_id: str = "default_user") -> str:
        relevant_memories = memory.search(query=message, filters={"user_id": user_id}, top_k=3)
        memories_str = "\\n".join(f"- {entry['memory']}" for entry in relevant_memories["results"])
        system_prompt = f"You are a helpful AI. Answer the question based on query and ...
                           ... memories.\\nUser Memories:\\n{memories_str}"  # one line there
        messages = [{"role": "system", "content": system_prompt},
                    {"role": "user", "content": message}]
        response = openai_client.chat.completions.create(model="gpt-5-mini", messages=messages)
        assistant_response = response.choices[0].message.content
        messages.append({"role": "assistant", "content": assistant_response})
        memory.add(messages, user_id=user_id)
        return assistant_response

The port changes only what async needs: ``mem0.AsyncMemory`` for ``Memory`` (Mem0's own async
class: its sync code run through ``asyncio.to_thread`` on the loop's default executor) and
``openai.AsyncOpenAI`` for ``OpenAI``, each call awaited in the same order. The memory write is
inside the turn: the answer is returned after ``add`` has finished, as in the tutorial.

Mem0 is configured as its ``pgvector`` provider ships (HNSW index, its own connection pool of at
most 5, no index on the owner id), with the LLM and embedder ``openai`` providers pointed at the
given OpenAI-compatible server. Set apart from the defaults, and only so that a run leaves no
trace and touches no network: the table name, the vector size (the embedder's), the history
SQLite file (in the run's data folder instead of ``~/.mem0``) and telemetry (off). The table is
created before the first turn: Mem0 creates it lazily, and concurrent first turns on a fresh
table fail in that race, which would measure a one-off start-up fault instead of the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai

__all__ = ["CHAT_MODEL", "PlainLoop", "plain_config", "plain_loop"]

CHAT_MODEL = "gpt-5-mini"  # the tutorial's


class PlainLoop:
    """The tutorial's loop on one ``AsyncMemory`` and one async OpenAI client."""

    def __init__(self, memory: Any, client: openai.AsyncOpenAI,
                 chat_model: str = CHAT_MODEL) -> None:
        self.memory = memory
        self.client = client
        self.chat_model = chat_model

    async def chat_with_memories(self, message: str, user_id: str = "default_user") -> str:
        """Search the user's memories (top 3), answer with them, ``add`` the exchange, return
        the answer. Errors propagate, as in the tutorial."""
        messages = await self.answer(message, user_id)
        await self.memory.add(messages, user_id=user_id)
        return messages[-1]["content"]

    async def answer(self, message: str, user_id: str = "default_user") -> list[dict[str, str]]:
        """The tutorial's turn up to its ``add``: search, chat; the messages ``add`` is given,
        the answer last."""
        relevant_memories = await self.memory.search(
            query=message, filters={"user_id": user_id}, top_k=3
        )
        memories_str = "\n".join(f"- {entry['memory']}" for entry in relevant_memories["results"])

        system_prompt = (
            "You are a helpful AI. Answer the question based on query and memories.\n"
            f"User Memories:\n{memories_str}"
        )
        messages: list[dict[str, str]] = [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": message},
        ]
        response = await self.client.chat.completions.create(
            model=self.chat_model, messages=messages  # type: ignore[arg-type]
        )
        assistant_response = response.choices[0].message.content or ""

        messages.append({"role": "assistant", "content": assistant_response})
        return messages


def plain_config(dsn: str, table: str, base_url: str, api_key: str, dims: int,
                 history: Path, *, chat_model: str | None = None,
                 embedding_model: str | None = None) -> dict[str, Any]:
    """Mem0's configuration for the loop: the ``pgvector`` provider with its defaults; Mem0's
    default models unless ``chat_model`` (used for extraction too) or ``embedding_model`` are
    given (to measure both systems on the same models)."""
    llm: dict[str, Any] = {"api_key": api_key, "openai_base_url": base_url}
    if chat_model:
        llm["model"] = chat_model
    embedder: dict[str, Any] = {"api_key": api_key, "openai_base_url": base_url,
                                "embedding_dims": dims}
    if embedding_model:
        embedder["model"] = embedding_model
    return {
        "vector_store": {
            "provider": "pgvector",
            "config": {"connection_string": dsn, "collection_name": table,
                       "embedding_model_dims": dims},
        },
        "llm": {"provider": "openai", "config": llm},
        "embedder": {"provider": "openai", "config": embedder},
        "history_db_path": str(history),
    }


def _import_mem0(data_dir: Path) -> Any:
    """Import mem0 with telemetry off (it would wait on a network this may not have)."""
    os.environ["MEM0_TELEMETRY"] = "false"
    os.environ.setdefault("MEM0_DIR", str(data_dir / "mem0"))
    # mem0's LLM silently goes to OpenRouter when this is set; the loop must use base_url.
    os.environ.pop("OPENROUTER_API_KEY", None)
    import mem0

    # Said on first use of every process without spaCy (mem0ai[nlp]); membot silences it too.
    logging.getLogger("mem0.utils.spacy_models").setLevel(logging.ERROR)
    return mem0


def _build(config: dict[str, Any], data_dir: Path) -> Any:
    mem0 = _import_mem0(data_dir)
    memory = mem0.AsyncMemory.from_config(config)
    # Mem0 creates its table on first use, and first uses on several threads at once race
    # ("CREATE EXTENSION IF NOT EXISTS vector" fails with a unique violation): make it now.
    memory.vector_store.create_col()
    return memory


@asynccontextmanager
async def plain_loop(*, dsn: str, table: str, base_url: str, dims: int, data_dir: Path,
                     api_key: str = "bench", chat_model: str | None = None,
                     embedding_model: str | None = None,
                     call_timeout: float | None = None) -> AsyncIterator[PlainLoop]:
    """A ready :class:`PlainLoop` on table ``table`` (created by Mem0), closed on exit. Building
    Mem0 blocks for about half a second, so it is done on a thread before the first turn.
    ``chat_model``, ``embedding_model`` and ``call_timeout`` (seconds per model call) replace the
    tutorial's and Mem0's defaults when given."""
    config = plain_config(dsn, table, base_url, api_key, dims, data_dir / f"{table}-history.db",
                          chat_model=chat_model, embedding_model=embedding_model)
    memory = await asyncio.to_thread(_build, config, data_dir)
    if call_timeout is not None:  # Mem0's clients have the SDK's default of 600 s
        memory.llm.client = memory.llm.client.with_options(timeout=call_timeout)
    timeout = openai.DEFAULT_TIMEOUT if call_timeout is None else call_timeout
    client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout)
    try:
        yield PlainLoop(memory, client, chat_model or CHAT_MODEL)
    finally:
        await client.close()
        # Mem0 has no close for its pool; without this each loop keeps its connections open.
        for store in (memory.vector_store, memory._entity_store):
            pool = getattr(store, "connection_pool", None)
            if pool is not None:
                await asyncio.to_thread(pool.close)
        await asyncio.to_thread(memory.db.close)
