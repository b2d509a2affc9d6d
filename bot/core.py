"""The memory-chat core: one turn from a :class:`ChatEvent` to a :class:`Reply`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.choices import unchecked_place
from bot.errors import MemoryUnavailable, ModelRejected, ModelUnavailable
from bot.events import ChatEvent, Reply, ReplyKind
from bot.ports import (
    UNCHECKED,
    Access,
    ChatModel,
    Exchanges,
    MemoryHit,
    MemoryStore,
    MemoryWrite,
    Message,
    Opening,
    Outcome,
    ReplyStream,
    Turn,
    TurnObserver,
    TurnReport,
    TurnStart,
)
from bot.prompt import build_prompt, fit_turns
from bot.smalltalk import worth_learning
from bot.text import clean_message

__all__ = ["Core", "TurnLimits"]

log = logging.getLogger(__name__)

EMPTY_HINT = "I didn't get any text there. Write me a message and I'll answer."
MODEL_DOWN = "I can't reach my language model right now. Please try again in a moment."
MODEL_REFUSED = "My language model refused that request, so I can't answer it."
BROKE_OFF = "My language model stopped midway, so this answer is unfinished."


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnLimits:
    """How much one turn reads and accepts: ``context_chars`` bounds the recent turns sent to
    the model, ``max_answer_chars`` the answer sent and recorded."""

    memory_top_k: int = 5
    context_turns: int = 6
    context_chars: int = 12000
    max_message_chars: int = 4000
    max_answer_chars: int = 8000
    memory_search_timeout: float = 2.0


@dataclass(slots=True)
class _Trace:
    """What a turn measured on its way, for its :class:`TurnReport`."""

    owner: str | None = None
    memories: int = 0
    search_seconds: float | None = None
    model_seconds: float | None = None


_OUTCOMES: dict[ReplyKind, Outcome] = {
    ReplyKind.ANSWER: "answered", ReplyKind.ERROR: "error", ReplyKind.HINT: "hint",
}


class Core:
    """Answers one person at a time with their own memories in view, then hands what they said
    to the memory writer.

    Before the model is asked, a turn makes two trips to the store, started together: one
    claims the event and reads its owner, their and their place's settings and the recent
    turns (``TurnStart``); the other embeds the message and, once the owner is known, searches
    their memories. The exchange is recorded, and the memory write queued, after the reply is
    returned (``Exchanges``), and a message kept ahead with the claim covers a process that
    dies in between.

    Guarantees: each event id is answered at most once, across processes (a redelivered event
    gets ``None``); the memories in a prompt are only the author's own (their linked Supabase
    user's, once the account is linked), and only where they and their server or workspace
    allow it (paused memory, memory off or limited to some channels, memories kept out of
    public answers); nothing is learned where that is not allowed; the reply never waits
    for a memory write; a failing or slow memory store costs the memories of that turn, not the
    answer; model failures become one short sentence to the person; an answer is at most
    ``max_answer_chars`` long and the recent turns in a prompt at most ``context_chars``, so no
    answer, however long, can lock a conversation. ``handle`` never raises
    for a fault of the model, the memory store, the transcript, the ledger or the job queue.
    Each ``observers`` entry hears of every event and of how its turn ended, with timings.

    Streaming (``handle(event, stream)``): the answer is shown through ``stream`` as the model
    writes it, and the turn's reply is the same answer, which is what is recorded and learned
    from, exactly as without a stream. An answer that breaks off midway keeps what was written
    (ending in "…", with a note saying so) and is recorded so; one that breaks off before its
    first word is the usual error sentence.
    """

    def __init__(
        self,
        *,
        memory: MemoryStore,
        chat: ChatModel,
        start: TurnStart,
        exchanges: Exchanges,
        limits: TurnLimits,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observers: Sequence[TurnObserver] = (),
    ) -> None:
        self._memory = memory
        self._chat = chat
        self._start = start
        self._exchanges = exchanges
        self._limits = limits
        self._clock = clock
        self._observers = tuple(observers)

    async def handle(self, event: ChatEvent, stream: ReplyStream | None = None) -> Reply | None:
        """Answer ``event``, or return None when it was already taken (a redelivery). An empty
        message gets a hint and calls no model. With ``stream``, the answer is shown there as
        the model writes it (see the class's docstring)."""
        started = time.perf_counter()
        self._tell(lambda observer: observer.event_received(event.platform))
        trace = _Trace()
        reply = await self._turn(event, trace, stream)
        report = TurnReport(
            event_id=event.event_id,
            platform=event.platform,
            outcome=_OUTCOMES[reply.kind] if reply is not None else "duplicate",
            owner=trace.owner,
            memories=trace.memories,
            search_seconds=trace.search_seconds,
            model_seconds=trace.model_seconds,
            total_seconds=time.perf_counter() - started,
        )
        self._tell(lambda observer: observer.turn_finished(report))
        return reply

    def _tell(self, call: Callable[[TurnObserver], None]) -> None:
        for observer in self._observers:
            try:
                call(observer)
            except Exception:
                log.exception("a turn observer failed")

    async def _turn(self, event: ChatEvent, trace: _Trace,
                    stream: ReplyStream | None) -> Reply | None:
        cleaned = clean_message(event.text, self._limits.max_message_chars)
        worth = worth_learning(cleaned.text)
        ahead = self._ahead(event, cleaned.text) if worth else None
        # The search embeds the query while this task opens the turn; it learns whose
        # memories it may read (None: nobody's) once the opening is known.
        recall = None
        if cleaned.text and self._limits.memory_top_k:
            readable: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            recall = asyncio.ensure_future(self._recall(readable, cleaned.text, event, trace))
        try:
            start = await self._open(event, ahead)
        except BaseException:
            if recall is not None:
                recall.cancel()
            raise
        if recall is not None:
            if start.claimed and start.access.recall:
                readable.set_result(start.owner)
            else:
                recall.cancel()
        if not start.claimed:
            log.info("event %s was already handled; ignoring the redelivery", event.event_id)
            trace.search_seconds = None
            return None
        if not cleaned.text:
            return Reply(text=EMPTY_HINT, kind=ReplyKind.HINT)
        owner = start.owner
        trace.owner = owner if start.access.checked else None
        access = start.access
        memories = await recall if recall is not None and access.recall else []
        if not access.recall:
            trace.search_seconds = None  # nothing was searched
        messages = build_prompt(
            message=cleaned.text,
            author_name=event.author_name,
            memories=memories,
            recent=fit_turns(self._recent(event.conversation_id, start.recent),
                             self._limits.context_chars),
            now=self._clock(),
        )
        trace.memories = len(memories)
        asked = time.perf_counter()
        try:
            answer, broke_off = await self._ask(messages, stream, event)
        except (ModelUnavailable, ModelRejected) as exc:
            self._exchanges.record(event.event_id, event.conversation_id, owner, (), None)
            down = isinstance(exc, ModelUnavailable)
            log.error("chat model %s event %s: %s", "unavailable for" if down else "rejected",
                      event.event_id, exc)
            return Reply(text=MODEL_DOWN if down else MODEL_REFUSED, kind=ReplyKind.ERROR,
                         notice=access.notice, cause=str(exc))
        finally:
            trace.model_seconds = time.perf_counter() - asked
        answer_limit = self._limits.max_answer_chars
        answer_cut = len(answer) > answer_limit
        if answer_cut:
            answer = answer[: answer_limit - 1].rstrip() + "…"
        elif broke_off:
            answer = answer.rstrip() + "…"
        self._record(event, owner, cleaned.text, answer, access, worth)
        notices = [access.notice] if access.notice else []
        if cleaned.cut:
            limit = self._limits.max_message_chars
            notices.append(f"Your message was long, so I read only its first {limit} characters.")
        if answer_cut:
            notices.append(f"My answer ran long, so I stopped it at {answer_limit} characters.")
        elif broke_off:
            notices.append(BROKE_OFF)
        return Reply(text=answer, notice=" ".join(notices) or None)

    async def _ask(self, messages: Sequence[Message], stream: ReplyStream | None,
                   event: ChatEvent) -> tuple[str, bool]:
        """The model's answer, and whether it broke off midway. With ``stream`` the answer is
        read as it is written and shown there (stripped of leading blanks); reading stops once
        the answer is past ``max_answer_chars``, since the rest would be cut anyway. Raises
        the model's errors when nothing was written yet."""
        if stream is None:
            return await self._chat.complete(messages), False
        answer = ""
        showing: ReplyStream | None = stream
        try:
            async with contextlib.aclosing(self._chat.stream(messages)) as pieces:
                async for piece in pieces:
                    answer += piece
                    text = answer.lstrip()
                    if len(text) > self._limits.max_answer_chars:
                        break
                    if text and showing is not None:
                        try:
                            await showing.show(text)
                        except Exception:
                            log.exception("showing the answer to event %s as it is written "
                                          "failed; it is sent whole at the end",
                                          event.event_id)
                            showing = None
        except ModelUnavailable as exc:
            if not answer.strip():
                raise
            log.error("the chat model broke off its answer to event %s: %s",
                      event.event_id, exc)
            return answer.strip(), True
        if not answer.strip():
            raise ModelRejected("the model returned an empty answer")
        return answer.strip(), False

    async def _open(self, event: ChatEvent, ahead: MemoryWrite | None) -> Opening:
        """The turn's start. If the store fails, the turn is answered anyway (a rare double
        answer is better than silence), without memories or recent turns, and its message is
        queued under the account with its settings unchecked: it is learned later only if the
        settings, read then, allow it (a pause or an admin's "off" is never overridden by an
        outage, and what was said during one is not lost)."""
        try:
            return await self._start.open(event, turns=self._limits.context_turns, ahead=ahead)
        except Exception:
            log.exception("reading the start of event %s failed; answering it anyway, without "
                          "memories, learning later only what the settings allow then",
                          event.event_id)
            return Opening(claimed=True, owner=event.account.key, access=UNCHECKED)

    async def _recall(
        self, owner: Awaitable[str | None], query: str, event: ChatEvent, trace: _Trace
    ) -> list[MemoryHit]:
        """The owner's memories for this turn, or none when the store fails or is too slow."""
        started = time.perf_counter()
        hits: list[MemoryHit] = []
        try:
            async with asyncio.timeout(self._limits.memory_search_timeout):
                hits = await self._memory.search_for(owner, query, self._limits.memory_top_k)
        except TimeoutError:
            log.warning(
                "memory search over %.1fs for event %s; answering without memories",
                self._limits.memory_search_timeout,
                event.event_id,
            )
        except MemoryUnavailable as exc:  # a known fault, said in one line
            log.error("memory search failed for event %s; answering without memories (%s)",
                      event.event_id, str(exc).removeprefix("memory search failed: "))
        except Exception:
            log.exception("memory search failed for event %s; answering without memories",
                          event.event_id)
        trace.search_seconds = time.perf_counter() - started  # not for a cancelled search
        return hits

    def _recent(self, conversation_id: str, read: Sequence[Turn]) -> list[Turn]:
        """The conversation's last turns: those read at the start, then those this process
        has not written yet (the previous exchange may still be on its way)."""
        unrecorded = self._exchanges.unrecorded(conversation_id)
        if not unrecorded:
            return list(read)
        written = set(read)
        turns = [*read, *(turn for turn in unrecorded if turn not in written)]
        return turns[-self._limits.context_turns:] if self._limits.context_turns else []

    def _ahead(self, event: ChatEvent, text: str) -> MemoryWrite:
        """The message as it is queued when its settings could not be read, kept with the
        claim until the turn is recorded."""
        return MemoryWrite(owner_id=event.account.key, account=event.account.key,
                           event_id=event.event_id, text=text, at=event.at,
                           metadata=self._metadata(event, UNCHECKED))

    @staticmethod
    def _metadata(event: ChatEvent, access: Access) -> dict[str, str]:
        return {"platform": event.platform, "conversation_id": event.conversation_id,
                **_coordinates(event), **({} if access.checked else unchecked_place(event))}

    def _record(
        self, event: ChatEvent, owner: str, text: str, answer: str, access: Access, worth: bool
    ) -> None:
        """Hand over the exchange and, where allowed and ``worth`` it (``text`` passed
        :func:`worth_learning`), the memory write (only the person's own words), to be
        recorded together after the reply is sent."""
        exchange = (
            Turn(role="user", text=text, at=event.at),
            Turn(role="assistant", text=answer, at=self._clock()),
        )
        write = None
        if access.learn and worth:
            write = MemoryWrite(
                owner_id=owner,
                account=event.account.key,
                event_id=event.event_id,
                text=text,
                at=event.at,
                metadata=self._metadata(event, access),
                source=event.source if access.receipts else None,
            )
        self._exchanges.record(event.event_id, event.conversation_id, owner, exchange, write)


def _coordinates(event: ChatEvent) -> dict[str, str]:
    """Where the message is on its platform, kept with what is learned from it (``memory
    why``): its channel and id there, and the adapter's link to it."""
    found = {"link": event.link}
    if event.source is not None:
        found |= {"channel": event.source.channel, "message": event.source.message}
    return {k: v for k, v in found.items() if v}
