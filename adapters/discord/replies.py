"""How a reply looks on Discord: text cut to Discord's limit, actions as buttons, files as
attachments, and showing all of that in answer to an interaction.

A button carries the command it runs in its custom id (``membot:memory forget 3f2a``), so any
process can answer a press from the press alone: nothing about the message is kept in memory.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import discord

from bot.chunks import split_message
from bot.events import Action, Reply

__all__ = ["MESSAGE_LIMIT", "NO_PINGS", "Buttons", "button_id", "parse_button_id", "render",
           "show"]

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000  # Discord rejects longer messages
NO_PINGS = discord.AllowedMentions.none()  # model text must never ping @everyone, roles or users
BUTTON_PREFIX = "membot:"
CUSTOM_ID_LIMIT, LABEL_LIMIT, BUTTON_LIMIT = 100, 80, 25  # Discord's limits per button, message
STYLES = {"default": discord.ButtonStyle.secondary, "primary": discord.ButtonStyle.primary,
          "danger": discord.ButtonStyle.danger}


def render(reply: Reply) -> list[str]:
    """A reply's text as the Discord messages to send, each under Discord's limit."""
    text = reply.text if reply.notice is None else f"-# {reply.notice}\n{reply.text}"
    return split_message(text, MESSAGE_LIMIT)


def button_id(action: Action) -> str:
    """The custom id of an action's button: the command and its arguments, as typed."""
    return BUTTON_PREFIX + " ".join(part for part in (action.command, action.arguments.strip())
                                    if part)


def parse_button_id(custom_id: str) -> tuple[str, str] | None:
    """The command and arguments a membot button runs; None for anyone else's custom id."""
    if not custom_id.startswith(BUTTON_PREFIX):
        return None
    command, _, arguments = custom_id[len(BUTTON_PREFIX):].partition(" ")
    return (command, arguments) if command else None


class Buttons(discord.ui.View):
    """A reply's actions as buttons, in order. Presses reach ``on_interaction`` by custom id;
    discord.py keeps no listener for them (a listener would live only in this process, and
    views with no timeout would pile up in memory)."""

    def __init__(self, actions: tuple[Action, ...]) -> None:
        super().__init__(timeout=None)
        seen: set[str] = set()
        for action in actions:
            custom_id = button_id(action)
            # Discord refuses the whole message for one bad button: leave that one out.
            if len(custom_id) > CUSTOM_ID_LIMIT or custom_id in seen or len(seen) == BUTTON_LIMIT:
                log.warning("left out the button %r: too long, repeated or too many",
                            action.label)
                continue
            seen.add(custom_id)
            self.add_item(discord.ui.Button(label=action.label[:LABEL_LIMIT] or action.command,
                                            custom_id=custom_id, style=STYLES[action.style]))

    def is_dispatchable(self) -> bool:
        return False  # keeps discord.py from storing the view (see the class docstring)


def _files(reply: Reply) -> list[discord.File]:
    return [discord.File(io.BytesIO(f.content), filename=f.filename) for f in reply.files]


async def show(interaction: discord.Interaction, reply: Reply, *, replace: bool) -> None:
    """Show ``reply`` to the person behind an interaction already deferred, privately.

    With ``replace`` the first message replaces the one the interaction came from (a pressed
    button's), else every message is a new ephemeral followup. The buttons and files go on
    the last message; a replaced message keeps none of its old buttons or files.
    """
    pieces = render(reply) or ["" if reply.files or reply.actions else "(nothing to say)"]
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        view = Buttons(reply.actions) if last and reply.actions else None
        files = _files(reply) if last else []
        if replace and n == 0:
            await interaction.edit_original_response(content=piece, view=view,
                                                     attachments=files,
                                                     allowed_mentions=NO_PINGS)
            continue
        extra: dict[str, Any] = {}
        if view is not None:
            extra["view"] = view
        if files:
            extra["files"] = files
        await interaction.followup.send(piece, ephemeral=True, allowed_mentions=NO_PINGS,
                                        **extra)
