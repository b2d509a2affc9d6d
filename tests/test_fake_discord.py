"""The Discord stand-in works with the real discord.py: login, gateway, messages, interactions."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes.discord import FakeDiscord, FakeGuild, shard_for, snowflake
from tests.fakes.discord.harness import TIMEOUT, point_discord_at, running


@pytest.fixture
def fake(discord_fake: FakeDiscord) -> FakeDiscord:
    return discord_fake


def new_client() -> discord.Client:
    return discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.1)


def message_queue(client: discord.Client) -> asyncio.Queue[discord.Message]:
    queue: asyncio.Queue[discord.Message] = asyncio.Queue()

    @client.event
    async def on_message(message: discord.Message) -> None:
        queue.put_nowait(message)

    return queue


async def next_message(queue: asyncio.Queue[discord.Message]) -> discord.Message:
    async with asyncio.timeout(TIMEOUT):
        return await queue.get()


async def test_client_logs_in_and_sees_the_guild(fake: FakeDiscord) -> None:
    async with running(new_client(), fake.token) as client:
        assert client.user is not None and client.user.id == fake.bot_user_id
        assert client.application_id == fake.application_id
        [guild] = client.guilds
        assert guild.id == fake.guilds[0].id and guild.me is not None
        assert [c.name for c in guild.text_channels] == ["general"]
    [identify] = fake.identifies()
    assert identify["token"] == fake.token
    assert identify["intents"] == discord.Intents.default().value
    assert "shard" not in identify
    assert [r.kind for r in fake.requests[:3]] == ["users_me", "application", "identify"]
    assert fake.unknown_routes() == []


async def test_wrong_token_is_refused(fake: FakeDiscord) -> None:
    client = new_client()
    with pytest.raises(discord.LoginFailure):
        async with asyncio.timeout(TIMEOUT):
            await client.login("not-the-token")
    await client.close()
    assert fake.calls("users_me")[0].status == 401


async def test_privileged_intents_are_refused_unless_allowed(fake: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.all(), guild_ready_timeout=0.1)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with asyncio.timeout(TIMEOUT), running(client, fake.token):
            pass


async def test_reconnect_resumes_and_events_still_arrive(fake: FakeDiscord) -> None:
    client = new_client()
    queue = message_queue(client)
    async with running(client, fake.token):
        assert fake.reconnect() == 1
        await fake.wait_for_async("resume")
        async with asyncio.timeout(TIMEOUT):
            while True:  # the new connection may not have resumed yet
                with contextlib.suppress(LookupError):
                    fake.dispatch("MESSAGE_CREATE", fake.message_create("again", dm=True))
                    break
                await asyncio.sleep(0.01)
        assert (await next_message(queue)).content == "again"
    assert len(fake.identifies()) == 1 and len(fake.calls("resume")) == 1


async def test_dm_and_mention_arrive_and_replies_are_recorded(fake: FakeDiscord) -> None:
    client = new_client()
    queue = message_queue(client)
    async with running(client, fake.token):
        dm = fake.message_create("hello bot", dm=True)
        fake.dispatch("MESSAGE_CREATE", dm)
        message = await next_message(queue)
        assert (message.content, message.guild) == ("hello bot", None)
        assert isinstance(message.channel, discord.DMChannel)
        assert message.author.id == fake.user.id

        await message.reply("hi", mention_author=False,
                            allowed_mentions=discord.AllowedMentions.none())
        sent = await fake.wait_for_async("message")
        assert sent.channel_id == int(dm["channel_id"]) and sent.status == 200
        assert sent.body["content"] == "hi"
        assert str(sent.body["message_reference"]["message_id"]) == dm["id"]
        assert sent.body["allowed_mentions"] == {"parse": [], "replied_user": False}

        mention = fake.message_create(f"{fake.bot_mention} what do you know?",
                                      mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", mention)
        message = await next_message(queue)
        assert message.content == f"{fake.bot_mention} what do you know?"
        assert message.guild is not None and message.guild.id == fake.guilds[0].id
        assert client.user in message.mentions
        async with message.channel.typing():
            pass
        typing = await fake.wait_for_async("typing")
        assert typing.channel_id == message.channel.id and typing.status == 204

        channel = await client.create_dm(discord.Object(fake.user.id))
        await channel.send("a DM the bot starts")
        started = await fake.wait_for_async(lambda r: r.kind == "message" and r.status == 200,
                                            count=2)
        assert started.channel_id == channel.id == fake.dm_channel_id(fake.user.id)
        assert fake.calls("open_dm")[0].body == {"recipient_id": fake.user.id}

        # Without the message content intent, other guild chatter arrives blank.
        fake.dispatch("MESSAGE_CREATE", fake.message_create("just chatting"))
        assert (await next_message(queue)).content == ""


async def test_slash_command_syncs_and_answers_ephemerally(fake: FakeDiscord) -> None:
    client = new_client()
    tree = app_commands.CommandTree(client)
    answered: list[discord.InteractionCallbackResponse[Any]] = []

    @tree.command(name="help", description="What this bot does")
    async def help_command(interaction: discord.Interaction) -> None:
        answered.append(await interaction.response.send_message("x", ephemeral=True))
        await interaction.followup.send("more", ephemeral=True)

    async with running(client, fake.token):
        await tree.sync()
        assert [c["name"] for c in fake.commands()] == ["help"]
        assert fake.calls("commands")[0].path == f"/applications/{fake.application_id}/commands"

        fake.dispatch("INTERACTION_CREATE", fake.interaction_create("help"))
        followup = await fake.wait_for_async("followup")
    callback, _ = fake.interaction_responses()
    assert callback.kind == "interaction_callback" and callback.status == 200
    assert callback.body["type"] == 4
    assert callback.body["data"]["content"] == "x" and callback.body["data"]["flags"] == 64
    assert followup.status == 200 and followup.body["content"] == "more"
    assert answered[0].is_ephemeral()


async def test_late_interaction_answer_is_refused(fake: FakeDiscord) -> None:
    fake.interaction_deadline = 0.0
    client = new_client()
    tree = app_commands.CommandTree(client)
    refused: asyncio.Future[discord.NotFound] = asyncio.get_running_loop().create_future()

    @tree.command(name="help", description="What this bot does")
    async def help_command(interaction: discord.Interaction) -> None:
        try:
            await interaction.response.send_message("too late")
        except discord.NotFound as error:
            refused.set_result(error)

    async with running(client, fake.token):
        fake.dispatch("INTERACTION_CREATE", fake.interaction_create("help"))
        async with asyncio.timeout(TIMEOUT):
            error = await refused
    assert error.code == 10062
    assert fake.interaction_responses()[0].status == 404


async def test_unknown_routes_are_recorded(fake: FakeDiscord) -> None:
    async with running(new_client(), fake.token) as client:
        with pytest.raises(discord.NotFound):
            await client.fetch_channel(1234)
    [unknown] = fake.unknown_routes()
    assert await asyncio.to_thread(fake.wait_for, "unknown", 1.0) == unknown  # from a thread
    assert (unknown.method, unknown.path, unknown.status) == ("GET", "/channels/1234", 404)
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as session, session.get(
            f"{fake.rest_base}/users/@me", headers=headers) as response:
        # Exactly this: discord.py reads a body with "; charset=utf-8" as text.
        assert response.headers["Content-Type"] == "application/json"
        assert (await response.json())["id"] == str(fake.bot_user_id)


class QuickShardedClient(discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause between shards' IDENTIFYs: the fake has no identify rate limit."""


def guild_on_shard(shard: int, count: int, name: str) -> FakeGuild:
    """A guild whose id Discord would route to `shard` of `count`."""
    top = snowflake() >> 22
    guild = FakeGuild.make(name, guild_id=(top - top % count + shard) << 22)
    assert shard_for(guild.id, count) == shard
    return guild


@pytest.mark.parametrize("shard_count", [2, None], ids=["explicit", "from-gateway-bot"])
async def test_auto_sharded_client_identifies_each_shard(
        monkeypatch: pytest.MonkeyPatch, shard_count: int | None) -> None:
    guilds = [guild_on_shard(0, 2, "zero"), guild_on_shard(1, 2, "one")]
    with FakeDiscord(guilds=guilds, shard_count=2) as fake:
        point_discord_at(monkeypatch, fake)
        client = QuickShardedClient(intents=discord.Intents.default(), shard_count=shard_count,
                                    guild_ready_timeout=0.1)
        queue = message_queue(client)
        async with running(client, fake.token):
            assert sorted(i["shard"] for i in fake.identifies()) == [[0, 2], [1, 2]]
            assert {g.name: g.shard_id for g in client.guilds} == {"zero": 0, "one": 1}
            assert bool(fake.calls("gateway_bot")) == (shard_count is None)

            mention = fake.message_create(f"{fake.bot_mention} hi", guild_id=guilds[1].id,
                                          mentions=[fake.bot_user])
            assert fake.dispatch("MESSAGE_CREATE", mention) == 1
            message = await next_message(queue)
            assert message.guild is not None and message.guild.shard_id == 1
