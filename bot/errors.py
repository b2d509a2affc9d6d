"""membot's exceptions, in one tree.

::

    MembotError
    ├── ConfigError            a setting is missing or wrong; the message names the setting
    ├── StartupError           a service needed at start is unreachable or unfit
    │   └── DatabaseError      the database cannot be reached or lacks what membot needs
    ├── MemoryUnavailable      memory search or storage failed (answers go on without it)
    ├── ExtractionUnparseable  the extraction model's answer was not the JSON asked for
    ├── ModelError             the chat model failed after retries
    │   ├── ModelUnavailable   a transient failure (timeout, 429, 5xx) that outlasted retries
    │   └── ModelRejected      the model API refused the request (auth, bad request)
    ├── ModelAPIError          the model API answered an HTTP error status (``bot.endpoint``;
    │                          ``bot.clients`` turns it into one of the two above)
    └── AuthError              Supabase Auth did not do what a linking step asked
        ├── AuthUnavailable    unreachable, or failing on its side (5xx, timeout)
        ├── AuthRateLimited    it refused to send another email so soon (429)
        ├── AuthRejected       it refused the input (a malformed email address)
        │   └── AuthNoSuchUser no user has that address, and none was to be created
        └── AuthCodeInvalid    the login code was expired, already used or not ours

Messages of ``ConfigError`` and ``StartupError`` are one sentence meant for the operator and
never contain secrets. :func:`is_transient` is the one list of failures that trying again
later may fix.
"""

from __future__ import annotations

import aiohttp
import asyncpg
import openai
import psycopg
from psycopg_pool import PoolTimeout

__all__ = [
    "TRANSIENT",
    "AuthCodeInvalid",
    "AuthError",
    "AuthNoSuchUser",
    "AuthRateLimited",
    "AuthRejected",
    "AuthUnavailable",
    "ConfigError",
    "DatabaseError",
    "ExtractionUnparseable",
    "MembotError",
    "MemoryUnavailable",
    "ModelAPIError",
    "ModelError",
    "ModelRejected",
    "ModelUnavailable",
    "StartupError",
    "causes",
    "is_transient",
]


class MembotError(Exception):
    """Base of every error membot raises on purpose."""


class ConfigError(MembotError):
    """A setting is missing or wrong."""


class StartupError(MembotError):
    """A service needed at start is unreachable or unfit."""


class DatabaseError(StartupError):
    """The database cannot be reached or lacks what membot needs."""


class MemoryUnavailable(MembotError):
    """Memory search or storage failed. ``transient`` is true when trying again later may
    work (the model or the database unreachable, slow, rate-limited or failing on its side)."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class ExtractionUnparseable(MembotError):
    """The extraction model answered with something other than the JSON object it was asked
    for. Trying again may work: models answer differently each time."""


class ModelError(MembotError):
    """The chat model failed."""


class ModelUnavailable(ModelError):
    """A transient model failure that outlasted the retries."""


class ModelRejected(ModelError):
    """The model API refused the request."""


class ModelAPIError(MembotError):
    """The model API answered with an HTTP error status (the last answer, when it was retried).

    ``message`` is the error body's ``error.message`` (else its text, else the status's
    reason), ``param`` its ``error.param``; ``retry_after`` is the wait in seconds the server
    asked for (``retry-after-ms`` or ``Retry-After``), ``should_retry`` its ``x-should-retry``
    header (None when absent)."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 retry_after: float | None = None, should_retry: bool | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.should_retry = should_retry

    @property
    def transient(self) -> bool:
        """Whether trying again later may work: 408, 409, 429 and 5xx."""
        return self.status in (408, 409, 429) or self.status >= 500


class AuthError(MembotError):
    """Supabase Auth did not do what a linking step asked."""


class AuthUnavailable(AuthError):
    """Supabase Auth is unreachable or failing on its side."""


class AuthRateLimited(AuthError):
    """Supabase Auth refused to send another email to that address so soon."""


class AuthRejected(AuthError):
    """Supabase Auth refused the input, such as a malformed email address."""


class AuthNoSuchUser(AuthRejected):
    """No user has that address, and the login email was asked not to create one."""


class AuthCodeInvalid(AuthError):
    """The login code from the email was expired, already used, or made for another flow."""


# Failures that trying again later may fix: the model API unreachable, slow, rate-limited or
# failing on its side (after the retries), an extraction answer that did not parse, or the
# database away; and a :class:`ModelAPIError` whose status is ``transient``.
TRANSIENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
    ExtractionUnparseable,
    psycopg.OperationalError,
    PoolTimeout,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    OSError,
)


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (``__cause__``, else ``__context__``), outermost first, each
    error once."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it (Mem0 wraps the model's errors in its own) is in
    :data:`TRANSIENT`, or is a :class:`ModelAPIError` with a transient status."""
    return any(isinstance(error, TRANSIENT)
               or (isinstance(error, ModelAPIError) and error.transient)
               for error in causes(exc))
