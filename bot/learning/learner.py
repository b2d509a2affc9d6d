"""The memory writer: one run of an owner's learning job, under the rules that hold when it runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from itertools import groupby

from bot.choices import UNCHECKED_KEYS, ChoiceStore
from bot.errors import MemoryUnavailable
from bot.learning.inbox import InboxItem, MemoryInbox
from bot.learning.queue import LearnJob
from bot.learning.schedule import Schedule
from bot.ports import MemoryStore, Moved, Owners, Receipts, Source
from bot.wording import plural

__all__ = ["Learner"]

log = logging.getLogger(__name__)


class Learner:
    """Learns an owner's waiting messages with one extraction per conversation, under the owner
    their account has when the job runs, and only if that owner still wants it.

    Guarantees:
    - Idempotent: each extraction is stored under a batch key (the first message's event id);
      a run that was interrupted after storing (a killed worker, a lost database) had its
      memories of that batch deleted before the next run stores them again, and messages leave
      the inbox only after their memories are stored. No message is learned twice.
    - One owner's runs never overlap (the queue's lock), and messages are learned in the order
      they were said.
    - Nothing is stored for a message sent before the owner's last "forget everything", even
      when the forget happened while the job was running: checked before and after storing.
    - Nothing is stored while the owner has memory paused; messages queued before the pause are
      dropped. A message queued while the settings could not be read (a database outage) is
      learned only if the owner's and the place's settings, read now, allow it and have not
      changed since it was said.
    - An account linked while its messages were learned: before what they left is moved to the
      new owner, that owner's pause and forget are checked against when the messages were said.
    - A failure that a retry may fix (model 429/5xx, timeouts, the database) is raised for the
      queue to retry; on the last attempt, or for any other error, the messages are set aside
      as failed (kept, visible, out of later batches) and the error raised.
    - The learned receipt goes on the newest message of a batch that kept something.
    """

    def __init__(
        self,
        *,
        memory: MemoryStore,
        inbox: MemoryInbox,
        owners: Owners,
        people: ChoiceStore,
        move: Callable[[str, str], Awaitable[Moved]],
        receipts: Receipts,
        schedule: Schedule,
    ) -> None:
        self._memory = memory
        self._inbox = inbox
        self._owners = owners
        self._people = people
        self._move = move
        self._receipts = receipts
        self._schedule = schedule
        self.learned = 0  # messages learned by this process

    async def run(self, job: LearnJob) -> None:
        """One run of ``job.owner_id``'s learning job."""
        owner = job.owner_id
        limit = self._schedule.batching.limit
        items = await self._inbox.pending(owner, limit)
        if not items:
            return
        wait = self._schedule.wait(items)
        if wait > 0:
            await self._schedule.later(owner, wait)
            return
        items = await self._follow_links(owner, items)
        person = await self._people.person(owner)
        if person.paused:
            await self._inbox.remove([i.id for i in items])
            log.info("dropped %d queued messages: memory paused", len(items))
            return
        dropped = [i for i in items if _forgotten_since(person.forgotten_at, i.said_at)]
        if dropped:
            await self._inbox.remove([i.id for i in dropped])
            log.info("dropped %d queued messages: forgotten since they were said", len(dropped))
        kept = [i for i in items if i not in dropped]
        unchecked = [i for i in kept if i.metadata.get("access") == "unchecked"
                     and not await self._people.allows_later(owner, i.metadata, i.said_at)]
        if unchecked:
            await self._inbox.remove([i.id for i in unchecked])
            log.info("dropped %d messages queued during an outage: the settings, read now, "
                     "do not allow learning them", len(unchecked))
            kept = [i for i in kept if i not in unchecked]
        for _, group in groupby(kept, key=lambda i: i.metadata.get("conversation_id", "")):
            await self._learn(owner, list(group), job)
        if len(items) == limit:
            await self._schedule.now(owner)  # more were waiting than one run takes

    async def _follow_links(self, owner: str, items: list[InboxItem]) -> list[InboxItem]:
        """Hand messages whose account was linked since to their new owner's job."""
        staying: list[InboxItem] = []
        for account in sorted({i.account for i in items}):
            now = await self._owners.owner_of(account)
            if now == owner:
                staying.extend(i for i in items if i.account == account)
                continue
            moved = await self._inbox.reassign(account, owner, now)
            log.info("handed %d queued messages to the owner their account was linked to",
                     moved)
            await self._schedule.now(now)
        return sorted(staying, key=lambda i: (i.said_at, i.id))

    async def _learn(self, owner: str, items: list[InboxItem], job: LearnJob) -> None:
        batch = items[0].event_id
        ids = [i.id for i in items]
        try:
            await self._memory.forget_batch(owner, batch)  # what an interrupted run left
            added = await self._memory.learn(owner, [_source(i) for i in items], batch=batch,
                                             metadata=_metadata(items))
            after = await self._people.person(owner)
            if after.paused or _forgotten_since(after.forgotten_at, items[-1].said_at):
                gone = await self._memory.forget_batch(owner, batch)
                await self._inbox.remove(ids)
                self.learned += len(items)
                log.info("dropped %d memories: paused or forgotten while they were written",
                         gone)
                return
            await self._inbox.remove(ids)
        except Exception as exc:
            transient = not isinstance(exc, MemoryUnavailable) or exc.transient
            if job.last or not transient:
                said = str(exc) if isinstance(exc, MemoryUnavailable) else exc.__class__.__name__
                await self._inbox.fail(ids, said)
                log.error("learning %d messages failed for good (%s); they are kept as "
                          "failed", len(items), exc.__class__.__name__)
            raise
        self.learned += len(items)
        log.info("learned %s from %s (attempt %d)", plural(len(added), "memory"),
                 plural(len(items), "message"), job.attempt)
        if owner == items[0].account:
            added = await self._hand_over(owner, added, items)
        sources = [i.source for i in items if i.source is not None]
        if added and sources:
            await self._receipts.learned(sources[-1], sources)


    async def _hand_over(self, owner: str, added: list[str], items: list[InboxItem]
                         ) -> list[str]:
        """The account was linked while its messages were being learned: give what they left
        to the owner it has now, unless that owner paused memory or forgot everything since
        the messages were said (then it is deleted). Returns the memories still kept."""
        now = await self._owners.owner_of(owner)
        if now == owner:
            return added
        person = await self._people.person(now)
        if added and (person.paused or _forgotten_since(person.forgotten_at, items[-1].said_at)):
            gone = await self._memory.forget_batch(owner, items[0].event_id)
            log.info("dropped %d memories written while their account was linked: its new "
                     "owner paused or forgot everything since", gone)
            added = []
        moved = await self._move(owner, now)
        log.info("moved %d memories written while their account was linked", moved.memories)
        return added


# Kept per message, in its source, not per memory.
_PER_MESSAGE = ("link", "channel", "message")


def _metadata(items: list[InboxItem]) -> dict[str, str]:
    """What the memories of a batch keep about where it was said (the conversation's, from its
    newest message), without the settings checks' keys or each message's own coordinates."""
    return {k: v for k, v in items[-1].metadata.items()
            if k not in UNCHECKED_KEYS and k not in _PER_MESSAGE}


def _source(item: InboxItem) -> Source:
    meta = item.metadata
    return Source(event_id=item.event_id, said_at=item.said_at, quote=item.text,
                  platform=meta.get("platform", ""), conversation=meta.get("conversation_id", ""),
                  channel=meta.get("channel") or None, message=meta.get("message") or None,
                  link=meta.get("link") or None)


def _forgotten_since(forgotten_at: datetime | None, said_at: datetime) -> bool:
    return forgotten_at is not None and said_at <= forgotten_at
