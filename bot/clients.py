"""The OpenAI-compatible model API: chat answers and embeddings, on clients built once.

The reply path's calls (:meth:`OpenAIChat.complete`, and the query embedding of
:class:`bot.embedder.OpenAIEmbedder`) go over
long-lived pyreqwest clients per endpoint with raw JSON (:mod:`bot.endpoint`); streamed answers,
memory extraction and Mem0's sync calls go through the official SDK. Retries are the same on
both: timeouts, connection errors, 408/409/429 and 5xx are retried with exponential backoff
(honouring ``Retry-After`` and ``retry-after-ms``) up to ``MODEL_MAX_RETRIES`` times; nothing
else is retried.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Literal, overload

import aiohttp
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from bot.config import Settings
from bot.endpoint import Endpoint, Policy
from bot.errors import (
    ConfigError,
    ModelAPIError,
    ModelRejected,
    ModelUnavailable,
    causes,
    is_transient,
)
from bot.ports import Message

__all__ = ["ModelClients", "OpenAIChat", "describe_failure"]

log = logging.getLogger(__name__)


def describe_failure(exc: BaseException) -> str:
    """What went wrong with a model call, in a few plain words an operator can act on: the
    real cause under the SDK's, aiohttp's or the endpoint's wrapper ("connection refused",
    "the server's name was not found (DNS)", "no answer in time (MODEL_TIMEOUT)", "HTTP
    503"), never a key. The SDK alone would say ``APIConnectionError`` or
    ``APITimeoutError`` for all of these."""
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
        if isinstance(error, aiohttp.ServerDisconnectedError):
            return "the server closed the connection"
        if type(error) is ConnectionError and error.args and isinstance(error.args[0], str):
            return error.args[0]  # the endpoint's, saying what failed
    for error in reversed(chain):  # the innermost system error says the most
        if isinstance(error, OSError) and not isinstance(error, TimeoutError) and error.strerror:
            return error.strerror[:1].lower() + error.strerror[1:]
    for error in chain:
        if isinstance(error, openai.APIStatusError):
            return f"HTTP {error.status_code}"
        if isinstance(error, ModelAPIError):
            return f"HTTP {error.status}"
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
    """The model API clients of this process: a lean :class:`Endpoint` (pyreqwest clients)
    per endpoint for the reply path's calls, and the official SDK's clients for the rest: the
    async one for chat (streamed answers, extraction, the readiness check), the sync ones for
    mem0's threads.

    Built once at start, inside the running event loop (the SDK's aiohttp session belongs to
    it), and closed with :meth:`close`. The SDK clients have ``MODEL_TIMEOUT`` and the same retry
    policy as the endpoints (memory extraction uses the async one with
    ``EXTRACTION_TIMEOUT``: see :meth:`OpenAIChat.for_extraction`). The chat clients use
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
        self.chat_endpoint = Endpoint(self.base_url, key)
        embedding_key = (settings.embedding_api_key.get_secret_value()
                         if settings.embedding_api_key is not None else key)
        self.embedding_base_url = settings.embedding_base_url or self.base_url
        self.embedding_separate = (self.embedding_base_url, embedding_key) != (self.base_url, key)
        """Whether embeddings go to another endpoint or with another key than chat."""
        if self.embedding_separate:
            self.embedding_sync = openai.OpenAI(api_key=embedding_key,
                                                base_url=self.embedding_base_url,
                                                **common)  # type: ignore[arg-type]
            self.embedding_endpoint = Endpoint(self.embedding_base_url, embedding_key)
        else:
            self.embedding_sync = self.sync_client
            self.embedding_endpoint = self.chat_endpoint

    async def close(self) -> None:
        await self.chat_endpoint.close()
        await self.async_client.close()
        self.sync_client.close()
        if self.embedding_separate:
            await self.embedding_endpoint.close()
            self.embedding_sync.close()


class OpenAIChat:
    """The chat model (the ``ChatModel`` and ``JsonModel`` ports): :meth:`complete` on the lean
    endpoint, :meth:`stream` and :meth:`complete_json` on the SDK's async client.

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
            timeout = settings.extraction_timeout
        else:
            self._client = clients.async_client
            self._model = settings.chat_model
            self._max_tokens = settings.max_answer_tokens
            timeout = settings.model_timeout
        self._once = self._client.with_options(max_retries=0)
        self._endpoint = clients.chat_endpoint
        self._policy = Policy(timeout=timeout, retries=settings.model_max_retries)
        self._where = clients.base_url
        self._token_param = "max_completion_tokens"
        self._schemas: bool | None = None  # whether the server takes json_schema
        self._probing = asyncio.Lock()

    @classmethod
    def for_extraction(cls, clients: ModelClients, settings: Settings) -> OpenAIChat:
        """The extraction model (``EXTRACTION_MODEL``, else ``CHAT_MODEL``), waiting
        ``EXTRACTION_TIMEOUT`` per call and writing at most :data:`EXTRACTION_TOKENS`."""
        return cls(clients, settings, extraction=True)

    async def complete(self, messages: Sequence[Message]) -> str:
        """The model's answer to ``messages``, stripped; one cut at ``MAX_ANSWER_TOKENS`` ends
        with "…". Raises :class:`ModelUnavailable` for a transient failure that outlasted the
        retries, :class:`ModelRejected` for a refusal or an empty answer."""
        try:
            answer = await self._post(self._body(messages))
        except (ModelAPIError, OSError) as exc:  # OSError: TimeoutError among them
            raise self._failure(exc) from exc
        choices = answer.get("choices") if isinstance(answer, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        choice = choice if isinstance(choice, dict) else {}
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise ModelRejected("the model returned an empty answer")
        if choice.get("finish_reason") == "length":
            log.info("an answer reached MAX_ANSWER_TOKENS=%d and was cut", self._max_tokens)
            return content.strip() + "…"
        return content.strip()

    async def _post(self, body: dict[str, object]) -> Any:
        """POST a chat request on the lean endpoint; a server that refuses the token-cap
        parameter by name is asked again once with the other one, as :meth:`_send` does."""
        try:
            return await self._endpoint.post("/chat/completions", body, self._policy)
        except ModelAPIError as exc:
            if exc.status != 400 or not self._names_token_param(exc.param, exc.message):
                raise
            self._switch_token_param(body)
            return await self._endpoint.post("/chat/completions", body, self._policy)

    async def complete_json(self, messages: Sequence[Message], *, schema: dict[str, Any],
                            name: str) -> str:
        body = self._body(messages)
        constrained = {"type": "json_schema",
                       "json_schema": {"name": name, "schema": schema, "strict": True}}
        if self._schemas is None:
            # One request finds out whether the server takes json_schema; those sent meanwhile
            # wait for its answer. It is not retried: a refusal may come as a 500
            # (llama-cpp-python's), and retrying that is waste. Any other failure is raised
            # (the learning job is retried later), and the next request asks again.
            async with self._probing:
                if self._schemas is None:
                    body["response_format"] = constrained
                    try:
                        response = await self._send(body, stream=False, retries=False)
                        self._schemas = True
                        return self._json_text(response)
                    except openai.OpenAIError as exc:
                        if not _refuses_schemas(exc):
                            raise self._failure(exc) from exc
                        self._schemas = False
                        log.warning("the model API refused a json_schema response format; "
                                    "asking for json_object instead")
        body["response_format"] = constrained if self._schemas else {"type": "json_object"}
        try:
            response = await self._send(body, stream=False)
        except openai.OpenAIError as exc:
            raise self._failure(exc) from exc
        return self._json_text(response)

    def _json_text(self, response: ChatCompletion) -> str:
        """An extraction answer's text as it came ("" for none); a cut one is logged."""
        choice = response.choices[0] if response.choices else None
        if choice is not None and choice.finish_reason == "length":
            log.warning("an extraction answer reached its cap of %d tokens", self._max_tokens)
        return (choice.message.content if choice else None) or ""

    async def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        """The answer as it is written (``stream: true``): pieces of text, in order. A stream
        that breaks off (the connection lost, or closed before the model said it had finished)
        raises :class:`ModelUnavailable` after the pieces already given; an answer cut at
        ``MAX_ANSWER_TOKENS`` ends with "…", as in :meth:`complete`."""
        # On the SDK, not the lean endpoint (which reads whole answers): the SDK reads the
        # server-sent events.
        body = self._body(messages)
        body["stream"] = True
        finished: str | None = None
        said = False
        try:
            chunks = await self._send(body, stream=True)
            async with chunks:
                async for chunk in chunks:
                    for choice in chunk.choices[:1]:
                        if choice.delta is not None and choice.delta.content:
                            said = True
                            yield choice.delta.content
                        finished = choice.finish_reason or finished
        except openai.OpenAIError as exc:
            if not said:
                raise self._failure(exc) from exc
            # The SDK wraps a connection lost mid-stream as a connection error too.
            raise ModelUnavailable(f"the answer broke off ({describe_failure(exc)}) at "
                                   f"{self._where}") from exc
        if finished is None:
            raise ModelUnavailable(f"the answer stream ended before the model finished, at "
                                   f"{self._where}")
        if not said:
            raise ModelRejected("the model returned an empty answer")
        if finished == "length":
            log.info("an answer reached MAX_ANSWER_TOKENS=%d and was cut", self._max_tokens)
            yield "…"

    def _body(self, messages: Sequence[Message]) -> dict[str, object]:
        return {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            self._token_param: self._max_tokens,
        }

    @overload
    async def _send(self, body: dict[str, object], *, stream: Literal[False],
                    retries: bool = True) -> ChatCompletion: ...

    @overload
    async def _send(self, body: dict[str, object], *, stream: Literal[True],
                    retries: bool = True) -> openai.AsyncStream[ChatCompletionChunk]: ...

    async def _send(self, body: dict[str, object], *, stream: bool, retries: bool = True
                    ) -> ChatCompletion | openai.AsyncStream[ChatCompletionChunk]:
        """POST the request (with the SDK's retries, unless ``retries`` is false); a server
        that refuses the token-cap parameter by name is asked again once with the other one,
        which this client then keeps using."""
        client = self._client if retries else self._once
        try:
            return await self._sdk_post(body, stream, client)
        except openai.BadRequestError as exc:
            param = exc.body.get("param") if isinstance(exc.body, dict) else None
            if not self._names_token_param(param, str(exc.message)):
                raise
            self._switch_token_param(body)
            return await self._sdk_post(body, stream, client)

    def _switch_token_param(self, body: dict[str, object]) -> None:
        """Cap answers with the other token parameter from now on, in ``body`` too."""
        refused, self._token_param = self._token_param, _OTHER_PARAM[self._token_param]
        log.warning("the chat model API refused %s; capping answers with %s instead",
                    refused, self._token_param)
        body[self._token_param] = body.pop(refused)

    @staticmethod
    async def _sdk_post(body: dict[str, object], stream: bool, client: openai.AsyncOpenAI
                        ) -> ChatCompletion | openai.AsyncStream[ChatCompletionChunk]:
        if stream:
            return await client.post(
                "/chat/completions", body=body, cast_to=ChatCompletion, stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk])
        return await client.post("/chat/completions", body=body, cast_to=ChatCompletion)

    def _failure(self, exc: Exception) -> ModelUnavailable | ModelRejected:
        """The port's error for a failed call, on the endpoint or the SDK: transient ones
        (after the retries) make the model unavailable; any other answer of the API is a
        refusal."""
        if is_transient(exc):
            return ModelUnavailable(f"{describe_failure(exc)} at {self._where}")
        if isinstance(exc, ModelAPIError):
            return ModelRejected(f"HTTP {exc.status}: {exc.message}")
        if isinstance(exc, openai.APIStatusError):
            return ModelRejected(f"HTTP {exc.status_code}: {exc.message}")
        return ModelUnavailable(f"{describe_failure(exc)} at {self._where}")

    def _names_token_param(self, param: object, message: str) -> bool:
        """Whether a 400's ``param`` or message names the token-cap parameter this client
        sent."""
        return param == self._token_param or self._token_param in message


def _refuses_schemas(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a server's refusal of a ``json_schema`` response format: an HTTP
    error naming it. Servers say so differently: OpenAI-compatible ones with a 400 or 422,
    llama-cpp-python's with a 500 whose message names the value it did not accept."""
    return (isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 422, 500)
            and "json_schema" in str(exc.message))


# At most this many tokens for an extraction answer: a batch's facts fit in far fewer.
EXTRACTION_TOKENS = 1_000
_OTHER_PARAM = {"max_completion_tokens": "max_tokens", "max_tokens": "max_completion_tokens"}
