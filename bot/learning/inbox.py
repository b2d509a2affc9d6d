"""Each answered exchange and its memory write, recorded together (the ``Exchanges`` port), and
the inbox of messages waiting to be learned.

The core hands an exchange over as its reply goes out; a task of this process writes what was
handed over, oldest first, several exchanges to a transaction when they come faster than one
transaction takes: the conversations' turns, the people's messages into ``memory_inbox`` and
each event's claim settled and their owners' learning jobs woken, in one call
(``membot_record``, migrations 008 and 009; the rule for the wake is
:class:`bot.learning.schedule.Schedule`'s). So an answer that was sent
has its write queued; and if this process dies before that transaction, the message its claim
kept ahead is queued by the next sweep (:meth:`MemoryInbox.recover`). When the database cannot
be reached, the exchanges are held here and written as soon as it answers again, in the order
they were said.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from bot.choices import OWNER_LOCK
from bot.events import MessageRef
from bot.ports import Connection, MemoryWrite, Turn

if TYPE_CHECKING:
    from bot.learning.schedule import Schedule

__all__ = ["InboxItem", "MemoryInbox"]

log = logging.getLogger(__name__)

HELD_LIMIT = 10_000  # exchanges kept in memory while the database is away
BATCH_LIMIT = 200  # exchanges written in one transaction at most

@dataclass(frozen=True, slots=True, kw_only=True)
class InboxItem:
    """A message waiting to be learned. ``age`` is seconds since it was queued, by the
    database's clock."""

    id: int
    owner_id: str
    account: str
    event_id: str
    text: str
    said_at: datetime
    metadata: dict[str, str]
    source: MessageRef | None
    age: float


@dataclass(frozen=True, slots=True)
class _Exchange:
    event_id: str
    conversation_id: str
    owner_id: str
    turns: tuple[Turn, ...]
    write: MemoryWrite | None


_SELECT = ("select id, owner_id, account, event_id, text, said_at, metadata, source,"
           " extract(epoch from now() - created_at)::float8 as age from memory_inbox")


class MemoryInbox:
    """The production ``Exchanges`` and the learner's view of what is waiting.

    Guarantees: exchanges are written in the order they were handed over, each once; an
    exchange's turns, its write, the settling of its claim and the wake of its owner's job
    commit together; none is written before the current turn of the loop has ended (the reply
    that was handed over with it goes out first)."""

    def __init__(self, pool: asyncpg.Pool[Any], *, keep: int, schedule: Schedule,
                 retry_every: float = 2.0) -> None:
        self._pool = pool
        self._keep = keep
        self._schedule = schedule
        self._retry_every = retry_every
        self._waiting: deque[_Exchange] = deque()
        self._writing: asyncio.Task[None] | None = None
        self._failing = False
        self._handed = 0  # exchanges handed over, ever
        self._written = asyncio.Condition()
        self._done = 0  # of those, written (or lost to HELD_LIMIT)

    @property
    def held(self) -> int:
        """Exchanges handed over and not yet written (many only while the database is away)."""
        return len(self._waiting)

    @property
    def held_messages(self) -> int:
        """Messages to learn among the exchanges not yet written."""
        return sum(exchange.write is not None for exchange in self._waiting)

    def record(self, event_id: str, conversation_id: str, owner_id: str,
               turns: Sequence[Turn], write: MemoryWrite | None) -> None:
        if len(self._waiting) >= HELD_LIMIT:
            lost = self._waiting.popleft()
            log.error("more than %d exchanges held while the database is away; the oldest "
                      "(event %s) is lost", HELD_LIMIT, lost.event_id)
            self._done += 1
        self._waiting.append(_Exchange(event_id, conversation_id, owner_id, tuple(turns), write))
        self._handed += 1
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write(), name="memory-inbox-writer")

    def unrecorded(self, conversation_id: str) -> list[Turn]:
        return [turn for exchange in self._waiting if exchange.conversation_id == conversation_id
                for turn in exchange.turns]

    async def _write(self) -> None:
        """Write what was handed over, oldest first, until nothing is left."""
        await asyncio.sleep(0)  # the reply handed over with the first exchange goes out first
        while self._waiting:
            batch = [self._waiting[i] for i in range(min(len(self._waiting), BATCH_LIMIT))]
            try:
                await self._store(batch)
            except Exception as exc:
                if not self._failing:
                    log.warning("recording exchanges failed (%s); holding them until the "
                                "database answers", exc.__class__.__name__)
                    self._failing = True
                await asyncio.sleep(self._retry_every)
                continue
            written = 0
            for exchange in batch:  # those HELD_LIMIT dropped meanwhile are gone already
                if self._waiting and self._waiting[0] is exchange:
                    self._waiting.popleft()
                    written += 1
            async with self._written:
                self._done += written
                self._written.notify_all()
            if self._failing:
                log.info("the database is back; every held exchange is recorded")
                self._failing = False

    async def _store(self, batch: Sequence[_Exchange]) -> None:
        """Write ``batch`` and wake its owners' jobs, in one round trip."""
        async with self._pool.acquire() as conn:
            await self._record(
                conn, [(e.conversation_id, e.owner_id, e.turns) for e in batch],
                [e.write for e in batch if e.write is not None], [e.event_id for e in batch])

    async def _record(self, conn: Connection,
                      exchanges: Sequence[tuple[str, str, Sequence[Turn]]],
                      writes: Sequence[MemoryWrite], events: Sequence[str]) -> int:
        """One call of ``membot_record`` (migrations 008 and 009): the turns of ``exchanges``
        (conversation, owner, turns), the ``writes`` queued, the claims of ``events``
        settled, the written owners' jobs woken (:meth:`Schedule.on_record`); a write whose
        claim was settled already is not queued again. Nothing is written for a message said
        before its owner's last forget (their tombstone): the function takes the owners'
        shared erase locks first, so a forget that is being recorded waits for it, and
        deletes its rows, or is seen by it. Returns how many messages were queued."""
        turns = [(conversation, owner, turn[0].at, t) for conversation, owner, turn in exchanges
                 for t in (turn if self._keep else ())]
        owners = sorted({owner for _, owner, _ in exchanges} | {w.owner_id for w in writes})
        queued: int = await conn.fetchval(
            "select coalesce(sum(queued), 0)::int from membot_record($1, $2, $3, $4, $5, $6, $7,"
            " $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
            OWNER_LOCK, owners, [c for c, _, _, _ in turns], [o for _, o, _, _ in turns],
            [t.role for *_, t in turns], [t.text for *_, t in turns],
            [t.at for *_, t in turns], [said for _, _, said, _ in turns],
            self._keep, list(events),
            [w.event_id for w in writes], [w.owner_id for w in writes],
            [w.account for w in writes], [w.text for w in writes], [w.at for w in writes],
            [orjson.dumps(w.metadata).decode() for w in writes], [_source(w) for w in writes],
            *self._schedule.on_record(),
        )
        return queued

    async def flush(self) -> None:
        """Wait until every exchange handed over before the call is written (while the
        database is away, until it is back)."""
        target = self._handed
        async with self._written:
            await self._written.wait_for(lambda: self._done >= target)

    async def close(self, grace: float) -> None:
        """Give the exchanges not yet written ``grace`` seconds; log what could not be."""
        task = self._writing
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            log.error("%d exchanges held while the database was away could not be recorded; "
                      "the messages their claims kept are queued by the next sweep",
                      len(self._waiting))

    async def recover(self, older_than: float) -> int:
        """Queue the messages kept ahead by claims older than ``older_than`` seconds whose
        turns were never recorded (their process died between the reply and the record),
        under the owner their account has now, with their settings to be checked when they
        are learned; wake those owners' jobs. Returns how many messages."""
        async with self._pool.acquire() as conn, conn.transaction():
            claims = await conn.fetch(
                "select p.event_id, p.pending->>'account' as account, p.pending->>'text' as text,"
                " (p.pending->>'at')::timestamptz as said_at, p.pending->>'metadata' as metadata,"
                " coalesce(l.user_id::text, p.pending->>'account') as owner_id"
                " from processed_events p left join account_links l"
                " on l.account_key = p.pending->>'account'"
                " where p.pending is not null and p.claimed_at < now() - make_interval(secs => $1)"
                " order by p.claimed_at limit $2 for update of p skip locked",
                older_than, BATCH_LIMIT)
            if not claims:
                return 0
            writes = [MemoryWrite(owner_id=row["owner_id"], account=row["account"],
                                  event_id=row["event_id"], text=row["text"],
                                  at=row["said_at"], metadata=orjson.loads(row["metadata"]))
                      for row in claims]
            queued = await self._record(conn, [], writes, [w.event_id for w in writes])
        if queued:
            log.warning("%d messages whose turns were never recorded (their process stopped "
                        "after answering) are queued from their claims", queued)
        return queued

    async def pending(self, owner_id: str, limit: int) -> list[InboxItem]:
        """The owner's oldest ``limit`` messages waiting to be learned, in the order said."""
        rows = await self._pool.fetch(
            _SELECT + " where owner_id = $1 and failed_at is null order by said_at, id limit $2",
            owner_id, limit,
        )
        return [_item(row) for row in rows]

    async def waiting(self, owner_id: str) -> int:
        """How many of the owner's messages wait to be learned (failed ones not counted)."""
        count: int = await self._pool.fetchval(
            "select count(*) from memory_inbox where owner_id = $1 and failed_at is null",
            owner_id)
        return count

    async def remove(self, ids: Sequence[int]) -> None:
        await self._pool.execute("delete from memory_inbox where id = any($1::bigint[])",
                                 list(ids))

    async def fail(self, ids: Sequence[int], error: str) -> None:
        """Set messages aside whose learning failed for good, naming the error's class."""
        await self._pool.execute(
            "update memory_inbox set failed_at = now(), error = $2 where id = any($1::bigint[])",
            list(ids), error)

    async def reassign(self, account: str, old_owner: str, new_owner: str) -> int:
        """Move an account's waiting messages to the owner it now has (it was linked)."""
        status = await self._pool.execute(
            "update memory_inbox set owner_id = $3 where owner_id = $2 and account = $1",
            account, old_owner, new_owner)
        return int(status.split()[-1])

    async def forget_owner(self, owner_id: str) -> int:
        """Cancel every message of the owner waiting to be learned; returns how many."""
        status = await self._pool.execute("delete from memory_inbox where owner_id = $1",
                                          owner_id)
        return int(status.split()[-1])

    async def counts(self) -> tuple[int, int]:
        """Messages waiting, and messages set aside as failed, of every owner."""
        row = await self._pool.fetchrow(
            "select count(*) filter (where failed_at is null) as waiting,"
            " count(*) filter (where failed_at is not null) as failed from memory_inbox")
        assert row is not None
        return int(row["waiting"]), int(row["failed"])

    async def unfail(self) -> tuple[int, list[str]]:
        """Put every message whose learning failed back in line; returns how many, and their
        owners."""
        rows = await self._pool.fetch(
            "update memory_inbox set failed_at = null, error = null where failed_at is not null"
            " returning owner_id")
        return len(rows), sorted({row["owner_id"] for row in rows})

    async def waiting_since(self, seconds: float) -> set[str]:
        """Owners with a message waiting for more than ``seconds`` (by the database clock)."""
        rows = await self._pool.fetch(
            "select distinct owner_id from memory_inbox where failed_at is null"
            " and created_at < now() - make_interval(secs => $1)", seconds)
        return {row["owner_id"] for row in rows}

    async def of_owner(self, owner_id: str) -> list[InboxItem]:
        """Every message of the owner still in the inbox (for export), failed ones too."""
        rows = await self._pool.fetch(_SELECT + " where owner_id = $1 order by said_at, id",
                                      owner_id)
        return [_item(row) for row in rows]


def _source(write: MemoryWrite) -> str | None:
    """Where a receipt for ``write`` goes, as stored (None: no receipt)."""
    if write.source is None:
        return None
    return orjson.dumps({"platform": write.source.platform, "channel": write.source.channel,
                         "message": write.source.message}).decode()


def _item(row: asyncpg.Record) -> InboxItem:
    source = orjson.loads(row["source"]) if row["source"] else None
    return InboxItem(
        id=row["id"], owner_id=row["owner_id"], account=row["account"],
        event_id=row["event_id"], text=row["text"], said_at=row["said_at"],
        metadata=orjson.loads(row["metadata"]),
        source=MessageRef(**source) if source else None, age=row["age"],
    )
