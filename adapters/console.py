"""The terminal adapter: talk to membot as one person, with no chat platform at all."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.commands.registry import Commands
from bot.events import ChatEvent, MessageRef, Reply, ReplyKind
from bot.ports import Handle
from bot.receipts import ReceiptRouter
from bot.wording import plural

__all__ = ["ConsoleAdapter", "to_event"]

QUIT = {":q", ":quit", ":exit"}
GREETING = """\
You are talking to membot as {user}. It remembers what you tell it, across restarts.
Type a message and press Enter. Commands start with a colon (:help lists them); :quit or Ctrl-D
leaves."""
QUIT_HELP = "- :quit (or :exit, or Ctrl-D): leave; what you said is still learned"
_CLEAR_LINE = "\r\x1b[K"  # back to the start of the line, and erase it


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


class Printing:
    """An answer printed as the model writes it (the ``ReplyStream`` of the terminal): the
    ``membot>`` prompt with the first words, then each new piece on the same line; ``finish``
    ends it with the turn's reply (the rest of it, and its note)."""

    def __init__(self, stdout: TextIO) -> None:
        self._stdout = stdout
        self.printed = ""

    async def show(self, text: str) -> None:
        if not self.printed:
            self._stdout.write("membot> ")
        self._stdout.write(text[len(self.printed):])
        self._stdout.flush()
        self.printed = text

    def finish(self, reply: Reply) -> str | None:
        """End the printed answer; returns what is still to be printed of ``reply`` as a whole
        (None when it was printed as it streamed)."""
        if not self.printed:
            return render(reply)
        rest = reply.text[len(self.printed):] if reply.text.startswith(self.printed) else None
        lines = [rest or ""] if rest is not None else ["", render(reply)]
        if reply.notice and rest is not None:
            lines.append(f"(note: {reply.notice})")
        lines += [f"  [{a.label}] :{a.command} {a.arguments}".rstrip() for a in reply.actions]
        self._stdout.write("\n".join(lines) + "\n")
        self._stdout.flush()
        return None


def render(reply: Reply) -> str:
    """How a reply looks in the terminal: its buttons become the commands to type."""
    lines = []
    if reply.notice:
        lines.append(f"(note: {reply.notice})")
    prefix = "membot" if reply.kind is ReplyKind.ANSWER else f"membot [{reply.kind.value}]"
    cause = f" ({reply.cause})" if reply.cause else ""
    lines.append(f"{prefix}> {reply.text}{cause}")
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
    """Reads lines from ``stdin``, hands each to ``handle`` (or, for ``:name arguments``, and
    ``/name arguments`` when ``name`` is a command, to the command layer), and prints the reply
    to ``stdout``. Files a reply carries (an export) are written to ``files_dir``, readable by
    their owner only and never over an existing file; with ``receipts``, a line naming every
    message of a batch learned from is printed when the memory writer asks for the 🧠
    receipt. A line printed while the prompt waits (a receipt, :meth:`say_aside`) takes the
    prompt's line and the prompt is shown again under it. ``log_note`` (where details of faults
    go) is added to the greeting.

    Lines are read on a daemon thread, so the event loop (and the background memory writes)
    keep running while the person types, and Ctrl-C or SIGTERM never wait for a pending read.
    """

    def __init__(
        self,
        handle: Handle,
        commands: Commands,
        *,
        user: str,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
        files_dir: Path | None = None,
        receipts: ReceiptRouter | None = None,
        log_note: str | None = None,
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
        self._log_note = log_note
        self._prompting = False  # the prompt is shown and no line has come yet
        if receipts is not None:
            receipts.register_notice("console", self._receipt)

    async def _receipt(self, batch: Sequence[MessageRef], emoji: str) -> None:
        said = [f"“{self._said[ref.message]}”" for ref in batch
                if ref.channel == self._session and ref.message in self._said]
        if not said:
            return
        whose = "your message" if len(said) == 1 else plural(len(said), "of your message")
        self.say_aside(f"{emoji} learned from {whose}: {', '.join(said)}")

    def say_aside(self, text: str) -> None:
        """Print ``text`` between turns: over the waiting prompt, which is shown again below."""
        if not self._prompting:
            self._say(text)
            return
        self._stdout.write(f"{_CLEAR_LINE}{text}\n{self._prompt}")
        self._stdout.flush()

    @property
    def _prompt(self) -> str:
        return f"{self._user}> "

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
            self._stdout.write(self._prompt)
            self._stdout.flush()
            self._prompting = True
        try:
            return await lines.get()
        finally:
            self._prompting = False

    async def run(self) -> None:
        """Converse until ``:quit`` (``:exit``, ``:q``) or end of input."""
        self._say(GREETING.format(user=self._user))
        if self._log_note:
            self._say(self._log_note)
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
        shown: str | None
        command = self._command(stripped)
        if command is not None:
            name, arguments = command
            reply = await self._commands.run(event, name, arguments)
            if name.strip().lower() == "help":
                reply = replace(reply, text=f"{reply.text}\n{QUIT_HELP}")
            shown = render(reply)
        else:
            printing = Printing(self._stdout)
            reply = await self._handle(event, printing)
            shown = printing.finish(reply) if reply is not None else None
        if reply is not None:
            if shown is not None:
                self._say(shown)
            self._save(reply)

    def _command(self, stripped: str) -> tuple[str, str] | None:
        """``(name, arguments)`` when the line is a command: ``:name ...``, or ``/name ...``
        with ``name`` one of the commands (as typed on Discord or Slack out of habit; a line
        such as ``/etc/hosts is missing`` is still a message)."""
        if len(stripped) < 2 or stripped[0] not in ":/":
            return None
        name, _, arguments = stripped[1:].partition(" ")
        if stripped[0] == "/" and name.lower() not in {c.name for c in self._commands.all}:
            return None
        return name, arguments
