"""The OpenAI-compatible model API: chat answers and embeddings, on clients built once.

Retries are the official SDK's own: timeouts, connection errors, 408/409/429 and 5xx are retried
with exponential backoff (honouring ``Retry-After``) up to ``MODEL_MAX_RETRIES`` times; nothing
else is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from bot.config import Settings
from bot.errors import ConfigError, ModelRejected, ModelUnavailable, StartupError
from bot.ports import Message

__all__ = ["Mem0Embedder", "ModelClients", "OpenAIChat", "OpenAIEmbedder"]

log = logging.getLogger(__name__)

_TRANSIENT = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
)


def _api_key(settings: Settings) -> str:
    if settings.openai_api_key is None:
        raise ConfigError(
            "OPENAI_API_KEY is not set: membot needs an OpenAI-compatible API for chat and "
            "embeddings (for a local server such as Ollama, any non-empty value will do)."
        )
    return settings.openai_api_key.get_secret_value()


class ModelClients:
    """The async and sync OpenAI clients of this process (the sync one serves mem0's threads).

    Built once at start; both share the same key, base URL, timeout and retry policy.
    """

    def __init__(self, settings: Settings) -> None:
        key = _api_key(settings)
        self.base_url = settings.openai_base_url or "https://api.openai.com/v1"
        common = {
            "api_key": key,
            "base_url": self.base_url,
            "timeout": settings.model_timeout,
            "max_retries": settings.model_max_retries,
        }
        # aiohttp as the async transport: under load, httpx's pool upkeep cost more CPU than
        # everything else on the reply path (bench/load.py: p95 0.89 s -> see README).
        self.async_client = openai.AsyncOpenAI(
            **common, http_client=openai.DefaultAioHttpClient()  # type: ignore[arg-type]
        )
        self.sync_client = openai.OpenAI(**common)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self.async_client.close()
        self.sync_client.close()


class OpenAIEmbedder:
    """Embeddings for queries on the reply path (async; a single quick try per call, since the
    turn's memory search has its own time budget)."""

    def __init__(self, clients: ModelClients, settings: Settings) -> None:
        self._client = clients.async_client.with_options(
            max_retries=min(settings.model_max_retries, 1), timeout=settings.memory_search_timeout
        )
        self._model = settings.embedding_model
        self._dims = settings.embedding_dims if settings.send_embedding_dims else None
        self._prefix = settings.embedding_query_prefix
        self._where = clients.base_url

    async def embed(self, text: str) -> list[float]:
        """One vector for ``text`` as a search query (``EMBEDDING_QUERY_PREFIX`` before it).
        Raises ``openai.OpenAIError`` subclasses on failure."""
        query = [self._prefix + text]
        if self._dims is None:
            response = await self._client.embeddings.create(model=self._model, input=query)
        else:
            response = await self._client.embeddings.create(
                model=self._model, input=query, dimensions=self._dims
            )
        return list(response.data[0].embedding)

    async def check(self, expected_dims: int) -> None:
        """Start-up check: the API answers with the key we have, and the embedding model gives
        vectors of the configured size. Raises :class:`ConfigError` or :class:`StartupError`
        with one sentence naming the setting to change."""
        try:
            vector = await self.embed("membot start-up check")
        except openai.AuthenticationError:
            raise ConfigError(
                f"The model API at {self._where} rejected OPENAI_API_KEY (HTTP 401)."
            ) from None
        except openai.NotFoundError:
            raise ConfigError(
                f"The model API at {self._where} does not offer EMBEDDING_MODEL="
                f"{self._model!r} (HTTP 404)."
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            cause = exc.__cause__ or exc
            raise StartupError(
                f"Cannot reach the model API at {self._where} (OPENAI_BASE_URL): "
                f"{cause.__class__.__name__}: {cause}."
            ) from None
        except openai.APIStatusError as exc:
            raise StartupError(
                f"The model API at {self._where} (OPENAI_BASE_URL) answered HTTP "
                f"{exc.status_code} to an embedding request."
            ) from None
        if len(vector) != expected_dims:
            raise ConfigError(
                f"EMBEDDING_MODEL={self._model!r} returns {len(vector)}-dimensional vectors but "
                f"EMBEDDING_DIMS is {expected_dims}: set EMBEDDING_DIMS={len(vector)}."
            )


class OpenAIChat:
    """The chat model (the ``ChatModel`` port) on the async client.

    Every request caps the answer at ``MAX_ANSWER_TOKENS``. It is sent as
    ``max_completion_tokens`` (what OpenAI's current models take); a server that refuses that
    parameter by name (HTTP 400) is asked again once with ``max_tokens``, which this client then
    keeps using."""

    def __init__(self, clients: ModelClients, settings: Settings) -> None:
        self._client = clients.async_client
        self._model = settings.chat_model
        self._max_tokens = settings.max_answer_tokens
        self._token_param = "max_completion_tokens"

    async def complete(self, messages: Sequence[Message]) -> str:
        # A plain body through the SDK's documented ``post``: ``chat.completions.create``
        # re-validates every message against its TypedDicts, which cost 1.1 ms of CPU per call
        # and was the largest cost of a turn under load. Retries and errors are the same.
        body: dict[str, object] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            self._token_param: self._max_tokens,
        }
        try:
            try:
                response = await self._post(body)
            except openai.BadRequestError as exc:
                if not self._refused_token_param(exc):
                    raise
                refused, self._token_param = self._token_param, _OTHER_PARAM[self._token_param]
                log.warning("the chat model API refused %s; capping answers with %s instead",
                            refused, self._token_param)
                body[self._token_param] = body.pop(refused)
                response = await self._post(body)
        except _TRANSIENT as exc:
            raise ModelUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
        except openai.APIStatusError as exc:
            raise ModelRejected(f"HTTP {exc.status_code}: {exc.message}") from exc
        except openai.OpenAIError as exc:
            raise ModelUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
        choice = response.choices[0] if response.choices else None
        content = choice.message.content if choice else None
        if not content or not content.strip():
            raise ModelRejected("the model returned an empty answer")
        if choice is not None and choice.finish_reason == "length":
            log.info("an answer reached MAX_ANSWER_TOKENS=%d and was cut", self._max_tokens)
            return content.strip() + "…"
        return content.strip()

    async def _post(self, body: dict[str, object]) -> ChatCompletion:
        return await self._client.post("/chat/completions", body=body, cast_to=ChatCompletion)

    def _refused_token_param(self, exc: openai.BadRequestError) -> bool:
        """Whether a 400 names the token-cap parameter this client sent."""
        param = exc.body.get("param") if isinstance(exc.body, dict) else None
        return param == self._token_param or self._token_param in str(exc.message)


_OTHER_PARAM = {"max_completion_tokens": "max_tokens", "max_tokens": "max_completion_tokens"}


class Mem0Embedder:
    """Mem0's embedder with the configured prefixes: what Mem0 embeds to look something up
    (``memory_action="search"``) gets ``EMBEDDING_QUERY_PREFIX``, what it stores gets
    ``EMBEDDING_DOCUMENT_PREFIX``, so stored memories and membot's own queries are embedded the
    way the model was trained. Everything else is Mem0's embedder, unchanged."""

    def __init__(self, inner: Any, query_prefix: str, document_prefix: str) -> None:
        self._inner = inner
        self._query = query_prefix
        self._document = document_prefix
        self.config = inner.config

    def _prefix(self, memory_action: str | None) -> str:
        return self._query if memory_action == "search" else self._document

    def embed(self, text: str, memory_action: str | None = None) -> Any:
        return self._inner.embed(self._prefix(memory_action) + text, memory_action)

    def embed_batch(self, texts: Sequence[str], memory_action: str = "add") -> Any:
        prefix = self._prefix(memory_action)
        return self._inner.embed_batch([prefix + text for text in texts], memory_action)
