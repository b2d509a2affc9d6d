"""The ports the core talks through, as Protocols, with the plain values they carry.

Every Protocol of ``bot/`` is here. Implementations satisfy them structurally (for the core:
``bot.memory.store.Mem0Memory``, ``bot.clients.OpenAIChat``,
``bot.opening.PostgresTurnStart``, ``bot.learning.inbox.MemoryInbox``) in production, and
in-memory fakes in the tests; the feature packages reach each other only through them. The
plain values they carry are in :mod:`bot.values`. What the process reports about itself goes out
through ``TurnObserver``, ``WriteObserver`` and ``ReadinessCheck`` (``bot.metrics``,
``bot.logs``, ``bot.readiness``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from bot.events import ChatEvent, MessageRef, Reply
from bot.values import (
    NO_ACCESS,
    UNCHECKED,
    Access,
    AuthUser,
    Erased,
    MemoryHit,
    MemoryRecord,
    MemoryWrite,
    Message,
    Moved,
    Opening,
    Outcome,
    ReadinessReport,
    Source,
    Superseded,
    Turn,
    TurnReport,
)

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "NO_ACCESS",
    "UNCHECKED",
    "Access",
    "AuthProvider",
    "AuthUser",
    "ChatModel",
    "Connection",
    "Erased",
    "Erasing",
    "Exchanges",
    "Handle",
    "Handler",
    "JsonModel",
    "LinkCommands",
    "MemoryHit",
    "MemoryRecord",
    "MemoryStore",
    "MemoryWrite",
    "Message",
    "Moved",
    "Opening",
    "Outcome",
    "OwnerMove",
    "OwnerRows",
    "Owners",
    "PendingWrites",
    "Readiness",
    "ReadinessCheck",
    "ReadinessReport",
    "Receipts",
    "ReplyStream",
    "Source",
    "Superseded",
    "Tombstones",
    "Turn",
    "TurnObserver",
    "TurnReport",
    "TurnStart",
    "WriteObserver",
]



class ReplyStream(Protocol):
    """Where an adapter shows an answer while the model is still writing it (a Discord message
    edited as it grows, a Slack stream, the terminal)."""

    async def show(self, text: str) -> None:
        """The answer so far: the whole text, not a piece of it. Each call's text begins with
        the previous call's. The turn's :class:`Reply`, which the adapter shows in full once
        the turn ends, is what is recorded; it may differ from the last text shown here (a
        note, or "…" where the answer broke off). Called inside the turn, so it should be
        quick: pace slow sends and return. If it raises, the core logs it and shows nothing
        more through it."""
        ...


class Handle(Protocol):
    """What an adapter calls to have an event answered (``bot.core.Core.handle``): None for a
    redelivered event. With ``stream`` the answer is shown there as it is written."""

    def __call__(self, event: ChatEvent, stream: ReplyStream | None = None
                 ) -> Awaitable[Reply | None]: ...


# A command's handler: the event and the text after the command's name.
Handler = Callable[[ChatEvent, str], Awaitable[Reply]]

# A connection of the asyncpg pool, inside a transaction the caller holds.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


class MemoryStore(Protocol):
    """Long-term memories, kept per owner. No call ever returns another owner's memory."""

    async def search(self, owner_id: str, query: str, limit: int) -> list[MemoryHit]:
        """The owner's ``limit`` memories that best answer ``query``, best first, each with
        its cosine similarity to the query as ``score``.

        Every memory of the owner is ranked, none is skipped by an approximate index, and no
        other owner's memory is ever read. Ranking may weigh more than meaning (Mem0Memory
        fuses the exact vector rank with keyword and named-date ranks).
        Raises :class:`bot.errors.MemoryUnavailable` when the store or the embedder fails.
        """
        ...

    async def search_for(self, owner: Awaitable[str | None], query: str,
                         limit: int) -> list[MemoryHit]:
        """:meth:`search`, started before the owner is known: the query is embedded while
        ``owner`` is found; none when it comes out None (the turn may not read memories)."""
        ...

    async def learn(self, owner_id: str, said: Sequence[Source], *, batch: str,
                    metadata: dict[str, str]) -> list[str]:
        """Learn what ``said`` (the owner's own messages, in the order said) tells about the
        owner, in one extraction that sees the owner's nearest current memories: store each
        fact with ``metadata``, ``batch`` and the messages it came from, and mark superseded
        the memories the messages replace or retract. Questions and small talk store nothing.
        Returns the ids of the memories added. Raises :class:`bot.errors.MemoryUnavailable` on
        failure, with ``transient`` set when a retry may work (an extraction answer that does
        not parse is one)."""
        ...

    async def forget_batch(self, owner_id: str, batch: str) -> int:
        """Undo what a learn of ``batch`` did (an interrupted write's): delete the memories it
        stored, with their history, and make current again those it marked superseded;
        returns how many memories were deleted. Raises :class:`bot.errors.MemoryUnavailable`."""
        ...

    async def page(self, owner_id: str, limit: int, offset: int, *,
                   superseded: bool = False) -> tuple[list[MemoryRecord], int]:
        """The owner's current memories (with ``superseded``, also those no longer current)
        newest first, ``limit`` from ``offset``, and how many there are in all. Raises
        :class:`bot.errors.MemoryUnavailable`."""
        ...

    async def records(self, owner_id: str, *, superseded: bool = True) -> list[MemoryRecord]:
        """Every memory of the owner, newest first, superseded ones included unless
        ``superseded`` is false (an export has them all). Raises
        :class:`bot.errors.MemoryUnavailable`."""
        ...

    async def find(self, owner_id: str, id_prefix: str) -> list[MemoryRecord]:
        """The owner's memories whose id starts with ``id_prefix`` (another owner's never
        match). Raises :class:`bot.errors.MemoryUnavailable`."""
        ...

    async def forget(self, owner_id: str, memory_ids: Sequence[str]) -> int:
        """Delete those of ``memory_ids`` that are the owner's, with their history and the
        store's copy of the owner's recent raw messages (which may repeat them); returns how
        many memories went. Ids of other owners are left alone. Raises
        :class:`bot.errors.MemoryUnavailable`."""
        ...

    async def forget_owner(self, owner_id: str) -> int:
        """Delete every memory of the owner, with what the store keeps about them besides
        (history, entities, recent raw messages); returns how many memories went. Idempotent.
        Raises :class:`bot.errors.MemoryUnavailable`."""
        ...


class ChatModel(Protocol):
    """A chat-completion model."""

    async def complete(self, messages: Sequence[Message]) -> str:
        """The model's answer. Transient failures are retried inside; what is left raises
        :class:`bot.errors.ModelUnavailable` or :class:`bot.errors.ModelRejected`."""
        ...

    def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        """The model's answer as it is written, in pieces whose concatenation is the answer.
        Failures before the first piece raise as :meth:`complete` does; a stream that breaks
        off after some pieces raises :class:`bot.errors.ModelUnavailable` then."""
        ...


class JsonModel(Protocol):
    """A chat-completion model asked for a JSON object (memory extraction)."""

    async def complete_json(self, messages: Sequence[Message], *, schema: dict[str, Any],
                            name: str) -> str:
        """The model's answer, asked to be a JSON object following ``schema`` (named ``name``):
        constrained to it where the server supports ``json_schema``, else only asked for a
        JSON object. The text is returned as it came, possibly empty or not JSON at all: the
        caller checks it. Failures raise as :meth:`ChatModel.complete`'s do."""
        ...


class TurnStart(Protocol):
    """What a turn claims and reads before it asks the model, in one trip to the store."""

    async def open(self, event: ChatEvent, *, turns: int,
                   ahead: MemoryWrite | None) -> Opening:
        """Claim ``event`` (only the first claim, whichever process makes it, gets
        ``claimed``) and read its memory owner, what the owner and the place allow, and the
        conversation's last ``turns`` turns. ``ahead`` (the message as it would be queued
        with unchecked settings) is kept with the claim until :meth:`Exchanges.record`
        settles it, so a process that dies after sending the answer and before recording it
        loses no write; it is not kept when the owner paused memory or the place turned it
        off. Raises when the store fails."""
        ...


class Exchanges(Protocol):
    """Where the core hands each answered exchange and the memory write it asks for."""

    def record(self, event_id: str, conversation_id: str, owner_id: str,
               turns: Sequence[Turn], write: MemoryWrite | None) -> None:
        """Take the turn of ``event_id``: its ``turns`` are recorded and ``write`` (when
        given) queued, in one step, soon after (once the caller's reply has gone out), in
        the order handed over; the event's claim is settled in that step (what
        :meth:`TurnStart.open` kept ahead is dropped, and a write already queued from it is
        not queued again). Never waits and never raises: while the store fails, the exchange
        is held in this process and written once it answers. One owner's writes are learned
        in the order they were said."""
        ...

    def unrecorded(self, conversation_id: str) -> list[Turn]:
        """The conversation's turns handed to :meth:`record` and not yet written, oldest
        first (the next turn's context must not miss them)."""
        ...


class PendingWrites(Protocol):
    """Memory writes queued and not yet learned."""

    async def waiting(self, owner_id: str) -> int:
        """How many of the owner's messages are queued and not yet learned."""
        ...

    async def queued(self, owner_id: str) -> list[Turn]:
        """The owner's messages still queued (waiting, or set aside as failed), oldest first,
        as the person's turns (for an export)."""
        ...

    async def forget_owner(self, owner_id: str) -> int:
        """Cancel every queued write of the owner; returns how many messages. A write already
        running checks the owner's forget itself."""
        ...

    async def busy(self, owner_id: str) -> bool:
        """Whether a memory write of the owner is running now, on any worker."""
        ...


class Tombstones(Protocol):
    """Where the time of an owner's last erase is kept (``bot.choices.ChoiceStore``)."""

    async def mark_forgotten(self, owner_id: str, *, reset: bool = False) -> datetime:
        """Record, by the database's clock, that everything of the owner is to be forgotten;
        ``reset`` also puts their choices back to the defaults."""
        ...


class OwnerRows(Protocol):
    """A table of rows kept per owner (the recorded turns)."""

    async def forget_owner(self, owner_id: str) -> int:
        """Delete every row of the owner; returns how many."""
        ...


class Erasing(Protocol):
    """The one way everything of an owner is erased (``bot.memory.owners.Eraser``)."""

    async def erase(self, owner_id: str, *, deleted_user: bool = False) -> Erased:
        """Tombstone first, then every table and queue; idempotent."""
        ...

    async def busy(self, owner_id: str) -> bool:
        """Whether a write of the owner still runs (the erase is final once it does not)."""
        ...


class OwnerMove(Protocol):
    """Moves everything of one owner to another inside the caller's transaction
    (``bot.memory.owners.OwnerMove``)."""

    async def __call__(self, conn: Connection, old: str, new: str) -> Moved: ...


class LinkCommands(Protocol):
    """The ``link`` and ``unlink`` commands (``bot.linking.flow.Linking``)."""

    async def link(self, event: ChatEvent, arguments: str) -> Reply: ...
    async def unlink(self, event: ChatEvent, arguments: str) -> Reply: ...


class Owners(Protocol):
    """Who owns the memories of an account."""

    async def owner_of(self, account_key: str) -> str:
        """The linked Supabase user id of the account, or else the account key itself."""
        ...


class AuthProvider(Protocol):
    """Supabase Auth, for the steps of account linking a person takes in the browser."""

    async def send_login_email(self, email: str, redirect_to: str, *,
                               create_user: bool = False) -> str:
        """Email a one-time login link (PKCE flow) that comes back to ``redirect_to`` with a
        ``code`` parameter; returns the code verifier, to be kept on the server. An address
        with no user gets one only with ``create_user``; else nothing is sent and
        :class:`bot.errors.AuthNoSuchUser` is raised. Also raises
        :class:`bot.errors.AuthRateLimited`, :class:`bot.errors.AuthRejected` or
        :class:`bot.errors.AuthUnavailable`."""
        ...

    async def user_for_code(self, code: str, verifier: str) -> AuthUser:
        """The user who logged in with ``code``; the session made by the exchange is ended at
        once, only the identity is kept. Raises :class:`bot.errors.AuthCodeInvalid` or
        :class:`bot.errors.AuthUnavailable`."""
        ...


class Receipts(Protocol):
    """The light sign that something was learned from a message (a 🧠 reaction on it)."""

    async def learned(self, source: MessageRef, batch: Sequence[MessageRef] = ()) -> None:
        """Show it on the message ``source`` points at, the newest of ``batch``: the messages
        learned from together (where a platform names them all, as the terminal does). Best
        effort: never raises."""
        ...


"""How a turn ended: the model's answer, an error sentence, a usage hint, or a redelivery that
was not answered again."""


class TurnObserver(Protocol):
    """Watches the core's turns. Called on the event loop, inside the turn: must be quick and
    must not raise (the core logs and ignores it if it does)."""

    def event_received(self, platform: str) -> None:
        """An event of ``platform`` reached the core (before it is claimed or answered)."""
        ...

    def turn_finished(self, report: TurnReport) -> None:
        """A turn ended, whatever its outcome; called once per :meth:`event_received`."""
        ...


class WriteObserver(Protocol):
    """Watches memory writes as the job runner finishes them."""

    def write_finished(self, *, ok: bool) -> None:
        """One write ended: stored (``ok``) or failed and given up."""
        ...


class ReadinessCheck(Protocol):
    """One dependency this process needs in order to serve (the database, the model API)."""

    name: str

    async def problem(self) -> str | None:
        """None when the dependency answers, else a few words on what is wrong (an exception
        class, "timed out", "HTTP 503"): never a secret, a connection string or a URL with
        credentials. Bounded by the check's own timeout; never raises."""
        ...


class Readiness(Protocol):
    """Whether this process can serve now (what ``/readyz`` answers)."""

    async def report(self) -> ReadinessReport:
        """Every check's outcome. May be a second or two old; never raises."""
        ...
