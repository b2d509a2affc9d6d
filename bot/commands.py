"""The command layer every adapter maps its native form onto.

Discord's ``/help``, Slack's ``/membot help`` and the terminal's ``:help`` all arrive here as a
name and an argument string, so a new command is one entry in :func:`default_commands`, shared
by every platform.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from bot.events import ChatEvent, Reply, ReplyKind
from bot.linking import Linking

__all__ = ["Command", "Commands", "default_commands"]

Handler = Callable[[ChatEvent, str], Awaitable[Reply]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One command: ``name`` is what people type (lowercase, no prefix); ``usage`` shows the
    arguments, if any; ``summary`` is one line for help screens and platform command menus."""

    name: str
    summary: str
    handler: Handler
    usage: str = ""


class Commands:
    """The registry. Every reply it gives is private: commands are about the person asking."""

    def __init__(self, commands: Iterable[Command]) -> None:
        self._by_name: dict[str, Command] = {}
        for command in commands:
            if command.name in self._by_name:
                raise ValueError(f"command {command.name!r} registered twice")
            self._by_name[command.name] = command

    @property
    def all(self) -> Sequence[Command]:
        """Every command, in registration order (for platform command menus)."""
        return list(self._by_name.values())

    async def run(self, event: ChatEvent, name: str, arguments: str = "") -> Reply:
        """Run command ``name`` for the author of ``event``. An unknown name gets a hint that
        lists the commands there are; it never raises for bad input."""
        command = self._by_name.get(name.strip().lower())
        if command is None:
            known = ", ".join(self._by_name)
            return Reply(
                text=f"I don't know the command {name.strip()!r}. Commands: {known}.",
                kind=ReplyKind.HINT,
                private=True,
            )
        reply = await command.handler(event, arguments.strip())
        return Reply(text=reply.text, kind=reply.kind, notice=reply.notice, private=True)


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

# Until the memory commands exist (list, search, forget, export), help says so plainly.
NO_MEMORY_COMMANDS = (
    "this version has no commands yet to list, export or forget your memories; they are next."
)


def default_commands(linking: Linking | None = None) -> Commands:
    """The commands membot offers on every platform (``link`` and ``unlink`` with ``linking``,
    which production always gives: it answers by itself when Supabase is not configured)."""
    entries: list[Command] = []

    async def show_help(event: ChatEvent, arguments: str) -> Reply:
        lines = "\n".join(
            f"- {c.name}{' ' + c.usage if c.usage else ''}: {c.summary}" for c in entries
        )
        return Reply(
            text=HELP_TEXT.format(commands=lines, forgetting=NO_MEMORY_COMMANDS),
            kind=ReplyKind.HINT,
        )

    entries.append(
        Command(name="help", summary="what membot is, what it remembers, and its commands",
                handler=show_help)
    )
    if linking is None:
        return Commands(entries)
    entries.append(
        Command(
            name="link",
            usage="[code]",
            summary="tie this account to your login, so all your linked accounts share memory",
            handler=linking.link,
        )
    )
    entries.append(
        Command(name="unlink", summary="untie this account from your login; it starts fresh",
                handler=linking.unlink)
    )
    return Commands(entries)
