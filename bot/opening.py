"""The start of a turn in Postgres (the production ``TurnStart``): the event's claim, its memory
owner, what the owner and the place allow, and the recent turns, in one statement."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import asyncpg
import orjson

from bot.choices import ACCESS_COLUMNS, access_of
from bot.events import ChatEvent
from bot.ports import MemoryWrite, Opening, Turn

__all__ = ["PostgresTurnStart"]

log = logging.getLogger(__name__)

# $1 event id, $2 account key, $3 platform, $4 workspace ("" for none), $5 direct?,
# $6 conversation, $7 how many recent turns, $8 the message kept ahead (jsonb or null).
#
# The claim inserts the event id; on a redelivery it inserts nothing, and the pause notice is
# not marked as given. The message is kept ahead only when the owner has not paused memory and
# the place has not turned it off (what else the settings say is checked when it is learned).
_OPEN = f"""
with link as (
    select coalesce((select user_id::text from account_links where account_key = $2), $2)
        as owner_id),
claim as (
    insert into processed_events (event_id, pending)
    select $1, case when coalesce((select s.paused from owner_settings s, link
                                   where s.owner_id = link.owner_id), false)
                      or coalesce((select not s.memory from workspace_settings s
                                   where s.platform = $3 and s.workspace_id = $4), false)
                    then null else $8::jsonb end
    on conflict (event_id) do nothing
    returning true),
noticed as (
    update owner_settings set pause_noticed = true
    where owner_id = (select owner_id from link) and paused and not pause_noticed and $5
      and exists (select from claim)
    returning owner_id),
recent as (
    select id, role, content, at from conversation_turns
    where conversation_id = $6 order by id desc limit $7)
select exists (select from claim) as claimed, link.owner_id, {ACCESS_COLUMNS},
       exists (select from noticed) as first_notice,
       array(select role from recent order by id) as roles,
       array(select content from recent order by id) as contents,
       array(select at from recent order by id) as ats
from link
left join owner_settings o on o.owner_id = link.owner_id
left join workspace_settings w on w.platform = $3 and w.workspace_id = $4
"""


def _ahead_json(write: MemoryWrite) -> str:
    """A message kept ahead, as the claim stores it (what the sweep queues if the turn is never
    recorded): its owner is found again from the account then."""
    return orjson.dumps({"account": write.account, "text": write.text,
                         "at": write.at.isoformat(), "metadata": write.metadata}).decode()


class PostgresTurnStart:
    """Claims and reads a turn's start in one round trip; forgets claims older than ``keep``
    every ``prune_every`` claims, beside the turn (platforms redeliver within minutes to an
    hour: Slack retries for up to an hour)."""

    def __init__(self, pool: asyncpg.Pool[Any], keep: timedelta = timedelta(days=1),
                 prune_every: int = 500) -> None:
        self._pool = pool
        self._keep = keep
        self._prune_every = prune_every
        self._claims = 0
        self._pruning: asyncio.Task[None] | None = None

    async def open(self, event: ChatEvent, *, turns: int,
                   ahead: MemoryWrite | None) -> Opening:
        row = await self._pool.fetchrow(
            _OPEN, event.event_id, event.account.key, event.platform, event.workspace_id or "",
            event.is_direct, event.conversation_id, turns,
            _ahead_json(ahead) if ahead is not None else None,
        )
        assert row is not None  # the select always yields its one row
        self._claims += 1
        if self._claims % self._prune_every == 0 and (
                self._pruning is None or self._pruning.done()):
            # Housekeeping, not the turn's work: the turn does not wait for it.
            self._pruning = asyncio.create_task(self._prune_quietly(), name="prune-claims")
        if not row["claimed"]:
            return Opening(claimed=False, owner=row["owner_id"], access=access_of(row, event))
        return Opening(
            claimed=True, owner=row["owner_id"], access=access_of(row, event),
            recent=tuple(Turn(role=role, text=text, at=at)
                         for role, text, at in zip(row["roles"], row["contents"], row["ats"],
                                                   strict=True)),
        )

    async def warm(self, conn: asyncpg.Connection[Any]) -> None:
        """Run the opening statement once on ``conn`` (a :data:`bot.database.Warmup`), in a
        transaction rolled back, so nothing is claimed: the connection has it planned and
        prepared before a turn needs it."""
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.fetchrow(_OPEN, "membot:warm-up", "", "", "", False, "", 0, None)
        finally:
            await transaction.rollback()

    async def _prune_quietly(self) -> None:
        try:
            await self.prune()
        except Exception:
            log.exception("pruning old claims failed; the next prune tries again")

    async def prune(self) -> int:
        """Delete claims older than ``keep`` whose turns were recorded; returns how many."""
        status = await self._pool.execute(
            "delete from processed_events where claimed_at < now() - $1::interval"
            " and pending is null", self._keep)
        removed = int(status.split()[-1])
        if removed:
            log.info("pruned %d processed event ids", removed)
        return removed
