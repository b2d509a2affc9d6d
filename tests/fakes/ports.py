"""In-memory fakes of the core's ports, for tests of the core's own behaviour."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Sequence
from datetime import UTC, datetime

from bot.errors import ModelUnavailable
from bot.events import ChatEvent
from bot.ports import (
    Access,
    MemoryHit,
    MemoryRecord,
    MemoryWrite,
    Message,
    Opening,
    Source,
    Turn,
)

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

    async def search_for(self, owner: Awaitable[str | None], query: str,
                         limit: int) -> list[MemoryHit]:
        owner_id = await owner
        return [] if owner_id is None else await self.search(owner_id, query, limit)

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


class FakeStart:
    """The ``TurnStart`` port in dicts: events claimed once (``seen``), account keys linked to
    owners (``links``; an unlinked account owns its memories), every turn given
    ``access_given``, the recent turns of each conversation in ``turns``, and what each claim
    kept ahead in ``ahead``. With ``failure`` set, every start raises it."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.links: dict[str, str] = {}
        self.access_given = Access(recall=True, learn=True)
        self.turns: dict[str, list[Turn]] = defaultdict(list)
        self.ahead: dict[str, MemoryWrite] = {}
        self.failure: Exception | None = None

    async def open(self, event: ChatEvent, *, turns: int,
                   ahead: MemoryWrite | None) -> Opening:
        if self.failure is not None:
            raise self.failure
        owner = self.links.get(event.account.key, event.account.key)
        if event.event_id in self.seen:
            return Opening(claimed=False, owner=owner, access=self.access_given)
        self.seen.add(event.event_id)
        if ahead is not None:
            self.ahead[event.event_id] = ahead
        recent = self.turns[event.conversation_id][-turns:] if turns else []
        return Opening(claimed=True, owner=owner, access=self.access_given,
                       recent=tuple(recent))


class ListJobs:
    """The ``Exchanges`` port in lists, written at once: turns go to ``start.turns``, writes
    are kept without being learned, and the claim's message kept ahead is dropped."""

    def __init__(self, start: FakeStart) -> None:
        self.start = start
        self.writes: list[MemoryWrite] = []

    def record(self, event_id: str, conversation_id: str, owner_id: str,
               turns: Sequence[Turn], write: MemoryWrite | None) -> None:
        self.start.turns[conversation_id].extend(turns)
        self.start.ahead.pop(event_id, None)
        if write is not None:
            self.writes.append(write)

    def unrecorded(self, conversation_id: str) -> list[Turn]:
        return []
