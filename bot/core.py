"""The memory-chat core: one turn from a :class:`ChatEvent` to a :class:`Reply`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.choices import unchecked_place
from bot.errors import MemoryUnavailable, ModelRejected, ModelUnavailable
from bot.events import ChatEvent, Reply, ReplyKind
from bot.ports import (
    UNCHECKED,
    Access,
    ChatModel,
    EventLedger,
    Exchanges,
    MemoryControls,
    MemoryHit,
    MemoryStore,
    MemoryWrite,
    Message,
    Outcome,
    Owners,
    ReplyStream,
    Transcript,
    Turn,
    TurnObserver,
    TurnReport,
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
        transcript: Transcript,
        exchanges: Exchanges,
        ledger: EventLedger,
        owners: Owners,
        controls: MemoryControls,
        limits: TurnLimits,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observers: Sequence[TurnObserver] = (),
    ) -> None:
        self._memory = memory
        self._chat = chat
        self._transcript = transcript
        self._exchanges = exchanges
        self._ledger = ledger
        self._owners = owners
        self._controls = controls
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
        if not await self._claim(event):
            log.info("event %s was already handled; ignoring the redelivery", event.event_id)
            return None
        cleaned = clean_message(event.text, self._limits.max_message_chars)
        if not cleaned.text:
            return Reply(text=EMPTY_HINT, kind=ReplyKind.HINT)
        owner = trace.owner = await self._owner(event)
        access = await self._access(owner, event) if owner else UNCHECKED
        memories, recent = await asyncio.gather(
            self._recall(owner, cleaned.text, event, trace) if owner and access.recall
            else self._nothing(),
            self._recent(event.conversation_id),
        )
        messages = build_prompt(
            message=cleaned.text,
            author_name=event.author_name,
            memories=memories,
            recent=fit_turns(recent, self._limits.context_chars),
            now=self._clock(),
        )
        trace.memories = len(memories)
        asked = time.perf_counter()
        try:
            answer, broke_off = await self._ask(messages, stream, event)
        except ModelUnavailable as exc:
            log.error("chat model unavailable for event %s: %s", event.event_id, exc)
            return Reply(text=MODEL_DOWN, kind=ReplyKind.ERROR, notice=access.notice,
                         cause=str(exc))
        except ModelRejected as exc:
            log.error("chat model rejected event %s: %s", event.event_id, exc)
            return Reply(text=MODEL_REFUSED, kind=ReplyKind.ERROR, notice=access.notice,
                         cause=str(exc))
        finally:
            trace.model_seconds = time.perf_counter() - asked
        answer_limit = self._limits.max_answer_chars
        answer_cut = len(answer) > answer_limit
        if answer_cut:
            answer = answer[: answer_limit - 1].rstrip() + "…"
        elif broke_off:
            answer = answer.rstrip() + "…"
        await self._record(event, owner or event.account.key, cleaned.text, answer, access)
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

    async def _claim(self, event: ChatEvent) -> bool:
        """Claim the event before any side effect. If the ledger fails, answer anyway: a rare
        double answer is better than silence."""
        try:
            return await self._ledger.claim(event.event_id)
        except Exception:
            log.exception("claiming event %s failed; answering it anyway", event.event_id)
            return True

    async def _owner(self, event: ChatEvent) -> str | None:
        """Whose memories this turn reads: the linked Supabase user, else the account itself.
        None when that cannot be told (the turn then reads no memories, rather than risk
        reading the wrong ones)."""
        try:
            return await self._owners.owner_of(event.account.key)
        except Exception:
            log.exception("finding the memory owner of event %s failed; answering without "
                          "memories", event.event_id)
            return None

    async def _access(self, owner: str, event: ChatEvent) -> Access:
        """What the person and their server allow this turn. If that cannot be read, no
        memories in the answer, and the message is queued unchecked: it is learned later only
        if the settings, read then, allow it (a pause or an admin's "off" is never overridden
        by an outage, and what was said during one is not lost)."""
        try:
            return await self._controls.access(owner, event)
        except Exception:
            log.exception("reading the memory settings for event %s failed; answering without "
                          "memories, learning later only what the settings allow then",
                          event.event_id)
            return UNCHECKED

    @staticmethod
    async def _nothing() -> list[MemoryHit]:
        return []

    async def _recall(
        self, owner: str, query: str, event: ChatEvent, trace: _Trace
    ) -> list[MemoryHit]:
        """The owner's memories for this turn, or none when the store fails or is too slow."""
        if self._limits.memory_top_k == 0:
            return []
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._limits.memory_search_timeout):
                return await self._memory.search(owner, query, self._limits.memory_top_k)
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
        finally:
            trace.search_seconds = time.perf_counter() - started
        return []

    async def _recent(self, conversation_id: str) -> list[Turn]:
        if self._limits.context_turns == 0:
            return []
        try:
            return await self._transcript.recent(conversation_id, self._limits.context_turns)
        except Exception:
            log.exception("reading recent turns of %s failed", conversation_id)
            return []

    async def _record(
        self, event: ChatEvent, owner: str, text: str, answer: str, access: Access
    ) -> None:
        """Record the exchange and, where allowed and worth it, queue the memory write (only
        the person's own words) in the same step."""
        exchange = [
            Turn(role="user", text=text, at=event.at),
            Turn(role="assistant", text=answer, at=self._clock()),
        ]
        write = None
        if access.learn and worth_learning(text):
            write = MemoryWrite(
                owner_id=owner,
                account=event.account.key,
                event_id=event.event_id,
                text=text,
                at=event.at,
                metadata={"platform": event.platform, "conversation_id": event.conversation_id,
                          **_coordinates(event),
                          **({} if access.checked else unchecked_place(event))},
                source=event.source if access.receipts else None,
            )
        await self._exchanges.record(event.conversation_id, owner, exchange, write)


def _coordinates(event: ChatEvent) -> dict[str, str]:
    """Where the message is on its platform, kept with what is learned from it (``memory
    why``): its channel and id there, and the adapter's link to it."""
    found = {"link": event.link}
    if event.source is not None:
        found |= {"channel": event.source.channel, "message": event.source.message}
    return {k: v for k, v in found.items() if v}
