"""Whole turns on the real stack: the composition root, embedded PostgreSQL with pgvector, mem0,
and the official OpenAI SDK talking HTTP to the scripted server."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest

from adapters.console import to_event
from bot.app import services
from bot.config import Settings
from bot.core import MODEL_DOWN
from bot.events import ReplyKind
from tests.conftest import answer
from tests.fakes.openai_server import ScriptedOpenAI

MakeSettings = Callable[..., Settings]


def last_system_prompt(server: ScriptedOpenAI) -> str:
    body = server.calls("chat")[-1].body
    return str(body["messages"][0]["content"])


async def test_remembers_across_a_new_core_on_the_same_database(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings()) as app:
        reply = await answer(app.core,
            to_event("alice", "I build my apps with FastAPI and Postgres", session="one"))
        assert reply.kind is ReplyKind.ANSWER
    # Leaving the services finished the memory write.
    assert len(openai_server.calls("extraction")) == 1

    async with services(make_settings()) as app:
        reply = await answer(app.core,
            to_event("alice", "what stack do I build my apps with?", session="two"))
        assert "FastAPI and Postgres" in last_system_prompt(openai_server)
        assert "FastAPI and Postgres" in reply.text

        await answer(app.core, to_event("bob", "what stack do I build my apps with?",
                                       session="three"))
        assert "FastAPI" not in last_system_prompt(openai_server)


async def test_the_reply_does_not_wait_for_the_memory_write(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    order: list[str] = []
    async with services(make_settings()) as app:
        openai_server.hold("extraction")
        reply = await answer(app.core, to_event("alice", "My dog is called Pixel", session="s"))
        order.append("reply delivered")
        arrived = await asyncio.to_thread(openai_server.wait_for, "extraction", 1)
        assert arrived
        assert await app.jobs.pending() == 1 and app.jobs.done == 0
        order.append("extraction still held")
        openai_server.release("extraction")
        await app.jobs.wait_idle()
        order.append("write finished")
        assert app.jobs.done == 1
        assert reply.kind is ReplyKind.ANSWER
        count = await app.database.pool.fetchval(
            "select count(*) from memories where payload->>'user_id' = 'console:alice'")
        assert count == 1
    assert order == ["reply delivered", "extraction still held", "write finished"]


async def test_a_second_message_sent_at_once_sees_the_first_in_its_context(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings()) as app:
        openai_server.hold("extraction")
        await answer(app.core, to_event("alice", "My dog is called Pixel", session="s"))
        await answer(app.core, to_event("alice", "What is my dog called?", session="s"))
        messages = openai_server.calls("chat")[-1].body["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert messages[1]["content"] == "My dog is called Pixel"
        openai_server.release("extraction")


async def test_memory_store_down_the_bot_still_replies(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with services(make_settings()) as app:
        await app.database.pool.execute("alter table memories rename to memories_gone")
        with caplog.at_level(logging.ERROR):
            reply = await answer(app.core, to_event("alice", "what do I like?", session="s"))
        assert reply.kind is ReplyKind.ANSWER
        assert "<memories>" not in last_system_prompt(openai_server)
        assert "memory search failed" in caplog.text
        await app.database.pool.execute("alter table memories_gone rename to memories")


async def test_embeddings_failing_the_bot_still_replies_and_the_write_is_retried(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings(shutdown_grace=0.5)) as app:
        openai_server.fail_always("embedding", 500)
        reply = await answer(app.core, to_event("alice", "I grow tomatoes on my balcony",
                                                session="s"))
        assert reply.kind is ReplyKind.ANSWER
        while app.jobs.failed < 2:  # noqa: ASYNC110 - the write could not embed either, and is retried
            await asyncio.sleep(0.05)
        assert await app.jobs.pending() == 1
        openai_server.clear_failures()
        await app.jobs.wait_idle()
        stored = await app.database.pool.fetchval(
            "select count(*) from memories where payload->>'user_id' = 'console:alice'")
        assert stored == 1


async def test_chat_model_429_then_200_is_retried_and_answered(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings()) as app:
        openai_server.fail_next("chat", 429)
        reply = await answer(app.core, to_event("alice", "hello there", session="s"))
        assert reply.kind is ReplyKind.ANSWER
        assert "hello there" in reply.text
        assert [c.status for c in openai_server.calls("chat")] == [429, 200]


async def test_chat_model_500_throughout_gets_a_clear_message(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with services(make_settings(model_max_retries=2)) as app:
        openai_server.fail_always("chat", 500)
        with caplog.at_level(logging.ERROR):
            reply = await answer(app.core, to_event("alice", "hello there", session="s"))
        assert reply.kind is ReplyKind.ERROR
        assert reply.text == MODEL_DOWN
        assert len(openai_server.calls("chat")) == 3  # the first try and two retries
        assert "chat model unavailable" in caplog.text
        assert await app.jobs.pending() == 0


async def test_writes_still_running_at_shutdown_are_learned_by_the_next_start(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(shutdown_grace=0.3, worker_stalled_after=1.0)
    openai_server.hold("extraction")
    with caplog.at_level(logging.WARNING):
        async with services(settings) as app:
            await answer(app.core, to_event("alice", "I collect stamps", session="s"))
            await answer(app.core, to_event("bob", "I collect coins", session="s"))
            # The first extraction finds out whether the server takes json_schema; the other
            # job waits for its answer: both are running when the process stops.
            assert await asyncio.to_thread(openai_server.wait_for, "extraction", 1)
            await asyncio.sleep(0.2)
    assert "memory writes still queued after 0.3s" in caplog.text
    openai_server.release("extraction")
    # The abandoned threads fail fast on the closed client; let them end inside this test.
    for _ in range(500):
        if not any(t.name.startswith("mem0-write") for t in threading.enumerate()):
            break
        await asyncio.sleep(0.01)

    async with services(settings) as app:
        await app.jobs.wait_idle()
        rows = await app.database.pool.fetch(
            "select payload->>'user_id' as owner, payload->>'data' as text from memories"
            " order by 1")
    assert [(r["owner"], r["text"]) for r in rows] == [
        ("console:alice", "I collect stamps"), ("console:bob", "I collect coins")]


async def test_embedding_prefixes_go_before_queries_and_stored_memories_only(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    settings = make_settings(embedding_query_prefix="query: ",
                             embedding_document_prefix="passage: ")
    async with services(settings) as app:
        await answer(app.core, to_event("alice", "I build my apps with FastAPI", session="s"))
        await app.jobs.wait_idle()
        reply = await answer(app.core, to_event("alice", "what do I build my apps with?",
                                               session="t"))
        await app.jobs.wait_idle()
        assert "FastAPI" in last_system_prompt(openai_server)
        assert "query" not in reply.text
        stored = await app.database.pool.fetch(
            "select payload->>'data' as text from memories "
            "where payload->>'user_id' = 'console:alice'")

    texts = [row["text"] for row in stored]
    assert any("FastAPI" in text for text in texts)
    assert not any(text.startswith(("query", "passage")) for text in texts)
    inputs = [text for call in openai_server.calls("embedding")
              for text in ([call.body["input"]] if isinstance(call.body["input"], str)
                           else call.body["input"])]
    assert "query: what do I build my apps with?" in inputs  # the reply's search
    for text in texts:  # every stored memory was embedded as a document
        assert f"passage: {text}" in inputs
    assert all(text.startswith(("query: ", "passage: ")) for text in inputs)


async def test_an_endless_answer_is_capped_in_tokens_asked_and_characters_sent_and_kept(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    openai_server.chat_reply = lambda body: "la " * 400_000  # 1.2 MB
    try:
        async with services(make_settings(max_answer_chars=3000, max_answer_tokens=700)) as app:
            reply = await answer(app.core, to_event("alice", "Sing forever", session="s"))
            assert openai_server.calls("chat")[-1].body["max_completion_tokens"] == 700
            assert reply.kind is ReplyKind.ANSWER and len(reply.text) <= 3000
            assert reply.notice is not None and "3000 characters" in reply.notice
            await app.jobs.flush()
            recorded = await app.database.pool.fetch(
                "select role, length(content) as size from conversation_turns"
                " where owner_id = 'console:alice' order by id")
            assert [(r["role"], r["size"] <= 3000) for r in recorded] == [
                ("user", True), ("assistant", True)]
    finally:
        openai_server.chat_reply = None


async def test_one_huge_turn_never_locks_the_conversation(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    # A model that answers with 150,000 characters once, behind a context window of 60,000.
    huge = iter(["x" * 150_000])
    openai_server.chat_reply = lambda body: next(huge, "fine")
    openai_server.context_chars = 60_000
    try:
        async with services(make_settings(max_answer_chars=200_000)) as app:
            first = await answer(app.core, to_event("alice", "Write a lot", session="s"))
            assert len(first.text) == 150_000
            for text in ("And now?", "Still there?"):
                later = await answer(app.core, to_event("alice", text, session="s"))
                assert later.kind is ReplyKind.ANSWER and later.text == "fine"
    finally:
        openai_server.chat_reply = None
        openai_server.context_chars = None


async def test_a_server_that_refuses_max_completion_tokens_is_asked_with_max_tokens(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    openai_server.refused_params = {"max_completion_tokens"}
    try:
        async with services(make_settings(max_answer_tokens=500)) as app:
            for text in ("Hello there", "And again"):
                reply = await answer(app.core, to_event("alice", text, session="s"))
                assert reply.kind is ReplyKind.ANSWER
            sent = [c.body for c in openai_server.calls("chat")]
            assert [("max_tokens" in b, "max_completion_tokens" in b) for b in sent] == [
                (False, True), (True, False), (True, False)]
            assert sent[-1]["max_tokens"] == 500
    finally:
        openai_server.refused_params = set()


async def test_a_slow_extraction_has_its_own_timeout_beside_a_short_chat_timeout(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    # A local model: chat turns answer at once, an extraction takes a while.
    openai_server.extraction_delay = 1.5
    settings = make_settings(model_timeout=0.5, model_max_retries=0, extraction_timeout=30.0,
                             memory_write_attempts=1)
    async with services(settings) as app:
        reply = await answer(app.core, to_event("alice", "I keep three beehives", session="s"))
        assert reply.kind is ReplyKind.ANSWER
        await app.jobs.wait_idle()
        assert (await app.jobs.counts()).failed_messages == 0
        assert [m.text for m in await app.memory.records("console:alice")] == [
            "I keep three beehives"]
