"""The command layer every adapter maps its native form onto.

Discord's ``/help``, Slack's ``/membot help`` and the terminal's ``:help`` all arrive here as a
name and an argument string, so a new command is one entry in :func:`default_commands`, shared
by every platform.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from bot.events import ChatEvent, Reply, ReplyKind
from bot.ports import Handler, LinkCommands
from bot.text import clean_message
from bot.usage import typed

log = logging.getLogger(__name__)

__all__ = ["Command", "Commands", "default_commands", "guarded", "usage_line"]


ARGUMENT_LIMIT = 4000  # characters of a command's arguments handlers see; the rest is cut


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One command: ``name`` is what people type (lowercase, no prefix); ``usage`` shows the
    arguments, if any (``<x>`` required, ``[x]`` optional); ``summary`` is one line for help
    screens and platform command menus. A command with ``subcommands`` is a group (``memory
    list``, ``memory forget <id>``): its own ``handler`` is not used. ``admin`` marks commands
    whose handler reads ``ChatEvent.author_is_admin``, so adapters know when to find it out."""

    name: str
    summary: str
    handler: Handler | None = None
    usage: str = ""
    subcommands: tuple[Command, ...] = ()
    admin: bool = False


class Commands:
    """The registry. Every reply it gives is private: commands are about the person asking."""

    def __init__(self, commands: Iterable[Command]) -> None:
        self._by_name: dict[str, Command] = {}
        for command in commands:
            if command.name in self._by_name:
                raise ValueError(f"command {command.name!r} registered twice")
            names = [sub.name for sub in command.subcommands]
            if len(set(names)) != len(names):
                raise ValueError(f"a subcommand of {command.name!r} is registered twice")
            if command.handler is None and not command.subcommands:
                raise ValueError(f"command {command.name!r} has neither handler nor subcommands")
            self._by_name[command.name] = command

    @property
    def all(self) -> Sequence[Command]:
        """Every command, in registration order (for platform command menus)."""
        return list(self._by_name.values())

    def needs_admin(self, name: str) -> bool:
        """Whether command ``name`` reads ``ChatEvent.author_is_admin`` (unknown names: no)."""
        command = self._by_name.get(name.strip().lower())
        return command is not None and command.admin

    async def run(self, event: ChatEvent, name: str, arguments: str = "") -> Reply:
        """Run command ``name`` (for a group, the subcommand named by the first word of
        ``arguments``) for the author of ``event``. An unknown or missing name gets a hint that
        lists what there is; it never raises for bad input.

        ``name`` and ``arguments`` are cleaned as chat messages are (control characters and
        lone surrogates removed, cut to ``ARGUMENT_LIMIT``) before any handler sees them."""
        name = clean_message(name, ARGUMENT_LIMIT).text
        arguments = clean_message(arguments, ARGUMENT_LIMIT).text
        command = self._by_name.get(name.strip().lower())
        if command is None:
            known = ", ".join(self._by_name)
            return _private(Reply(
                text=f"I don't know the command {name.strip()!r}. Commands: {known}.",
                kind=ReplyKind.HINT,
            ))
        arguments = arguments.strip()
        if command.subcommands:
            sub_name, _, arguments = arguments.partition(" ")
            sub = next((s for s in command.subcommands if s.name == sub_name.lower()), None)
            if sub is None:
                listed = "\n".join(f"- {command.name} {usage_line(s)}"
                                    for s in command.subcommands)
                opening = (f"{command.name} has no subcommand {sub_name!r}." if sub_name
                           else f"{command.name} needs a subcommand.")
                return _private(Reply(text=f"{opening} There are:\n{listed}",
                                      kind=ReplyKind.HINT))
            command, arguments = sub, arguments.strip()
        assert command.handler is not None  # checked at registration
        return _private(await command.handler(event, arguments))


def usage_line(command: Command) -> str:
    """``name usage: summary``, as help screens list a command."""
    usage = f" {command.usage}" if command.usage else ""
    return f"{command.name}{usage}: {command.summary}"


def guarded(handler: Handler, *, what: str, failure: str) -> Handler:
    """``handler``, except that any error becomes the one short sentence ``failure`` for the
    person and a log line naming ``what`` failed, for the operator."""

    async def run(event: ChatEvent, arguments: str) -> Reply:
        try:
            return await handler(event, arguments)
        except Exception:
            log.exception("%s failed for event %s", what, event.event_id)
            return Reply(text=failure, kind=ReplyKind.ERROR)

    return run


def _private(reply: Reply) -> Reply:
    return replace(reply, private=True)


HELP_TEXT = """\
I'm membot, a chat bot with a long-term memory of each person I talk with.
What I remember: facts you tell me about yourself, learned in the background after I answer. \
I learn only from your own words, never from my answers or from other people's messages, and \
your memories are used only when I answer you.
Seeing and forgetting: {forgetting}
One memory everywhere: link each of your chat accounts to one login (the link command), \
and what you tell me on one is known on the others.
Commands:
{commands}"""

FORGETTING = (
    "the memory commands list, search and export what I remember about you, forget one memory "
    "or all of them, and pause memory; server and workspace admins choose where memory is used "
    "(settings)."
)
NO_MEMORY_COMMANDS = "this bot was started without the memory commands."


def default_commands(linking: LinkCommands | None = None,
                     groups: Sequence[Command] = ()) -> Commands:
    """The commands membot offers on every platform: help; ``link`` and ``unlink`` with
    ``linking`` (production always gives it: it answers by itself when Supabase is not
    configured); then ``groups`` (the ``memory`` and ``settings`` commands)."""
    entries: list[Command] = []

    async def show_help(event: ChatEvent, arguments: str) -> Reply:
        prefix = typed(event.platform, "")  # ":" in the terminal, "/" on Discord, ...
        lines = []
        for command in entries:
            lines.append(f"- {prefix}{usage_line(command)}")
            lines += [f"  - {prefix}{command.name} {usage_line(sub)}"
                      for sub in command.subcommands]
        forgetting = (FORGETTING if any(c.name == "memory" for c in entries)
                      else NO_MEMORY_COMMANDS)
        return Reply(
            text=HELP_TEXT.format(commands="\n".join(lines), forgetting=forgetting),
            kind=ReplyKind.HINT,
        )

    entries.append(
        Command(name="help", summary="what membot is, what it remembers, and its commands",
                handler=show_help)
    )
    if linking is not None:
        entries.append(
            Command(
                name="link",
                usage="[code]",
                summary="tie this account to your login, so all your linked accounts share "
                        "memory",
                handler=linking.link,
            )
        )
        entries.append(
            Command(name="unlink", summary="untie this account from your login; it starts fresh",
                    handler=linking.unlink)
        )
    entries += groups
    return Commands(entries)
