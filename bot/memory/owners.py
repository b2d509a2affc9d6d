"""What belongs to one memory owner, as a whole: erasing all of it (the one path "forget
everything" and the purge of a deleted Supabase user share) and moving all of it to another
owner (linking).

Erasing::

    tombstone (owner_settings.forgotten_at = now(), under the owner's erase lock)
      → queued writes cancelled (inbox rows, waiting and failed jobs)
      → memories, their history and Mem0's copy of recent messages deleted
      → recorded turns deleted

The tombstone comes first and stays: a memory write already running stores, then reads it and
deletes what it stored (:class:`bot.learning.learner.Learner`); a turn being answered records
nothing for a message said before it (:class:`bot.learning.inbox.MemoryInbox`). Every step is
idempotent, so an interrupted erase is simply run again.

Moving (:class:`OwnerMove`) gives the new owner, inside the caller's transaction, the old one's
memories (duplicates dropped), Mem0's rows about them, the recorded turns, and the stricter of
the two owners' choices.
"""

from __future__ import annotations

import logging

import asyncpg

from bot.memory.history import session_scope
from bot.ports import (
    Connection,
    Erased,
    MemoryStore,
    Moved,
    OwnerRows,
    PendingWrites,
    Tombstones,
)

__all__ = ["Eraser", "OwnerMove", "entities_table"]

log = logging.getLogger(__name__)


class Eraser:
    """Erases an owner (the ``Erasing`` port). Guarantees: the tombstone is written (by the
    database's clock) before anything is deleted; afterwards nothing said before it is left anywhere
    membot or Mem0 keeps it, once :meth:`busy` is false (a write that was running has then checked
    the tombstone and removed what it stored)."""

    def __init__(self, *, tombstones: Tombstones, writes: PendingWrites, memory: MemoryStore,
                 turns: OwnerRows) -> None:
        self._tombstones = tombstones
        self._writes = writes
        self._memory = memory
        self._turns = turns

    async def erase(self, owner_id: str, *, deleted_user: bool = False) -> Erased:
        """Erase everything of ``owner_id``. ``deleted_user``: their Supabase user is gone, so
        their choices (pause, receipts) are reset too; the tombstone stays either way."""
        await self._tombstones.mark_forgotten(owner_id, reset=deleted_user)
        queued = await self._writes.forget_owner(owner_id)
        memories = await self._memory.forget_owner(owner_id)
        turns = await self._turns.forget_owner(owner_id)
        log.info("erased one owner: %d memories, %d turns, %d queued messages", memories, turns,
                 queued)
        return Erased(memories=memories, turns=turns, queued=queued)

    async def busy(self, owner_id: str) -> bool:
        """Whether a memory write of the owner is running now (an erase is final only after
        it has finished)."""
        return await self._writes.busy(owner_id)


def entities_table(table: str) -> str:
    """Mem0's side table of entities named in memories (made when it first finds one)."""
    return f"{table}_entities"


async def _move_memories(conn: Connection, table: str, old: str, new: str) -> int:
    """Give ``old``'s memories to ``new`` inside the caller's transaction, dropping any that
    ``new`` already has (same text, by Mem0's hash; the oldest copy stays). Mem0's entity rows
    move too. Returns how many memories ``new`` gained. Idempotent."""
    moved = await conn.execute(
        f'update "{table}" set payload = jsonb_set(payload, \'{{user_id}}\', to_jsonb($2::text))'
        " where payload->>'user_id' = $1",
        old,
        new,
    )
    dropped = await conn.execute(
        f'delete from "{table}" later using "{table}" earlier'
        " where later.payload->>'user_id' = $1 and earlier.payload->>'user_id' = $1"
        " and later.payload->>'hash' = earlier.payload->>'hash'"
        " and (later.payload->>'created_at', later.id::text)"
        " > (earlier.payload->>'created_at', earlier.id::text)",
        new,
    )
    entities = entities_table(table)
    if await conn.fetchval("select to_regclass($1) is not null", f'public."{entities}"'):
        await conn.execute(
            f'update "{entities}" set payload = jsonb_set(payload, \'{{user_id}}\','
            " to_jsonb($2::text)) where payload->>'user_id' = $1",
            old,
            new,
        )
    await conn.execute(
        "update mem0_messages set session_scope = $2 where session_scope = $1",
        session_scope(old),
        session_scope(new),
    )
    await conn.execute("update mem0_history set owner_id = $2 where owner_id = $1", old, new)
    return int(moved.split()[-1]) - int(dropped.split()[-1])

class OwnerMove:
    """The ``OwnerMove`` port on Postgres: Mem0's table ``table``, Mem0's side tables, the
    recorded turns and the owners' choices. Idempotent."""

    def __init__(self, table: str) -> None:
        self._table = table

    async def __call__(self, conn: Connection, old: str, new: str) -> Moved:
        memories = await _move_memories(conn, self._table, old, new)
        await conn.execute(
            "update conversation_turns set owner_id = $2 where owner_id = $1", old, new)
        choices = await _merge_choices(conn, old, new)
        return Moved(memories=memories, paused=choices["paused"], receipts=choices["receipts"])


async def _merge_choices(conn: Connection, old: str, new: str) -> asyncpg.Record:
    """Give ``new`` the stricter of its own choices and ``old``'s: paused if either was,
    receipts only if both had them, the later forget. ``old``'s row stays (for the day the
    account is unlinked). Returns ``new``'s ``paused`` and ``receipts``."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "insert into owner_settings as o (owner_id, paused, receipts, forgotten_at)"
        " select $2, coalesce(a.paused, false), coalesce(a.receipts, true), a.forgotten_at"
        " from (select 1) one left join owner_settings a on a.owner_id = $1"
        " on conflict (owner_id) do update set paused = o.paused or excluded.paused,"
        " receipts = o.receipts and excluded.receipts,"
        " forgotten_at = greatest(o.forgotten_at, excluded.forgotten_at), updated_at = now()"
        " returning paused, receipts",
        old,
        new,
    )
    assert row is not None  # an upsert of one row always returns it
    return row
