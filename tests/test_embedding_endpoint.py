"""Embeddings from an endpoint of their own (``EMBEDDING_BASE_URL``, ``EMBEDDING_API_KEY``), as
people pair a chat-only provider with OpenAI's embeddings or a local server: two scripted
servers, each accepting only its own key, and the real stack (mem0 included) between them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from adapters.console import to_event
from bot.app import services
from bot.config import Settings
from bot.errors import ConfigError, StartupError
from tests.conftest import TEST_DIMS, answer
from tests.fakes.openai_server import ScriptedOpenAI

MakeSettings = Callable[..., Settings]


@pytest.fixture
def chat_only() -> Iterator[ScriptedOpenAI]:
    """A chat provider that serves no embeddings (404, as such providers answer)."""
    with ScriptedOpenAI(dims=TEST_DIMS, api_key="chat-key") as server:
        server.fail_always("embedding", 404)
        yield server


@pytest.fixture
def embeddings() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(dims=TEST_DIMS, api_key="embedding-key") as server:
        server.fail_always("chat", 404)
        server.fail_always("extraction", 404)
        yield server


async def test_embeddings_go_to_their_own_endpoint_with_their_own_key(
    make_settings: MakeSettings, chat_only: ScriptedOpenAI, embeddings: ScriptedOpenAI
) -> None:
    settings = make_settings(openai_base_url=chat_only.base_url,
                             openai_api_key=SecretStr("chat-key"),
                             embedding_base_url=embeddings.base_url,
                             embedding_api_key=SecretStr("embedding-key"))
    async with services(settings) as app:
        await answer(app.core, to_event("alice", "I keep two cats, Miso and Tofu", session="s"))
        await app.jobs.wait_idle()
        reply = await answer(app.core, to_event("alice", "what pets do I have?", session="s"))
    assert "Miso and Tofu" in str(chat_only.calls("chat")[-1].body)  # found by its embedding
    assert reply.text.startswith("(scripted)")
    assert chat_only.calls("extraction")  # mem0's extraction on the chat endpoint
    assert not chat_only.calls("embedding")
    # The start-up check, the turns' queries and mem0's stored memories: all embedded there.
    assert len(embeddings.calls("embedding")) >= 4
    assert not embeddings.calls("chat") and not embeddings.calls("extraction")


async def test_a_chat_only_provider_without_an_embedding_endpoint_is_named_at_start(
    make_settings: MakeSettings, chat_only: ScriptedOpenAI
) -> None:
    settings = make_settings(openai_base_url=chat_only.base_url,
                             openai_api_key=SecretStr("chat-key"))
    with pytest.raises(ConfigError, match="set EMBEDDING_BASE_URL and EMBEDDING_API_KEY"):
        async with services(settings):
            pass


async def test_a_rejected_embedding_key_names_its_own_setting(
    make_settings: MakeSettings, chat_only: ScriptedOpenAI, embeddings: ScriptedOpenAI
) -> None:
    settings = make_settings(openai_base_url=chat_only.base_url,
                             openai_api_key=SecretStr("chat-key"),
                             embedding_base_url=embeddings.base_url,
                             embedding_api_key=SecretStr("wrong-key"))
    with pytest.raises(ConfigError, match="rejected EMBEDDING_API_KEY") as raised:
        async with services(settings):
            pass
    assert "wrong-key" not in str(raised.value)


async def test_the_embedding_endpoint_defaults_to_the_chat_one() -> None:
    from bot.clients import ModelClients

    settings = Settings(openai_api_key=SecretStr("k"), openai_base_url="http://chat.local/v1")
    clients = ModelClients(settings)
    only_key = ModelClients(settings.model_copy(update={"embedding_api_key": SecretStr("e")}))
    try:
        assert clients.embedding_base_url == "http://chat.local/v1"
        assert clients.embedding_sync is clients.sync_client
        assert clients.embedding_endpoint is clients.chat_endpoint
        assert only_key.embedding_base_url == "http://chat.local/v1"
        assert only_key.embedding_separate
        assert only_key.embedding_endpoint is not only_key.chat_endpoint
    finally:
        await clients.close()
        await only_key.close()


async def test_start_up_names_a_dns_failure_as_such_not_as_a_timeout(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(embedding_base_url="http://membot-no-such-host.invalid/v1",
                             model_max_retries=0)
    with pytest.raises(StartupError) as raised:
        async with services(settings):
            pass
    said = str(raised.value)
    assert said.startswith("Cannot reach the model API at http://membot-no-such-host.invalid/v1 "
                           "(EMBEDDING_BASE_URL): the server's name was not found (DNS)")
    assert "Timeout" not in said
