"""The shared command layer, and the terminal's mapping onto it."""

from __future__ import annotations

import asyncio
import io
import queue
from collections.abc import Callable

import pytest

from adapters.console import ConsoleAdapter, to_event
from bot.commands.registry import Command, Commands, default_commands, guarded
from bot.events import ChatEvent, MessageRef, Reply, ReplyKind
from bot.ports import ReplyStream
from bot.receipts import ReceiptRouter


async def test_help_says_what_is_remembered_and_lists_every_command_privately() -> None:
    commands = default_commands()
    reply = await commands.run(to_event("alice", ":help", session="s"), "help")
    assert reply.private
    assert "remember" in reply.text and "your own words" in reply.text
    for command in commands.all:
        assert f"- :{command.name}" in reply.text  # as typed in the terminal


@pytest.mark.parametrize("name", ["nosuch", "", "  ", "HELP me"])
async def test_an_unknown_command_gets_a_private_hint_naming_the_commands(name: str) -> None:
    reply = await default_commands().run(to_event("alice", "x", session="s"), name)
    assert reply.kind is ReplyKind.HINT and reply.private
    assert "help" in reply.text


async def test_names_are_matched_without_case_or_padding() -> None:
    reply = await default_commands().run(to_event("alice", "x", session="s"), " Help ")
    assert "Commands:" in reply.text


def test_a_name_cannot_be_registered_twice() -> None:
    async def handler(event: ChatEvent, arguments: str) -> Reply:
        return Reply(text="x")

    with pytest.raises(ValueError, match="twice"):
        Commands([Command(name="a", summary="", handler=handler),
                  Command(name="a", summary="", handler=handler)])


async def test_the_terminal_maps_colon_lines_onto_the_commands() -> None:
    seen: list[str] = []

    async def handle(event: ChatEvent, stream: ReplyStream | None = None) -> Reply:
        seen.append(event.text)
        return Reply(text=f"answer to {event.text.strip()}")

    out = io.StringIO()
    stdin = io.StringIO("hello\n:help\n:nosuch now\n:quit\nnever read\n")
    await ConsoleAdapter(handle, default_commands(), user="alice", stdin=stdin, stdout=out).run()
    text = out.getvalue()
    assert seen == ["hello\n"]
    assert "membot> answer to hello" in text
    assert "- :help:" in text
    assert "I don't know the command 'nosuch'" in text
    assert "never read" not in text


async def test_a_failing_handler_costs_one_sentence_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(event: ChatEvent, arguments: str) -> Reply:
        raise ConnectionError("database gone")

    commands = Commands([Command(name="grp", summary="", subcommands=(
        Command(name="sub", summary="", handler=guarded(broken, what="grp sub",
                                                        failure="Try again soon.")),))])
    reply = await commands.run(to_event("alice", ":grp sub", session="s"), "grp", "sub")
    assert (reply.text, reply.kind, reply.private) == ("Try again soon.", ReplyKind.ERROR, True)
    assert "grp sub failed" in caplog.text and "database gone" in caplog.text


async def test_the_terminals_help_is_written_as_typed_and_slash_commands_are_commands_too(
) -> None:
    seen: list[str] = []

    async def handle(event: ChatEvent, stream: ReplyStream | None = None) -> Reply:
        seen.append(event.text.strip())
        return Reply(text="answered")

    out = io.StringIO()
    stdin = io.StringIO(":help\n/help\n/etc/hosts is missing\n:exit\nnever read\n")
    await ConsoleAdapter(handle, default_commands(), user="alice", stdin=stdin, stdout=out).run()
    text = out.getvalue()
    assert text.count("- :help: what membot is") == 2  # ":help" and "/help" alike
    assert "- help:" not in text
    assert "- :quit (or :exit, or Ctrl-D): leave" in text
    assert seen == ["/etc/hosts is missing"]  # not a command: a message
    assert "never read" not in text


class _Terminal:
    """Standard input as a person at a terminal gives it: a tty, lines when they type them."""

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()

    def isatty(self) -> bool:
        return True

    def type(self, line: str) -> None:
        self._lines.put(line)

    def readline(self) -> str:
        return self._lines.get()


async def test_a_learned_notice_names_the_whole_batch_and_gives_the_prompt_back() -> None:
    async def handle(event: ChatEvent, stream: ReplyStream | None = None) -> Reply:
        return Reply(text="noted")

    receipts = ReceiptRouter()
    out, terminal = io.StringIO(), _Terminal()
    console = ConsoleAdapter(handle, default_commands(), user="alice",
                             stdin=terminal,  # type: ignore[arg-type]
                             stdout=out, receipts=receipts)
    running = asyncio.create_task(console.run())
    for count, said in enumerate(("I have a dog", "She is called Pixel"), start=1):
        terminal.type(said + "\n")
        # answered, and the prompt is back, waiting for the next line
        await _until(lambda n=count: out.getvalue().count("membot> noted") == n  # type: ignore[misc]
                     and out.getvalue().endswith("alice> "))
    sources = _refs_of(console)
    await receipts.learned(sources[-1], sources)
    terminal.type(":quit\n")
    await running
    text = out.getvalue()
    notice = ("\r\x1b[K🧠 learned from 2 of your messages: “I have a dog”, “She is called Pixel”"
              "\nalice> ")
    assert notice in text  # over the waiting prompt, which comes back below it


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the console did not get there")


def _refs_of(console: ConsoleAdapter) -> list[MessageRef]:
    """The terminal lines the console has seen, as the memory writer refers to them."""
    return [MessageRef(platform="console", channel=console._session, message=line_id)
            for line_id in console._said]


class _Writes(io.StringIO):
    """Standard output that keeps each write apart, to see what was printed when."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


async def test_the_terminal_prints_the_answer_as_it_is_written_then_its_note() -> None:
    async def handle(event: ChatEvent, stream: ReplyStream | None = None) -> Reply:
        assert stream is not None
        for text in ("Once", "Once upon", "Once upon a"):
            await stream.show(text)
        return Reply(text="Once upon a…", notice="My language model stopped midway.")

    out = _Writes()
    await ConsoleAdapter(handle, default_commands(), user="alice",
                         stdin=io.StringIO("tell me a story\n"), stdout=out).run()
    assert out.writes[-5:-1] == ["membot> ", "Once", " upon", " a"]  # piece by piece
    assert out.getvalue().endswith("membot> Once upon a…\n(note: My language model stopped "
                                   "midway.)\n")


async def test_an_error_in_the_terminal_is_one_line_as_before() -> None:
    async def handle(event: ChatEvent, stream: ReplyStream | None = None) -> Reply:
        return Reply(text="I can't reach it.", kind=ReplyKind.ERROR, cause="connection refused")

    out = io.StringIO()
    await ConsoleAdapter(handle, default_commands(), user="alice",
                         stdin=io.StringIO("hello\n"), stdout=out).run()
    assert out.getvalue().endswith("membot [error]> I can't reach it. (connection refused)\n")
