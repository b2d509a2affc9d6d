"""The terminal adapter: talk to membot as one person, with no chat platform at all."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.commands import Commands
from bot.events import ChatEvent, MessageRef, Reply, ReplyKind
from bot.receipts import ReceiptRouter

__all__ = ["ConsoleAdapter", "to_event"]

QUIT = {":q", ":quit", ":exit"}
GREETING = """\
You are talking to membot as {user}. It remembers what you tell it, across restarts.
Type a message and press Enter. Commands start with a colon (:help lists them); :quit or Ctrl-D
leaves."""


def to_event(user: str, text: str, *, session: str) -> ChatEvent:
    """A terminal line as the common event. Every line is addressed to the bot."""
    line_id = str(uuid.uuid4())
    return ChatEvent(
        event_id=f"console:{line_id}",
        platform="console",
        author_id=user,
        author_name=user,
        text=text,
        conversation_id=f"console:{user}:{session}",
        is_direct=True,
        mentions_bot=True,
        source=MessageRef(platform="console", channel=session, message=line_id),
        at=datetime.now(UTC),
    )


def render(reply: Reply) -> str:
    """How a reply looks in the terminal: its buttons become the commands to type."""
    lines = []
    if reply.notice:
        lines.append(f"(note: {reply.notice})")
    prefix = "membot" if reply.kind is ReplyKind.ANSWER else f"membot [{reply.kind.value}]"
    lines.append(f"{prefix}> {reply.text}")
    lines += [f"  [{a.label}] :{a.command} {a.arguments}".rstrip() for a in reply.actions]
    return "\n".join(lines)


def _write_private(path: Path, content: bytes) -> Path:
    """Write ``content`` to a new file readable and writable by its owner only (0600: an export
    holds a person's memories), at ``path`` or, when that exists, ``stem-2.ext``, ``stem-3.ext``
    and so on. Never overwrites a file. Returns the path written."""
    stem, n, candidate = path.stem, 1, path
    while True:
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{stem}-{n}{path.suffix}")
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        return candidate


class ConsoleAdapter:
    """Reads lines from ``stdin``, hands each to ``handle`` (or, for ``:name arguments``, to the
    command layer), and prints the reply to ``stdout``. Files a reply carries (an export) are
    written to ``files_dir``, never over an existing file; with ``receipts``, a line saying
    what was learned from is printed when the memory writer asks for the 🧠 receipt.

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
        files_dir: Path | None = None,
        receipts: ReceiptRouter | None = None,
    ) -> None:
        self._handle = handle
        self._commands = commands
        self._user = user
        self._stdin = stdin
        self._stdout = stdout
        self._session = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._interactive = stdin.isatty()
        self._files_dir = files_dir or Path.cwd()
        self._said: OrderedDict[str, str] = OrderedDict()  # line id -> text, for receipts
        if receipts is not None:
            receipts.register("console", self._receipt)

    async def _receipt(self, source: MessageRef, emoji: str) -> None:
        said = self._said.get(source.message)
        if said is not None and source.channel == self._session:
            self._say(f"{emoji} (learned from: {said})")

    def _save(self, reply: Reply) -> None:
        for file in reply.files:
            path = _write_private(self._files_dir / file.filename, file.content)
            self._say(f"  saved {path} (readable by you only)")

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
            if line.strip().lower() in QUIT:
                break
            await self.line(line)

    async def line(self, line: str) -> None:
        """Take one line as typed: a message, or ``:name arguments`` for a command."""
        stripped = line.strip()
        event = to_event(self._user, line, session=self._session)
        if event.source is not None:
            self._said[event.source.message] = " ".join(stripped.split())[:60]
            while len(self._said) > 100:
                self._said.popitem(last=False)
        reply: Reply | None
        if stripped.startswith(":") and len(stripped) > 1:
            name, _, arguments = stripped[1:].partition(" ")
            reply = await self._commands.run(event, name, arguments)
        else:
            reply = await self._handle(event)
        if reply is not None:
            self._say(render(reply))
            self._save(reply)
