"""The reply path's model calls on the lean HTTP client (``bot/endpoint.py``), over real sockets
to the scripted OpenAI-compatible server: what the official SDK did for these calls, they still
do (retries and waits, the errors' sentences, the token-cap fallback, base64 embeddings)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from pydantic import SecretStr

from adapters.console import to_event
from bot.clients import ModelClients, OpenAIChat, describe_failure
from bot.config import Settings
from bot.core import MODEL_DOWN, Core, TurnLimits
from bot.embedder import OpenAIEmbedder
from bot.endpoint import _retry_after
from bot.errors import ConfigError, ModelAPIError, ModelRejected, ModelUnavailable, StartupError
from bot.events import ReplyKind
from bot.ports import Message
from tests.conftest import TEST_DIMS, answer
from tests.fakes.openai_server import ScriptedOpenAI, embed
from tests.test_core import Rig

HELLO = [Message(role="user", content="hello there")]


def settings_for(base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"openai_api_key": SecretStr("test-key"),
                              "openai_base_url": base_url, "embedding_dims": TEST_DIMS,
                              "memory_search_timeout": 30.0, **overrides}
    return Settings(**values)


@pytest.fixture
async def made() -> AsyncIterator[list[ModelClients]]:
    """Clients a test builds, closed after it."""
    clients: list[ModelClients] = []
    yield clients
    for each in clients:
        await each.close()


@pytest.fixture
def build(made: list[ModelClients], openai_server: ScriptedOpenAI
          ) -> Callable[..., tuple[ModelClients, Settings]]:
    def make(base_url: str | None = None, **overrides: Any) -> tuple[ModelClients, Settings]:
        settings = settings_for(base_url or openai_server.base_url, **overrides)
        clients = ModelClients(settings)
        made.append(clients)
        return clients, settings
    return make


Build = Callable[..., tuple[ModelClients, Settings]]


def refused_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_answer_comes_with_the_key_as_a_bearer_token(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    openai_server.api_key = "test-key"
    try:
        clients, settings = build()
        said = await OpenAIChat(clients, settings).complete(HELLO)
    finally:
        openai_server.api_key = None
    assert said == "(scripted) You said: hello there"
    body = openai_server.calls("chat")[-1].body
    assert body["model"] == settings.chat_model
    assert body["max_completion_tokens"] == settings.max_answer_tokens


async def test_a_429_is_retried_after_the_wait_the_server_asks_for_and_answered(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build(model_max_retries=2)
    openai_server.fail_next("chat", 429, retry_after=300)
    started = time.monotonic()
    said = await OpenAIChat(clients, settings).complete(HELLO)
    assert said.endswith("hello there")
    assert [c.status for c in openai_server.calls("chat")] == [429, 200]
    assert time.monotonic() - started >= 0.3


async def test_a_503_that_outlasts_the_retries_is_the_model_down_sentence(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build(model_max_retries=2)
    openai_server.fail_always("chat", 503)
    chat = OpenAIChat(clients, settings)
    with pytest.raises(ModelUnavailable) as raised:
        await chat.complete(HELLO)
    assert str(raised.value) == f"HTTP 503 at {openai_server.base_url}"
    assert len(openai_server.calls("chat")) == 3  # the first try and two retries
    rig = Rig()
    core = Core(memory=rig.memory, chat=chat, start=rig.start, exchanges=rig.jobs,
                limits=TurnLimits())
    reply = await answer(core, to_event("alice", "hello there", session="s"))
    assert (reply.kind, reply.text) == (ReplyKind.ERROR, MODEL_DOWN)


async def test_a_400_is_not_retried_and_its_message_is_kept(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build(model_max_retries=2)
    openai_server.context_chars = 5
    with pytest.raises(ModelRejected) as raised:
        await OpenAIChat(clients, settings).complete(HELLO)
    assert str(raised.value) == ("HTTP 400: This model's maximum context length is 5 "
                                 "characters; the messages hold 11.")
    assert len(openai_server.calls("chat")) == 1


async def test_no_answer_in_time_is_retried_then_named(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build(model_max_retries=1, model_timeout=0.2)
    openai_server.chat_delay = 2.0
    with pytest.raises(ModelUnavailable) as raised:
        await OpenAIChat(clients, settings).complete(HELLO)
    assert str(raised.value) == f"no answer in time (MODEL_TIMEOUT) at {openai_server.base_url}"
    assert len(openai_server.calls("chat")) == 2


async def test_the_query_embedding_waits_its_own_budget_and_retries_once(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build(model_max_retries=3, memory_search_timeout=0.2)
    openai_server.embedding_delay = 2.0
    with pytest.raises(TimeoutError) as raised:
        await OpenAIEmbedder(clients, settings).embed("my cats")
    assert describe_failure(raised.value) == "no answer in time (MODEL_TIMEOUT)"
    assert len(openai_server.calls("embedding")) == 2


async def test_a_refused_connection_is_named_as_such(build: Build) -> None:
    where = f"http://127.0.0.1:{refused_port()}/v1"
    clients, settings = build(where, model_max_retries=0)
    with pytest.raises(ModelUnavailable) as raised:
        await OpenAIChat(clients, settings).complete(HELLO)
    assert str(raised.value) == f"connection refused at {where}"
    with pytest.raises(StartupError) as failed:
        await OpenAIEmbedder(clients, settings).check(TEST_DIMS)
    assert str(failed.value) == (f"Cannot reach the model API at {where} (OPENAI_BASE_URL): "
                                 "connection refused.")


async def test_a_name_that_does_not_resolve_is_named_as_such(build: Build) -> None:
    where = "http://membot-model.invalid/v1"  # .invalid never resolves (RFC 6761)
    clients, settings = build(where, model_max_retries=0)
    with pytest.raises(ModelUnavailable) as raised:
        await OpenAIChat(clients, settings).complete(HELLO)
    assert str(raised.value) == f"the server's name was not found (DNS) at {where}"


async def test_a_connection_dropped_before_the_answer_is_retried_and_then_named(
    build: Build,
) -> None:
    # A server that reads the request and hangs up without a word, every time.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    accepted = 0

    async def hang_up() -> None:
        nonlocal accepted
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            accepted += 1
            await loop.sock_recv(conn, 65536)
            conn.close()

    serving = asyncio.create_task(hang_up())
    where = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    clients, settings = build(where, model_max_retries=1)
    try:
        with pytest.raises(ModelUnavailable) as raised:
            await OpenAIChat(clients, settings).complete(HELLO)
    finally:
        serving.cancel()
        listener.close()
    assert accepted == 2  # tried again once, as the SDK would
    assert str(raised.value).endswith(f" at {where}") and "Error" not in str(raised.value)


async def test_an_https_endpoint_is_trusted_only_with_a_certificate_the_system_trusts(
    build: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real TLS server whose certificate a test authority signed: refused while the system's
    # trust store lacks that authority, answered once SSL_CERT_FILE names it.
    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(served)
    app = web.Application()

    async def chat(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer test-key"
        return web.json_response({"id": "c1", "object": "chat.completion", "created": 0,
                                  "model": "m", "choices": [{
                                      "index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "over TLS"}}]})

    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=served)
    await site.start()
    port = runner.addresses[0][1]
    where = f"https://localhost:{port}/v1"
    try:
        clients, settings = build(where, model_max_retries=0)
        with pytest.raises(ModelUnavailable) as raised:
            await OpenAIChat(clients, settings).complete(HELLO)
        assert "certificate" in str(raised.value) and str(raised.value).endswith(f" at {where}")
        authority.cert_pem.write_to_path(str(tmp_path / "authority.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "authority.pem"))
        clients, settings = build(where, model_max_retries=0)
        assert await OpenAIChat(clients, settings).complete(HELLO) == "over TLS"
    finally:
        await runner.cleanup()


async def test_a_url_the_client_cannot_use_is_the_model_down_sentence(build: Build) -> None:
    # Past the settings' check (a scheme, a host, a path), refused by the HTTP client.
    where = "http://localhost:99999/v1"
    clients, settings = build(where, model_max_retries=0)
    with pytest.raises(ModelUnavailable) as raised:
        await OpenAIChat(clients, settings).complete(HELLO)
    assert str(raised.value).endswith(f" at {where}") and "Error" not in str(raised.value)


async def test_a_server_refusing_max_completion_tokens_is_asked_with_max_tokens(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build()
    openai_server.refused_params = {"max_completion_tokens"}
    chat = OpenAIChat(clients, settings)
    assert (await chat.complete(HELLO)).endswith("hello there")
    assert (await chat.complete(HELLO)).endswith("hello there")
    caps = [sorted(set(c.body) & {"max_tokens", "max_completion_tokens"})
            for c in openai_server.calls("chat")]
    assert caps == [["max_completion_tokens"], ["max_tokens"], ["max_tokens"]]


async def test_an_embedding_comes_back_as_the_server_computed_it(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build(embedding_query_prefix="query: ")
    vector = await OpenAIEmbedder(clients, settings).embed("my two cats")
    assert vector == pytest.approx(embed("query: my two cats", TEST_DIMS), abs=1e-6)
    body = openai_server.calls("embedding")[-1].body
    assert body["input"] == ["query: my two cats"] and body["dimensions"] == TEST_DIMS
    assert body["encoding_format"] == "base64"


async def test_the_start_up_check_names_a_rejected_key_and_a_missing_model(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build()
    openai_server.api_key = "another-key"
    try:
        with pytest.raises(ConfigError, match=r"rejected OPENAI_API_KEY \(HTTP 401\)"):
            await OpenAIEmbedder(clients, settings).check(TEST_DIMS)
    finally:
        openai_server.api_key = None
    openai_server.fail_next("embedding", 404)
    with pytest.raises(ConfigError, match=r"does not offer EMBEDDING_MODEL=.*\(HTTP 404\)"):
        await OpenAIEmbedder(clients, settings).check(TEST_DIMS)
    openai_server.fail_always("embedding", 500)
    with pytest.raises(StartupError, match="answered HTTP 500 to an embedding request"):
        await OpenAIEmbedder(clients, settings.model_copy(
            update={"model_max_retries": 0})).check(TEST_DIMS)


async def test_a_streamed_answer_comes_in_pieces_in_order(
    build: Build, openai_server: ScriptedOpenAI
) -> None:
    clients, settings = build()
    openai_server.stream_chunk_chars = 4
    pieces = [piece async for piece in OpenAIChat(clients, settings).stream(HELLO)]
    assert "".join(pieces) == "(scripted) You said: hello there"
    assert pieces[:3] == ["(scr", "ipte", "d) Y"]


def test_the_wait_a_server_asks_for_is_read_as_the_sdk_reads_it() -> None:
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after({"retry-after": "2"}) == 2.0
    in_a_minute = _retry_after({"retry-after": formatdate(time.time() + 60, usegmt=True)})
    assert in_a_minute is not None and 55 < in_a_minute <= 60
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({}) is None
    assert ModelAPIError(429, "slow down").transient
    assert not ModelAPIError(400, "no").transient
