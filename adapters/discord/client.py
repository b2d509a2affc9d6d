"""The Discord client: receives messages, slash commands and button presses, sends the core's
replies, and puts the 🧠 receipt on messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import discord
from discord import app_commands

from adapters.discord.events import interaction_event, manages_server, to_event
from adapters.discord.replies import NO_PINGS, parse_button_id, show
from adapters.discord.slash import slash_commands
from adapters.discord.streaming import DiscordStream
from bot.commands.registry import Commands
from bot.errors import ConfigError, StartupError
from bot.events import MessageRef, Reply, ReplyKind
from bot.ports import Handle
from bot.receipts import ReceiptRouter

__all__ = ["DiscordAdapter", "MembotDiscordClient", "rest_reactions"]

log = logging.getLogger(__name__)

COMMAND_FAILED = "Sorry, that command failed on my side. Please try again in a moment."


def intents(follow_threads: bool) -> discord.Intents:
    """No privileged intent unless following threads without mentions was asked for."""
    chosen = discord.Intents.default()
    chosen.members = False
    chosen.presences = False
    chosen.message_content = follow_threads
    return chosen


class MembotDiscordClient(discord.AutoShardedClient):
    """An auto-sharded client (one process may own a range of shards) whose messages go to
    membot's core, and whose slash commands and button presses go to its command layer. With
    ``receipts`` it registers itself there to react to Discord messages."""

    def __init__(
        self,
        *,
        handle: Handle,
        commands: Commands,
        follow_threads: bool = False,
        dev_guild: int | None = None,
        shard_count: int | None = None,
        shard_ids: list[int] | None = None,
        receipts: ReceiptRouter | None = None,
    ) -> None:
        sharding: dict[str, Any] = {"shard_count": shard_count}
        if shard_ids is not None:
            sharding["shard_ids"] = shard_ids
        super().__init__(
            intents=intents(follow_threads),
            allowed_mentions=NO_PINGS,
            chunk_guilds_at_startup=False,
            **sharding,
        )
        self._handle = handle
        self._commands = commands
        self._follow_threads = follow_threads
        self._dev_guild = dev_guild
        self.tree = app_commands.CommandTree(self)
        self._in_flight: set[asyncio.Task[object]] = set()
        self._accepting = True
        for command in slash_commands(commands, self._slash):
            self.tree.add_command(command)
        if receipts is not None:
            receipts.register("discord", self.react)

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Counts the current task as a reply in flight, for :meth:`stop_accepting`."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._in_flight.discard(task)

    @property
    def replies_in_flight(self) -> int:
        """How many messages, commands and presses are being answered now (an answer being
        streamed included)."""
        return sum(not task.done() for task in self._in_flight)

    async def _slash(self, interaction: discord.Interaction, name: str, arguments: str) -> None:
        with self._tracked():
            # Ephemeral at once (within Discord's 3 s), the answer as followups.
            await interaction.response.defer(ephemeral=True, thinking=True)
            reply = await self._run(interaction, name, arguments)
            try:
                await show(interaction, reply, replace=False)
            except discord.HTTPException:
                log.exception("answering /%s (interaction %s) failed", name, interaction.id)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A press of a membot button, in any process: runs its command for the presser and
        shows the answer in place of the message the button was on."""
        if interaction.type is not discord.InteractionType.component or not self._accepting:
            return
        data: dict[str, object] = dict(interaction.data or {})
        pressed = parse_button_id(str(data.get("custom_id", "")))
        if pressed is None:
            return
        name, arguments = pressed
        # Only a private message may be replaced by the presser's private answer; under a
        # message others see, the answer comes as a new private message.
        in_place = interaction.message is not None and interaction.message.flags.ephemeral
        with self._tracked():
            # Acknowledged at once (Discord allows 3 s), then edited when the answer is ready.
            await interaction.response.defer(ephemeral=True, thinking=not in_place)
            reply = await self._run(interaction, name, arguments)
            try:
                await show(interaction, reply, replace=in_place)
            except discord.HTTPException:
                log.exception("answering the button %s (interaction %s) failed",
                              name, interaction.id)

    async def _run(self, interaction: discord.Interaction, name: str, arguments: str) -> Reply:
        is_admin = self._commands.needs_admin(name) and manages_server(interaction)
        event = interaction_event(interaction, text=f"/{name} {arguments}".strip(),
                                  is_admin=is_admin)
        try:
            return await self._commands.run(event, name, arguments)
        except Exception:  # the adapter's edge: one log line, one honest sentence
            log.exception("command %s failed for interaction %s", name, interaction.id)
            return Reply(text=COMMAND_FAILED, kind=ReplyKind.ERROR, private=True)

    async def react(self, source: MessageRef, emoji: str) -> None:
        """Put ``emoji`` on the message ``source`` as the bot (the ``React`` of
        :class:`bot.receipts.ReceiptRouter`). Raises ``discord.HTTPException`` when Discord
        refuses (an unknown or deleted message, no permission to react)."""
        channel = self.get_partial_messageable(int(source.channel))
        await channel.get_partial_message(int(source.message)).add_reaction(emoji)

    async def setup_hook(self) -> None:
        """Sync slash commands: to the development guild at once, or globally. Of several
        processes sharing the bot, only the one owning shard 0 syncs."""
        if self.shard_ids is not None and 0 not in self.shard_ids:
            return
        if self._dev_guild is not None:
            guild = discord.Object(id=self._dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        if not self._accepting or self.user is None:
            return
        event = to_event(message, self.user.id, follow_threads=self._follow_threads)
        if event is None:
            return
        with self._tracked():
            # The answer is posted once its first words exist and edited as it grows.
            stream = DiscordStream(message)
            try:
                async with message.channel.typing():
                    reply = await self._handle(event, stream)
                if reply is not None:
                    await stream.finish(reply)
            except discord.HTTPException:
                log.exception("sending the reply to Discord message %s failed", message.id)

    async def stop_accepting(self, grace: float) -> int:
        """Take no new messages; give the replies in flight ``grace`` seconds. Returns how many
        did not finish (they are logged)."""
        self._accepting = False
        pending = {t for t in self._in_flight if not t.done()}
        if not pending:
            return 0
        _, unfinished = await asyncio.wait(pending, timeout=grace)
        if unfinished:
            log.error("%d Discord replies did not finish within %gs", len(unfinished), grace)
        return len(unfinished)


class DiscordAdapter:
    """Runs the client until stopped; :meth:`stop` lets the replies in flight finish first."""

    def __init__(self, client: MembotDiscordClient, token: str, grace: float) -> None:
        self.client = client
        self._token = token
        self._grace = grace

    async def run(self) -> None:
        """Connect and serve until the client closes. Cancelling it stops gracefully. Raises
        :class:`ConfigError` when Discord refuses the token or the intents, and
        :class:`StartupError` when Discord cannot be reached at start."""
        try:
            await self.client.start(self._token)
        except discord.LoginFailure:
            raise ConfigError("Discord rejected DISCORD_TOKEN (HTTP 401).") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise StartupError(f"Cannot reach Discord: {exc.__class__.__name__}.") from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "Discord refused the message content intent that DISCORD_FOLLOW_THREADS needs: "
                "enable it for the bot in the developer portal, or unset DISCORD_FOLLOW_THREADS."
            ) from None
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self.client.is_closed():
            return
        await self.client.stop_accepting(self._grace)
        await self.client.close()


@contextlib.asynccontextmanager
async def rest_reactions(token: str) -> AsyncIterator[Callable[[MessageRef, str], Awaitable[None]]]:
    """``react(source, emoji)`` over Discord's REST API alone, with no gateway connection: for
    processes that learn memories without serving Discord (``membot worker``), so the learned
    receipt still appears. Raises ``discord.HTTPException`` when Discord refuses a reaction."""
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(token)
    except discord.LoginFailure:
        await client.close()
        raise ConfigError("Discord rejected DISCORD_TOKEN (HTTP 401).") from None

    async def react(source: MessageRef, emoji: str) -> None:
        channel = client.get_partial_messageable(int(source.channel))
        await channel.get_partial_message(int(source.message)).add_reaction(emoji)

    try:
        yield react
    finally:
        await client.close()
