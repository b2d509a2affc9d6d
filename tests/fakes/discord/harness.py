"""Helpers for running a real discord.py client against ``FakeDiscord`` in a test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

import discord
import pytest
import yarl

from tests.fakes.discord.server import FakeDiscord

__all__ = ["TIMEOUT", "point_discord_at", "running", "without_waits"]

ClientT = TypeVar("ClientT", bound=discord.Client)
TIMEOUT = 5.0


def point_discord_at(monkeypatch: pytest.MonkeyPatch, fake: FakeDiscord) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", fake.rest_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        yarl.URL(fake.gateway_url))


def without_waits(client: ClientT) -> ClientT:
    """`client`, ready as soon as its guilds arrived: the fake sends every GUILD_CREATE right
    after READY, so the 2 s discord.py waits for late ones would only slow tests down."""
    client._connection.guild_ready_timeout = 0.1
    return client


@contextlib.asynccontextmanager
async def running(client: ClientT, token: str) -> AsyncIterator[ClientT]:
    """Start `client`, wait until it is ready, and close it afterwards whatever happens."""
    task = asyncio.create_task(client.start(token))
    try:
        async with asyncio.timeout(TIMEOUT):
            while not client.is_ready():
                if task.done():
                    task.result()  # raises what start() raised
                    raise AssertionError("client stopped before it was ready")
                await asyncio.sleep(0.01)
        yield client
    finally:
        await client.close()
        async with asyncio.timeout(TIMEOUT):
            with contextlib.suppress(asyncio.CancelledError):
                await task
