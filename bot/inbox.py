"""Each answered exchange and its memory write, recorded together (the ``Exchanges`` port), and
the inbox of messages waiting to be learned.

One transaction writes the conversation's turns and the person's message into ``memory_inbox``;
only then is the owner's learning job woken (:class:`bot.queue.MemoryQueue`). So an answer that
was sent always has its write queued, and a wake lost to a crash is made good by the queue's
sweep. When the database cannot be reached, the exchange is held in this process and written
as soon as the database answers again, in the order it was said.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bot.controls import OWNER_LOCK
from bot.events import MessageRef
from bot.ports import MemoryWrite, Turn

__all__ = ["InboxItem", "MemoryInbox"]

log = logging.getLogger(__name__)

HELD_LIMIT = 10_000  # exchanges kept in memory while the database is away

# An inbox row as :func:`_item` reads it; ``age`` by the database's clock.
# True unless the owner forgot everything at or after the message was said.
_NOT_FORGOTTEN = ("not exists (select from owner_settings where owner_id = {owner}"
                  " and forgotten_at >= {said})")

_SELECT = ("select id, owner_id, account, event_id, text, said_at, metadata, source,"
           " extract(epoch from now() - created_at)::float8 as age from memory_inbox")


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
class _Held:
    conversation_id: str
    owner_id: str
    turns: tuple[Turn, ...]
    write: MemoryWrite | None


class MemoryInbox:
    """The production ``Exchanges`` and the writer's view of what is waiting.

    ``wake(owner_id, now)`` is called after a write is committed; ``now`` is true once the
    owner has ``batch_size`` messages waiting."""

    def __init__(self, pool: asyncpg.Pool[Any], *, keep: int, batch_size: int,
                 wake: Callable[[str, bool], Awaitable[None]], retry_every: float = 2.0) -> None:
        self._pool = pool
        self._keep = keep
        self._batch_size = batch_size
        self._wake = wake
        self._retry_every = retry_every
        self._held: deque[_Held] = deque()
        self._flushing: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        """Exchanges waiting in this process for the database to come back."""
        return len(self._held)

    async def record(self, conversation_id: str, owner_id: str, turns: Sequence[Turn],
                     write: MemoryWrite | None) -> None:
        """Record the turns and queue the write in one transaction, then wake the owner's job.
        Never raises: if the database fails, the exchange is held and retried in order."""
        item = _Held(conversation_id, owner_id, tuple(turns), write)
        if self._held:  # keep the order: behind what is already waiting
            self._hold(item)
            return
        try:
            waiting = await self._store(item)
        except Exception as exc:
            log.warning("recording an exchange failed (%s); holding it until the database "
                        "answers", exc.__class__.__name__)
            self._hold(item)
            return
        await self._after(item, waiting)

    async def _store(self, item: _Held) -> int:
        """Write one exchange; returns how many messages its owner now has waiting (0 when it
        queues no write). Nothing is written for a message said before the owner's last
        forget (their tombstone): the shared erase lock makes a forget that is being recorded
        wait for this transaction, whose rows it then deletes, or be seen by it."""
        said = item.turns[0].at if item.turns else item.write.at if item.write else None
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock_shared($1, hashtext($2))",
                               OWNER_LOCK, item.owner_id)
            if self._keep and item.turns:
                await conn.execute(
                    "insert into conversation_turns (conversation_id, owner_id, role, content,"
                    " at) select $1, $2, t.role, t.content, t.at"
                    " from unnest($3::text[], $4::text[], $5::timestamptz[])"
                    " with ordinality as t(role, content, at, n)"
                    f" where {_NOT_FORGOTTEN.format(owner='$2', said='$6')} order by t.n",
                    item.conversation_id, item.owner_id, [t.role for t in item.turns],
                    [t.text for t in item.turns], [t.at for t in item.turns], said,
                )
                await conn.execute(
                    "delete from conversation_turns where conversation_id = $1 and id <= ("
                    " select id from conversation_turns where conversation_id = $1"
                    " order by id desc offset $2 limit 1)",
                    item.conversation_id, self._keep,
                )
            write = item.write
            if write is None:
                return 0
            source = None if write.source is None else json.dumps(
                {"platform": write.source.platform, "channel": write.source.channel,
                 "message": write.source.message})
            # One round trip: the count cannot see the row its own statement inserts, hence
            # the added count of what was inserted (0 for a redelivered event).
            waiting: int = await conn.fetchval(
                "with added as (insert into memory_inbox (owner_id, account, event_id, text,"
                " said_at, metadata, source) select $1, $2, $3, $4, $5, $6, $7"
                f" where {_NOT_FORGOTTEN.format(owner='$1', said='$5')}"
                " on conflict (event_id) do nothing returning 1)"
                " select (select count(*) from added) + (select count(*) from memory_inbox"
                " where owner_id = $1 and failed_at is null)",
                write.owner_id, write.account, write.event_id, write.text, write.at,
                json.dumps(write.metadata), source,
            )
            return waiting

    async def _after(self, item: _Held, waiting: int) -> None:
        if item.write is None:
            return
        try:
            await self._wake(item.write.owner_id, waiting >= self._batch_size)
        except Exception:
            log.exception("waking the memory writer failed; the queue's sweep will")

    def _hold(self, item: _Held) -> None:
        if len(self._held) >= HELD_LIMIT:
            lost = self._held.popleft()
            log.error("more than %d exchanges held while the database is away; the oldest "
                      "(event %s) is lost", HELD_LIMIT,
                      lost.write.event_id if lost.write else "without a write")
        self._held.append(item)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="memory-inbox-flush")

    async def _flush(self) -> None:
        """Write the held exchanges, oldest first, as soon as the database takes them."""
        while self._held:
            item = self._held[0]
            try:
                waiting = await self._store(item)
            except Exception:
                await asyncio.sleep(self._retry_every)
                continue
            self._held.popleft()
            await self._after(item, waiting)
        log.info("the database is back; every held exchange is recorded")

    async def close(self, grace: float) -> None:
        """Give held exchanges ``grace`` seconds to be written; log what could not be."""
        task = self._flushing
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            log.error("%d exchanges held while the database was away could not be recorded "
                      "and are lost", len(self._held))

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

    async def of_owner(self, owner_id: str) -> list[InboxItem]:
        """Every message of the owner still in the inbox (for export), failed ones too."""
        rows = await self._pool.fetch(_SELECT + " where owner_id = $1 order by said_at, id",
                                      owner_id)
        return [_item(row) for row in rows]


def _item(row: asyncpg.Record) -> InboxItem:
    source = json.loads(row["source"]) if row["source"] else None
    return InboxItem(
        id=row["id"], owner_id=row["owner_id"], account=row["account"],
        event_id=row["event_id"], text=row["text"], said_at=row["said_at"],
        metadata=json.loads(row["metadata"]),
        source=MessageRef(**source) if source else None, age=row["age"],
    )
