"""The Discord stand-in works with the real discord.py: login, gateway, messages, interactions."""

from __future__ import annotations

import asyncio
import contextlib
import io
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes.discord import (
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    FakeDiscord,
    FakeGuild,
    FakeUser,
    Json,
    custom_ids,
    shard_for,
    snowflake,
)
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


@pytest.mark.parametrize("shard_count", [2, None], ids=["explicit", "from-gateway-bot"])
async def test_auto_sharded_client_identifies_each_shard(
        monkeypatch: pytest.MonkeyPatch, shard_count: int | None) -> None:
    guilds = [FakeGuild.on_shard(0, 2, "zero"), FakeGuild.on_shard(1, 2, "one")]
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


def shard_client(shard: int, count: int) -> QuickShardedClient:
    """A client that owns one shard, as one of several processes does."""
    return QuickShardedClient(intents=discord.Intents.default(), shard_count=count,
                              shard_ids=[shard], guild_ready_timeout=0.1)


def test_a_guild_made_for_a_shard_is_routed_there() -> None:
    for count in (1, 2, 5):
        for shard in range(count):
            assert shard_for(FakeGuild.on_shard(shard, count).id, count) == shard


async def test_clients_owning_one_shard_each_get_their_guilds_and_only_shard_0_gets_dms(
        monkeypatch: pytest.MonkeyPatch) -> None:
    guilds = [FakeGuild.on_shard(0, 2, "zero"), FakeGuild.on_shard(1, 2, "one")]
    with FakeDiscord(guilds=guilds, shard_count=2) as fake:
        point_discord_at(monkeypatch, fake)
        zero, one = shard_client(0, 2), shard_client(1, 2)
        queues = message_queue(zero), message_queue(one)
        async with running(zero, fake.token), running(one, fake.token):
            assert [g.name for g in zero.guilds] == ["zero"]
            assert [g.name for g in one.guilds] == ["one"]
            for guild in reversed(guilds):
                mention = fake.message_create(f"{fake.bot_mention} hi {guild.name}",
                                              guild_id=guild.id, mentions=[fake.bot_user])
                assert fake.dispatch("MESSAGE_CREATE", mention) == 1
            assert fake.dispatch("MESSAGE_CREATE", fake.message_create("a DM", dm=True)) == 1
            assert (await next_message(queues[1])).content.endswith("hi one")
            assert (await next_message(queues[0])).content.endswith("hi zero")
            dm = await next_message(queues[0])
            assert dm.content == "a DM" and dm.guild is None
            await asyncio.sleep(0.1)
            assert queues[0].empty() and queues[1].empty()


async def test_two_sessions_of_one_shard_both_get_its_events(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeDiscord(guilds=[FakeGuild.on_shard(0, 2)], shard_count=2) as fake:
        point_discord_at(monkeypatch, fake)
        first, second = shard_client(0, 2), shard_client(0, 2)
        async with running(first, fake.token), running(second, fake.token):
            assert fake.dispatch("MESSAGE_CREATE", fake.message_create("a DM", dm=True)) == 2
            mention = fake.message_create(f"{fake.bot_mention} hi", mentions=[fake.bot_user])
            assert fake.dispatch("MESSAGE_CREATE", mention) == 2


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0]], ids=str)
async def test_an_identify_with_an_invalid_shard_is_closed_with_4010(
        fake: FakeDiscord, shard: list[int]) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10
        await ws.send_json({"op": 2, "d": {"token": fake.token, "intents": 0, "shard": shard,
                                           "properties": {}}})
        closed = await ws.receive()
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4010
    with pytest.raises(LookupError):  # the refused session owns no shard
        fake.dispatch("MESSAGE_CREATE", fake.message_create("x", dm=True))


def interaction_queue(client: discord.Client
                             ) -> asyncio.Queue[discord.Interaction[discord.Client]]:
    queue: asyncio.Queue[discord.Interaction[discord.Client]] = asyncio.Queue()

    @client.event
    async def on_interaction(interaction: discord.Interaction[discord.Client]) -> None:
        queue.put_nowait(interaction)

    return queue


async def next_interaction(queue: asyncio.Queue[discord.Interaction[discord.Client]]
                           ) -> discord.Interaction[discord.Client]:
    async with asyncio.timeout(TIMEOUT):
        return await queue.get()


async def test_interactions_carry_the_members_permissions(fake: FakeDiscord) -> None:
    client = new_client()
    queue = interaction_queue(client)
    async with running(client, fake.token):
        fake.dispatch("INTERACTION_CREATE", fake.interaction_create("help"))
        plain = await next_interaction(queue)
        fake.dispatch("INTERACTION_CREATE", fake.interaction_create(
            "help", permissions=MEMBER_PERMISSIONS | MANAGE_GUILD))
        manager = await next_interaction(queue)
        fake.dispatch("INTERACTION_CREATE", fake.interaction_create("help", dm=True))
        in_dm = await next_interaction(queue)
    assert plain.permissions.send_messages and not plain.permissions.manage_guild
    assert manager.permissions.manage_guild
    assert plain.app_permissions.add_reactions and not plain.app_permissions.administrator
    assert isinstance(plain.user, discord.Member) and isinstance(in_dm.user, discord.User)
    assert in_dm.guild_id is None and not in_dm.permissions.manage_guild


def buttons(*custom_ids: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for custom_id in custom_ids:
        view.add_item(discord.ui.Button(label=custom_id.title(), custom_id=custom_id))
    return view


async def test_a_pressed_button_updates_its_message_in_place(fake: FakeDiscord) -> None:
    client = new_client()
    tree = app_commands.CommandTree(client)
    queue = interaction_queue(client)

    @tree.command(name="menu", description="A message with buttons")
    async def menu(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pick one", view=buttons("a", "b"),
                                                ephemeral=True)

    async with running(client, fake.token):
        fake.dispatch("INTERACTION_CREATE", fake.interaction_create("menu"))
        shown = await fake.wait_for_async("interaction_callback")
        await next_interaction(queue)
        message_id = shown.message_id or 0
        assert custom_ids(fake.message(message_id)) == ["a", "b"]

        # UPDATE_MESSAGE (7): the new content and buttons in the callback itself.
        press = fake.component_interaction(message_id, "a")
        assert press["type"] == 3 and press["data"] == {"custom_id": "a", "component_type": 2}
        assert press["message"]["id"] == str(message_id)
        assert press["member"]["permissions"] == str(MEMBER_PERMISSIONS)
        fake.dispatch("INTERACTION_CREATE", press)
        pressed = await next_interaction(queue)
        assert pressed.message is not None and pressed.message.id == message_id
        assert pressed.message.flags.ephemeral
        await pressed.response.edit_message(content="picked a", view=buttons("c"))
        assert fake.message(message_id)["content"] == "picked a"
        assert custom_ids(fake.message(message_id)) == ["c"]

        # DEFERRED_UPDATE_MESSAGE (6), then an edit of "@original": the same message.
        fake.dispatch("INTERACTION_CREATE", fake.component_interaction(message_id, "c"))
        pressed = await next_interaction(queue)
        await pressed.response.defer()
        await pressed.edit_original_response(content="picked c", view=None)
    callback = fake.calls("interaction_callback")[-1]
    edit = fake.calls("edit_original")[-1]
    assert callback.body == {"type": 6} and edit.message_id == message_id
    assert [(v["content"], custom_ids(v)) for v in fake.message_versions(message_id)] == [
        ("pick one", ["a", "b"]), ("picked a", ["c"]), ("picked c", [])]
    assert fake.message(message_id)["edited_timestamp"] is not None
    assert fake.calls("followup") == []


async def test_only_existing_buttons_can_be_pressed_and_only_by_whoever_sees_them(
    fake: FakeDiscord,
) -> None:
    client = new_client()
    tree = app_commands.CommandTree(client)

    @tree.command(name="menu", description="A message with buttons")
    async def menu(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("for you", view=buttons("a"), ephemeral=True)
        await interaction.followup.send("for all", view=buttons("b"))

    async with running(client, fake.token):
        fake.dispatch("INTERACTION_CREATE", fake.interaction_create("menu"))
        shared = await fake.wait_for_async("followup")
    private = fake.calls("interaction_callback")[0].message_id or 0
    bob = FakeUser(snowflake(), "bob")
    with pytest.raises(LookupError):
        fake.component_interaction(private, "b")
    with pytest.raises(PermissionError):
        fake.component_interaction(private, "a", user=bob)
    assert fake.component_interaction(shared.message_id or 0, "b", user=bob)["member"][
        "user"]["id"] == str(bob.id)
    with pytest.raises(LookupError):
        fake.message(snowflake())


async def test_message_responses_are_only_for_component_interactions(fake: FakeDiscord) -> None:
    interaction = fake.interaction_create("help")
    async with running(new_client(), fake.token):
        fake.dispatch("INTERACTION_CREATE", interaction)
        url = f"{fake.rest_base}/interactions/{interaction['id']}/{interaction['token']}/callback"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={"type": 6}) as refused:
                assert refused.status == 400
            async with session.post(url, json={"type": 5}) as accepted:
                assert accepted.status == 204


async def test_after_a_deferral_the_first_followup_replaces_the_loading_message(
    fake: FakeDiscord,
) -> None:
    client = new_client()
    tree = app_commands.CommandTree(client)
    content = b"\x00\x01 binary \xff and text\n"

    @tree.command(name="export", description="A file")
    async def export(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send("here", file=discord.File(io.BytesIO(content), "a.bin"))
        await interaction.followup.send("and more", ephemeral=True)

    async with running(client, fake.token):
        fake.dispatch("INTERACTION_CREATE", fake.interaction_create("export"))
        first = await fake.wait_for_async("followup")
        second = await fake.wait_for_async("followup", count=2)
    deferred = fake.calls("interaction_callback")[0]
    assert first.message_id == deferred.message_id != second.message_id
    assert [(u.filename, u.content) for u in first.uploads] == [("a.bin", content)]
    message = fake.message(first.message_id or 0)
    assert message["flags"] == 64  # the deferral's ephemeral flag, though the followup had none
    assert [(a["filename"], a["size"]) for a in message["attachments"]] == [("a.bin",
                                                                            len(content))]
    [loading, _] = fake.message_versions(first.message_id or 0)
    assert loading["flags"] == 64 | 128 and loading["content"] == ""
    assert second.body["flags"] == 64 and fake.message(second.message_id or 0)["flags"] == 64


async def test_buttons_discord_would_refuse_are_refused(fake: FakeDiscord) -> None:
    interaction = fake.interaction_create("help")

    def row(*custom_ids: str) -> Json:
        return {"type": 1, "components": [
            {"type": 2, "style": 2, "label": "x", "custom_id": c} for c in custom_ids]}

    async with running(new_client(), fake.token):
        fake.dispatch("INTERACTION_CREATE", interaction)
        base = f"{fake.rest_base}/interactions/{interaction['id']}/{interaction['token']}"
        followup = f"{fake.rest_base}/webhooks/{fake.application_id}/{interaction['token']}"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/callback", json={"type": 5}) as deferred:
                assert deferred.status == 204
            for components in ([row("same", "same")], [row("x" * 101)],
                               [row(str(n)) for n in range(6)], [row(*"abcdef")]):
                async with session.post(followup, json={"components": components}) as refused:
                    assert refused.status == 400, components
                    assert (await refused.json())["code"] == 50035
            async with session.post(followup, json={"components": [row("x" * 100)]}) as fine:
                assert fine.status == 200


async def test_reactions_are_recorded_with_the_emoji_decoded(fake: FakeDiscord) -> None:
    client = new_client()
    queue = message_queue(client)
    async with running(client, fake.token):
        dm = fake.message_create("react to me", dm=True)
        fake.dispatch("MESSAGE_CREATE", dm)
        message = await next_message(queue)
        await message.add_reaction("🧠")
        channel = client.get_partial_messageable(message.channel.id)
        with pytest.raises(discord.NotFound) as unknown_message:
            await channel.get_partial_message(snowflake()).add_reaction("🧠")
        elsewhere = client.get_partial_messageable(snowflake())
        with pytest.raises(discord.NotFound) as unknown_channel:
            await elsewhere.get_partial_message(message.id).add_reaction("🧠")
    reacted, _, _ = fake.reactions()
    assert (reacted.channel_id, reacted.message_id) == (int(dm["channel_id"]), int(dm["id"]))
    assert (reacted.method, reacted.emoji, reacted.status) == ("PUT", "🧠", 204)
    assert (unknown_message.value.code, unknown_channel.value.code) == (10008, 10003)
