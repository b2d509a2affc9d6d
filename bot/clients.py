"""The OpenAI-compatible model API: chat answers and embeddings, on clients built once.

Retries are the official SDK's own: timeouts, connection errors, 408/409/429 and 5xx are retried
with exponential backoff (honouring ``Retry-After``) up to ``MODEL_MAX_RETRIES`` times; nothing
else is retried.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from bot.config import Settings
from bot.errors import TRANSIENT, ConfigError, ModelRejected, ModelUnavailable, StartupError, causes
from bot.ports import Message

__all__ = ["ModelClients", "OpenAIChat", "OpenAIEmbedder", "describe_failure"]

log = logging.getLogger(__name__)



def describe_failure(exc: BaseException) -> str:
    """What went wrong with a model call, in a few plain words an operator can act on: the
    real cause under the SDK's wrapper ("connection refused", "the name api.example.invalid
    was not found", "no answer within 60 s", "HTTP 503"), never a key. The SDK alone would say
    ``APIConnectionError`` or ``APITimeoutError`` for all of these."""
    chain = causes(exc)
    for error in chain:
        if isinstance(error, socket.gaierror):
            return "the server's name was not found (DNS)"
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, ssl.SSLError):
            return f"TLS failed ({error.reason or error.__class__.__name__})"
        if isinstance(error, ConnectionResetError):
            return "the connection was reset"
    for error in reversed(chain):  # the innermost system error says the most
        if isinstance(error, OSError) and not isinstance(error, TimeoutError) and error.strerror:
            return error.strerror[:1].lower() + error.strerror[1:]
    for error in chain:
        if isinstance(error, openai.APIStatusError):
            return f"HTTP {error.status_code}"
        if isinstance(error, openai.APITimeoutError | TimeoutError):
            return "no answer in time (MODEL_TIMEOUT)"
    return chain[-1].__class__.__name__


OPENAI_URL = "https://api.openai.com/v1"


def _api_key(settings: Settings) -> str:
    if settings.openai_api_key is None:
        raise ConfigError(
            "OPENAI_API_KEY is not set: membot needs an OpenAI-compatible API for chat and "
            "embeddings (for a local server such as Ollama, any non-empty value will do)."
        )
    return settings.openai_api_key.get_secret_value()


class ModelClients:
    """The async and sync OpenAI clients of this process (the sync ones serve mem0's threads).

    Built once at start, all with the same retry policy and ``MODEL_TIMEOUT`` (memory
    extraction uses the async one with ``EXTRACTION_TIMEOUT``: see
    :meth:`OpenAIChat.for_extraction`). The chat clients use
    ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``; the embedding clients ``EMBEDDING_BASE_URL`` and
    ``EMBEDDING_API_KEY``, each defaulting to the chat one, and are the chat clients themselves
    when both are the same (one connection pool, not two).
    """

    def __init__(self, settings: Settings) -> None:
        key = _api_key(settings)
        self.base_url = settings.openai_base_url or OPENAI_URL
        common = {"timeout": settings.model_timeout, "max_retries": settings.model_max_retries}
        # aiohttp as the async transport: under load, httpx's pool upkeep cost more CPU than
        # everything else on the reply path (see docs/performance.md).
        self.async_client = openai.AsyncOpenAI(
            api_key=key, base_url=self.base_url, http_client=openai.DefaultAioHttpClient(),
            **common,  # type: ignore[arg-type]
        )
        self.sync_client = openai.OpenAI(api_key=key, base_url=self.base_url,
                                         **common)  # type: ignore[arg-type]
        embedding_key = (settings.embedding_api_key.get_secret_value()
                         if settings.embedding_api_key is not None else key)
        self.embedding_base_url = settings.embedding_base_url or self.base_url
        self.embedding_separate = (self.embedding_base_url, embedding_key) != (self.base_url, key)
        """Whether embeddings go to another endpoint or with another key than chat."""
        if self.embedding_separate:
            self.embedding_async = openai.AsyncOpenAI(
                api_key=embedding_key, base_url=self.embedding_base_url,
                http_client=openai.DefaultAioHttpClient(), **common,  # type: ignore[arg-type]
            )
            self.embedding_sync = openai.OpenAI(api_key=embedding_key,
                                                base_url=self.embedding_base_url,
                                                **common)  # type: ignore[arg-type]
        else:
            self.embedding_async, self.embedding_sync = self.async_client, self.sync_client

    async def close(self) -> None:
        await self.async_client.close()
        self.sync_client.close()
        if self.embedding_separate:
            await self.embedding_async.close()
            self.embedding_sync.close()


class OpenAIEmbedder:
    """Embeddings for queries on the reply path (async; a single quick try per call, since the
    turn's memory search has its own time budget)."""

    def __init__(self, clients: ModelClients, settings: Settings) -> None:
        self._client = clients.embedding_async.with_options(
            max_retries=min(settings.model_max_retries, 1), timeout=settings.memory_search_timeout
        )
        self._model = settings.embedding_model
        self._dims = settings.embedding_dims if settings.send_embedding_dims else None
        self._prefix = settings.embedding_query_prefix
        self._where = clients.embedding_base_url
        # The settings that decide where embeddings go, as the operator would change them.
        self._url_setting = ("EMBEDDING_BASE_URL" if settings.embedding_base_url
                             else "OPENAI_BASE_URL")
        self._key_setting = ("EMBEDDING_API_KEY" if settings.embedding_api_key is not None
                             else "OPENAI_API_KEY")

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
                f"The model API at {self._where} rejected {self._key_setting} (HTTP 401)."
            ) from None
        except openai.NotFoundError:
            raise ConfigError(
                f"The model API at {self._where} ({self._url_setting}) does not offer "
                f"EMBEDDING_MODEL={self._model!r} (HTTP 404): many chat-only providers serve no "
                "embeddings; set EMBEDDING_BASE_URL and EMBEDDING_API_KEY to an API that does."
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise StartupError(
                f"Cannot reach the model API at {self._where} ({self._url_setting}): "
                f"{describe_failure(exc)}."
            ) from None
        except openai.APIStatusError as exc:
            raise StartupError(
                f"The model API at {self._where} ({self._url_setting}) answered HTTP "
                f"{exc.status_code} to an embedding request."
            ) from None
        if len(vector) != expected_dims:
            raise ConfigError(
                f"EMBEDDING_MODEL={self._model!r} returns {len(vector)}-dimensional vectors but "
                f"EMBEDDING_DIMS is {expected_dims}: set EMBEDDING_DIMS={len(vector)}."
            )


class OpenAIChat:
    """The chat model (the ``ChatModel`` and ``JsonModel`` ports) on the async client.

    Every request caps the answer at ``max_tokens``. It is sent as ``max_completion_tokens``
    (what OpenAI's current models take); a server that refuses that parameter by name (HTTP
    400) is asked again once with ``max_tokens``, which this client then keeps using. In the
    same way, a server that refuses a ``json_schema`` response format (an HTTP error naming
    it) is asked again with ``json_object``, which this client then keeps using."""

    def __init__(self, clients: ModelClients, settings: Settings, *,
                 extraction: bool = False) -> None:
        if extraction:
            # Memory extraction runs after the reply, with a long prompt: a local model needs
            # minutes for it where a chat turn needs seconds, hence a timeout of its own.
            self._client = clients.async_client.with_options(timeout=settings.extraction_timeout)
            self._model = settings.extraction_model_name
            self._max_tokens = EXTRACTION_TOKENS
        else:
            self._client = clients.async_client
            self._model = settings.chat_model
            self._max_tokens = settings.max_answer_tokens
        self._once = self._client.with_options(max_retries=0)
        self._where = clients.base_url
        self._token_param = "max_completion_tokens"
        self._schemas: bool | None = None  # whether the server takes json_schema

    @classmethod
    def for_extraction(cls, clients: ModelClients, settings: Settings) -> OpenAIChat:
        """The extraction model (``EXTRACTION_MODEL``, else ``CHAT_MODEL``), waiting
        ``EXTRACTION_TIMEOUT`` per call and writing at most :data:`EXTRACTION_TOKENS`."""
        return cls(clients, settings, extraction=True)

    async def complete(self, messages: Sequence[Message]) -> str:
        # A plain body through the SDK's documented ``post``: ``chat.completions.create``
        # re-validates every message against its TypedDicts, which cost 1.1 ms of CPU per call
        # and was the largest cost of a turn under load. Retries and errors are the same.
        response = await self._ask(self._body(messages))
        choice = response.choices[0] if response.choices else None
        content = choice.message.content if choice else None
        if not content or not content.strip():
            raise ModelRejected("the model returned an empty answer")
        if choice is not None and choice.finish_reason == "length":
            log.info("an answer reached MAX_ANSWER_TOKENS=%d and was cut", self._max_tokens)
            return content.strip() + "…"
        return content.strip()

    async def complete_json(self, messages: Sequence[Message], *, schema: dict[str, Any],
                            name: str) -> str:
        body = self._body(messages)
        if self._schemas is not False:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": name, "schema": schema,
                                                       "strict": True}}
            # Until a server has taken json_schema once, an error is not retried here: a
            # refusal may come as a 500 (llama-cpp-python's), and retrying it is waste.
            # Another failure is raised; the learning job is retried later.
            probing = self._schemas is None
            try:
                response = await self._ask(body, retries=not probing)
                self._schemas = True
            except (ModelRejected, ModelUnavailable) as exc:
                if not probing or not _refuses_schemas(exc.__cause__):
                    raise
                self._schemas = False
                log.warning("the model API refused a json_schema response format; asking "
                            "for json_object instead")
        if not self._schemas:
            body["response_format"] = {"type": "json_object"}
            response = await self._ask(body)
        choice = response.choices[0] if response.choices else None
        if choice is not None and choice.finish_reason == "length":
            log.warning("an extraction answer reached its cap of %d tokens", self._max_tokens)
        return (choice.message.content if choice else None) or ""

    def _body(self, messages: Sequence[Message]) -> dict[str, object]:
        return {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            self._token_param: self._max_tokens,
        }

    async def _ask(self, body: dict[str, object], *, retries: bool = True) -> ChatCompletion:
        """One request (with the SDK's retries, unless ``retries`` is false), asked again with
        the other token-cap parameter if the server refuses the one sent. Raises
        :class:`ModelUnavailable` or :class:`ModelRejected`, caused by the SDK's error."""
        client = self._client if retries else self._once
        try:
            try:
                return await self._post(body, client)
            except openai.BadRequestError as exc:
                if not _names(exc, self._token_param):
                    raise
                refused, self._token_param = self._token_param, _OTHER_PARAM[self._token_param]
                log.warning("the chat model API refused %s; capping answers with %s instead",
                            refused, self._token_param)
                body[self._token_param] = body.pop(refused)
                return await self._post(body, client)
        except TRANSIENT as exc:
            raise ModelUnavailable(f"{describe_failure(exc)} at {self._where}") from exc
        except openai.APIStatusError as exc:
            raise ModelRejected(f"HTTP {exc.status_code}: {exc.message}") from exc
        except openai.OpenAIError as exc:
            raise ModelUnavailable(f"{describe_failure(exc)} at {self._where}") from exc

    @staticmethod
    async def _post(body: dict[str, object], client: openai.AsyncOpenAI) -> ChatCompletion:
        return await client.post("/chat/completions", body=body, cast_to=ChatCompletion)


def _refuses_schemas(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a server's refusal of a ``json_schema`` response format: an HTTP
    error naming it. Servers say so differently: OpenAI-compatible ones with a 400 or 422,
    llama-cpp-python's with a 500 whose message names the value it did not accept."""
    return (isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 422, 500)
            and "json_schema" in str(exc.message))


def _names(exc: BaseException | None, *params: str) -> bool:
    """Whether ``exc`` is an HTTP 400 that names one of ``params`` (as its ``param``, or in its
    message)."""
    if not isinstance(exc, openai.BadRequestError):
        return False
    param = exc.body.get("param") if isinstance(exc.body, dict) else None
    return any(param == p or p in str(exc.message) for p in params)


# At most this many tokens for an extraction answer: a batch's facts fit in far fewer.
EXTRACTION_TOKENS = 1_000
_OTHER_PARAM = {"max_completion_tokens": "max_tokens", "max_tokens": "max_completion_tokens"}
