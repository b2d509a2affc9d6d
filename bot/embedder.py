"""Embeddings from the OpenAI-compatible API: query vectors for the reply path's memory search and
the learning step's look-up, on the endpoint :class:`bot.clients.ModelClients` built."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.clients import ModelClients, describe_failure
from bot.config import Settings
from bot.endpoint import Policy
from bot.errors import ConfigError, ModelAPIError, StartupError

__all__ = ["Embedding", "OpenAIEmbedder"]

# A query vector: float32s, as pgvector stores them and its asyncpg codec sends them.
Embedding = NDArray[np.float32]


class OpenAIEmbedder:
    """Embeddings for queries on the reply path (async; a single quick try per call, since the
    turn's memory search has its own time budget), or, built with :meth:`for_learning`, for the
    learning step's look-up of what a person already has, which can wait."""

    def __init__(self, clients: ModelClients, settings: Settings, *,
                 patient: bool = False) -> None:
        self._endpoint = clients.embedding_endpoint
        if patient:
            self._policy = Policy(timeout=settings.model_timeout,
                                  retries=settings.model_max_retries)
        else:
            self._policy = Policy(timeout=settings.memory_search_timeout,
                                  retries=min(settings.model_max_retries, 1))
        self._model = settings.embedding_model
        self._dims = settings.embedding_dims if settings.send_embedding_dims else None
        self._prefix = settings.embedding_query_prefix
        self._where = clients.embedding_base_url
        # The settings that decide where embeddings go, as the operator would change them.
        self._url_setting = ("EMBEDDING_BASE_URL" if settings.embedding_base_url
                             else "OPENAI_BASE_URL")
        self._key_setting = ("EMBEDDING_API_KEY" if settings.embedding_api_key is not None
                             else "OPENAI_API_KEY")

    @classmethod
    def for_learning(cls, clients: ModelClients, settings: Settings) -> OpenAIEmbedder:
        """Query embeddings with ``MODEL_TIMEOUT`` and the full ``MODEL_MAX_RETRIES``: the
        learning step runs after the reply, and a slow embedding server must not fail it."""
        return cls(clients, settings, patient=True)

    async def embed(self, text: str) -> Embedding:
        """One vector for ``text`` as a search query (``EMBEDDING_QUERY_PREFIX`` before it),
        asked for in base64 as the SDK asks (a list of numbers is read too), as float32s: what
        pgvector stores, which its codec sends without a Python float for each. Raises what
        :meth:`Endpoint.post` raises, or :class:`ModelAPIError` for an answer with no vector."""
        body: dict[str, Any] = {"model": self._model, "input": [self._prefix + text],
                                "encoding_format": "base64"}
        if self._dims is not None:
            body["dimensions"] = self._dims
        answer = await self._endpoint.post("/embeddings", body, self._policy)
        try:
            return _vector(answer["data"][0]["embedding"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise ModelAPIError(200, "the answer held no embedding") from None

    async def check(self, expected_dims: int) -> None:
        """Start-up check: the API answers with the key we have, and the embedding model gives
        vectors of the configured size. Raises :class:`ConfigError` or :class:`StartupError`
        with one sentence naming the setting to change."""
        try:
            vector = await self.embed("membot start-up check")
        except ModelAPIError as exc:
            if exc.status == 401:
                raise ConfigError(
                    f"The model API at {self._where} rejected {self._key_setting} (HTTP 401)."
                ) from None
            if exc.status == 404:
                raise ConfigError(
                    f"The model API at {self._where} ({self._url_setting}) does not offer "
                    f"EMBEDDING_MODEL={self._model!r} (HTTP 404): many chat-only providers "
                    "serve no embeddings; set EMBEDDING_BASE_URL and EMBEDDING_API_KEY to an "
                    "API that does."
                ) from None
            raise StartupError(
                f"The model API at {self._where} ({self._url_setting}) answered HTTP "
                f"{exc.status} to an embedding request."
            ) from None
        except OSError as exc:  # TimeoutError among them
            raise StartupError(
                f"Cannot reach the model API at {self._where} ({self._url_setting}): "
                f"{describe_failure(exc)}."
            ) from None
        if len(vector) != expected_dims:
            raise ConfigError(
                f"EMBEDDING_MODEL={self._model!r} returns {len(vector)}-dimensional vectors but "
                f"EMBEDDING_DIMS is {expected_dims}: set EMBEDDING_DIMS={len(vector)}."
            )


def _vector(embedding: object) -> Embedding:
    """An embedding as the API gives it: base64 of little-endian float32s, or numbers."""
    if isinstance(embedding, str):
        floats = np.frombuffer(base64.b64decode(embedding), dtype="<f4")
        return floats.astype(np.float32, copy=False)  # a copy only on a big-endian machine
    if isinstance(embedding, list):
        return np.array(embedding, dtype=np.float32)
    raise TypeError("not an embedding")
