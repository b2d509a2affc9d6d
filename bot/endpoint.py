"""One OpenAI-compatible API endpoint on long-lived pyreqwest clients: JSON in, JSON out.

The reply path's model calls go through here rather than the official SDK, whose layers
(request building, its HTTP client over aiohttp, a pydantic model of every answer) cost about
a third of the event loop's CPU per turn; and on pyreqwest (Rust's reqwest on a Tokio thread)
rather than aiohttp, whose request and response machinery, in Python on the loop, cost it
several times what handing a request to pyreqwest and taking its answer does, while the
process as a whole spends no more (docs/performance.md, "The model calls over pyreqwest").
What the SDK gave is kept:

- ``Authorization: Bearer <key>`` on every request, to ``<base URL><path>``;
- the SDK's retry policy, on tenacity: timeouts, connection errors, 408, 409, 429 and 5xx are
  retried with exponential backoff (0.5 s doubling up to 8 s, less up to a quarter at random)
  or after the wait the server asks for (``retry-after-ms``, else ``Retry-After`` in seconds
  or as a date, up to two minutes; a longer wait is not retried), and ``x-should-retry``
  obeyed; nothing else is retried;
- a timeout that bounds connecting and each wait for the server's next bytes, as the SDK's
  does, not the call as a whole.

A failure is raised as :class:`bot.errors.ModelAPIError` for an HTTP error status, as
:class:`TimeoutError` for no answer in time, or as the :class:`OSError` the transport met
(``ConnectionRefusedError``, ``socket.gaierror`` for a name not found, ``ConnectionError`` for
a connection lost otherwise), with pyreqwest's error as its cause.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import os
import random
import re
import socket
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import orjson
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import PyreqwestError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from bot.errors import ModelAPIError

__all__ = ["Endpoint", "Policy", "retryable"]

# The official SDK's: no server-asked wait longer than this is honoured (nor retried after).
MAX_RETRY_AFTER = 120.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 8.0  # seconds: the SDK's exponential backoff
# At most this many requests in flight at once, as the SDK's pool allowed connections.
_CONNECTIONS = 1000


def retryable(exc: BaseException) -> bool:
    """Whether the SDK would try ``exc``'s request again: a timeout, a lost or refused
    connection, or an HTTP 408, 409, 429 or 5xx (unless the server said not to, or asked for
    a wait over two minutes)."""
    if isinstance(exc, ModelAPIError):
        if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER:
            return False
        if exc.should_retry is not None:
            return exc.should_retry
        return exc.transient
    return isinstance(exc, OSError)  # TimeoutError and the connection's errors among them


def _wait(exc: BaseException | None, tries: int) -> float:
    """The wait after ``tries`` failed tries, the last with ``exc``: what the server asked for,
    else the SDK's backoff."""
    asked = exc.retry_after if isinstance(exc, ModelAPIError) else None
    if asked is not None and 0 < asked <= MAX_RETRY_AFTER:
        return asked
    return min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0 ** (tries - 1)) * (1 - 0.25 * random.random())


def _wait_after_first(state: RetryCallState) -> float:
    """:func:`_wait` inside the controller that takes over after the first try failed."""
    exc = state.outcome.exception() if state.outcome is not None else None
    return _wait(exc, state.attempt_number + 1)


class Policy:
    """How long one kind of call waits and how often it is retried; built once per client.

    ``timeout`` (seconds) bounds connecting and each wait for the server's bytes; ``retries``
    is the number of tries after the first."""

    def __init__(self, *, timeout: float, retries: int) -> None:
        self.timeout = timeout
        self.retries = retries
        # For the tries after the first (most calls need none, and skip the controller).
        self._retrying = AsyncRetrying(stop=stop_after_attempt(max(retries, 1)),
                                       wait=_wait_after_first,
                                       retry=retry_if_exception(retryable), reraise=True)

    def retrying(self) -> AsyncRetrying:
        """A retry controller for the retries of one call (tenacity's own state is per
        controller)."""
        return self._retrying.copy()


class Endpoint:
    """One base URL and key, on one pyreqwest client per timeout (each with its pool of
    connections), built as first needed and closed with :meth:`close`."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self._root = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                         "Content-Type": "application/json"}
        self._clients: dict[float, Client] = {}

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    async def post(self, path: str, body: dict[str, Any], policy: Policy) -> Any:
        """POST ``body`` as JSON to ``path`` (``"/embeddings"``) and return the decoded JSON
        answer, retried as the module says. Raises :class:`ModelAPIError`,
        :class:`TimeoutError` or another :class:`OSError` (the last try's)."""
        data = orjson.dumps(body)
        url = self._root + path
        try:
            return await self._post_once(url, data, policy)
        except Exception as exc:
            if policy.retries == 0 or not retryable(exc):
                raise
            await asyncio.sleep(_wait(exc, 1))
        return await policy.retrying()(self._post_once, url, data, policy)

    def _client(self, timeout: float) -> Client:
        client = self._clients.get(timeout)
        if client is None:
            wait = timedelta(seconds=timeout)
            client = self._clients[timeout] = (
                ClientBuilder().default_headers(self._headers).connect_timeout(wait)
                .read_timeout(wait).max_connections(_CONNECTIONS).build())
        return client

    async def _post_once(self, url: str, data: bytes, policy: Policy) -> Any:
        try:
            response = await self._client(policy.timeout).post(url).body_bytes(data).build().send()
            raw = bytes(await response.bytes())
        except (PyreqwestError, ValueError) as exc:  # ValueError: a URL it cannot parse
            if isinstance(exc, TimeoutError):
                raise
            raise _os_error(exc) from exc
        if response.status >= 400:
            raise _status_error(response.status, response.headers, raw)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ModelAPIError(response.status, "the answer was not JSON") from None


# How Rust's standard library ends a system error's message: "Connection refused (os error 111)".
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _os_error(exc: Exception) -> OSError:
    """The system error under a failure to send or receive, as Python would raise it
    (``OSError`` picks the subclass for its number: ``ConnectionRefusedError`` for
    ECONNREFUSED), else ``socket.gaierror`` for a name not found, else a ``ConnectionError``
    saying what failed ("connection closed before message completed")."""
    details = getattr(exc, "details", None)
    found_causes = details.get("causes") if isinstance(details, dict) else None
    causes = [str(cause["message"]) for cause in found_causes or []]
    for cause in reversed(causes):
        found = _OS_ERROR.search(cause)
        if found:
            number = int(found.group(1))
            return OSError(number, os.strerror(number))
    if any(cause.startswith("dns error") for cause in causes):
        return socket.gaierror(socket.EAI_NONAME, "the server's name was not found")
    return ConnectionError(causes[-1] if causes else str(exc))  # the innermost says most


def _status_error(status: int, headers: Mapping[str, str], raw: bytes) -> ModelAPIError:
    """The error for an HTTP error answer, its message taken as the SDK takes it."""
    text = raw.decode(errors="replace").strip()
    message, param = text or _reason(status), None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("message"), str) and error["message"]:
            message = error["message"]
        if isinstance(error.get("param"), str):
            param = error["param"]
    should = headers.get("x-should-retry")
    return ModelAPIError(status, message, param=param, retry_after=_retry_after(headers),
                         should_retry={"true": True, "false": False}.get(should or ""))


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait in seconds a server asked for: ``retry-after-ms``, else ``Retry-After`` as
    seconds or as an HTTP date; None when it asked for none (or said it unreadably)."""
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            continue
    when = headers.get("retry-after")
    parsed = email.utils.parsedate_tz(when) if when else None
    if parsed is None:
        return None
    return float(email.utils.mktime_tz(parsed) - time.time())
