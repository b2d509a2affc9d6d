"""What people and admins decide about memory, kept in Postgres (migration 004), and what it
means for one turn."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from bot.events import ChatEvent
from bot.ports import Access

__all__ = ["PAUSED_NOTICE", "ControlStore", "Person", "Place", "decide"]

PAUSED_NOTICE = (
    "Memory is paused for you: I'm not using or learning anything about you until you resume it."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """A memory owner's own choices. ``forgotten_at`` is when they last asked to forget
    everything: a write for a message from before then stores nothing."""

    paused: bool = False
    receipts: bool = True
    forgotten_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Place:
    """A Discord server's or Slack workspace's settings, chosen by its admins. ``channels``
    empty means every channel; DMs are never limited by it."""

    memory: bool = True
    channels: tuple[str, ...] = ()
    public_recall: bool = True
    receipts: bool = True


def decide(event: ChatEvent, person: Person, place: Place | None, *,
           first_pause_notice: bool = False) -> Access:
    """The access a turn gets. Memory off for the place, or a channel outside its list, means
    neither recall nor learning; ``public_recall`` off keeps memories out of answers outside
    DMs (learning goes on); a paused person gets neither, with a notice the first time."""
    if person.paused:
        return Access(recall=False, learn=False, receipts=False,
                      notice=PAUSED_NOTICE if first_pause_notice else None)
    if place is None:
        return Access(recall=True, learn=True, receipts=person.receipts)
    in_channel = event.is_direct or not place.channels or any(
        where in place.channels for where in (event.channel_id, event.thread_id) if where
    )
    if not place.memory or not in_channel:
        return Access(recall=False, learn=False, receipts=False)
    return Access(
        recall=event.is_direct or place.public_recall,
        learn=True,
        receipts=person.receipts and place.receipts,
    )


_PLACE_COLUMNS = {f.name for f in fields(Place)}


class ControlStore:
    """Owners' and places' settings. An owner or place never seen has the defaults (memory on,
    receipts on, every channel, memories used in public answers)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def access(self, owner_id: str, event: ChatEvent) -> Access:
        """The ``MemoryControls`` port: one round trip, which also marks the pause notice as
        given. The notice is given only in a direct conversation: in a channel it would tell
        everyone there that this person paused memory."""
        row = await self._pool.fetchrow(
            "with noticed as (update owner_settings set pause_noticed = true"
            " where owner_id = $1 and paused and not pause_noticed and $4"
            " returning owner_id)"
            " select o.paused, o.receipts, o.forgotten_at,"
            " exists (select from noticed) as first_notice,"
            " w.memory, w.channels, w.public_recall, w.receipts as place_receipts"
            " from (select 1) one"
            " left join owner_settings o on o.owner_id = $1"
            " left join workspace_settings w on w.platform = $2 and w.workspace_id = $3",
            owner_id,
            event.platform,
            event.workspace_id or "",
            event.is_direct,
        )
        assert row is not None  # the select always yields its one row
        place = None
        if row["memory"] is not None:
            place = Place(memory=row["memory"], channels=tuple(row["channels"]),
                          public_recall=row["public_recall"], receipts=row["place_receipts"])
        return decide(event, _person(row), place, first_pause_notice=row["first_notice"])

    async def person(self, owner_id: str) -> Person:
        row = await self._pool.fetchrow(
            "select paused, receipts, forgotten_at from owner_settings where owner_id = $1",
            owner_id,
        )
        return _person(row) if row is not None else Person()

    async def set_paused(self, owner_id: str, paused: bool) -> bool:
        """Pause or resume; returns False when it already was so."""
        was: bool | None = await self._pool.fetchval(
            "with before as (select paused from owner_settings where owner_id = $1)"
            " insert into owner_settings (owner_id, paused) values ($1, $2)"
            " on conflict (owner_id) do update set paused = $2, updated_at = now(),"
            " pause_noticed = owner_settings.pause_noticed and owner_settings.paused = $2"
            " returning (select paused from before)",
            owner_id,
            paused,
        )
        return bool(was) != paused

    async def set_receipts(self, owner_id: str, on: bool) -> None:
        await self._pool.execute(
            "insert into owner_settings (owner_id, receipts) values ($1, $2)"
            " on conflict (owner_id) do update set receipts = $2, updated_at = now()",
            owner_id,
            on,
        )

    async def mark_forgotten(self, owner_id: str) -> datetime:
        """Record that the owner asked to forget everything, now (the database's clock), before
        anything is deleted: writes of older messages check it before and after they run."""
        at: datetime = await self._pool.fetchval(
            "insert into owner_settings (owner_id, forgotten_at) values ($1, now())"
            " on conflict (owner_id) do update set forgotten_at = now(), updated_at = now()"
            " returning forgotten_at",
            owner_id,
        )
        return at

    async def place(self, platform: str, workspace_id: str) -> Place:
        row = await self._pool.fetchrow(
            "select memory, channels, public_recall, receipts from workspace_settings"
            " where platform = $1 and workspace_id = $2",
            platform,
            workspace_id,
        )
        if row is None:
            return Place()
        return Place(memory=row["memory"], channels=tuple(row["channels"]),
                     public_recall=row["public_recall"], receipts=row["receipts"])

    async def update_place(self, platform: str, workspace_id: str, by: str,
                           **changes: Any) -> Place:
        """Change some of a place's settings (names as in :class:`Place`); returns them all."""
        unknown = set(changes) - _PLACE_COLUMNS
        if unknown:
            raise ValueError(f"no such place setting: {', '.join(sorted(unknown))}")
        if "channels" in changes:
            changes["channels"] = list(changes["channels"])
        names = list(changes)
        columns = ", ".join(names)
        values = ", ".join(f"${i + 4}" for i in range(len(names)))
        updates = ", ".join(f"{name} = excluded.{name}" for name in names)
        await self._pool.execute(
            f"insert into workspace_settings (platform, workspace_id, updated_by, {columns})"
            f" values ($1, $2, $3, {values}) on conflict (platform, workspace_id) do update"
            f" set {updates}, updated_by = excluded.updated_by, updated_at = now()",
            platform,
            workspace_id,
            by,
            *changes.values(),
        )
        return await self.place(platform, workspace_id)

    async def forget_owner(self, owner_id: str) -> None:
        """Drop an owner's settings (their Supabase user was deleted)."""
        await self._pool.execute("delete from owner_settings where owner_id = $1", owner_id)


def _person(row: asyncpg.Record) -> Person:
    return Person(
        paused=bool(row["paused"]),
        receipts=row["receipts"] is not False,
        forgotten_at=row["forgotten_at"],
    )
