"""The Discord adapter end to end: the real discord.py client against the local fake Discord,
the real core on PostgreSQL and mem0, and the scripted model server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import pytest
from pydantic import SecretStr

from adapters.discord import DiscordAdapter, MembotDiscordClient
from bot.app import Services, services
from bot.choices import PAUSED_NOTICE, Place
from bot.commands.registry import default_commands
from bot.config import Settings
from bot.errors import ConfigError, StartupError
from bot.events import ChatEvent, Reply
from bot.ports import MemoryRecord, ReplyStream
from tests.fakes.discord import (
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    FakeChannel,
    FakeDiscord,
    FakeUser,
    custom_ids,
    snowflake,
)
from tests.fakes.discord.harness import TIMEOUT, point_discord_at, running
from tests.fakes.discord.payloads import EPHEMERAL, Json, Recorded
from tests.fakes.openai_server import ScriptedOpenAI

MakeSettings = Callable[..., Settings]
ADMIN = MEMBER_PERMISSIONS | MANAGE_GUILD  # a member who may manage the server


class QuickClient(MembotDiscordClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause between shards' IDENTIFYs: the fake has no identify rate limit."""


@dataclass
class Rig:
    app: Services
    client: MembotDiscordClient
    fake: FakeDiscord
    model: ScriptedOpenAI
    ran: set[tuple[str, str]] = field(default_factory=set)  # the slash commands used

    def send(self, payload: Json) -> Json:
        self.fake.dispatch("MESSAGE_CREATE", payload)
        return payload

    async def talk(self, payload: Json) -> str:
        """Send a message; once it is answered and the memory write it queued has finished
        (🧠 included), the answer's content."""
        self.send(payload)
        await self.fake.wait_for_async(
            lambda r: r.kind == "message"
            and str((r.body.get("message_reference") or {}).get("message_id")) == payload["id"])
        await self.answered()
        await self.app.jobs.wait_idle()  # queued before the answer was sent
        [answer] = [m for m in self.fake.sent_messages()
                    if str((m.body.get("message_reference") or {}).get("message_id"))
                    == payload["id"]]
        return str(self.fake.message(answer.message_id or 0)["content"])

    async def answered(self) -> None:
        """Wait until the client has finished every answer (streamed ones end with edits)."""
        async with asyncio.timeout(TIMEOUT):
            while self.client.replies_in_flight:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    def brains(self, payload: Json) -> int:
        """How many 🧠 the bot put on the message."""
        return sum(r.message_id == int(payload["id"]) and r.emoji == "🧠"
                   for r in self.fake.reactions())

    async def reply_to(self, payload: Json, count: int = 1) -> list[Recorded]:
        """Wait for ``count`` messages sent to the payload's channel, and for their answers to
        end; return them, each with the content Discord shows now (after any edits)."""
        channel = int(payload["channel_id"])
        await self.fake.wait_for_async(
            lambda r: r.kind == "message" and r.channel_id == channel, count=count)
        await self.answered()
        return [shown_now(self.fake, r) for r in self.fake.sent_messages()
                if r.channel_id == channel]

    async def settle(self) -> None:
        """Let anything in flight finish (memory writes included)."""
        await asyncio.sleep(0.2)
        await self.app.jobs.wait_idle()

    def mention(self, text: str, author: FakeUser | None = None,
                channel_id: int | None = None) -> Json:
        return self.fake.message_create(f"{self.fake.bot_mention} {text}", author=author,
                                        mentions=[self.fake.bot_user], channel_id=channel_id)

    def dm(self, text: str, author: FakeUser | None = None) -> Json:
        return self.fake.message_create(text, dm=True, author=author)

    async def slash(self, name: str, subcommand: str = "", permissions: int = MEMBER_PERMISSIONS,
                    *, dm: bool = False, **values: str) -> Recorded:
        """Alice's slash command (with a subcommand and its options, which must be ones the
        bot synced) in the server's first channel or, with ``dm``, in her DM with the bot; its
        first followup."""
        check_options(self.fake, name, subcommand, values)
        self.ran.add((name, subcommand))
        options: list[Json] = [{"name": k, "type": 3, "value": v} for k, v in values.items()]
        if subcommand:
            options = [{"name": subcommand, "type": 1, "options": options}]
        interaction = self.fake.interaction_create(name, options=options, dm=dm,
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


def shown_now(fake: FakeDiscord, sent: Recorded) -> Recorded:
    """A sent message's record with the content Discord shows now, after any edits."""
    content = fake.message(sent.message_id or 0)["content"]
    return dataclasses.replace(sent, body={**sent.body, "content": content})


def synced(fake: FakeDiscord, name: str, subcommand: str = "") -> list[Json]:
    """The options Discord knows for ``/name subcommand`` (for a group without one, its
    subcommands), as the bot synced them."""
    [command] = [c for c in fake.commands() if c["name"] == name]
    options: list[Json] = command.get("options") or []
    if subcommand:
        [sub] = [o for o in options if o["name"] == subcommand and o["type"] == 1]
        options = sub.get("options") or []
    return options


def check_options(fake: FakeDiscord, name: str, subcommand: str, values: dict[str, str]) -> None:
    """Discord's client sends only options the command has, every required one, and for an
    option with choices one of them."""
    known = {o["name"]: o for o in synced(fake, name, subcommand)}
    unknown = set(values) - set(known)
    assert not unknown, f"/{name} {subcommand} has no option {unknown}"
    required = {n for n, o in known.items() if o.get("required")}
    assert required <= set(values), f"/{name} {subcommand} needs {required - set(values)}"
    for option, value in values.items():
        choices = [c["value"] for c in known[option].get("choices") or []]
        assert not choices or value in choices, f"{option}: {value!r} is not one of {choices}"


@pytest.fixture
def fake(discord_fake: FakeDiscord) -> FakeDiscord:
    """The fake Discord, whose server has a second text channel, #random."""
    discord_fake.guilds[0].channels.append(FakeChannel(snowflake(), "random", 0, 1))
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
    pieces = [shown_now(rig.fake, m).body["content"] for m in rig.fake.sent_messages()]
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
    assert "remember" in followup.body["content"] and "- /help" in followup.body["content"]


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


def listed(content: str) -> list[str]:
    """The memories a list or search answer shows, one line each (short id, date, text)."""
    return [line for line in content.splitlines() if line.startswith("- `")]


def buttons(message: Json) -> list[tuple[str, str]]:
    """A message's buttons as (label, custom id), in order."""
    return [(str(c["label"]), str(c["custom_id"])) for row in message.get("components") or []
            for c in row["components"]]


def unused_prefix(memories: list[MemoryRecord]) -> str:
    """An 8-character id prefix no memory has."""
    return next(p for p in (c * 8 for c in "0123456789abcdef")
                if not any(m.id.startswith(p) for m in memories))


def group(rig: Rig, name: str) -> set[tuple[str, str]]:
    """Every subcommand of the slash command group ``name``, as synced."""
    return {(name, o["name"]) for o in synced(rig.fake, name)}


async def test_every_memory_subcommand_works_from_discord(rig: Rig) -> None:
    bob = FakeUser(id=snowflake(), username="bob")
    alice_owner, bob_owner = f"discord:{rig.fake.user.id}", f"discord:{bob.id}"
    facts = [f"My fact number {n:02d} is about topic{n}" for n in range(10)]
    sent: dict[str, Json] = {}
    for fact in [*facts, "My cat is named Miso", "I keep bees on my roof"]:
        sent[fact] = rig.dm(fact)
        await rig.talk(sent[fact])
    await rig.talk(rig.dm("My neighbour keeps bees too", author=bob))
    kept = await rig.app.memory.records(alice_owner)
    [bobs] = await rig.app.memory.records(bob_owner)
    assert len(kept) == 12

    # list: newest first, 10 a page, an Older button that shows page 2 with a Newer one
    first = await rig.slash("memory", "list")
    message_id = first.message_id or 0
    assert rig.fake.message(message_id)["flags"] & EPHEMERAL  # as Discord shows it: to her only
    assert "12 memories" in first.body["content"] and "(page 1 of 2)" in first.body["content"]
    page_1 = listed(first.body["content"])
    assert [line[3:11] for line in page_1] == [m.id[:8] for m in kept[:10]]
    assert "bees on my roof" in page_1[0] and not any("number 00" in line for line in page_1)
    assert buttons(rig.fake.message(message_id)) == [("Older", "membot:memory list 2")]
    older = await rig.press(message_id, "membot:memory list 2")
    assert "(page 2 of 2)" in older
    assert [line[3:11] for line in listed(older)] == [m.id[:8] for m in kept[10:]]
    assert "number 00" in listed(older)[-1]
    assert buttons(rig.fake.message(message_id)) == [("Newer", "membot:memory list 1")]
    assert listed((await rig.slash("memory", "list", page="2")).body["content"]) == listed(older)

    # search: the matching memory, not another of hers, not the other user's
    found = (await rig.slash("memory", "search", words="bees")).body["content"]
    assert [line.split(": ", 1)[1] for line in listed(found)] == ["I keep bees on my roof"]

    # why: the message a memory was learned from, quoted, dated and linked; history: all
    miso = next(m for m in kept if "Miso" in m.text)
    why = (await rig.slash("memory", "why", id=miso.id[:8])).body["content"]
    dm = sent["My cat is named Miso"]
    assert "> My cat is named Miso\n— " in why and "on Discord" in why
    assert f"https://discord.com/channels/@me/{dm['channel_id']}/{dm['id']}" in why
    history = (await rig.slash("memory", "history")).body["content"]
    assert "12 memories" in history and listed(history) == page_1

    # forget: exactly the memory named; another user's id is answered as a missing one
    bees = next(m for m in kept if "bees" in m.text)
    forgot = await rig.slash("memory", "forget", id=bees.id[:8])
    assert forgot.body["content"] == "Forgotten: “I keep bees on my roof”."
    remaining = [m for m in kept if m.id != bees.id]
    assert await rig.app.memory.records(alice_owner) == remaining
    missing_id = unused_prefix([*kept, bobs])
    not_mine = (await rig.slash("memory", "forget", id=bobs.id[:8])).body["content"]
    missing = (await rig.slash("memory", "forget", id=missing_id)).body["content"]
    assert missing.startswith("None of your memories has the id")
    assert not_mine.replace(bobs.id[:8], "ID") == missing.replace(missing_id, "ID")
    assert await rig.app.memory.records(bob_owner) == [bobs]
    assert await rig.app.memory.records(alice_owner) == remaining

    # export: every memory of hers, as JSON and as Markdown, attached to a private answer
    exported = await rig.slash("memory", "export")
    files = {u.filename.rsplit(".", 1)[1]: u.content for u in exported.uploads}
    assert sorted(files) == ["json", "md"]
    assert [m["id"] for m in json.loads(files["json"])["memories"]] == [m.id for m in remaining]
    assert all(m.id in files["md"].decode() for m in remaining)
    assert b"neighbour" not in files["json"] + files["md"]
    shown = rig.fake.message(exported.message_id or 0)
    assert shown["flags"] & EPHEMERAL
    assert sorted(a["filename"] for a in shown["attachments"]) == sorted(
        u.filename for u in exported.uploads)

    # forget-all asks first; Cancel keeps everything
    asked = await rig.slash("memory", "forget-all")
    assert "11 memories" in asked.body["content"]
    cancelled = await rig.press(asked.message_id or 0, "membot:memory forget-all cancel")
    assert cancelled == "Nothing was forgotten."
    assert rig.fake.message(asked.message_id or 0)["components"] == []
    assert await rig.app.memory.records(alice_owner) == remaining

    # pause: the notice once, no memories used, nothing learned, no 🧠; resume: all of it again
    assert (await rig.slash("memory", "pause")).body["content"].startswith("Memory paused")
    paused_dms = [rig.dm("I also keep goats. What is my cat called?"), rig.dm("I keep ducks")]
    answers = [await rig.talk(dm) for dm in paused_dms]
    assert answers[0].startswith(f"-# {PAUSED_NOTICE}\n(scripted) You said: I also keep goats")
    assert answers[1] == "(scripted) You said: I keep ducks"  # no notice, no memories
    assert "I remember" not in answers[0]
    assert [rig.brains(dm) for dm in paused_dms] == [0, 0]
    assert await rig.app.memory.records(alice_owner) == remaining
    assert (await rig.slash("memory", "resume")).body["content"].startswith("Memory is back on")
    goats = rig.dm("I keep goats now")
    assert "I remember: " in await rig.talk(goats)
    assert "I keep goats now" in [m.text for m in await rig.app.memory.records(alice_owner)]
    assert rig.brains(goats) == 1

    # receipts: off, a message is learned without 🧠; on, with it
    off = await rig.slash("memory", "receipts", value="off")
    assert off.body["content"].startswith("No more 🧠")
    tomatoes = rig.dm("I grow tomatoes")
    await rig.talk(tomatoes)
    assert "I grow tomatoes" in [m.text for m in await rig.app.memory.records(alice_owner)]
    assert rig.brains(tomatoes) == 0
    await rig.slash("memory", "receipts", value="on")
    basil = rig.dm("I grow basil")
    await rig.talk(basil)
    assert rig.brains(basil) == 1

    assert rig.ran == group(rig, "memory")


async def test_every_settings_subcommand_works_from_discord_for_admins_only(rig: Rig) -> None:
    guild = rig.fake.guilds[0]
    general, random = guild.channels
    owner = f"discord:{rig.fake.user.id}"

    async def place() -> Place:
        return await rig.app.choices.place("discord", str(guild.id))

    async def learned(text: str) -> bool:
        return text in [m.text for m in await rig.app.memory.records(owner)]

    async def ask(text: str, channel: FakeChannel = general) -> tuple[str, Json]:
        """A mention of the bot: the answer (the scripted model quotes the memories it was
        given after "I remember:") and the message."""
        mention = rig.mention(text, channel_id=channel.id)
        return await rig.talk(mention), mention

    await rig.talk(rig.dm("I keep bees on my roof"))
    shown = (await rig.slash("settings", "show")).body["content"]
    assert shown.splitlines()[1:] == [
        "- memory: on", "- channels: every channel (direct messages are never limited)",
        "- public: on (memories are used in answers in channels too)",
        "- receipts: on (a 🧠 reaction when I learn from a message)"]
    assert "I remember: " in (await ask("what do I keep?"))[0]

    # a plain member changes nothing
    for subcommand, value in [("memory", "off"), ("channels", "here"), ("public", "off"),
                              ("receipts", "off")]:
        refused = await rig.slash("settings", subcommand, value=value)
        assert refused.body["content"].startswith(
            "Only server admins (Manage Server) can change"), subcommand
    assert await place() == Place()

    # memory off: the bot neither uses nor learns memories here
    saved = await rig.slash("settings", "memory", ADMIN, value="off")
    assert saved.body["content"].startswith("Saved.") and "- memory: off" in saved.body["content"]
    assert not (await place()).memory
    answer, mention = await ask("I also keep goats. What do I keep?")
    assert "I remember" not in answer
    assert not await learned("I also keep goats. What do I keep?") and rig.brains(mention) == 0
    await rig.slash("settings", "memory", ADMIN, value="on")
    assert (await place()).memory
    assert "I remember: " in (await ask("what do I keep?"))[0]

    # channels here: memory only in this channel
    limited = await rig.slash("settings", "channels", ADMIN, value="here")
    assert f"- channels: <#{general.id}>" in limited.body["content"]
    assert (await place()).channels == (str(general.id),)
    answer, mention = await ask("I keep ducks. What do I keep?", channel=random)
    assert "I remember" not in answer and not await learned("I keep ducks. What do I keep?")
    assert "I remember: " in (await ask("what do I keep?"))[0]

    # public off: no memories in answers outside DMs, learning goes on
    await rig.slash("settings", "public", ADMIN, value="off")
    assert not (await place()).public_recall
    answer, mention = await ask("I keep hens")
    assert "I remember" not in answer
    assert await learned("I keep hens") and rig.brains(mention) == 1
    assert "I remember: " in await rig.talk(rig.dm("what do I keep?"))

    # receipts off: learned, without the 🧠
    await rig.slash("settings", "receipts", ADMIN, value="off")
    assert not (await place()).receipts
    answer, mention = await ask("I keep geese")
    assert await learned("I keep geese") and rig.brains(mention) == 0

    assert await place() == Place(memory=True, channels=(str(general.id),),
                                  public_recall=False, receipts=False)
    in_dm = await rig.slash("settings", "show", dm=True)
    assert in_dm.body["content"].startswith("Settings belong to a Discord server")
    assert rig.ran == group(rig, "settings")


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

    async def record(event: ChatEvent, stream: ReplyStream | None = None) -> Reply | None:
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
        assert "one last question" in shown_now(fake, sent).body["content"]
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
    from adapters import processes

    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{closed_port()}/api/v10")
    settings = make_settings(discord_token=SecretStr("some-token"))
    for entry in (processes.discord, processes.run):
        with pytest.raises(StartupError, match=r"^Cannot reach Discord"):
            async with asyncio.timeout(30):
                await entry(settings)
