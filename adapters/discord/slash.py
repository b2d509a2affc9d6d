"""membot's commands as Discord slash commands.

A plain command becomes ``/name``; a group becomes ``/name sub`` with one subcommand each. A
usage becomes one string option named after it (``[page]`` -> ``page``, ``<words>`` ->
``words``, anything else -> ``value``), required for ``<...>`` and optional for ``[...]``;
``<on|off>`` also offers its words as choices. Whatever is typed in the option is the command's
argument string.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from bot.commands.registry import Command, Commands

__all__ = ["Invoke", "Option", "option_for", "slash_commands"]

# Runs command ``name`` with ``arguments`` for the person behind the interaction.
Invoke = Callable[[discord.Interaction, str, str], Awaitable[None]]
Callback = Callable[..., Awaitable[None]]
SlashCommand = app_commands.Command[Any, ..., None] | app_commands.Group

DESCRIPTION_LIMIT = 100  # Discord's limit for command and option descriptions
_WORD = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class Option:
    """The one string option a usage becomes."""

    name: str
    required: bool
    choices: tuple[str, ...] = ()


def option_for(usage: str) -> Option | None:
    """The option for a usage string, or None for a command without arguments."""
    usage = usage.strip()
    if not usage:
        return None
    inner = usage[1:-1].strip() if usage[0] in "<[" and usage[-1] in ">]" else usage
    words = inner.lower().split("|")
    choices = tuple(words) if len(words) > 1 and all(_WORD.fullmatch(w) for w in words) else ()
    name = inner.lower() if _WORD.fullmatch(inner.lower()) else "value"
    return Option(name=name, required=not usage.startswith("["), choices=choices)


def _described(text: str, fallback: str) -> str:
    return text[:DESCRIPTION_LIMIT] or fallback


def _command(name: str, summary: str, usage: str,
             run: Callable[[discord.Interaction, str], Awaitable[None]]) -> SlashCommand:
    option = option_for(usage)
    description = _described(summary, name)
    if option is None:
        async def plain(interaction: discord.Interaction) -> None:
            await run(interaction, "")

        return app_commands.Command(name=name, description=description, callback=plain)

    callback: Callback
    if option.required:
        async def required(interaction: discord.Interaction, arguments: str) -> None:
            await run(interaction, arguments)

        callback = required
    else:
        async def optional(interaction: discord.Interaction, arguments: str = "") -> None:
            await run(interaction, arguments)

        callback = optional
    # The parameter is always "arguments"; people see it by the usage's name ("/link code:").
    callback = app_commands.describe(arguments=_described(usage, option.name))(callback)
    if option.choices:
        choices = [app_commands.Choice(name=word, value=word) for word in option.choices]
        callback = app_commands.choices(arguments=choices)(callback)
    callback = app_commands.rename(arguments=option.name)(callback)
    return app_commands.Command(name=name, description=description, callback=callback)


def slash_commands(commands: Commands, invoke: Invoke) -> list[SlashCommand]:
    """Every command as a slash command (or group) whose callback calls ``invoke``."""
    made: list[SlashCommand] = []
    for command in commands.all:
        if not command.subcommands:
            made.append(_command(command.name, command.summary, command.usage,
                                 _runner(invoke, command.name)))
            continue
        group = app_commands.Group(name=command.name,
                                   description=_described(command.summary, command.name))
        for sub in command.subcommands:
            group.add_command(_command(sub.name, sub.summary, sub.usage,
                                       _runner(invoke, command.name, sub)))
        made.append(group)
    return made


def _runner(invoke: Invoke, name: str, sub: Command | None = None
            ) -> Callable[[discord.Interaction, str], Awaitable[None]]:
    async def run(interaction: discord.Interaction, arguments: str) -> None:
        words = arguments.strip() if sub is None else f"{sub.name} {arguments.strip()}".strip()
        await invoke(interaction, name, words)

    return run
