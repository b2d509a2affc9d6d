"""The Discord adapter: DMs, mentions and replies to the bot in servers and threads, the shared
commands as slash commands with buttons and files, and the 🧠 receipt as a reaction. ``events``
maps messages and interactions to the common event without I/O; ``slash`` maps the commands;
``replies`` says how a reply looks; ``client`` does the I/O."""

import logging
import warnings

# membot is a text bot: discord.py's notes about voice support concern nothing it does.
warnings.filterwarnings("ignore", message="'audioop' is deprecated", category=DeprecationWarning)


class _NoVoiceNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


logging.getLogger("discord.client").addFilter(_NoVoiceNotes())

from adapters.discord.client import (  # noqa: E402
    DiscordAdapter,
    MembotDiscordClient,
    rest_reactions,
)
from adapters.discord.events import to_event  # noqa: E402

__all__ = ["DiscordAdapter", "MembotDiscordClient", "rest_reactions", "to_event"]
