"""Where a Discord message is (``ChatEvent.source``) and the 🧠 receipt put on it: the real
discord.py client against the fake Discord, with the receipt router production uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
import pytest

from adapters.discord import MembotDiscordClient
from bot.commands.registry import default_commands
from bot.events import ChatEvent, MessageRef, Reply
from bot.ports import ReplyStream
from bot.receipts import LEARNED, ReceiptRouter
from tests.fakes.discord import FakeDiscord, Json, snowflake
from tests.fakes.discord import payloads as p
from tests.fakes.discord.harness import TIMEOUT, running, without_waits


@dataclass
class Rig:
    fake: FakeDiscord
    client: MembotDiscordClient
    receipts: ReceiptRouter
    events: asyncio.Queue[ChatEvent]

    async def event_for(self, payload: Json) -> ChatEvent:
        """Dispatch a message; the event the adapter made of it."""
        self.fake.dispatch("MESSAGE_CREATE", payload)
        async with asyncio.timeout(TIMEOUT):
            event = await self.events.get()
        assert event.event_id == f"discord:{payload['id']}"
        return event

    def mention(self, text: str) -> Json:
        return self.fake.message_create(f"{self.fake.bot_mention} {text}",
                                        mentions=[self.fake.bot_user])


@pytest.fixture
async def rig(discord_fake: FakeDiscord) -> AsyncIterator[Rig]:
    events: asyncio.Queue[ChatEvent] = asyncio.Queue()

    async def record(event: ChatEvent, stream: ReplyStream | None = None) -> Reply | None:
        events.put_nowait(event)
        return None

    receipts = ReceiptRouter()
    client = without_waits(MembotDiscordClient(handle=record, commands=default_commands(),
                                               receipts=receipts))
    async with running(client, discord_fake.token):
        yield Rig(discord_fake, client, receipts, events)


def start_thread(fake: FakeDiscord) -> int:
    """A public thread in the first channel, as Discord announces it; its id."""
    guild, thread_id = fake.guilds[0], snowflake()
    fake.dispatch("THREAD_CREATE", {
        **p.thread(thread_id, guild.id, guild.channels[0].id, fake.user.id),
        "newly_created": True})
    return thread_id


async def test_a_message_event_says_where_the_message_is(rig: Rig) -> None:
    dm = rig.fake.message_create("hello", dm=True)
    mention = rig.mention("hi in a channel")
    thread_id = start_thread(rig.fake)
    in_thread = rig.mention("hi in a thread")
    in_thread["channel_id"] = str(thread_id)  # the fake knows no threads; Discord sends this

    for payload in (dm, mention, in_thread):
        event = await rig.event_for(payload)
        assert event.source == MessageRef(platform="discord", channel=payload["channel_id"],
                                          message=payload["id"])
    assert event.thread_id == str(thread_id)
    assert event.channel_id == str(rig.fake.guilds[0].channels[0].id)  # the thread's parent


@pytest.mark.parametrize("where", ["dm", "channel", "thread"])
async def test_a_learned_receipt_reacts_with_a_brain_on_that_message(
    rig: Rig, where: str,
) -> None:
    if where == "dm":
        payload = rig.fake.message_create("I like green tea", dm=True)
    else:
        payload = rig.mention("I like green tea")
    if where == "thread":
        payload["channel_id"] = str(start_thread(rig.fake))
    event = await rig.event_for(payload)
    assert event.source is not None

    await rig.receipts.learned(event.source)  # what the memory writer does
    [reaction] = rig.fake.reactions()
    assert (reaction.channel_id, reaction.message_id) == (int(payload["channel_id"]),
                                                          int(payload["id"]))
    assert (reaction.emoji, reaction.status) == (LEARNED, 204)


async def test_a_refused_reaction_raises_to_the_router_which_logs_it(
    rig: Rig, caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = MessageRef(platform="discord", channel=str(snowflake()), message=str(snowflake()))
    with pytest.raises(discord.NotFound):
        await rig.client.react(nowhere, LEARNED)
    with caplog.at_level(logging.WARNING, logger="bot.receipts"):
        await rig.receipts.learned(nowhere)
    assert "learned-receipt on a discord message failed" in caplog.text
    assert [r.status for r in rig.fake.reactions()] == [404, 404]
