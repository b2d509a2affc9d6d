"""The terminal adapter: talk to membot as one person, with no chat platform at all."""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TextIO

from bot.commands import Commands
from bot.events import ChatEvent, Reply, ReplyKind

__all__ = ["ConsoleAdapter", "to_event"]

QUIT = {":q", ":quit", ":exit"}
GREETING = """\
You are talking to membot as {user}. It remembers what you tell it, across restarts.
Type a message and press Enter. Commands start with a colon (:help lists them); :quit or Ctrl-D
leaves."""


def to_event(user: str, text: str, *, session: str) -> ChatEvent:
    """A terminal line as the common event. Every line is addressed to the bot."""
    return ChatEvent(
        event_id=f"console:{uuid.uuid4()}",
        platform="console",
        author_id=user,
        author_name=user,
        text=text,
        conversation_id=f"console:{user}:{session}",
        is_direct=True,
        mentions_bot=True,
        at=datetime.now(UTC),
    )


def render(reply: Reply) -> str:
    """How a reply looks in the terminal."""
    lines = []
    if reply.notice:
        lines.append(f"(note: {reply.notice})")
    prefix = "membot" if reply.kind is ReplyKind.ANSWER else f"membot [{reply.kind.value}]"
    lines.append(f"{prefix}> {reply.text}")
    return "\n".join(lines)


class ConsoleAdapter:
    """Reads lines from ``stdin``, hands each to ``handle`` (or, for ``:name arguments``, to the
    command layer), and prints the reply to ``stdout``.

    Lines are read on a daemon thread, so the event loop (and the background memory writes)
    keep running while the person types, and Ctrl-C or SIGTERM never wait for a pending read.
    """

    def __init__(
        self,
        handle: Callable[[ChatEvent], Awaitable[Reply | None]],
        commands: Commands,
        *,
        user: str,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
    ) -> None:
        self._handle = handle
        self._commands = commands
        self._user = user
        self._stdin = stdin
        self._stdout = stdout
        self._session = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._interactive = stdin.isatty()

    def _say(self, text: str) -> None:
        self._stdout.write(text + "\n")
        self._stdout.flush()

    def _start_reader(self) -> asyncio.Queue[str | None]:
        """Lines from stdin as they come; None at end of input."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read() -> None:
            for line in iter(self._stdin.readline, ""):
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read, name="console-stdin", daemon=True).start()
        return lines

    async def _read(self, lines: asyncio.Queue[str | None]) -> str | None:
        if self._interactive:
            self._stdout.write(f"{self._user}> ")
            self._stdout.flush()
        return await lines.get()

    async def run(self) -> None:
        """Converse until ``:quit`` or end of input."""
        self._say(GREETING.format(user=self._user))
        lines = self._start_reader()
        while (line := await self._read(lines)) is not None:
            stripped = line.strip()
            if stripped.lower() in QUIT:
                break
            event = to_event(self._user, line, session=self._session)
            reply: Reply | None
            if stripped.startswith(":") and len(stripped) > 1:
                name, _, arguments = stripped[1:].partition(" ")
                reply = await self._commands.run(event, name, arguments)
            else:
                reply = await self._handle(event)
            if reply is not None:
                self._say(render(reply))
