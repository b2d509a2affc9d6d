"""The Discord adapter: DMs, mentions and replies to the bot in servers and threads, and the
shared commands as slash commands. ``events`` maps messages to the common event without I/O;
``client`` does the I/O."""

from adapters.discord.client import DiscordAdapter, MembotDiscordClient
from adapters.discord.events import to_event

__all__ = ["DiscordAdapter", "MembotDiscordClient", "to_event"]
