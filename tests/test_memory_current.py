"""Memories that stay current and say where they came from, on the real stack: the learning
step's extraction (scripted model server) marks what a new fact replaces or the person took
back; superseded memories leave search and the prompt but stay in ``memory history``, ``memory
why`` and exports; forgetting still removes everything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from adapters.console import to_event
from bot.app import Services, services
from bot.config import Settings
from tests.conftest import answer
from tests.fakes.openai_server import ScriptedOpenAI, kept_notes, new_messages
from tests.test_memory_commands import command, system_prompt, tell
from tests.traces import everything_about

MakeSettings = Callable[..., Settings]


def moves(body: dict[str, Any]) -> list[str | dict[str, Any]]:
    """A model that knows moving: "I moved to X" replaces any kept note about living somewhere;
    any other message is a fact word for word."""
    notes = kept_notes(body)
    facts: list[str | dict[str, Any]] = []
    for n, text in enumerate(new_messages(body), 1):
        if text.startswith("I moved to "):
            city = text.removeprefix("I moved to ").rstrip(".!")
            facts.append({"fact": f"Lives in {city}", "from": [n], "when": "2026-11-30",
                          "replaces": [i for i, note in enumerate(notes, 1)
                                       if "live" in note.lower()]})
        else:
            facts.append({"fact": text, "from": [n]})
    return facts


async def current(app: Services, owner: str) -> list[str]:
    return sorted(m.text for m in await app.memory.records(owner, superseded=False))


async def test_a_replaced_fact_leaves_search_and_the_prompt_but_stays_in_history_and_exports(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, database_url: str
) -> None:
    openai_server.extraction_reply = moves
    async with services(make_settings()) as app:
        await tell(app, "alice", "I live in Porto")
        [porto] = await app.memory.records("console:alice")
        await tell(app, "alice", "I moved to Lisbon!")
        assert await current(app, "console:alice") == ["Lives in Lisbon"]
        lisbon = next(m for m in await app.memory.records("console:alice")
                      if m.text == "Lives in Lisbon")
        old = next(m for m in await app.memory.records("console:alice") if m.id == porto.id)
        assert old.superseded is not None and old.superseded.by == lisbon.id
        assert lisbon.superseded is None and lisbon.metadata["happened"] == "2026-11-30"

        # The extraction saw the old note; search and the answer's prompt no longer do.
        [extraction] = [c for c in openai_server.calls("extraction")
                        if "I moved to Lisbon!" in new_messages(c.body)]
        assert kept_notes(extraction.body) == ["I live in Porto"]
        assert [h.text for h in await app.memory.search("console:alice", "Porto", 10)] == [
            "Lives in Lisbon"]
        await answer(app.core, to_event("alice", "Where do I live, Porto?", session="new"))
        await app.jobs.wait_idle()  # a question: nothing to learn
        assert "Lisbon" in system_prompt(openai_server)
        assert "Porto" not in system_prompt(openai_server).split("<memories>")[1]

        listed = await command(app, "alice", "memory list")
        assert "Lives in Lisbon" in listed.text and "Porto" not in listed.text
        assert "1 memory" in listed.text
        history = await command(app, "alice", "memory history")
        assert "2 memories" in history.text
        [line] = [x for x in history.text.splitlines() if "Porto" in x]
        assert f"(replaced {old.superseded.at:%Y-%m-%d} by `{lisbon.id[:8]}`)" in line
        assert (await command(app, "alice", "memory list --all")).text == history.text

        why = await command(app, "alice", f"memory why {lisbon.id[:8]}")
        assert "“Lives in Lisbon”" in why.text and "> I moved to Lisbon!" in why.text
        assert "on the terminal" in why.text and "It replaced “I live in Porto”" in why.text
        why_old = await command(app, "alice", f"memory why {porto.id[:8]}")
        assert "> I live in Porto" in why_old.text
        assert "No longer current: replaced on" in why_old.text and "Lisbon" in why_old.text

        exported = await command(app, "alice", "memory export")
        document = json.loads(exported.files[0].content)
        by_id = {m["id"]: m for m in document["memories"]}
        assert by_id[porto.id]["current"] is False
        assert by_id[porto.id]["superseded"]["by"] == lisbon.id
        assert [s["text"] for s in by_id[lisbon.id]["learned_from"]] == ["I moved to Lisbon!"]
        markdown = exported.files[1].content.decode()
        assert "no longer current: replaced" in markdown and "learned from:" in markdown

        done = await command(app, "alice", "memory forget-all confirm")
        assert "I forgot 2 memories" in done.text
    left = await everything_about(database_url, app.settings.data_dir, "console:alice", "Porto")
    assert set(left.values()) == {0}, left


async def test_forget_that_i_takes_a_memory_back_without_deleting_it(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings()) as app:
        await tell(app, "alice", "I play chess on Sundays", "I keep bees")
        openai_server.extraction_reply = lambda body: []
        openai_server.retract_notes = {"I play chess on Sundays"}
        await tell(app, "alice", "Forget that I play chess, it isn't true")
        assert await current(app, "console:alice") == ["I keep bees"]
        history = await command(app, "alice", "memory history")
        [line] = [x for x in history.text.splitlines() if "chess" in x]
        assert "(taken back " in line
        chess = next(m for m in await app.memory.records("console:alice") if "chess" in m.text)
        why = await command(app, "alice", f"memory why {chess.id[:8]}")
        assert "No longer current: you took it back on" in why.text
        assert chess.superseded is not None and chess.superseded.event_id is not None


async def test_a_write_undone_by_a_pause_also_undoes_what_it_superseded(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    openai_server.extraction_reply = moves
    async with services(make_settings()) as app:
        await tell(app, "alice", "I live in Porto")
        held = openai_server.hold("extraction")
        try:
            await answer(app.core, to_event("alice", "I moved to Lisbon", session="s"))
            assert await asyncio.to_thread(openai_server.wait_for, "extraction", 2)
            await command(app, "alice", "memory pause")
        finally:
            held.set()
        await app.jobs.wait_idle()
        assert await current(app, "console:alice") == ["I live in Porto"]
        assert [m.superseded for m in await app.memory.records("console:alice")] == [None]


async def test_memories_stored_by_earlier_versions_are_searched_listed_superseded_and_forgotten(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    openai_server.extraction_reply = moves
    async with services(make_settings()) as app:
        # What earlier versions stored: Mem0's own row, with no sources and no dates of ours.
        mem0 = app.memory._mem0
        await asyncio.to_thread(mem0.add, [{"role": "user", "content": "Lives in Oslo"}],
                                user_id="console:alice", infer=False,
                                metadata={"platform": "console", "batch": "console:old",
                                          "event_ids": "console:old"})
        [oslo] = await app.memory.records("console:alice")
        assert oslo.sources == () and oslo.superseded is None
        assert [h.text for h in await app.memory.search("console:alice", "Oslo", 5)] == [
            "Lives in Oslo"]
        why = await command(app, "alice", f"memory why {oslo.id[:8]}")
        assert "before I kept the messages each memory comes from" in why.text

        await tell(app, "alice", "I moved to Bergen")
        assert await current(app, "console:alice") == ["Lives in Bergen"]
        assert "Oslo" in (await command(app, "alice", "memory history")).text
        forgot = await command(app, "alice", f"memory forget {oslo.id[:8]}")
        assert "Forgotten: “Lives in Oslo”" in forgot.text
        assert [m.text for m in await app.memory.records("console:alice")] == ["Lives in Bergen"]


@pytest.mark.parametrize("status", [400, 500])
async def test_a_server_without_json_schema_is_asked_for_a_json_object_from_then_on(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, status: int
) -> None:
    openai_server.refuses_schemas = status  # 500: as llama-cpp-python's server refuses it
    async with services(make_settings(model_max_retries=1)) as app:
        await tell(app, "alice", "I keep bees")
        await tell(app, "alice", "I grow figs")
        asked = [c.body["response_format"]["type"] for c in openai_server.calls("extraction")]
        # Asked once: not retried, even as a 500, until the server has taken json_schema.
        assert asked == ["json_schema", "json_object", "json_object"]
        assert await current(app, "console:alice") == ["I grow figs", "I keep bees"]
        [schema] = [c.body["response_format"]["json_schema"]
                    for c in openai_server.calls("extraction")[:1]]
        assert schema["strict"] is True and schema["schema"]["required"] == ["facts",
                                                                             "retracted"]


async def test_a_passing_failure_while_json_schema_is_untried_is_no_refusal(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    openai_server.fail_next("extraction", 500)
    async with services(make_settings(memory_write_attempts=2)) as app:
        await tell(app, "alice", "I keep bees")  # the job's second attempt learns it
        await tell(app, "alice", "I grow figs")
        asked = [c.body["response_format"]["type"] for c in openai_server.calls("extraction")]
        assert asked == ["json_schema"] * 3
        assert await current(app, "console:alice") == ["I grow figs", "I keep bees"]


async def test_a_slow_embedding_server_slows_the_answer_s_memories_but_never_fails_learning(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    """The reply's search gives up at MEMORY_SEARCH_TIMEOUT; the learning step's look-up of
    what the person already has waits as long as any model call."""
    async with services(make_settings(memory_search_timeout=0.3, memory_write_attempts=1,
                                      model_timeout=10.0)) as app:
        await tell(app, "alice", "I live in Porto")
        openai_server.embedding_delay = 0.6
        try:
            await tell(app, "alice", "I keep bees")
        finally:
            openai_server.embedding_delay = 0.0
        assert (await app.jobs.counts()).failed_messages == 0
        assert await current(app, "console:alice") == ["I keep bees", "I live in Porto"]
        [second] = [c for c in openai_server.calls("extraction")
                    if "I keep bees" in new_messages(c.body)]
        assert kept_notes(second.body) == ["I live in Porto"]


async def test_extractions_sent_at_once_ask_a_refusing_server_for_json_schema_only_once(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    openai_server.refuses_schemas = 500
    async with services(make_settings(memory_write_threads=4)) as app:
        people = ["ann", "ben", "cat", "dan"]
        held = openai_server.hold("extraction")
        try:
            await asyncio.gather(*(answer(app.core, to_event(p, f"{p} keeps bees",
                                                             session="s")) for p in people))
            assert await asyncio.to_thread(openai_server.wait_for, "extraction", 1)
            # Every job is running by now; only the first may be asking.
            assert not await asyncio.to_thread(openai_server.wait_for, "extraction", 2, 1.0)
        finally:
            held.set()
        await app.jobs.wait_idle()
        asked = [c.body["response_format"]["type"] for c in openai_server.calls("extraction")]
        assert sorted(asked) == ["json_object"] * 4 + ["json_schema"]
        for person in people:
            assert await current(app, f"console:{person}") == [f"{person} keeps bees"]
