"""The ports the core talks through, as Protocols, with the plain values they carry.

Implementations satisfy these structurally: ``bot.memory.Mem0Memory``,
``bot.models.OpenAIChat``, ``bot.transcript.PostgresTranscript`` and ``bot.inbox.MemoryInbox``
in production; in-memory fakes in the tests. What the process reports about itself goes out
through ``TurnObserver``, ``WriteObserver`` and ``ReadinessCheck`` (``bot.metrics``,
``bot.logs``, ``bot.readiness``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from bot.events import ChatEvent, MessageRef

__all__ = [
    "NO_ACCESS",
    "UNCHECKED",
    "Access",
    "AuthProvider",
    "AuthUser",
    "ChatModel",
    "EventLedger",
    "Exchanges",
    "MemoryControls",
    "MemoryHit",
    "MemoryRecord",
    "MemoryStore",
    "MemoryWrite",
    "Message",
    "Outcome",
    "Owners",
    "PendingWrites",
    "Readiness",
    "ReadinessCheck",
    "ReadinessReport",
    "Receipts",
    "Transcript",
    "Turn",
    "TurnObserver",
    "TurnReport",
    "WriteObserver",
]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One message of a prompt."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryHit:
    """A memory found for an owner, with its similarity to the query (1.0 is identical)."""

    id: str
    text: str
    created_at: datetime | None
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRecord:
    """A stored memory as its owner may see it: ``metadata`` is what was kept about where it
    came from (platform, conversation, event id...), without the owner id or derived fields."""

    id: str
    text: str
    created_at: datetime | None
    updated_at: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One side of an exchange in a conversation's recent history."""

    role: Literal["user", "assistant"]
    text: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryWrite:
    """What the memory writer needs to learn from one message: only the person's own words.

    ``event_id`` is the idempotency key of the message it came from. ``owner_id`` is the owner
    when the message was answered; ``account`` is the speaker's account key, from which the
    writer finds the owner again when it runs (the account may have been linked meanwhile).
    ``source`` is the message to put the learned receipt on, None when no receipt is wanted.
    """

    owner_id: str
    account: str
    event_id: str
    text: str
    at: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    source: MessageRef | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Access:
    """What one turn may do with its author's memories, after their own choices and their
    server's or workspace's: use them in the answer (``recall``), learn from the message
    (``learn``), show the learned receipt (``receipts``). ``notice`` is a sentence to show with
    the answer (memory is paused), given once. ``checked`` is false when the settings could
    not be read: the learning step checks them before it stores anything."""

    recall: bool
    learn: bool
    receipts: bool = True
    notice: str | None = None
    checked: bool = True


NO_ACCESS = Access(recall=False, learn=False, receipts=False)
# The settings could not be read (the database is away): no memories in the answer, and the
# message is learned later only if the settings allow it then (see ``bot.learner.Learner``).
UNCHECKED = Access(recall=False, learn=True, receipts=False, checked=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthUser:
    """A Supabase Auth user, as proven by a login."""

    id: str
    email: str


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

    async def learn(self, owner_id: str, messages: Sequence[str],
                    metadata: dict[str, str]) -> list[str]:
        """Extract and store, in one extraction, what ``messages`` (the owner's own words, in
        the order said) say about the owner, each memory with ``metadata``; returns the ids of
        the memories added. Raises :class:`bot.errors.MemoryUnavailable` on failure, with
        ``transient`` set when a retry may work."""
        ...

    async def forget_batch(self, owner_id: str, batch: str) -> int:
        """Delete the owner's memories stored with metadata ``batch`` (an interrupted write's),
        with their history; returns how many. Raises :class:`bot.errors.MemoryUnavailable`."""
        ...

    async def page(self, owner_id: str, limit: int, offset: int) -> tuple[list[MemoryRecord], int]:
        """The owner's memories newest first, ``limit`` from ``offset``, and how many the owner
        has in all. Raises :class:`bot.errors.MemoryUnavailable`."""
        ...

    async def records(self, owner_id: str) -> list[MemoryRecord]:
        """Every memory of the owner, newest first (for an export). Raises
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


class Transcript(Protocol):
    """The recent turns of each conversation: short-term context while memories are written."""

    async def recent(self, conversation_id: str, limit: int) -> list[Turn]:
        """The last ``limit`` turns of the conversation, oldest first."""
        ...



class EventLedger(Protocol):
    """Inbound events already taken, shared by every process."""

    async def claim(self, event_id: str) -> bool:
        """True for the first claim of ``event_id``, False for every later one, whichever
        process makes it."""
        ...


class Exchanges(Protocol):
    """Where the core records each answered exchange and the memory write it asks for."""

    async def record(self, conversation_id: str, owner_id: str, turns: Sequence[Turn],
                     write: MemoryWrite | None) -> None:
        """Record the turns and queue ``write`` (when given) in one step, so an answer that
        was sent always has its write. Returns once both are durable, or held by this process
        to be written as soon as the store answers; never waits for the write to be learned
        and never raises. One owner's writes are learned in the order they were said."""
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


class Owners(Protocol):
    """Who owns the memories of an account."""

    async def owner_of(self, account_key: str) -> str:
        """The linked Supabase user id of the account, or else the account key itself."""
        ...


class MemoryControls(Protocol):
    """What people and admins decided about memory."""

    async def access(self, owner_id: str, event: ChatEvent) -> Access:
        """What the turn of ``event``, whose memories belong to ``owner_id``, may do. A pause
        notice is handed out once per pause, whichever process asks."""
        ...


class AuthProvider(Protocol):
    """Supabase Auth, for the steps of account linking a person takes in the browser."""

    async def send_login_email(self, email: str, redirect_to: str) -> str:
        """Email a one-time login link (PKCE flow) that comes back to ``redirect_to`` with a
        ``code`` parameter; returns the code verifier, to be kept on the server. Raises
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


Outcome = Literal["answered", "error", "hint", "duplicate"]
"""How a turn ended: the model's answer, an error sentence, a usage hint, or a redelivery that
was not answered again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnReport:
    """What one turn did, for metrics and the per-turn log line. Never the text of the message
    or of the answer.

    ``owner`` is the memory owner when the turn looked it up (None for a duplicate, a hint, or
    a failed lookup). ``memories`` is how many memories went into the prompt. Times are in
    seconds; ``search_seconds`` and ``model_seconds`` are None where that step did not run.
    """

    event_id: str
    platform: str
    outcome: Outcome
    owner: str | None
    memories: int
    search_seconds: float | None
    model_seconds: float | None
    total_seconds: float


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadinessReport:
    """Each check's name with None (fine) or its problem."""

    problems: dict[str, str | None]

    @property
    def ready(self) -> bool:
        return all(problem is None for problem in self.problems.values())

    @property
    def failed(self) -> list[str]:
        """The names of the checks that failed, in check order."""
        return [name for name, problem in self.problems.items() if problem is not None]


class Readiness(Protocol):
    """Whether this process can serve now (what ``/readyz`` answers)."""

    async def report(self) -> ReadinessReport:
        """Every check's outcome. May be a second or two old; never raises."""
        ...
