"""In-memory fakes of the core's ports, for tests of the core's own behaviour."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime

from bot.errors import ModelUnavailable
from bot.events import ChatEvent
from bot.ports import Access, MemoryHit, MemoryRecord, MemoryWrite, Message, Source, Turn

_WORD = re.compile(r"[a-z0-9]+")


class FakeMemory:
    """Memories per owner in a dict; search ranks by shared words."""

    def __init__(self) -> None:
        self.by_owner: dict[str, list[MemoryHit]] = defaultdict(list)
        self.searches: list[tuple[str, str]] = []
        self.failure: Exception | None = None
        self.delay = 0.0

    def remember(self, owner_id: str, text: str) -> None:
        hits = self.by_owner[owner_id]
        hits.append(MemoryHit(id=f"m{len(hits)}", text=text, created_at=datetime.now(UTC),
                              score=1.0))

    async def search(self, owner_id: str, query: str, limit: int) -> list[MemoryHit]:
        self.searches.append((owner_id, query))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        words = set(_WORD.findall(query.lower()))

        def shared(hit: MemoryHit) -> int:
            return len(words & set(_WORD.findall(hit.text.lower())))

        return sorted(self.by_owner[owner_id], key=shared, reverse=True)[:limit]

    async def learn(self, owner_id: str, said: Sequence[Source], *, batch: str,
                    metadata: dict[str, str]) -> list[str]:
        for source in said:
            self.remember(owner_id, source.quote)
        return [hit.id for hit in self.by_owner[owner_id][-len(said):]]

    async def forget_batch(self, owner_id: str, batch: str) -> int:
        return 0

    def _records(self, owner_id: str) -> list[MemoryRecord]:
        return [MemoryRecord(id=h.id, text=h.text, created_at=h.created_at, updated_at=None)
                for h in reversed(self.by_owner.get(owner_id, []))]

    async def page(self, owner_id: str, limit: int, offset: int, *,
                   superseded: bool = False) -> tuple[list[MemoryRecord], int]:
        found = self._records(owner_id)
        return found[offset:offset + limit], len(found)

    async def records(self, owner_id: str, *, superseded: bool = True) -> list[MemoryRecord]:
        return self._records(owner_id)

    async def find(self, owner_id: str, id_prefix: str) -> list[MemoryRecord]:
        return [r for r in self._records(owner_id) if r.id.startswith(id_prefix)]

    async def forget(self, owner_id: str, memory_ids: Sequence[str]) -> int:
        kept = [h for h in self.by_owner.get(owner_id, []) if h.id not in memory_ids]
        gone = len(self.by_owner.get(owner_id, [])) - len(kept)
        self.by_owner[owner_id] = kept
        return gone

    async def forget_owner(self, owner_id: str) -> int:
        return len(self.by_owner.pop(owner_id, []))


class FixedControls:
    """Gives every turn ``access`` (all allowed unless a test changes it)."""

    def __init__(self) -> None:
        self.access_given = Access(recall=True, learn=True)
        self.failure: Exception | None = None

    async def access(self, owner_id: str, event: ChatEvent) -> Access:
        if self.failure is not None:
            raise self.failure
        return self.access_given


class DictOwners:
    """Account keys linked to owners in a dict; unlinked accounts own their memories."""

    def __init__(self) -> None:
        self.links: dict[str, str] = {}
        self.failure: Exception | None = None

    async def owner_of(self, account_key: str) -> str:
        if self.failure is not None:
            raise self.failure
        return self.links.get(account_key, account_key)


class FakeChat:
    """Answers ``answer`` (or raises ``failure``) and keeps every prompt it was given. Streamed,
    the answer comes word by word (each word with the blanks after it); ``break_after`` pieces
    in, the stream breaks off with ``ModelUnavailable``. ``pieces_read`` counts what a stream
    gave."""

    def __init__(self, answer: str = "fine answer") -> None:
        self.answer = answer
        self.failure: Exception | None = None
        self.prompts: list[list[Message]] = []
        self.break_after: int | None = None
        self.pieces_read = 0

    async def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        self.prompts.append(list(messages))
        if self.failure is not None:
            raise self.failure
        for n, piece in enumerate(re.findall(r"\s*\S+\s*", self.answer)):
            if self.break_after is not None and n >= self.break_after:
                raise ModelUnavailable("the answer broke off (scripted)")
            self.pieces_read += 1
            yield piece

    async def complete(self, messages: Sequence[Message]) -> str:
        self.prompts.append(list(messages))
        if self.failure is not None:
            raise self.failure
        return self.answer


class ListTranscript:
    def __init__(self) -> None:
        self.turns: dict[str, list[Turn]] = defaultdict(list)

    async def recent(self, conversation_id: str, limit: int) -> list[Turn]:
        return self.turns[conversation_id][-limit:]

    async def append(self, conversation_id: str, owner_id: str, turns: Sequence[Turn]) -> None:
        self.turns[conversation_id].extend(turns)


class SetLedger:
    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.failure: Exception | None = None

    async def claim(self, event_id: str) -> bool:
        if self.failure is not None:
            raise self.failure
        first = event_id not in self.seen
        self.seen.add(event_id)
        return first


class ListJobs:
    """The ``Exchanges`` port in lists: turns go to ``transcript``, writes are kept without
    being learned."""

    def __init__(self, transcript: ListTranscript) -> None:
        self.transcript = transcript
        self.writes: list[MemoryWrite] = []

    async def record(self, conversation_id: str, owner_id: str, turns: Sequence[Turn],
                     write: MemoryWrite | None) -> None:
        self.transcript.turns[conversation_id].extend(turns)
        if write is not None:
            self.writes.append(write)
