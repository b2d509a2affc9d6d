"""The memory store on real PostgreSQL + pgvector and real mem0: per-owner search at a size where
Postgres stops filtering before ranking (exact in its vector part), keyword and date fusion,
isolation, and the start-up checks."""

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
from bot.memory.dates import dates_named
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


async def test_per_owner_search_with_20000_memories_and_repeated_queries_keeps_to_the_owner(
    big_settings: Settings, openai_server: ScriptedOpenAI
) -> None:
    """At a size where Postgres would filter owners after an approximate walk, every search
    returns the owner's memories only, and in full; its vector part is exact: a query that
    shares no word with the owner's memories and names no date gets the exact vector top-k."""
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
        for turn in range(300):
            owner = rng.choice(owners)
            hobby, day = rng.choice(HOBBIES), rng.choice(DAYS)
            if turn % 2:
                query = f"do I like {hobby} on {day}?"
            else:  # close in spelling (the scripted embedder hashes trigrams), no word shared
                query = f"{hobby[0]}{hobby} {day[0]}{day}"
            hits = await app.memory.search(owner, query, 5)
            assert len(hits) == 5
            owner_ids = {row_id for row_id, _ in by_owner[owner]}
            assert {h.id for h in hits} <= owner_ids
            if not turn % 2:
                assert [h.score for h in hits] == pytest.approx(exact_top(owner, query, 5),
                                                                abs=1e-5)

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


def _near(vector: list[float], rng: random.Random, noise: float) -> np.ndarray[Any, Any]:
    return np.array(vector, dtype=np.float32) + rng.gauss(0, noise) * np.array(
        [rng.gauss(0, 1) for _ in vector], dtype=np.float32)


async def _store(pool: Any, owner: str, memories: list[tuple[str, Any, str]]) -> list[str]:
    """Memories ``(text, vector, recorded on YYYY-MM-DD)`` for ``owner``, as mem0 stores
    them; their ids in order."""
    ids = [uuid.uuid4() for _ in memories]
    await pool.copy_records_to_table("memories", columns=["id", "vector", "payload"], records=[
        (row_id, np.asarray(vector, dtype=np.float32), json.dumps(
            {"user_id": owner, "data": text, "created_at": f"{day}T12:00:00+00:00"}))
        for row_id, (text, vector, day) in zip(ids, memories, strict=True)])
    return [str(i) for i in ids]


def _small_talk(query_vector: list[float], rng: random.Random, count: int,
                day: str = "2023-03-01") -> list[tuple[str, Any, str]]:
    """``count`` memories near the query in vector space that share none of its words."""
    return [(f"I like {rng.choice(HOBBIES)} on {rng.choice(DAYS)}",
             _near(query_vector, rng, 0.3), day) for _ in range(count)]


async def test_a_memory_sharing_the_querys_words_comes_back_though_others_are_nearer(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    rng = random.Random(3)
    query = "what is my locker code?"
    q = embed(query, 64)
    async with services(make_settings()) as app:
        pool = app.database.pool
        await _store(pool, "console:ana", _small_talk(q, rng, 30))
        [locker] = await _store(pool, "console:ana", [
            ("The code of my locker at the gym is 4711", -np.array(q), "2023-03-01")])
        hits = await app.memory.search("console:ana", query, 5)
        assert hits[0].id == locker
        assert hits[0].score == pytest.approx(-1.0, abs=1e-5)  # still the cosine similarity
        # Without a shared word it is the owner's farthest memory, as the vector part says.
        assert locker not in [h.id for h in await app.memory.search("console:ana",
                                                                   "what is my number?", 5)]


async def test_a_query_naming_a_date_finds_what_was_recorded_on_it(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    rng = random.Random(4)
    q = embed("what did I do", 64)
    async with services(make_settings()) as app:
        pool = app.database.pool
        await _store(pool, "console:ana", _small_talk(q, rng, 30))
        far = -np.array(q)
        fair, june = await _store(pool, "console:ana", [
            ("Went to the pottery fair with Ben", far, "2023-10-13"),
            ("Started a new job at the harbour", far, "2024-06-02"),
        ])
        # Another owner's memory of that day counts for nothing.
        await _store(pool, "console:ben", [("Went to the fair", q, "2023-10-13")])
        for query, wanted in (("what did I do on October 13, 2023?", fair),
                              ("what did I do on the 13th of October?", fair),
                              ("what did I do in June?", june),
                              ("what did I do in 2024?", june)):
            hits = await app.memory.search("console:ana", query, 3)
            assert hits[0].id == wanted, query
        undated = [h.id for h in await app.memory.search("console:ana", "what did I do?", 5)]
        assert fair not in undated and june not in undated


async def test_other_owners_memories_do_not_change_an_owners_ranking(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    """Keyword statistics (how rare a word is, how long memories are) come from the owner's
    memories alone: thousands of another owner's memories full of the query's words change
    nothing."""
    rng = random.Random(5)
    query = "when do my sailing lessons with my sister start?"
    q = embed(query, 64)
    async with services(make_settings()) as app:
        pool = app.database.pool
        [lessons] = await _store(pool, "console:ana", [
            ("Sailing lessons are on Tuesdays", q, "2023-04-03")])
        await _store(pool, "console:ana", [
            *((f"My sister {n} sent a postcard", _near(q, rng, 0.5), "2023-04-01")
              for n in range(40)),
            *_small_talk([-x for x in q], rng, 20),
        ])
        before = await app.memory.search("console:ana", query, 10)
        # For Ana "sailing" is the rare word and "sister" the common one; across the whole
        # table it would be the other way round, and the lessons would drop below the sisters.
        await _store(pool, "console:ben", [
            (f"I went sailing {n} times", _near(q, rng, 0.1), "2023-04-01")
            for n in range(3000)])
        await pool.execute("analyze memories")
        assert await app.memory.search("console:ana", query, 10) == before
        assert before[0].id == lessons
        assert all(h.text.startswith("My sister") for h in before[1:])


@pytest.mark.parametrize(("text", "dates"), [
    ("What did I do on October 13, 2023?", ["2023-10-13"]),
    ("and on 1 February, 2023", ["2023-02-01"]),
    ("the 3rd of March", ["____-03-03"]),
    ("Oct. 5th", ["____-10-05"]),
    ("what happened in December 2023", ["2023-12-__"]),
    ("When did we go camping in June?", ["____-06-__"]),
    ("in May 23rd 2021", ["2021-05-23"]),
    ("How often did I swim in 2023?", ["2023-__-__"]),
    ("see 2024-02-29 and Dec 2022", ["2024-02-29", "2022-12-__"]),
    ("what may happen in march", ["____-03-__"]),
    ("What may happen next?", []),
    ("Jan and I went out on the 3rd", []),
    ("I was born in 1890", []),
])
def test_dates_a_query_names(text: str, dates: list[str]) -> None:
    assert dates_named(text) == dates


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
