"""Whether this process can serve: the checks behind ``/readyz``.

Liveness (``/healthz``) asks nothing of anyone; readiness asks the database and the model API,
each with a short timeout, and keeps the outcome for a moment so that frequent probes from
several load balancers cost the database one ``select 1`` per ``ttl`` at most.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import openai

from bot.ports import ReadinessCheck, ReadinessReport

__all__ = ["CachedReadiness", "DatabaseCheck", "ModelCheck"]


class DatabaseCheck:
    """The database answers ``select 1`` on the pool within ``timeout`` seconds (waiting for a
    free connection included)."""

    name = "database"

    def __init__(self, pool: asyncpg.Pool[Any], *, timeout: float = 2.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def problem(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._pool.fetchval("select 1")
        except TimeoutError:
            return f"no answer within {self._timeout:g}s"
        except OSError as exc:  # refused, no such socket, no route...
            return f"unreachable ({exc.__class__.__name__})"
        except Exception as exc:
            # The class only: the message of a connection error can name the host and user.
            return exc.__class__.__name__
        return None


class ModelCheck:
    """The model API is reachable: ``GET {OPENAI_BASE_URL}/models`` with the configured key gets
    an HTTP answer below 500 within ``timeout`` seconds, no retries. A 401 or 404 counts as
    reachable (some compatible servers have no model list; a wrong key stops membot at start).
    """

    name = "model"

    def __init__(self, client: openai.AsyncOpenAI, *, timeout: float = 3.0) -> None:
        self._client = client.with_options(max_retries=0, timeout=timeout)
        self._timeout = timeout

    async def problem(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout + 1):
                await self._client.models.list()
        except openai.APIStatusError as exc:
            return f"HTTP {exc.status_code}" if exc.status_code >= 500 else None
        except TimeoutError:
            return f"no answer within {self._timeout:g}s"
        except openai.APIConnectionError as exc:  # timeouts included
            # The transport's own error class (ConnectTimeout, ReadTimeout, ConnectError...):
            # its message would name the host.
            cause = exc.__cause__ or exc
            return f"unreachable ({cause.__class__.__name__})"
        except Exception as exc:
            return exc.__class__.__name__
        return None


class CachedReadiness:
    """The ``Readiness`` port over ``checks``, run concurrently.

    Guarantees: a report is at most ``ttl`` seconds old; callers that arrive while the checks
    run wait for that run rather than start another; never raises.
    """

    def __init__(
        self,
        checks: Sequence[ReadinessCheck],
        *,
        ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = tuple(checks)
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last: ReadinessReport | None = None
        self._taken_at = 0.0

    async def report(self) -> ReadinessReport:
        async with self._lock:
            if self._last is None or self._clock() - self._taken_at >= self._ttl:
                problems = await asyncio.gather(*(check.problem() for check in self._checks))
                self._last = ReadinessReport(problems={
                    check.name: problem for check, problem in zip(self._checks, problems,
                                                                  strict=True)
                })
                self._taken_at = self._clock()
            return self._last
