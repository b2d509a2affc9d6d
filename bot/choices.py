"""What people and admins decide about memory, kept in Postgres (migration 004), and what it
means for one turn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from bot.events import ChatEvent
from bot.ports import Access

__all__ = [
    "ACCESS_COLUMNS",
    "OWNER_LOCK",
    "PAUSED_NOTICE",
    "UNCHECKED_KEYS",
    "ChoiceStore",
    "Person",
    "Place",
    "access_of",
    "decide",
    "unchecked_place",
]

# The first key of an owner's erase lock, ``pg_advisory_xact_lock(OWNER_LOCK, hashtext(owner))``:
# held exclusively while the tombstone is set, shared while turns and writes are recorded.
OWNER_LOCK = 7_291_003

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
    in_channel = _in_channel(place, event.is_direct, event.channel_id, event.thread_id)
    if not place.memory or not in_channel:
        return Access(recall=False, learn=False, receipts=False)
    return Access(
        recall=event.is_direct or place.public_recall,
        learn=True,
        receipts=person.receipts and place.receipts,
    )


def _in_channel(place: Place, direct: bool, channel: str | None, thread: str | None) -> bool:
    return direct or not place.channels or any(
        where in place.channels for where in (channel, thread) if where
    )


# Metadata of a message queued while the settings could not be read: the mark, and where it was
# said, so the learning step can check the settings then (``ChoiceStore.allows_later``).
UNCHECKED_KEYS = ("access", "workspace_id", "channel_id", "thread_id", "direct")


def unchecked_place(event: ChatEvent) -> dict[str, str]:
    """The metadata that marks ``event``'s message as queued with its settings unchecked."""
    return {"access": "unchecked", "workspace_id": event.workspace_id or "",
            "channel_id": event.channel_id or "", "thread_id": event.thread_id or "",
            "direct": "yes" if event.is_direct else ""}


# What ``access_of`` reads, as columns of a statement that left joins ``owner_settings o`` (the
# owner's) and ``workspace_settings w`` (the event's place) and names ``first_notice``.
ACCESS_COLUMNS = ("o.paused, o.receipts, o.forgotten_at, w.memory, w.channels, w.public_recall,"
                  " w.receipts as place_receipts")


_PLACE_COLUMNS = {f.name for f in fields(Place)}


class ChoiceStore:
    """Owners' and places' settings. An owner or place never seen has the defaults (memory on,
    receipts on, every channel, memories used in public answers)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def person(self, owner_id: str) -> Person:
        row = await self._pool.fetchrow(
            "select paused, receipts, forgotten_at from owner_settings where owner_id = $1",
            owner_id,
        )
        return _person(row) if row is not None else Person()

    async def allows_later(self, owner_id: str, metadata: Mapping[str, str],
                           said_at: datetime) -> bool:
        """Whether a message queued with its settings unchecked (``unchecked_place``) may be
        learned now: the owner has not paused memory, the place (if it has settings) has memory
        on in that channel, and neither changed since the message was said; what they were
        then is not known, so a change means no."""
        row = await self._pool.fetchrow(
            "select o.paused, o.updated_at as person_at, w.memory, w.channels,"
            " w.updated_at as place_at from (select 1) one"
            " left join owner_settings o on o.owner_id = $1"
            " left join workspace_settings w on w.platform = $2 and w.workspace_id = $3",
            owner_id, metadata.get("platform", ""), metadata.get("workspace_id", ""),
        )
        assert row is not None  # the select always yields its one row
        if row["paused"] or (row["person_at"] is not None and row["person_at"] > said_at):
            return False
        if row["memory"] is None:
            return True
        place = Place(memory=row["memory"], channels=tuple(row["channels"]))
        return (row["place_at"] <= said_at and place.memory and _in_channel(
            place, bool(metadata.get("direct")), metadata.get("channel_id") or None,
            metadata.get("thread_id") or None))

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

    async def mark_forgotten(self, owner_id: str, *, reset: bool = False) -> datetime:
        """Record that everything of the owner is to be forgotten, now (the database's clock),
        before anything is deleted: the tombstone every write and every recorded turn checks
        after storing. ``reset`` also puts the owner's choices back to the defaults (their
        Supabase user was deleted) while keeping the time.

        Takes the owner's erase lock (:data:`OWNER_LOCK`) for its transaction: a recording of
        turns that holds the shared lock finishes first (and its rows are then deleted), and
        one that starts later sees the tombstone."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1, hashtext($2))", OWNER_LOCK,
                               owner_id)
            at: datetime = await conn.fetchval(
                "insert into owner_settings (owner_id, forgotten_at) values ($1, now())"
                " on conflict (owner_id) do update set forgotten_at = now(), updated_at = now(),"
                " paused = owner_settings.paused and not $2,"
                " pause_noticed = owner_settings.pause_noticed and not $2,"
                " receipts = owner_settings.receipts or $2"
                " returning forgotten_at",
                owner_id,
                reset,
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


def access_of(row: Mapping[str, Any], event: ChatEvent) -> Access:
    """The access of ``event``'s turn from a row with :data:`ACCESS_COLUMNS` and
    ``first_notice``."""
    place = None
    if row["memory"] is not None:
        place = Place(memory=row["memory"], channels=tuple(row["channels"]),
                      public_recall=row["public_recall"], receipts=row["place_receipts"])
    return decide(event, _person(row), place, first_pause_notice=row["first_notice"])


def _person(row: Mapping[str, Any]) -> Person:
    return Person(
        paused=bool(row["paused"]),
        receipts=row["receipts"] is not False,
        forgotten_at=row["forgotten_at"],
    )
