"""A memory's row as its owner sees it, and what a learned memory keeps of its source messages:
Mem0's ``payload`` (JSON) read into :class:`MemoryRecord`, and a :class:`Source` written into it.
Memories stored by earlier versions (no sources, never superseded) read the same way."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from bot.ports import MemoryRecord, Source, Superseded
from bot.wording import one_line

__all__ = ["QUOTE_CHARS", "parse_time", "record_of", "stored_source"]

# Payload fields that are not metadata: the text, the owner, Mem0's derived fields, and what
# MemoryRecord carries as fields of its own.
_HIDDEN = frozenset({"data", "user_id", "hash", "text_lemmatized", "created_at", "updated_at",
                     "sources", "superseded", "role"})
QUOTE_CHARS = 500  # of each source message, kept with a memory


def record_of(row: asyncpg.Record) -> MemoryRecord:
    """A row of the memory table (``id``, ``payload`` as text) as its owner sees it."""
    payload: dict[str, Any] = json.loads(row["payload"])
    return MemoryRecord(
        id=row["id"],
        text=str(payload.get("data") or ""),
        created_at=parse_time(payload.get("created_at")),
        updated_at=parse_time(payload.get("updated_at")),
        metadata={k: str(v) for k, v in payload.items() if k not in _HIDDEN and v is not None},
        sources=tuple(_sources(payload.get("sources"))),
        superseded=_superseded(payload.get("superseded")),
    )


def _sources(raw: object) -> list[Source]:
    """The stored sources of a memory (none for memories of earlier versions)."""
    found: list[Source] = []
    for entry in raw if isinstance(raw, list) else ():
        said = parse_time(entry.get("said_at")) if isinstance(entry, dict) else None
        if said is None:
            continue
        found.append(Source(
            event_id=str(entry.get("event_id") or ""), said_at=said,
            quote=str(entry.get("quote") or ""), platform=str(entry.get("platform") or ""),
            conversation=str(entry.get("conversation") or ""),
            channel=_text_or_none(entry.get("channel")),
            message=_text_or_none(entry.get("message")),
            link=_text_or_none(entry.get("link"))))
    return found


def _superseded(raw: object) -> Superseded | None:
    if not isinstance(raw, dict) or (at := parse_time(raw.get("at"))) is None:
        return None
    return Superseded(at=at, by=_text_or_none(raw.get("by")),
                      event_id=_text_or_none(raw.get("event_id")))


def _text_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def stored_source(source: Source) -> dict[str, str]:
    """What a memory keeps of one source message (its text cut at :data:`QUOTE_CHARS`)."""
    stored = {"event_id": source.event_id, "said_at": source.said_at.isoformat(),
              "quote": one_line(source.quote, QUOTE_CHARS), "platform": source.platform,
              "conversation": source.conversation,
              "channel": source.channel, "message": source.message, "link": source.link}
    return {k: v for k, v in stored.items() if v is not None}


def parse_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None
