"""``settings ...``: a Discord server's or Slack workspace's memory settings, for its admins.

Anyone may see them; only admins (Discord: Manage Server; Slack: workspace admin or owner, as
the adapter reports in ``ChatEvent.author_is_admin``) may change them.
"""

from __future__ import annotations

import logging
import re

from bot.choices import ChoiceStore, Place
from bot.commands.registry import Command, guarded
from bot.events import ChatEvent, Reply, ReplyKind
from bot.ports import Handler
from bot.usage import typed

__all__ = ["SettingsCommands"]

log = logging.getLogger(__name__)

# <#123> on Discord, <#C123|general> or <#C123> on Slack, or a bare id.
_CHANNEL = re.compile(r"<#([A-Za-z0-9]+)(?:\|[^>]*)?>|\b([CG][A-Z0-9]{6,}|\d{15,21})\b")
_WHO = {"discord": "server admins (Manage Server)", "slack": "workspace admins and owners"}
_PLACE = {"discord": "server", "slack": "workspace"}
UNAVAILABLE = "I can't reach my settings store right now, so nothing changed. Please try again."


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def describe(place: Place, platform: str, workspace_id: str) -> str:
    """The settings as a person reads them."""
    what = _PLACE.get(platform, "workspace")
    channels = ("every channel" if not place.channels
                else ", ".join(_mention(platform, c) for c in place.channels))
    return "\n".join([
        f"membot's settings for this {what}:",
        f"- memory: {_on_off(place.memory)}" + ("" if place.memory else
                                                " (I neither use nor learn memories here)"),
        f"- channels: {channels} (direct messages are never limited)",
        f"- public: {_on_off(place.public_recall)}"
        + (" (memories are used in answers in channels too)" if place.public_recall
           else " (memories are used in direct messages only)"),
        f"- receipts: {_on_off(place.receipts)} (a 🧠 reaction when I learn from a message)",
    ])


def _mention(platform: str, channel: str) -> str:
    return f"<#{channel}>" if platform in ("discord", "slack") else channel


class SettingsCommands:
    """The handlers of the ``settings`` command group."""

    def __init__(self, choices: ChoiceStore) -> None:
        self._choices = choices

    def command(self) -> Command:
        subs = [
            ("show", "", "this server's or workspace's memory settings", self.show),
            ("memory", "<on|off>", "memory on or off here (admins)", self.memory),
            ("channels", "<all|here|add …|remove …>",
             "limit memory to some channels (admins)", self.channels),
            ("public", "<on|off>", "use memories in answers outside DMs (admins)", self.public),
            ("receipts", "<on|off>", "the 🧠 reaction when I learn (admins)", self.receipts),
        ]
        return Command(
            name="settings",
            summary="memory settings of this server or workspace (admins change them)",
            admin=True,
            subcommands=tuple(
                Command(name=name, usage=usage, summary=summary, handler=self._guarded(h, name),
                        admin=True)
                for name, usage, summary, h in subs
            ),
        )

    def _guarded(self, handler: Handler, name: str) -> Handler:
        safe = guarded(handler, what=f"settings {name}", failure=UNAVAILABLE)

        async def run(event: ChatEvent, arguments: str) -> Reply:
            if not event.workspace_id:
                return Reply(text=("Settings belong to a Discord server or a Slack workspace: "
                                   "use this command in one of its channels."),
                             kind=ReplyKind.HINT)
            return await safe(event, arguments)

        return run

    async def show(self, event: ChatEvent, arguments: str) -> Reply:
        assert event.workspace_id is not None  # checked by _guarded
        place = await self._choices.place(event.platform, event.workspace_id)
        return Reply(text=describe(place, event.platform, event.workspace_id))

    async def _change(self, event: ChatEvent, **changes: object) -> Reply:
        assert event.workspace_id is not None  # checked by _guarded
        if not event.author_is_admin:
            who = _WHO.get(event.platform, "admins")
            log.info("refused a settings change by a non-admin on %s", event.platform)
            return Reply(text=f"Only {who} can change membot's settings here. "
                              f"{typed(event.platform, 'settings', 'show')} shows them.",
                         kind=ReplyKind.ERROR)
        place = await self._choices.update_place(event.platform, event.workspace_id,
                                                  event.account.key, **changes)
        return Reply(text="Saved. " + describe(place, event.platform, event.workspace_id))

    async def _switch(self, event: ChatEvent, arguments: str, setting: str, name: str) -> Reply:
        choice = arguments.strip().lower()
        if choice not in ("on", "off"):
            example = typed(event.platform, "settings", name, "value", "off")
            return Reply(text=f"Say on or off: {example}.", kind=ReplyKind.HINT)
        return await self._change(event, **{setting: choice == "on"})

    async def memory(self, event: ChatEvent, arguments: str) -> Reply:
        return await self._switch(event, arguments, "memory", "memory")

    async def public(self, event: ChatEvent, arguments: str) -> Reply:
        return await self._switch(event, arguments, "public_recall", "public")

    async def receipts(self, event: ChatEvent, arguments: str) -> Reply:
        return await self._switch(event, arguments, "receipts", "receipts")

    async def channels(self, event: ChatEvent, arguments: str) -> Reply:
        verb, _, rest = arguments.strip().partition(" ")
        verb = verb.lower()
        usage = (f"{typed(event.platform, 'settings', 'channels', 'value', 'all')}, "
                 f"{typed(event.platform, 'settings', 'channels', 'value', 'here')}, or add or "
                 "remove channels by mentioning them (for example: add here #general)")
        if verb == "all":
            return await self._change(event, channels=())
        if verb == "here":
            verb, rest = "add", "here"
        if verb not in ("add", "remove"):
            return Reply(text=f"Say which channels: {usage}.", kind=ReplyKind.HINT)
        named = [a or b for a, b in _CHANNEL.findall(rest)]
        if re.search(r"\bhere\b", rest, re.IGNORECASE):
            if event.is_direct or not event.channel_id:
                return Reply(text=("Here is a direct message, and direct messages are never "
                                   "limited: use here in the channel to add or remove, or "
                                   "mention channels."), kind=ReplyKind.HINT)
            named.append(event.channel_id)
        if not named:
            return Reply(text=f"Mention the channels to {verb}: {usage}.", kind=ReplyKind.HINT)
        if not event.author_is_admin:
            return await self._change(event)  # the refusal, before reading anything
        assert event.workspace_id is not None
        current = list((await self._choices.place(event.platform, event.workspace_id)).channels)
        if verb == "add":
            chosen = current + [c for c in dict.fromkeys(named) if c not in current]
        else:
            chosen = [c for c in current if c not in named]
            if current and not chosen:
                off = typed(event.platform, "settings", "memory", "value", "off")
                return Reply(text=("That would leave no channel, which means every channel. "
                                   f"To switch memory off here: {off}."), kind=ReplyKind.HINT)
        return await self._change(event, channels=tuple(chosen))
