"""Shared fixtures: one embedded PostgreSQL with pgvector for the session (a fresh database per
test), and the scripted OpenAI-compatible server as the far side."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot import eventloop
from bot.config import Settings
from bot.core import Core
from bot.database import start_embedded
from bot.events import ChatEvent, Reply
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.harness import point_discord_at
from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.slack import FakeSlack
from tests.processes import tagged_reply

if TYPE_CHECKING:
    from tests.linkrig import LinkRig

TEST_DIMS = 64
MIGRATIONS = sorted(
    int(entry.name[:3])
    for entry in files("bot.migrations").iterdir()
    if entry.name.endswith(".sql")
)


def pytest_configure(config: pytest.Config) -> None:
    """Give the run the per-user runtime folder a login session has (``XDG_RUNTIME_DIR``, 0700),
    where one is missing (CI, containers, ``sudo``): the embedded PostgreSQL keeps its
    inter-process lock there, and platformdirs warns when it has to guess one."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        folder = tempfile.mkdtemp(prefix="membot-tests-runtime-")
        os.environ["XDG_RUNTIME_DIR"] = folder
        config.add_cleanup(lambda: _forget_runtime_dir(folder))


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test and fixture runs on the loop membot runs on (:mod:`bot.eventloop`)."""
    return {"loop": eventloop.new_event_loop}


def _forget_runtime_dir(folder: str) -> None:
    os.environ.pop("XDG_RUNTIME_DIR", None)
    shutil.rmtree(folder, ignore_errors=True)


def with_database(uri: str, name: str) -> str:
    """``uri`` pointing at database ``name`` instead."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The admin URI of an embedded PostgreSQL started from the same wheel production uses."""
    return start_embedded(tmp_path_factory.mktemp("postgres-server"))


@pytest.fixture
def database_url(postgres: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield with_database(postgres, name)
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def model_server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(dims=TEST_DIMS) as server:
        yield server


@pytest.fixture
def openai_server(model_server: ScriptedOpenAI) -> Iterator[ScriptedOpenAI]:
    """The scripted model server, with no delays, failures or records from earlier tests."""
    model_server.reset()
    model_server.chat_delay = model_server.extraction_delay = model_server.embedding_delay = 0.0
    _unscript(model_server)
    yield model_server
    model_server.reset()
    _unscript(model_server)


def _unscript(server: ScriptedOpenAI) -> None:
    server.chat_reply = None
    server.extraction_reply = None
    server.extraction_text = None
    server.retract_notes = set()
    server.context_chars = None
    server.refused_params = set()
    server.refuses_schemas = None
    server.stream_delay = 0.0
    server.stream_chunk_words = 1
    server.stream_chunk_chars = None
    server.break_stream_after = None
    server.break_stream_mode = "drop"


@pytest.fixture
def model(openai_server: ScriptedOpenAI) -> Iterator[ScriptedOpenAI]:
    """The scripted model server for tests of several bot processes: its answers name the chat
    model of the process that asked (each process's is named after it)."""
    openai_server.chat_reply = tagged_reply
    yield openai_server


@pytest.fixture
def make_settings(
    database_url: str, openai_server: ScriptedOpenAI, tmp_path: Path
) -> Callable[..., Settings]:
    """Settings for a bot on this test's database and the scripted server; override by name."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "openai_api_key": SecretStr("test-key"),
            "openai_base_url": openai_server.base_url,
            "embedding_dims": TEST_DIMS,
            "database_url": SecretStr(database_url),
            "data_dir": tmp_path / "data",
            "shutdown_grace": 10.0,
            # What these tests check must not hinge on timing: a loaded machine may take longer
            # than the production search budget. The budget itself is tested on fakes.
            "memory_search_timeout": 30.0,
            # Learn each message at once, as it comes: tests of batching set these themselves.
            "memory_batch_size": 1,
            "memory_batch_idle": 0.0,
            "memory_retry_backoff": 1,
        }
        values.update(overrides)
        return Settings(**values)

    return make


async def answer(core: Core, event: ChatEvent) -> Reply:
    """``core.handle(event)``, which must answer (the event is new)."""
    reply = await core.handle(event)
    assert reply is not None, f"event {event.event_id} was not answered"
    return reply


@pytest.fixture
def discord_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    """The fake Discord gateway and REST API, with discord.py pointed at it."""
    with FakeDiscord() as server:
        point_discord_at(monkeypatch, server)
        yield server


@pytest.fixture
def slack_fake() -> Iterator[FakeSlack]:
    """The fake Slack Web API."""
    with FakeSlack() as server:
        yield server


async def serve_web(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on 127.0.0.1 (``port`` 0: any free one); the runner and the port."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def rig(
    make_settings: Callable[..., Settings], database_url: str, openai_server: ScriptedOpenAI
) -> AsyncIterator[LinkRig]:
    """The bot with linking on: the Supabase Auth stand-in, the web pages on a free port."""
    from tests.linkrig import link_rig  # it imports this module's helpers

    async with link_rig(make_settings, database_url) as running:
        yield running
