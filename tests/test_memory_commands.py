"""The memory commands and memory controls on the real stack: the composition root, embedded
PostgreSQL with pgvector, mem0, and the OpenAI SDK talking HTTP to the scripted server."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from adapters.console import to_event
from bot.app import Services, services
from bot.choices import PAUSED_NOTICE
from bot.config import Settings
from bot.events import ChatEvent, MessageRef, Reply, ReplyKind
from tests.conftest import answer
from tests.fakes.openai_server import ScriptedOpenAI
from tests.traces import everything_about

MakeSettings = Callable[..., Settings]


def chat_event(user: str, text: str, *, platform: str = "slack", channel: str = "C1",
               direct: bool = False, admin: bool = False, workspace: str | None = "T1"
               ) -> ChatEvent:
    """A message (or command) from ``user`` in a channel of workspace T1, or in a DM."""
    message = uuid.uuid4().hex
    return ChatEvent(
        event_id=f"{platform}:{message}",
        platform=platform,
        author_id=user,
        author_name=user,
        text=text,
        conversation_id=f"{platform}:{channel}:{user}",
        identity_scope=workspace if platform == "slack" else None,
        workspace_id=workspace,
        channel_id=channel,
        is_direct=direct,
        source=MessageRef(platform=platform, channel=channel, message=message),
        author_is_admin=admin,
    )


async def command(app: Services, user: str, line: str, **where: object) -> Reply:
    """Run ``line`` (``memory list 2``) as ``user``'s command."""
    name, _, arguments = line.partition(" ")
    event = (to_event(user, line, session="s") if not where
             else chat_event(user, line, **where))  # type: ignore[arg-type]
    reply = await app.commands.run(event, name, arguments)
    assert reply.private
    return reply


async def tell(app: Services, user: str, *texts: str) -> None:
    """``user`` says each text in the terminal, and every memory write finishes."""
    for text in texts:
        await answer(app.core, to_event(user, text, session="s"))
    await app.jobs.wait_idle()


def system_prompt(server: ScriptedOpenAI) -> str:
    return str(server.calls("chat")[-1].body["messages"][0]["content"])


@asynccontextmanager
async def running(make_settings: MakeSettings) -> AsyncIterator[Services]:
    async with services(make_settings()) as app:
        yield app


async def test_list_pages_newest_first_with_short_ids_and_dates(
    make_settings: MakeSettings,
) -> None:
    async with running(make_settings) as app:
        facts = [f"My fact number {n:02d} is about topic{n}" for n in range(12)]
        await tell(app, "alice", *facts)
        first = await command(app, "alice", "memory list")
        lines = [line for line in first.text.splitlines() if line.startswith("- `")]
        assert len(lines) == 10 and "12 memories" in first.text and "page 1 of 2" in first.text
        assert "number 11" in lines[0] and "number 02" in lines[-1]  # newest first
        assert [a.arguments for a in first.actions] == ["list 2"]
        second = await command(app, "alice", first.actions[0].command + " "
                               + first.actions[0].arguments)
        assert [line for line in second.text.splitlines() if line.startswith("- `")][-1].count(
            "number 00") == 1
        assert [a.label for a in second.actions] == ["Newer"]
        nobody = await command(app, "bob", "memory list")
        assert "anything about you yet" in nobody.text


async def test_search_shows_only_the_askers_matching_memories(make_settings: MakeSettings) -> None:
    async with running(make_settings) as app:
        await tell(app, "alice", "I drink espresso every morning", "My cat is named Miso")
        await tell(app, "bob", "I drink espresso with bob's sugar")
        found = await command(app, "alice", "memory search espresso")
        assert "espresso every morning" in found.text
        assert "Miso" not in found.text and "sugar" not in found.text
        none = await command(app, "alice", "memory search volcano")
        assert "Nothing I remember about you matches" in none.text
        hint = await command(app, "alice", "memory search")
        assert hint.kind is ReplyKind.HINT


async def test_control_characters_and_lone_surrogates_in_arguments_are_cleaned(
    make_settings: MakeSettings,
) -> None:
    async with running(make_settings) as app:
        await tell(app, "alice", "I drink espresso every morning")
        for query in ("espr\x00esso", "espresso\ud800", "\x00\ud800 espresso \x07"):
            found = await command(app, "alice", f"memory search {query}")
            assert found.kind is not ReplyKind.ERROR, found.text
            assert "espresso every morning" in found.text
        empty = await command(app, "alice", "memory search \x00\ud800")
        assert empty.kind is ReplyKind.HINT


async def _ids(app: Services, owner: str) -> list[str]:
    return [m.id for m in await app.memory.records(owner)]


async def test_forget_one_memory_by_its_short_id(make_settings: MakeSettings) -> None:
    async with running(make_settings) as app:
        await tell(app, "alice", "I live in Lisbon", "I play the cello")
        [cello, lisbon] = await app.memory.records("console:alice")
        reply = await command(app, "alice", f"memory forget {cello.id[:8]}")
        assert reply.text == "Forgotten: “I play the cello”."
        assert await _ids(app, "console:alice") == [lisbon.id]
        again = await command(app, "alice", f"memory forget {cello.id[:8]}")
        assert again.kind is ReplyKind.HINT and "None of your memories" in again.text


async def test_forgetting_someone_elses_id_does_nothing_and_says_nothing(
    make_settings: MakeSettings,
) -> None:
    async with running(make_settings) as app:
        await tell(app, "alice", "My bank PIN hint is the year of the moon landing")
        [secret] = await app.memory.records("console:alice")
        tried = await command(app, "bob", f"memory forget {secret.id}")
        unknown = await command(app, "bob", "memory forget 0000000000")
        assert tried.text == unknown.text.replace("0000000000", secret.id)
        assert "moon" not in tried.text
        assert await _ids(app, "console:alice") == [secret.id]


def _modes(folder: Path) -> dict[str, str]:
    """The permission bits of the exports saved in ``folder``, by name."""
    return {p.name: oct(p.stat().st_mode & 0o777) for p in folder.glob("membot-memories-*")}


def _saved(folder: Path) -> dict[str, str]:
    """The exports saved in ``folder``, by extension."""
    return {p.suffix[1:]: p.read_text() for p in folder.glob("membot-memories-*")}


async def test_forget_all_asks_first_then_leaves_nothing_of_that_person_anywhere(
    make_settings: MakeSettings, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings()
    async with services(settings) as app:
        await tell(app, "alice", "I am allergic to penicillin", "My sister is called Ines")
        await tell(app, "bob", "I am allergic to peanuts")
        before = await everything_about(database_url, settings.data_dir, "console:alice",
                                         "penicillin")
        assert before["memories"] > 0 and before["mem0_history"] > 0
        assert before["conversation_turns"] > 0

        ask = await command(app, "alice", "memory forget-all")
        assert "2 memories" in ask.text and "cannot be undone" in ask.text
        assert await _ids(app, "console:alice")  # asking deletes nothing
        [go, cancel] = ask.actions
        assert go.style == "danger" and cancel.label == "Cancel"
        kept = await command(app, "alice", f"{cancel.command} {cancel.arguments}")
        assert kept.text == "Nothing was forgotten." and await _ids(app, "console:alice")

        done = await command(app, "alice", f"{go.command} {go.arguments}")
        assert "I forgot 2 memories and 4 recent messages" in done.text

    after = await everything_about(database_url, settings.data_dir, "console:alice",
                                    "penicillin")
    assert set(after.values()) == {0}, after
    bob = await everything_about(database_url, settings.data_dir, "console:bob", "peanuts")
    assert bob["memories"] and bob["mem0_history"]
    assert bob["conversation_turns"]


async def test_a_write_held_back_and_released_after_forget_all_stores_nothing(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, database_url: str
) -> None:
    settings = make_settings()
    async with services(settings) as app:
        await tell(app, "alice", "I collect vinyl records")
        openai_server.hold("extraction")
        # One write in flight (its extraction call is held), one queued behind it.
        await answer(app.core, to_event("alice", "My password manager is Keepass",
                                        session="s"))
        assert await asyncio.to_thread(openai_server.wait_for, "extraction", 2)
        await answer(app.core, to_event("alice", "My locker code is behind the poster",
                                        session="s"))
        done = await command(app, "alice", "memory forget-all confirm")
        assert "I forgot 1 memory" in done.text
        openai_server.release("extraction")
        await app.jobs.wait_idle()
        assert app.jobs.failed == 0
        for needle in ("Keepass", "locker", "vinyl"):
            found = await everything_about(database_url, settings.data_dir, "console:alice",
                                            needle)
            assert set(found.values()) == {0}, (needle, found)
        # What is said after the forget is learned as usual.
        await tell(app, "alice", "I started learning Portuguese")
        assert [m.text for m in await app.memory.records("console:alice")] == [
            "I started learning Portuguese"]


async def test_export_holds_every_memory_of_the_person_and_nothing_of_anyone_else(
    make_settings: MakeSettings,
) -> None:
    async with running(make_settings) as app:
        await tell(app, "alice", "I run marathons", "I grow tomatoes on my balcony",
                   "My favourite author is Saramago")
        await tell(app, "bob", "I restore old motorbikes")
        reply = await command(app, "alice", "memory export")
        files = {f.filename.rsplit(".", 1)[1]: f for f in reply.files}
        assert set(files) == {"json", "md"}
        exported = json.loads(files["json"].content)
        stored = await app.memory.records("console:alice")
        assert [m["id"] for m in exported["memories"]] == [m.id for m in stored]
        assert [m["text"] for m in exported["memories"]] == [m.text for m in stored]
        for memory in exported["memories"]:
            assert memory["created_at"] and memory["metadata"]["platform"] == "console"
            assert memory["metadata"]["event_ids"].startswith("console:")
        markdown = files["md"].content.decode()
        for memory in stored:
            assert memory.text in markdown and memory.id in markdown
        for file in files.values():
            assert b"motorbikes" not in file.content and b"console:bob" not in file.content
        assert len(exported["recent_messages"]) == 6


async def test_pause_stops_using_and_learning_and_says_so_once(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with running(make_settings) as app:
        await tell(app, "alice", "I am vegetarian")
        paused = await command(app, "alice", "memory pause")
        assert paused.text.startswith("Memory paused")
        assert "already paused" in (await command(app, "alice", "memory pause")).text
        extractions = len(openai_server.calls("extraction"))

        first = await answer(app.core, to_event("alice", "what do I eat? I like rice",
                                                session="t"))
        assert first.notice == PAUSED_NOTICE
        assert "vegetarian" not in system_prompt(openai_server)
        second = await answer(app.core, to_event("alice", "and for dessert?", session="t"))
        assert second.notice is None
        await app.jobs.wait_idle()
        assert len(openai_server.calls("extraction")) == extractions
        assert [m.text for m in await app.memory.records("console:alice")] == ["I am vegetarian"]

        assert "back on" in (await command(app, "alice", "memory resume")).text
        await tell(app, "alice", "what do I eat?")
        assert "vegetarian" in system_prompt(openai_server)
        await tell(app, "alice", "I like lentils")  # learned again (the question is no fact)
        assert sorted(m.text for m in await app.memory.records("console:alice")) == [
            "I am vegetarian", "I like lentils"]


async def test_settings_are_refused_to_non_admins_and_honoured_in_answers(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with running(make_settings) as app:
        owner = "slack:T1:U1"

        async def say(text: str, **where: object) -> None:
            await answer(app.core, chat_event("U1", text, **where))  # type: ignore[arg-type]
            await app.jobs.wait_idle()

        await say("I am a night owl", direct=True, channel="D1")
        refused = await command(app, "U1", "settings memory off", channel="C1")
        assert refused.kind is ReplyKind.ERROR and "workspace admins" in refused.text
        shown = await command(app, "U1", "settings show", channel="C1")
        assert "- memory: on" in shown.text

        saved = await command(app, "U9", "settings memory off", channel="C1", admin=True)
        assert "- memory: off" in saved.text
        await say("when do I sleep? I like tea", channel="C1")
        assert "night owl" not in system_prompt(openai_server)
        await say("when do I sleep?", direct=True, channel="D1")  # the workspace's DMs too
        assert "night owl" not in system_prompt(openai_server)
        assert [m.text for m in await app.memory.records(owner)] == ["I am a night owl"]

        await command(app, "U9", "settings memory on", channel="C1", admin=True)
        limited = await command(app, "U9", "settings channels here", channel="C1", admin=True)
        assert "<#C1>" in limited.text
        await say("when do I sleep?", channel="C2")
        assert "night owl" not in system_prompt(openai_server)
        await say("when do I sleep?", channel="C1")
        assert "night owl" in system_prompt(openai_server)

        await command(app, "U9", "settings channels all", channel="C1", admin=True)
        await command(app, "U9", "settings public off", channel="C1", admin=True)
        await say("when do I sleep? I also like chess", channel="C2")
        assert "night owl" not in system_prompt(openai_server)
        assert "I also like chess" in " ".join(m.text for m in await app.memory.records(owner))
        await say("when do I sleep?", direct=True, channel="D1")
        assert "night owl" in system_prompt(openai_server)

        # Another workspace, and Discord, are not touched by this one's settings.
        other = await command(app, "U1", "settings show", channel="C1", workspace="T2")
        assert "- public: on" in other.text
        nowhere = await command(app, "alice", "settings show")
        assert "Discord server or a Slack workspace" in nowhere.text


async def test_receipts_come_for_learned_messages_unless_turned_off(
    make_settings: MakeSettings,
) -> None:
    async with running(make_settings) as app:
        seen: list[MessageRef] = []

        async def react(source: MessageRef, emoji: str) -> None:
            assert emoji == "🧠"
            seen.append(source)

        app.receipts.register("slack", react)

        async def say(text: str) -> ChatEvent:
            event = chat_event("U1", text, direct=True, channel="D1")
            await answer(app.core, event)
            await app.jobs.wait_idle()
            return event

        learned = await say("I keep bees")
        assert seen == [learned.source]
        await say("ok")  # nothing to learn from two letters: no receipt
        assert len(seen) == 1

        await command(app, "U1", "memory receipts off", channel="D1", direct=True)
        await say("I keep chickens too")
        assert len(seen) == 1
        await command(app, "U1", "memory receipts on", channel="D1", direct=True)
        await command(app, "U9", "settings receipts off", channel="C1", admin=True)
        await say("I keep goats as well")
        assert len(seen) == 1
        assert len(await app.memory.records("slack:T1:U1")) == 3


async def test_the_terminal_has_every_memory_command(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    from adapters.console import ConsoleAdapter

    lines = [
        "I play chess on Sundays",
        "I read Portuguese novels",
        ":memory list",
        ":memory forget {newest}",
        ":memory search chess",
        ":memory export",
        ":memory pause",
        ":memory resume",
        ":memory receipts off",
        ":settings show",
        ":memory forget-all",
        ":memory forget-all confirm",
        ":memory list",
    ]
    out = io.StringIO()
    async with running(make_settings) as app:
        adapter = ConsoleAdapter(app.core.handle, app.commands, user="alice",
                                 stdin=io.StringIO(""), stdout=out, files_dir=tmp_path,
                                 receipts=app.receipts)
        await adapter.run()  # empty input: just the greeting
        for line in lines:
            newest = re.findall(r"^- `([0-9a-f]{8})`", out.getvalue(), re.MULTILINE)
            await adapter.line(line.format(newest=newest[0] if newest else ""))
            await app.jobs.wait_idle()
    text = out.getvalue()
    assert "What I remember about you: 2 memories" in text
    assert "Forgotten: “I read Portuguese novels”." in text
    assert "Settings belong to a Discord server or a Slack workspace" in text
    assert "🧠 learned from your message: “I play chess on Sundays”" in text
    assert "What I remember about “chess”" in text
    assert "Memory paused" in text and "Memory is back on" in text
    assert "No more 🧠 reactions" in text
    assert "[Forget everything] :memory forget-all confirm" in text
    assert "I forgot 1 memory" in text
    assert text.rstrip().endswith("I don't remember anything about you yet.")
    saved = _saved(tmp_path)
    assert sorted(saved) == ["json", "md"]
    # An export holds a person's memories: only they may read it, whatever the umask allows.
    assert set(_modes(tmp_path).values()) == {"0o600"}, _modes(tmp_path)
    assert "(readable by you only)" in text
    assert "I play chess on Sundays" in saved["md"]


async def test_forgetting_reaches_mem0s_entity_links(
    make_settings: MakeSettings, database_url: str
) -> None:
    """Mem0 links names found in memories to the memories' ids, in ``<table>_entities`` (made
    when its entity extractor is installed, which these tests do not install: the table is
    made here as Mem0 makes it)."""
    async with running(make_settings) as app:
        await tell(app, "alice", "My brother Tomas lives in Porto", "Tomas plays the oboe")
        await tell(app, "bob", "My friend Tomas is a chef")
        porto, oboe = sorted(await app.memory.records("console:alice"), key=lambda m: m.text)
        [chef] = await app.memory.records("console:bob")
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "create table memories_entities (id uuid primary key, vector vector(64),"
                " payload jsonb)")
            entities = [("console:alice", "Tomas", [porto.id, oboe.id]),
                        ("console:alice", "Porto", [porto.id]),
                        ("console:bob", "Tomas", [chef.id])]
            for owner, name, linked in entities:
                await conn.execute(
                    "insert into memories_entities (id, payload) values ($1, $2::jsonb)",
                    uuid.uuid4(), json.dumps({"data": name, "user_id": owner,
                                              "linked_memory_ids": linked}))

            async def links() -> dict[tuple[str, str], list[str]]:
                rows = await conn.fetch("select payload from memories_entities")
                found = [json.loads(r["payload"]) for r in rows]
                return {(p["user_id"], p["data"]): p["linked_memory_ids"] for p in found}

            await command(app, "alice", f"memory forget {porto.id[:8]}")
            assert await links() == {("console:alice", "Tomas"): [oboe.id],
                                     ("console:bob", "Tomas"): [chef.id]}
            await command(app, "alice", "memory forget-all confirm")
            assert await links() == {("console:bob", "Tomas"): [chef.id]}
        finally:
            await conn.close()


async def test_the_pause_notice_waits_for_a_direct_message_and_is_not_rearmed(
    make_settings: MakeSettings,
) -> None:
    async with running(make_settings) as app:
        await command(app, "U1", "memory pause", channel="D1", direct=True)
        in_channel = await answer(app.core, chat_event("U1", "hello all", channel="C1"))
        assert in_channel.notice is None  # the channel is not told this person paused memory
        await command(app, "U1", "memory pause", channel="D1", direct=True)  # already paused
        first = await answer(app.core, chat_event("U1", "hi", channel="D1", direct=True))
        assert first.notice == PAUSED_NOTICE
        await command(app, "U1", "memory pause", channel="D1", direct=True)
        later = await answer(app.core, chat_event("U1", "hi again", channel="D1", direct=True))
        assert later.notice is None


async def test_here_in_a_direct_message_limits_nothing(make_settings: MakeSettings) -> None:
    async with running(make_settings) as app:
        reply = await command(app, "U9", "settings channels here", channel="D9", direct=True,
                              admin=True)
        assert reply.kind is ReplyKind.HINT and "never limited" in reply.text
        assert (await app.choices.place("slack", "T1")).channels == ()


async def test_counts_read_as_english_with_one_of_anything(make_settings: MakeSettings) -> None:
    async with services(make_settings(in_process_worker=False)) as app:
        await answer(app.core, to_event("alice", "I grow tomatoes on my balcony", session="s"))
        waiting = await command(app, "alice", "memory list")
        assert "still learning from your last message:" in waiting.text
        assert "1 message" not in waiting.text
    async with running(make_settings) as app:
        await app.jobs.wait_idle()
        listed = await command(app, "alice", "memory list")
        assert "What I remember about you: 1 memory, newest first." in listed.text
        beyond = await command(app, "alice", "memory list 3")
        assert beyond.text.startswith("There is only one page: :memory list 1")
        wrong = await command(app, "alice", "memory list abc")
        assert wrong.text == "The page is a number: :memory list 1."
        exported = await command(app, "alice", "memory export")
        assert "1 memory and 2 recent messages" in exported.text
        gone = await command(app, "alice", "memory forget-all confirm")
        assert "I forgot 1 memory and 2 recent messages." in gone.text
