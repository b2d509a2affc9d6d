"""The shared command layer, and the terminal's mapping onto it."""

from __future__ import annotations

import io

import pytest

from adapters.console import ConsoleAdapter, to_event
from bot.commands.registry import Command, Commands, default_commands, guarded
from bot.events import ChatEvent, Reply, ReplyKind


async def test_help_says_what_is_remembered_and_lists_every_command_privately() -> None:
    commands = default_commands()
    reply = await commands.run(to_event("alice", ":help", session="s"), "help")
    assert reply.private
    assert "remember" in reply.text and "your own words" in reply.text
    for command in commands.all:
        assert f"- {command.name}" in reply.text


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

    async def handle(event: ChatEvent) -> Reply:
        seen.append(event.text)
        return Reply(text=f"answer to {event.text.strip()}")

    out = io.StringIO()
    stdin = io.StringIO("hello\n:help\n:nosuch now\n:quit\nnever read\n")
    await ConsoleAdapter(handle, default_commands(), user="alice", stdin=stdin, stdout=out).run()
    text = out.getvalue()
    assert seen == ["hello\n"]
    assert "membot> answer to hello" in text
    assert "- help:" in text
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
