"""The Discord client: receives messages and slash commands, sends the core's replies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import discord
from discord import app_commands

from adapters.discord.events import to_event
from bot.chunks import split_message
from bot.commands import Command, Commands
from bot.errors import ConfigError, StartupError
from bot.events import ChatEvent, Reply

__all__ = ["DiscordAdapter", "MembotDiscordClient"]

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000  # Discord rejects longer messages
NO_PINGS = discord.AllowedMentions.none()  # model text must never ping @everyone, roles or users
Handle = Callable[[ChatEvent], Awaitable[Reply | None]]


def render(reply: Reply) -> list[str]:
    """A reply as the Discord messages to send, each under Discord's limit."""
    text = reply.text if reply.notice is None else f"-# {reply.notice}\n{reply.text}"
    return split_message(text, MESSAGE_LIMIT)


def intents(follow_threads: bool) -> discord.Intents:
    """No privileged intent unless following threads without mentions was asked for."""
    chosen = discord.Intents.default()
    chosen.members = False
    chosen.presences = False
    chosen.message_content = follow_threads
    return chosen


class MembotDiscordClient(discord.AutoShardedClient):
    """An auto-sharded client (one process may own a range of shards) whose messages and slash
    commands go to membot's core and command layer."""

    def __init__(
        self,
        *,
        handle: Handle,
        commands: Commands,
        follow_threads: bool = False,
        dev_guild: int | None = None,
        shard_count: int | None = None,
        shard_ids: list[int] | None = None,
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
        for command in commands.all:
            self.tree.add_command(self._slash_command(command))

    def _slash_command(self, command: Command) -> app_commands.Command[Any, ..., None]:
        commands = self._commands

        async def invoke(interaction: discord.Interaction, arguments: str = "") -> None:
            # Ephemeral at once (within Discord's 3 s), the answer as a followup.
            await interaction.response.defer(ephemeral=True, thinking=True)
            reply = await commands.run(interaction_event(interaction), command.name, arguments)
            for piece in render(reply) or ["(nothing to say)"]:
                await interaction.followup.send(piece, ephemeral=True, allowed_mentions=NO_PINGS)

        description = command.summary[:100] or command.name
        if command.usage:
            # The option is named after the usage ("[code]" -> code), so people can type
            # "/link code: ABCD-EFGH"; brackets mean optional, as in the help text.
            option = command.usage.strip("[]<> ").lower() or "arguments"
            described = app_commands.describe(arguments=command.usage)(invoke)
            named = app_commands.rename(arguments=option)(described)
            return app_commands.Command(name=command.name, description=description,
                                        callback=named)

        async def invoke_plain(interaction: discord.Interaction) -> None:
            await invoke(interaction)

        return app_commands.Command(name=command.name, description=description,
                                    callback=invoke_plain)

    async def setup_hook(self) -> None:
        """Sync slash commands: to the development guild at once, or globally."""
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
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            async with message.channel.typing():
                reply = await self._handle(event)
            if reply is not None:
                await self._send(message, reply)
        except discord.HTTPException:
            log.exception("sending the reply to Discord message %s failed", message.id)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _send(self, message: discord.Message, reply: Reply) -> None:
        pieces = render(reply)
        for n, piece in enumerate(pieces):
            if n == 0:
                await message.reply(piece, mention_author=False, allowed_mentions=NO_PINGS)
            else:
                await message.channel.send(piece, allowed_mentions=NO_PINGS)

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


def interaction_event(interaction: discord.Interaction) -> ChatEvent:
    """The common event for a slash command (its text is the command, for the record)."""
    channel_id = interaction.channel_id or 0
    return ChatEvent(
        event_id=f"discord:interaction:{interaction.id}",
        platform="discord",
        author_id=str(interaction.user.id),
        author_name=interaction.user.display_name,
        text=f"/{interaction.command.name if interaction.command else ''}",
        conversation_id=f"discord:{channel_id}:{interaction.user.id}",
        workspace_id=str(interaction.guild_id) if interaction.guild_id else None,
        channel_id=str(channel_id),
        is_direct=interaction.guild_id is None,
        at=interaction.created_at,
    )


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
