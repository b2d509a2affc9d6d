"""The durable memory-write queue on real Postgres: procrastinate jobs, the inbox, workers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from adapters.console import to_event
from bot.app import Services, services
from bot.config import Settings
from tests.conftest import answer
from tests.fakes.openai_server import ScriptedOpenAI, new_messages
from tests.test_memory_commands import command

MakeSettings = Callable[..., Settings]


async def memories_of(app: Services, owner: str) -> list[dict[str, Any]]:
    rows = await app.database.pool.fetch(
        "select payload->>'data' as text, payload->>'batch' as batch,"
        " payload->>'event_ids' as events from memories where payload->>'user_id' = $1"
        " order by payload->>'created_at'", owner)
    return [dict(row) for row in rows]


def said(body: dict[str, Any]) -> list[str]:
    """The new messages an extraction call was given."""
    return new_messages(body)


async def test_two_workers_learn_one_persons_messages_in_order_never_at_once(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    openai_server.extraction_delay = 0.15
    settings = make_settings(memory_write_threads=4)
    people = ["ann", "ben", "cat", "dan"]
    async with services(settings) as one, services(settings) as two:
        for n in range(4):
            for person in people:
                core = one.core if (n + len(person)) % 2 else two.core
                await answer(core, to_event(person, f"{person} fact number {n} is true",
                                            session="s"))
        await one.jobs.wait_idle()
        await two.jobs.wait_idle()
        for person in people:
            texts = [m["text"] for m in await memories_of(one, f"console:{person}")]
            assert sorted(texts) == [f"{person} fact number {n} is true" for n in range(4)]
        assert one.jobs.done + two.jobs.done == 16  # whichever worker took each job

    calls = openai_server.calls("extraction")
    for person in people:
        mine = [(c.at, said(c.body)) for c in calls
                if any(line.startswith(person) for line in said(c.body))]
        order = [line for _, lines in mine for line in lines if line.startswith(person)]
        assert order == [f"{person} fact number {n} is true" for n in range(4)]
        starts = [at for at, _ in mine]
        # Each extraction of one person began after the one before had had its full answer time.
        assert all(b - a >= 0.15 for a, b in itertools.pairwise(starts)), starts


async def test_a_person_talking_is_learned_in_one_extraction_after_a_pause(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    settings = make_settings(memory_batch_size=10, memory_batch_idle=5.0, worker_poll_interval=0.2)
    async with services(settings) as app:
        for text in ["I moved to Oslo last spring", "thanks!", "I work as a nurse there",
                     "ok", "my sister Jane lives in Bergen"]:
            await answer(app.core, to_event("alice", text, session="s"))
        assert openai_server.calls("extraction") == []  # still talking
        listed = await command(app, "alice", "memory list")
        assert listed.text == ("I don't remember anything about you yet. I am still learning "
                               "from your last 3 messages: I do that when the conversation "
                               "pauses.")
        await app.jobs.wait_idle()
        memories = await memories_of(app, "console:alice")
    [call] = openai_server.calls("extraction")
    assert said(call.body) == ["I moved to Oslo last spring", "I work as a nurse there",
                               "my sister Jane lives in Bergen"]
    assert sorted(m["text"] for m in memories) == sorted(said(call.body))


async def test_a_full_batch_is_learned_without_waiting_for_a_pause(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    settings = make_settings(memory_batch_size=3, memory_batch_idle=3600.0)
    async with services(settings) as app:
        for n in range(3):
            await answer(app.core, to_event("alice", f"my fact number {n} here", session="s"))
        await app.jobs.wait_idle()
    [call] = openai_server.calls("extraction")
    assert said(call.body) == [f"my fact number {n} here" for n in range(3)]


async def test_a_redelivered_event_is_queued_and_learned_once(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings()) as one, services(make_settings()) as two:
        event = to_event("alice", "I keep bees in my garden", session="s")
        assert await one.core.handle(event) is not None
        assert await two.core.handle(event) is None  # the platform delivered it again
        await one.jobs.wait_idle()
        assert [m["text"] for m in await memories_of(one, "console:alice")] == [
            "I keep bees in my garden"]
    assert len(openai_server.calls("extraction")) == 1


@contextlib.asynccontextmanager
async def first_delete_fails(app: Services, table: str,
                             message: str) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """The first delete of a row of ``table`` raises ``message`` (as a process or database
    that went away at that point would leave it); the rest go through. Yields how many
    deletes were tried so far."""
    pool = app.database.pool
    await pool.execute(f"""
        create sequence deletes;
        create or replace function fail_first_delete() returns trigger language plpgsql as $$
        begin
            if nextval('deletes') = 1 then  -- a sequence step survives the rollback
                raise exception '{message}';
            end if;
            return old;
        end $$;
        create trigger fail_first_delete before delete on {table}
            for each row execute function fail_first_delete();
    """)

    async def tried() -> int:
        return int(await pool.fetchval("select last_value from deletes"))

    try:
        yield tried
    finally:
        await pool.execute(
            f"drop trigger fail_first_delete on {table}; drop sequence deletes;"
            " drop function fail_first_delete")


async def test_a_run_interrupted_after_storing_is_retried_and_stores_nothing_twice(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    attempts = itertools.count(1)
    # A model does not extract the same words twice; each attempt's memory differs.
    openai_server.extraction_reply = lambda body: [f"Keeps bees (attempt {next(attempts)})"]
    # The first attempt dies after its memory is stored and before its message leaves the
    # inbox (as a killed worker or a lost database would leave it).
    async with (services(make_settings()) as app,
                first_delete_fails(app, "memory_inbox", "the worker died here")):
        await answer(app.core, to_event("alice", "I keep bees in my garden", session="s"))
        await app.jobs.wait_idle()
        memories = await memories_of(app, "console:alice")
    assert app.jobs.failed == 1
    assert len(openai_server.calls("extraction")) == 2
    assert [m["text"] for m in memories] == ["Keeps bees (attempt 2)"]


async def test_a_job_whose_end_could_not_be_written_runs_again_and_the_queue_drains(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    # procrastinate writes a job's end once, after the run; when that write fails (the
    # database went away just then) it leaves the job marked running under a live worker.
    async with (services(make_settings(worker_stalled_after=1.0)) as app,
                first_delete_fails(app, "procrastinate_jobs",
                                   "the database went away here") as deletes):
        await answer(app.core, to_event("alice", "I keep bees in my garden", session="s"))
        async with asyncio.timeout(60):  # without the fix the job stays 'doing' for good
            await app.jobs.wait_idle()
        memories = await memories_of(app, "console:alice")
        ends = await deletes()
    assert ends == 2  # the failed end, then the end of the run that followed
    assert len(openai_server.calls("extraction")) == 1  # the second run had nothing to learn
    assert [m["text"] for m in memories] == ["I keep bees in my garden"]


async def test_an_extraction_answer_that_does_not_parse_is_a_failure_not_an_empty_result(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    settings = make_settings(memory_write_attempts=2)
    async with services(settings) as app:
        openai_server.extraction_text = lambda body: "Sure! The user keeps bees, I think."
        await answer(app.core, to_event("alice", "I keep bees in my garden", session="s"))
        await app.jobs.wait_idle()  # both attempts made, each asking twice
        assert len(openai_server.calls("extraction")) == 4
        counts = await app.jobs.counts()
        assert counts.failed_messages == 1 and counts.jobs.get("failed") == 1
        assert await memories_of(app, "console:alice") == []

        # Prose around a fenced object is read; the failed one is retried.
        openai_server.extraction_text = lambda body: (
            'Here you go:\n```json\n{"facts": [{"fact": "Keeps bees"}]}\n```')
        assert await app.jobs.retry_failed() == 1
        await app.jobs.wait_idle()
        assert [m["text"] for m in await memories_of(app, "console:alice")] == ["Keeps bees"]
        assert (await app.jobs.counts()).failed_messages == 0

        # "Nothing worth remembering" is a valid answer, and learns nothing without failing.
        openai_server.extraction_text = lambda body: '{"facts": [], "retracted": []}'
        await answer(app.core, to_event("alice", "What time is it?", session="s"))
        await app.jobs.wait_idle()
        assert (await app.jobs.counts()).failed_messages == 0
        openai_server.extraction_text = None


async def test_a_write_that_keeps_failing_is_kept_visible_and_can_be_retried(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    settings = make_settings(memory_write_attempts=2)
    async with services(settings) as app:
        openai_server.fail_always("extraction", 503)
        await answer(app.core, to_event("alice", "I keep bees in my garden", session="s"))
        await app.jobs.wait_idle()  # both attempts made
        counts = await app.jobs.counts()
        assert counts.jobs.get("failed") == 1
        assert counts.failed_messages == 1 and counts.messages == 0
        assert await memories_of(app, "console:alice") == []
        # Later messages of the person are still learned; the failed one waits for the operator.
        openai_server.clear_failures()
        await answer(app.core, to_event("alice", "I also grow lavender", session="s"))
        await app.jobs.wait_idle()
        assert [m["text"] for m in await memories_of(app, "console:alice")] == [
            "I also grow lavender"]
        assert await app.jobs.retry_failed() == 1
        await app.jobs.wait_idle()
        texts = sorted(m["text"] for m in await memories_of(app, "console:alice"))
        assert texts == ["I also grow lavender", "I keep bees in my garden"]
        assert (await app.jobs.counts()).failed_messages == 0

        # A failure that stays, then forget-all: no job of Alice's is left, failed ones neither.
        openai_server.fail_always("extraction", 503)
        await answer(app.core, to_event("alice", "I ride a red bike", session="s"))
        await app.jobs.wait_idle()
        assert (await app.jobs.counts()).jobs.get("failed") == 1
        go = (await command(app, "alice", "memory forget-all")).actions[0]
        await command(app, "alice", f"{go.command} {go.arguments}")
        counts = await app.jobs.counts()
        assert counts.jobs == {} and counts.failed_messages == 0
        openai_server.clear_failures()


async def test_forget_all_cancels_the_writes_still_waiting(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    settings = make_settings(memory_batch_size=10, memory_batch_idle=3600.0)
    async with services(settings) as app:
        await answer(app.core, to_event("alice", "I keep bees in my garden", session="s"))
        await answer(app.core, to_event("bob", "I keep goats on my farm", session="s"))
        waiting = await app.jobs.counts()
        assert waiting.messages == 2 and waiting.jobs.get("todo") == 2
        ask = await command(app, "alice", "memory forget-all")
        go = ask.actions[0]
        await command(app, "alice", f"{go.command} {go.arguments}")
        left = await app.jobs.counts()
        assert left.messages == 1 and left.jobs.get("todo") == 1  # only Bob's
        rows = await app.database.pool.fetch("select owner_id from memory_inbox")
        assert [row["owner_id"] for row in rows] == ["console:bob"]
    # Stopping learns what still waits (Bob's), and nothing of Alice's.
    sent = [line for call in openai_server.calls("extraction") for line in said(call.body)]
    assert sent == ["I keep goats on my farm"]


async def test_an_export_holds_the_messages_still_waiting_to_be_learned(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    settings = make_settings(memory_batch_size=10, memory_batch_idle=3600.0)
    async with services(settings) as app:
        await answer(app.core, to_event("alice", "I keep bees in my garden", session="s"))
        await answer(app.core, to_event("bob", "I keep goats on my farm", session="s"))
        exported = await command(app, "alice", "memory export")
    document = json.loads(next(f for f in exported.files if f.filename.endswith(".json")).content)
    assert [m["text"] for m in document["waiting_to_be_learned"]] == ["I keep bees in my garden"]
    markdown = next(f for f in exported.files if f.filename.endswith(".md")).content.decode()
    assert "## Waiting to be learned" in markdown and "goats" not in markdown
