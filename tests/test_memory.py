"""The memory store on real PostgreSQL + pgvector and real mem0: exact per-owner search at a
size where Postgres stops filtering before ranking, isolation, and the start-up checks."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from adapters.console import to_event
from bot.app import services
from bot.config import Settings
from bot.errors import ConfigError, DatabaseError
from tests.conftest import answer, with_database
from tests.fakes.openai_server import ScriptedOpenAI, embed

MakeSettings = Callable[..., Settings]

HOBBIES = ["hiking", "chess", "jazz", "sailing", "pottery", "running", "baking", "climbing",
           "poetry", "cycling", "gardening", "painting", "surfing", "knitting", "rowing"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


async def test_two_hundred_similar_owners_never_see_each_others_memories(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    owners = [f"user{n:03d}" for n in range(200)]
    async with services(make_settings(memory_write_threads=8)) as app:
        await asyncio.gather(*(
            answer(app.core, to_event(o, f"My locker code is {o}x and I like hiking", session="s"))
            for o in owners
        ))
        await app.jobs.wait_idle()
        assert (app.jobs.done, app.jobs.failed) == (200, 0)

        replies = await asyncio.gather(*(
            answer(app.core, to_event(o, "what is my locker code for hiking?", session="s"))
            for o in owners
        ))
        for owner, reply in zip(owners, replies, strict=True):
            codes = {word for word in reply.text.replace(",", " ").split() if word.endswith("x")
                     and word.startswith("user")}
            assert codes == {f"{owner}x"}, (owner, reply.text)

        for owner in owners[:50]:
            hits = await app.memory.search(f"console:{owner}", "locker code hiking", 5)
            assert f"My locker code is {owner}x and I like hiking" in [h.text for h in hits]
            holders = await app.database.pool.fetch(
                "select distinct payload->>'user_id' as holder from memories"
                " where id = any($1::uuid[])", [h.id for h in hits])
            assert [r["holder"] for r in holders] == [f"console:{owner}"]


@pytest.fixture
def big_settings(make_settings: MakeSettings) -> Settings:
    return make_settings(embedding_dims=384)


async def test_per_owner_search_is_exact_with_20000_memories_and_repeated_queries(
    big_settings: Settings, openai_server: ScriptedOpenAI
) -> None:
    rng = random.Random(7)
    owners = [f"bulk:{n}" for n in range(1000)]
    rows = []
    for owner in owners:
        for _ in range(20):
            text = (f"I like {rng.choice(HOBBIES)} and {rng.choice(HOBBIES)} "
                    f"on {rng.choice(DAYS)}")
            payload = {"user_id": owner, "data": text, "created_at": "2026-01-01T00:00:00+00:00"}
            rows.append((uuid.uuid4(), np.array(embed(text, 384), dtype=np.float32),
                         json.dumps(payload), owner))
    async with services(big_settings) as app:
        pool = app.database.pool
        await pool.copy_records_to_table("memories", records=[r[:3] for r in rows],
                                         columns=["id", "vector", "payload"])
        await pool.execute("analyze memories")
        by_owner: dict[str, list[tuple[str, Any]]] = {}
        for row_id, vector, _, owner in rows:
            by_owner.setdefault(owner, []).append((str(row_id), vector))

        def exact_top(owner: str, query: str, k: int) -> list[float]:
            q = np.array(embed(query, 384), dtype=np.float32)
            scores = [float(np.dot(v, q) / (np.linalg.norm(v) * np.linalg.norm(q)))
                      for _, v in by_owner[owner]]
            return sorted(scores, reverse=True)[:k]

        # Many more queries than connections: each pooled connection runs the same statement
        # far past the point where Postgres would switch to a generic plan.
        for _ in range(300):
            owner = rng.choice(owners)
            query = f"do I like {rng.choice(HOBBIES)} on {rng.choice(DAYS)}?"
            hits = await app.memory.search(owner, query, 5)
            assert len(hits) == 5
            owner_ids = {row_id for row_id, _ in by_owner[owner]}
            assert {h.id for h in hits} <= owner_ids
            assert [h.score for h in hits] == pytest.approx(exact_top(owner, query, 5), abs=1e-5)

        # mem0's own lookup of existing memories (inside every add) runs on our connections.
        store = app.memory._mem0.vector_store

        def mem0_lookups() -> list[int]:
            found = []
            for _ in range(60):
                owner = rng.choice(owners)
                vector = embed(f"I like {rng.choice(HOBBIES)}", 384)
                found.append(len(store.search(query="", vectors=vector, top_k=10,
                                              filters={"user_id": owner})))
            return found

        assert await asyncio.to_thread(mem0_lookups) == [10] * 60


async def test_embedding_size_that_does_not_match_the_table_is_caught_at_start(
    make_settings: MakeSettings,
) -> None:
    async with services(make_settings()) as app:
        index = await app.database.pool.fetchval("select to_regclass('public.memories_owner_idx')")
        assert index == "memories_owner_idx"
    async with services(make_settings()):  # a restart finds the index and keeps it
        pass
    with pytest.raises(ConfigError) as caught:
        async with services(make_settings(embedding_dims=32)):
            pass
    message = str(caught.value)
    assert "64-dimensional" in message and "EMBEDDING_DIMS=64" in message


async def test_embedding_model_returning_another_size_is_caught_at_start(
    make_settings: MakeSettings,
) -> None:
    with pytest.raises(ConfigError, match="returns 64-dimensional vectors but EMBEDDING_DIMS "
                                          "is 32: set EMBEDDING_DIMS=64"):
        async with services(make_settings(embedding_dims=32, send_embedding_dims=False)):
            pass


@pytest.fixture
def url_without_vector(postgres: str) -> Iterator[str]:
    """A database whose owner is no superuser and so cannot create the vector extension."""
    role = f"plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'create role "{role}" login')
        conn.execute(f'create database "{role}" owner "{role}"')
    uri = with_database(postgres, role).replace("postgres:@", f"{role}:@", 1)
    yield uri
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{role}" with (force)')
        conn.execute(f'drop role if exists "{role}"')


async def test_database_without_pgvector_is_said_in_one_sentence(
    make_settings: MakeSettings, url_without_vector: str
) -> None:
    with pytest.raises(DatabaseError) as caught:
        async with services(make_settings(database_url=url_without_vector)):
            pass
    message = str(caught.value)
    assert "no 'vector' extension" in message and "DATABASE_URL" in message
    assert "\n" not in message
