"""``memory ...``: what the bot knows about the person asking, and their say over it.

Every answer is about the asker's own memories (their linked Supabase user's, once linked) and
is private. An id that is not theirs is answered exactly like an id that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from bot.choices import ChoiceStore
from bot.commands.export import export_files
from bot.commands.registry import Command, guarded
from bot.events import Action, ChatEvent, Reply, ReplyKind
from bot.ports import Erasing, MemoryRecord, MemoryStore, Owners, PendingWrites, Source
from bot.transcript import PostgresTranscript
from bot.usage import typed
from bot.wording import one_line, plural

__all__ = ["PAGE_SIZE", "MemoryCommands"]

log = logging.getLogger(__name__)

PAGE_SIZE = 10
SHOWN_CHARS = 200  # of each memory, in lists
SEARCH_MIN_SCORE = 0.3  # below it, a memory matches a search only if it shares a word with it
UNAVAILABLE = "I can't reach my memory store right now, so nothing changed. Please try again soon."



def _short(memory_id: str) -> str:
    return memory_id[:8]


def _line(memory: MemoryRecord) -> str:
    day = memory.created_at.strftime("%Y-%m-%d") if memory.created_at else "undated"
    line = f"- `{_short(memory.id)}` {day}: {one_line(memory.text, SHOWN_CHARS)}"
    gone = memory.superseded
    if gone is not None:
        line += (f" (replaced {gone.at:%Y-%m-%d} by `{_short(gone.by)}`)" if gone.by
                 else f" (taken back {gone.at:%Y-%m-%d})")
    return line


def _quote(source: Source) -> str:
    where = {"discord": "Discord", "slack": "Slack", "console": "the terminal"}.get(
        source.platform, source.platform or "chat")
    said = f"{source.said_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    link = f" {source.link}" if source.link else ""
    return f"> {one_line(source.quote, 400)}\n— {said}, on {where}{link}"


def _hint(text: str) -> Reply:
    return Reply(text=text, kind=ReplyKind.HINT)


def _words(text: str) -> set[str]:
    return {w for w in "".join(c if c.isalnum() else " " for c in text.lower()).split()
            if len(w) >= 3}


class MemoryCommands:
    """The handlers of the ``memory`` command group (see :meth:`command`)."""

    def __init__(
        self,
        *,
        memory: MemoryStore,
        owners: Owners,
        choices: ChoiceStore,
        transcript: PostgresTranscript,
        writes: PendingWrites,
        eraser: Erasing,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._memory = memory
        self._eraser = eraser
        self._writes = writes
        self._owners = owners
        self._choices = choices
        self._transcript = transcript
        self._clock = clock

    def command(self) -> Command:
        """The ``memory`` group, for :class:`bot.commands.registry.Commands`."""
        subs = [
            ("list", "[page]", "what I remember about you, newest first", self.list),
            ("history", "[page]", "also what is no longer current, and what replaced it",
             self.history),
            ("why", "<id>", "the messages I learned one memory from", self.why),
            ("search", "<words>", "the memories that match some words", self.search),
            ("forget", "<id>", "forget one memory (ids are in the list)", self.forget),
            ("forget-all", "", "forget everything about you (asks first)", self.forget_all),
            ("export", "", "everything I keep about you, as files", self.export),
            ("pause", "", "stop using and learning memories about you", self.pause),
            ("resume", "", "use and learn memories again", self.resume),
            ("receipts", "<on|off>", "a 🧠 reaction when I learn from a message", self.receipts),
        ]
        return Command(
            name="memory",
            summary="see, search, forget, export or pause what I remember about you",
            subcommands=tuple(
                Command(name=name, usage=usage, summary=summary,
                        handler=guarded(handler, what=f"memory {name}", failure=UNAVAILABLE))
                for name, usage, summary, handler in subs
            ),
        )

    async def _owner(self, event: ChatEvent) -> str:
        return await self._owners.owner_of(event.account.key)

    async def list(self, event: ChatEvent, arguments: str) -> Reply:
        if arguments.strip().lower() in ("--all", "all"):
            return await self.history(event, "")
        return await self._listing(event, arguments, everything=False)

    async def history(self, event: ChatEvent, arguments: str) -> Reply:
        return await self._listing(event, arguments, everything=True)

    async def _listing(self, event: ChatEvent, arguments: str, *, everything: bool) -> Reply:
        """One page of the asker's memories: the current ones, or (``everything``) also those
        no longer current, each saying what replaced it or that it was retracted."""
        name = "history" if everything else "list"
        owner = await self._owner(event)
        page = 1
        if arguments:
            if not arguments.isdigit() or int(arguments) < 1:
                _, total = await self._memory.page(owner, 0, 0, superseded=everything)
                example = "2" if total > PAGE_SIZE else "1"
                return _hint("The page is a number: "
                             f"{typed(event.platform, 'memory', name, 'page', example)}.")
            page = int(arguments)
        memories, total = await self._memory.page(owner, PAGE_SIZE, (page - 1) * PAGE_SIZE,
                                                  superseded=everything)
        waiting = await self._writes.waiting(owner)
        last = "message" if waiting == 1 else plural(waiting, "message")
        learning = "" if not waiting else (
            f" I am still learning from your last {last}: I do that when the conversation "
            "pauses.")
        if total == 0:
            return Reply(text="I don't remember anything about you yet." + learning)
        pages = -(-total // PAGE_SIZE)
        if not memories:
            there = "is only one page" if pages == 1 else f"are only {pages} pages"
            return _hint(f"There {there}: "
                         f"{typed(event.platform, 'memory', name, 'page', str(pages))} is the "
                         "oldest.")
        actions = []
        if page > 1:
            actions.append(Action(label="Newer", command="memory",
                                  arguments=f"{name} {page - 1}"))
        if page < pages:
            actions.append(Action(label="Older", command="memory",
                                  arguments=f"{name} {page + 1}"))
        what = ("Everything I have learned about you, current or not"
                if everything else "What I remember about you")
        heading = (f"{what}: {plural(total, 'memory')}, newest first"
                   + (f" (page {page} of {pages})" if pages > 1 else "") + "." + learning)
        example = _short(memories[0].id)
        footer = (f"Where one came from: {typed(event.platform, 'memory', 'why', 'id', example)}"
                  f". To forget one: {typed(event.platform, 'memory', 'forget', 'id', example)}")
        return Reply(
            text="\n".join([heading, *map(_line, memories), footer]),
            actions=tuple(actions),
        )

    async def why(self, event: ChatEvent, arguments: str) -> Reply:
        """Where one memory came from: the messages it was learned from, quoted and dated, with
        a link to each where the platform gave one; and whether it is still current."""
        found = await self._one(event, arguments, "see where it came from")
        if isinstance(found, Reply):
            return found
        memory, owner = found
        lines = [f"“{one_line(memory.text, SHOWN_CHARS)}” (`{_short(memory.id)}`)"]
        if memory.sources:
            told = "this message" if len(memory.sources) == 1 else "these messages"
            lines[0] += f": I learned it from {told} of yours."
            for source in memory.sources:
                lines.append(_quote(source))
        else:
            lines[0] += (": I learned it before I kept the messages each memory comes from"
                         + (f", on {memory.created_at:%Y-%m-%d}." if memory.created_at else "."))
        everything = await self._memory.records(owner)
        replaced = [m for m in everything
                    if m.superseded is not None and m.superseded.by == memory.id]
        for old in replaced:
            lines.append(f"It replaced “{one_line(old.text, SHOWN_CHARS)}” (`{_short(old.id)}`).")
        if memory.superseded is not None:
            gone = memory.superseded
            newer = next((m for m in everything if m.id == gone.by), None)
            lines.append(
                f"No longer current: replaced on {gone.at:%Y-%m-%d} by "
                f"“{one_line(newer.text, SHOWN_CHARS)}” (`{_short(newer.id)}`)."
                if newer is not None else
                f"No longer current: you took it back on {gone.at:%Y-%m-%d}.")
        return Reply(text="\n".join(lines))

    async def search(self, event: ChatEvent, arguments: str) -> Reply:
        if not arguments:
            return _hint("Tell me what to look for: "
                         f"{typed(event.platform, 'memory', 'search', 'words', 'coffee')}.")
        owner = await self._owner(event)
        hits = await self._memory.search(owner, arguments, 20)
        wanted = _words(arguments)
        matching = [h for h in hits if h.score >= SEARCH_MIN_SCORE or wanted & _words(h.text)]
        if not matching:
            return Reply(text=f"Nothing I remember about you matches “{arguments}”.")
        lines = [
            _line(MemoryRecord(id=h.id, text=h.text, created_at=h.created_at, updated_at=None))
            for h in matching[:PAGE_SIZE]
        ]
        return Reply(text="\n".join([f"What I remember about “{arguments}”, best match first:",
                                     *lines]))

    async def forget(self, event: ChatEvent, arguments: str) -> Reply:
        found = await self._one(event, arguments, "forget")
        if isinstance(found, Reply):
            return found
        memory, owner = found
        await self._memory.forget(owner, [memory.id])
        return Reply(text=f"Forgotten: “{one_line(memory.text, SHOWN_CHARS)}”.")

    async def _one(self, event: ChatEvent, arguments: str,
                   doing: str) -> tuple[MemoryRecord, str] | Reply:
        """The asker's one memory whose id starts with ``arguments`` (current or not), with
        its owner; or the hint to give instead."""
        listing = typed(event.platform, "memory", "list")
        wanted = arguments.strip().strip("`").lower()
        if len(wanted) < 4:
            return _hint(f"Give the id of the memory to {doing} (at least its first 4 "
                         f"characters); {listing} shows them.")
        owner = await self._owner(event)
        found = await self._memory.find(owner, wanted)
        if not found:
            return _hint(f"None of your memories has the id `{wanted}`; {listing} shows them.")
        if len(found) > 1:
            return _hint(f"{len(found)} of your memories start with `{wanted}`: give more of "
                         "the id.")
        return found[0], owner

    async def forget_all(self, event: ChatEvent, arguments: str) -> Reply:
        answer = arguments.strip().lower()
        if answer == "cancel":
            return Reply(text="Nothing was forgotten.")
        owner = await self._owner(event)
        if answer != "confirm":
            _, total = await self._memory.page(owner, 0, 0)
            everywhere = (" This is one memory shared by all your linked accounts, so it goes "
                          "everywhere." if owner != event.account.key else "")
            return Reply(
                text=(f"This deletes everything I keep about you: {plural(total, 'memory')}, "
                      "their history, and our recent "
                      f"messages. It cannot be undone.{everywhere}"),
                actions=(
                    Action(label="Forget everything", command="memory",
                           arguments="forget-all confirm", style="danger"),
                    Action(label="Cancel", command="memory", arguments="forget-all cancel"),
                ),
            )
        erased = await self._eraser.erase(owner)
        memories, turns = erased.memories, erased.turns
        return Reply(text=(f"Done: I forgot {plural(memories, 'memory')}"
                           f" and {plural(turns, 'recent message')}. "
                           "Anything you tell me from now on is new to me."))

    async def export(self, event: ChatEvent, arguments: str) -> Reply:
        owner = await self._owner(event)
        memories = await self._memory.records(owner)
        turns = await self._transcript.of_owner(owner)
        queued = await self._writes.queued(owner)
        files = export_files(owner_id=owner, memories=memories, turns=turns, queued=queued,
                             now=self._clock())
        return Reply(
            text=(f"Everything I keep about you: {plural(len(memories), 'memory')} and "
                  f"{plural(len(turns), 'recent message')}, as JSON and as Markdown."),
            files=files,
        )

    async def pause(self, event: ChatEvent, arguments: str) -> Reply:
        changed = await self._choices.set_paused(await self._owner(event), True)
        resume = typed(event.platform, "memory", "resume")
        if not changed:
            return Reply(text=f"Memory is already paused for you. {resume} turns it back on.")
        return Reply(text=("Memory paused: I won't use what I remember about you, or learn "
                           f"anything new, until you resume it with {resume}. What I already "
                           "know stays until you forget it."))

    async def resume(self, event: ChatEvent, arguments: str) -> Reply:
        changed = await self._choices.set_paused(await self._owner(event), False)
        if not changed:
            return Reply(text="Memory is already on for you.")
        return Reply(text="Memory is back on: I'll use what I remember about you and learn again.")

    async def receipts(self, event: ChatEvent, arguments: str) -> Reply:
        choice = arguments.strip().lower()
        if choice not in ("on", "off"):
            return _hint("Say on or off: "
                         f"{typed(event.platform, 'memory', 'receipts', 'value', 'off')}.")
        await self._choices.set_receipts(await self._owner(event), choice == "on")
        if choice == "on":
            return Reply(text="I'll react with 🧠 to messages I learned something from.")
        return Reply(text="No more 🧠 reactions; I still learn as before.")
