"""The Discord adapter end to end: the real discord.py client against the local fake Discord,
the real core on PostgreSQL and mem0, and the scripted model server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from pydantic import SecretStr

from adapters.discord import DiscordAdapter, MembotDiscordClient
from bot.app import Services, services
from bot.commands import default_commands
from bot.config import Settings
from bot.errors import ConfigError, StartupError
from bot.events import ChatEvent, Reply
from tests.fakes.discord import (
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    FakeDiscord,
    FakeUser,
    custom_ids,
    snowflake,
)
from tests.fakes.discord.harness import TIMEOUT, point_discord_at, running
from tests.fakes.discord.payloads import Json, Recorded
from tests.fakes.openai_server import ScriptedOpenAI

MakeSettings = Callable[..., Settings]


class QuickClient(MembotDiscordClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause between shards' IDENTIFYs: the fake has no identify rate limit."""


@dataclass
class Rig:
    app: Services
    client: MembotDiscordClient
    fake: FakeDiscord
    model: ScriptedOpenAI

    def send(self, payload: Json) -> Json:
        self.fake.dispatch("MESSAGE_CREATE", payload)
        return payload

    async def reply_to(self, payload: Json, count: int = 1) -> list[Recorded]:
        """Wait for ``count`` messages sent to the payload's channel; return them."""
        channel = int(payload["channel_id"])
        await self.fake.wait_for_async(
            lambda r: r.kind == "message" and r.channel_id == channel, count=count)
        return [r for r in self.fake.sent_messages() if r.channel_id == channel]

    async def settle(self) -> None:
        """Let anything in flight finish (memory writes included)."""
        await asyncio.sleep(0.2)
        await self.app.jobs.wait_idle()

    def mention(self, text: str, author: FakeUser | None = None) -> Json:
        return self.fake.message_create(f"{self.fake.bot_mention} {text}", author=author,
                                        mentions=[self.fake.bot_user])

    async def slash(self, name: str, subcommand: str = "", permissions: int = MEMBER_PERMISSIONS,
                    **values: str) -> Recorded:
        """Alice's slash command (with a subcommand and its options); its first followup."""
        options: list[Json] = [{"name": k, "type": 3, "value": v} for k, v in values.items()]
        if subcommand:
            options = [{"name": subcommand, "type": 1, "options": options}]
        interaction = self.fake.interaction_create(name, options=options,
                                                   permissions=permissions)
        self.fake.dispatch("INTERACTION_CREATE", interaction)
        token = interaction["token"]
        return await self.fake.wait_for_async(
            lambda r: r.kind == "followup" and token in r.path)

    async def press(self, message_id: int, custom_id: str) -> str:
        """Alice presses a button; the content of its message once replaced."""
        interaction = self.fake.component_interaction(message_id, custom_id)
        self.fake.dispatch("INTERACTION_CREATE", interaction)
        token = interaction["token"]
        await self.fake.wait_for_async(lambda r: r.kind == "edit_original" and token in r.path)
        return str(self.fake.message(message_id)["content"])


@pytest.fixture
def fake(discord_fake: FakeDiscord) -> FakeDiscord:
    return discord_fake


@pytest.fixture
async def rig(make_settings: MakeSettings, openai_server: ScriptedOpenAI,
              fake: FakeDiscord) -> AsyncIterator[Rig]:
    settings = make_settings(discord_token=SecretStr(fake.token))
    async with services(settings) as app:
        client = QuickClient(handle=app.core.handle, commands=app.commands,
                             receipts=app.receipts)
        async with running(client, fake.token):
            yield Rig(app, client, fake, openai_server)


def thread_payload(thread_id: int, guild_id: int, parent_id: int, owner_id: int) -> Json:
    """A THREAD_CREATE payload, as Discord sends when someone starts a public thread."""
    return {
        "id": str(thread_id), "guild_id": str(guild_id), "parent_id": str(parent_id),
        "type": 11, "name": "planning", "owner_id": str(owner_id), "newly_created": True,
        "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                            "archive_timestamp": "2026-11-24T00:00:00+00:00"},
        "member_count": 1, "message_count": 0, "rate_limit_per_user": 0, "flags": 0,
    }


def prompt_of(model: ScriptedOpenAI, index: int = -1) -> list[dict[str, Any]]:
    return list(model.calls("chat")[index].body["messages"])


async def test_a_dm_is_answered_as_a_reply_with_typing_and_no_pings(rig: Rig) -> None:
    dm = rig.send(rig.fake.message_create("hello there", dm=True))
    [sent] = await rig.reply_to(dm)
    assert sent.body["content"] == "(scripted) You said: hello there"
    assert str(sent.body["message_reference"]["message_id"]) == dm["id"]
    assert sent.body["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert [t.channel_id for t in rig.fake.typing_calls()] == [int(dm["channel_id"])]


async def test_in_a_server_only_mentions_and_replies_to_the_bot_are_answered(rig: Rig) -> None:
    quiet = rig.send(rig.fake.message_create("just chatting with friends"))
    mention = rig.send(rig.mention("what is the capital of France?"))
    [first] = await rig.reply_to(mention)
    assert str(first.body["message_reference"]["message_id"]) == mention["id"]
    # The model saw the question without the bot's mention.
    assert prompt_of(rig.model)[-1]["content"] == "what is the capital of France?"

    bot_message = {**mention, "id": str(first.body.get("id") or snowflake()),
                   "author": rig.fake.bot_user.payload(), "content": first.body["content"],
                   "mentions": []}
    reply = rig.send(rig.fake.message_create("and of Spain?", reply_to=bot_message))
    answers = await rig.reply_to(reply, count=2)
    assert str(answers[1].body["message_reference"]["message_id"]) == reply["id"]
    await rig.settle()
    assert len(rig.model.calls("chat")) == 2
    assert all("just chatting" not in str(c.body) for c in rig.model.calls("chat"))
    assert quiet["id"] not in {str(m.body["message_reference"]["message_id"])
                               for m in rig.fake.sent_messages()}


async def test_a_mention_in_a_thread_is_answered_in_that_thread(rig: Rig) -> None:
    guild = rig.fake.guilds[0]
    thread_id = snowflake()
    rig.fake.dispatch("THREAD_CREATE", thread_payload(thread_id, guild.id, guild.channels[0].id,
                                                      owner_id=rig.fake.user.id))
    mention = rig.mention("what about this thread?")
    mention["channel_id"] = str(thread_id)  # the fake knows no threads; Discord sends this
    rig.send(mention)
    [sent] = await rig.reply_to(mention)
    assert str(sent.body["message_reference"]["message_id"]) == mention["id"]


async def test_bots_are_ignored_and_empty_mentions_get_a_hint(rig: Rig) -> None:
    other_bot = FakeUser(id=snowflake(), username="otherbot", bot=True)
    rig.send(rig.mention("hello from a bot", author=other_bot))
    empty = rig.send(rig.mention(""))
    [sent] = await rig.reply_to(empty)
    assert "didn't get any text" in sent.body["content"]
    await rig.settle()
    assert len(rig.fake.sent_messages()) == 1
    assert rig.model.calls("chat") == []


async def test_a_replayed_message_is_answered_once(rig: Rig) -> None:
    dm = rig.fake.message_create("remember that I like tea", dm=True)
    rig.send(dm)
    rig.send(dm)
    await rig.reply_to(dm)
    await rig.settle()
    assert len(rig.fake.sent_messages()) == 1
    assert len(rig.model.calls("chat")) == 1


async def test_a_4500_character_answer_arrives_as_three_messages_with_code_intact(
    rig: Rig,
) -> None:
    code = "\n".join(f"    value_{n:03d} = compute({n:03d}) * 2" for n in range(120))
    answer = f"Here you go:\n\n```python\n{code}\n```\n\nDone."
    answer += "\n\n" + "More words to read. " * ((4500 - len(answer)) // 20)
    assert 4450 <= len(answer) <= 4500
    rig.model.chat_reply = lambda body: answer
    dm = rig.send(rig.fake.message_create("show me code", dm=True))
    await rig.reply_to(dm)
    await rig.settle()
    pieces = [m.body["content"] for m in rig.fake.sent_messages()]
    assert len(pieces) == 3
    assert all(len(p) <= 2000 for p in pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)
    assert "value_119 = compute(119) * 2" in "".join(pieces)
    assert pieces[1].startswith("```python\n")  # the block was closed and reopened
    assert all(m.body["allowed_mentions"]["parse"] == [] for m in rig.fake.sent_messages())


async def test_model_text_pinging_everyone_goes_out_with_mentions_disabled(rig: Rig) -> None:
    rig.model.chat_reply = lambda body: "@everyone look, <@&123456> and <@654321> too"
    mention = rig.send(rig.mention("say something loud"))
    [sent] = await rig.reply_to(mention)
    assert "@everyone" in sent.body["content"]
    assert sent.body["allowed_mentions"] == {"parse": [], "replied_user": False}


async def test_a_memory_told_in_a_dm_is_used_in_a_server_for_that_person_only(rig: Rig) -> None:
    alice, bob = rig.fake.user, FakeUser(id=snowflake(), username="bob")
    told = rig.send(rig.fake.message_create("my locker code is 4711", dm=True, author=alice))
    await rig.reply_to(told)
    await rig.settle()

    asked = rig.send(rig.mention("what is my locker code?", author=bob))
    await rig.reply_to(asked)
    assert "4711" not in str(prompt_of(rig.model))  # not in memories, not in recent turns

    again = rig.send(rig.mention("what is my locker code?", author=alice))
    await rig.reply_to(again, count=2)
    assert "4711" in prompt_of(rig.model)[0]["content"]


async def test_help_is_a_slash_command_answered_privately(rig: Rig) -> None:
    assert [c["name"] for c in rig.fake.commands()] == [c.name for c in rig.app.commands.all]
    assert {"help", "link", "unlink"} <= {c["name"] for c in rig.fake.commands()}
    rig.fake.dispatch("INTERACTION_CREATE", rig.fake.interaction_create("help"))
    followup = await rig.fake.wait_for_async(lambda r: r.kind == "followup")
    callback = rig.fake.calls("interaction_callback")[0]
    assert callback.body["type"] == 5 and callback.body["data"]["flags"] == 64  # deferred
    assert followup.body["flags"] == 64
    assert "remember" in followup.body["content"] and "- help" in followup.body["content"]


async def test_what_it_learns_gets_a_brain_and_the_memory_commands_show_export_and_forget_it(
    rig: Rig,
) -> None:
    told = rig.send(rig.fake.message_create("I keep bees on my roof", dm=True))
    await rig.reply_to(told)
    await rig.settle()
    [brain] = rig.fake.reactions()
    assert (brain.channel_id, brain.message_id, brain.emoji) == (
        int(told["channel_id"]), int(told["id"]), "🧠")

    listed = await rig.slash("memory", "list")
    assert "bees" in listed.body["content"] and listed.body["flags"] == 64

    exported = await rig.slash("memory", "export")
    files = {u.filename: u.content for u in exported.uploads}
    assert any(b"bees" in content for content in files.values()), list(files)
    assert rig.fake.message(exported.message_id or 0)["flags"] & 64

    asked = await rig.slash("memory", "forget-all")
    message_id = asked.message_id or 0
    assert custom_ids(rig.fake.message(message_id)) == [
        "membot:memory forget-all confirm", "membot:memory forget-all cancel"]
    assert (await rig.press(message_id, "membot:memory forget-all confirm")).startswith(
        "Done: I forgot 1 memory")
    assert rig.fake.message(message_id)["components"] == []
    assert await rig.app.memory.records(f"discord:{rig.fake.user.id}") == []


async def test_only_someone_who_manages_the_server_changes_its_settings(rig: Rig) -> None:
    refused = await rig.slash("settings", "public", value="off")
    assert refused.body["content"].startswith("Only ")
    assert "- public: on" in (await rig.slash("settings", "show")).body["content"]
    saved = await rig.slash("settings", "public", MEMBER_PERMISSIONS | MANAGE_GUILD, value="off")
    assert saved.body["content"].startswith("Saved.")
    assert "- public: off" in (await rig.slash("settings", "show")).body["content"]


async def test_commands_sync_to_the_development_guild(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, fake: FakeDiscord
) -> None:
    guild_id = fake.guilds[0].id
    async with services(make_settings()) as app:
        client = QuickClient(handle=app.core.handle, commands=app.commands, dev_guild=guild_id)
        async with running(client, fake.token):
            await fake.wait_for_async("commands")
        names = [c.name for c in app.commands.all]
    assert [c["name"] for c in fake.commands(guild_id)] == names
    assert fake.commands() == []  # nothing global: a dev guild gets them at once


async def test_a_process_owns_the_shards_its_settings_name(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeDiscord(shard_count=4) as fake:
        point_discord_at(monkeypatch, fake)
        async with services(make_settings()) as app:
            client = QuickClient(handle=app.core.handle, commands=app.commands, shard_count=4,
                                 shard_ids=[1, 3])
            async with running(client, fake.token):
                await fake.wait_for_async("identify", count=2)
        assert sorted(tuple(i["shard"]) for i in fake.identifies()) == [(1, 4), (3, 4)]


async def test_stopping_finishes_the_reply_in_flight(rig: Rig) -> None:
    rig.model.hold("chat")
    dm = rig.send(rig.fake.message_create("a slow question", dm=True))
    await asyncio.to_thread(rig.model.wait_for, "chat", 1)
    stopping = asyncio.create_task(rig.client.stop_accepting(grace=TIMEOUT))
    await asyncio.sleep(0.05)
    late = rig.fake.message_create("too late", dm=True)
    rig.send(late)
    rig.model.release("chat")
    assert await stopping == 0
    [sent] = await rig.reply_to(dm)
    assert "a slow question" in sent.body["content"]
    await asyncio.sleep(0.2)
    assert len(rig.fake.sent_messages()) == 1


@pytest.fixture
async def mapped(make_settings: MakeSettings, openai_server: ScriptedOpenAI,
                 fake: FakeDiscord) -> AsyncIterator[tuple[FakeDiscord, list[ChatEvent]]]:
    """A client whose core only records the events the adapter made (nothing is answered)."""
    events: list[ChatEvent] = []

    async def record(event: ChatEvent) -> Reply | None:
        events.append(event)
        return None

    client = QuickClient(handle=record, commands=default_commands())
    async with running(client, fake.token):
        yield fake, events


async def events_after(fake: FakeDiscord, events: list[ChatEvent], *payloads: Json,
                       expect: int) -> list[ChatEvent]:
    for payload in payloads:
        fake.dispatch("MESSAGE_CREATE", payload)
    async with asyncio.timeout(TIMEOUT):
        while len(events) < expect:  # noqa: ASYNC110 (events arrive from the client's handlers)
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # and nothing more arrives
    return events


async def test_recorded_payloads_map_to_the_common_event(
    mapped: tuple[FakeDiscord, list[ChatEvent]],
) -> None:
    fake, events = mapped
    guild = fake.guilds[0]
    bot = fake.bot_user
    dm = fake.message_create("hi in a DM", dm=True)
    mention = fake.message_create(f"<@!{bot.id}> hi in a channel", mentions=[bot])
    ignored = fake.message_create("no mention here")
    from_bot = fake.message_create(f"{fake.bot_mention} beep", mentions=[bot],
                                   author=FakeUser(id=snowflake(), username="b", bot=True))
    own = fake.message_create("my own words", author=bot)
    empty = fake.message_create(fake.bot_mention, mentions=[bot])
    [e_dm, e_mention, e_empty] = await events_after(
        fake, events, dm, mention, ignored, from_bot, own, empty, expect=3)

    alice = fake.user.id
    assert (e_dm.event_id, e_dm.platform, e_dm.author_id) == (f"discord:{dm['id']}", "discord",
                                                              str(alice))
    assert e_dm.is_direct and e_dm.workspace_id is None and e_dm.identity_scope is None
    assert e_dm.conversation_id == f"discord:{dm['channel_id']}"
    assert e_dm.text == "hi in a DM"

    assert not e_mention.is_direct and e_mention.mentions_bot
    assert e_mention.text == "hi in a channel"
    assert e_mention.workspace_id == str(guild.id)
    assert e_mention.conversation_id == f"discord:{mention['channel_id']}:{alice}"
    assert e_empty.text == ""


async def test_a_reply_to_the_bot_and_a_thread_mention_are_for_the_bot(
    mapped: tuple[FakeDiscord, list[ChatEvent]],
) -> None:
    fake, events = mapped
    guild = fake.guilds[0]
    parent = guild.channels[0].id
    bot_says = fake.message_create("an earlier answer", author=fake.bot_user)
    reply = fake.message_create("thanks, and more?", reply_to=bot_says)
    thread_id = snowflake()
    fake.dispatch("THREAD_CREATE", thread_payload(thread_id, guild.id, parent,
                                                  owner_id=fake.user.id))
    in_thread = fake.message_create(f"{fake.bot_mention} in the thread",
                                    mentions=[fake.bot_user])
    in_thread["channel_id"] = str(thread_id)  # the fake knows no threads; Discord sends this
    [e_reply, e_thread] = await events_after(fake, events, reply, in_thread, expect=2)
    assert e_reply.text == "thanks, and more?" and not e_reply.mentions_bot
    assert e_thread.thread_id == str(thread_id)
    assert e_thread.channel_id == str(parent)
    assert e_thread.conversation_id == f"discord:{thread_id}:{fake.user.id}"


async def test_cancelling_the_adapter_finishes_the_reply_in_flight_then_closes(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, fake: FakeDiscord
) -> None:
    async with services(make_settings()) as app:
        client = QuickClient(handle=app.core.handle, commands=app.commands)
        runner = asyncio.create_task(DiscordAdapter(client, fake.token, grace=TIMEOUT).run())
        async with asyncio.timeout(TIMEOUT):
            while not client.is_ready():  # noqa: ASYNC110 (readiness is the client's own flag)
                await asyncio.sleep(0.01)
        openai_server.hold("chat")
        dm = fake.message_create("one last question", dm=True)
        fake.dispatch("MESSAGE_CREATE", dm)
        await asyncio.to_thread(openai_server.wait_for, "chat", 1)
        runner.cancel()  # what SIGTERM does to `membot discord`
        await asyncio.sleep(0.05)
        openai_server.release("chat")
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert client.is_closed()
        [sent] = fake.sent_messages()
        assert "one last question" in sent.body["content"]
        await app.jobs.wait_idle()
        assert app.jobs.done == 1  # and its memory write landed


async def test_following_its_threads_needs_and_uses_the_message_content_intent(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeDiscord(allow_privileged_intents=True) as fake:
        point_discord_at(monkeypatch, fake)
        async with services(make_settings()) as app:
            client = QuickClient(handle=app.core.handle, commands=app.commands,
                                 follow_threads=True)
            async with running(client, fake.token):
                guild = fake.guilds[0]
                mine, theirs = snowflake(), snowflake()
                for thread, owner in ((mine, fake.bot_user_id), (theirs, fake.user.id)):
                    fake.dispatch("THREAD_CREATE", thread_payload(
                        thread, guild.id, guild.channels[0].id, owner_id=owner))
                in_theirs = fake.message_create("no mention, someone else's thread")
                in_theirs["channel_id"] = str(theirs)
                fake.dispatch("MESSAGE_CREATE", in_theirs)
                in_mine = fake.message_create("no mention, in the bot's thread")
                in_mine["channel_id"] = str(mine)
                fake.dispatch("MESSAGE_CREATE", in_mine)
                sent = await fake.wait_for_async("message")
                await asyncio.sleep(0.2)
        assert sent.channel_id == mine
        assert len(fake.sent_messages()) == 1
        assert fake.identifies()[0]["intents"] & discord.Intents(message_content=True).value


async def test_following_threads_without_the_intent_granted_stops_with_one_sentence(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, fake: FakeDiscord
) -> None:
    async with services(make_settings()) as app:
        client = QuickClient(handle=app.core.handle, commands=app.commands,
                             follow_threads=True)
        with pytest.raises(ConfigError, match="DISCORD_FOLLOW_THREADS"):
            async with asyncio.timeout(TIMEOUT):
                await DiscordAdapter(client, fake.token, grace=1).run()


async def test_a_wrong_token_stops_with_one_sentence(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, fake: FakeDiscord
) -> None:
    async with services(make_settings()) as app:
        client = QuickClient(handle=app.core.handle, commands=app.commands)
        with pytest.raises(ConfigError, match="Discord rejected DISCORD_TOKEN"):
            async with asyncio.timeout(TIMEOUT):
                await DiscordAdapter(client, "not-the-token", grace=1).run()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_discord_out_of_reach_stops_with_one_sentence_also_under_membot_run(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters import cli

    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{closed_port()}/api/v10")
    settings = make_settings(discord_token=SecretStr("some-token"))
    for entry in (cli._discord, cli._run):
        with pytest.raises(StartupError, match=r"^Cannot reach Discord"):
            async with asyncio.timeout(30):
                await entry(settings)
