"""The plain values the ports carry: frozen dataclasses of plain fields, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bot.events import MessageRef

__all__ = [
    "NO_ACCESS",
    "UNCHECKED",
    "Access",
    "AuthUser",
    "Erased",
    "MemoryHit",
    "MemoryRecord",
    "MemoryWrite",
    "Message",
    "Moved",
    "Opening",
    "Outcome",
    "ReadinessReport",
    "Role",
    "Source",
    "Superseded",
    "Turn",
    "TurnReport",
]

Role = Literal["system", "user", "assistant"]
Outcome = Literal["answered", "error", "hint", "duplicate"]

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
class Source:
    """A message a memory was learned from: its ``event_id``, when it was said, its text
    (``quote``, possibly cut), and where it is: ``platform``, ``conversation``, the platform's
    ``channel`` and ``message`` ids where known, and ``link``, a URL that opens it in its app
    (a Discord jump URL, a Slack permalink), where the adapter could make one."""

    event_id: str
    said_at: datetime
    quote: str
    platform: str = ""
    conversation: str = ""
    channel: str | None = None
    message: str | None = None
    link: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Superseded:
    """Why a memory is no longer current: at ``at``, replaced by memory ``by``, or, when ``by``
    is None, retracted by the person; ``event_id`` is the message that said so."""

    at: datetime
    by: str | None
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRecord:
    """A stored memory as its owner may see it: ``metadata`` is what was kept about where it
    came from (platform, conversation, event id...), without the owner id or derived fields.
    ``sources`` are the messages it was learned from (empty for memories stored before membot
    kept them); ``superseded`` is set once a newer memory replaced it or the person retracted
    it: it is then kept for its history, never searched or put in a prompt."""

    id: str
    text: str
    created_at: datetime | None
    updated_at: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)
    sources: tuple[Source, ...] = ()
    superseded: Superseded | None = None


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
# message is learned later only if the settings allow it then (``bot.learning.learner``).
UNCHECKED = Access(recall=False, learn=True, receipts=False, checked=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Opening:
    """What a turn reads before it asks the model. ``claimed`` is false for an event already
    taken (a redelivery); ``owner`` is whose memories the turn reads, ``access`` what the
    owner and the place allow, ``recent`` the conversation's last turns, oldest first."""

    claimed: bool
    owner: str
    access: Access
    recent: tuple[Turn, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthUser:
    """A Supabase Auth user, as proven by a login."""

    id: str
    email: str


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


@dataclass(frozen=True, slots=True)
class Erased:
    """What one erase deleted: memories, recorded turns, and messages still queued."""

    memories: int
    turns: int
    queued: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Moved:
    """What moving an owner's rows to another did: memories the new owner gained, and the new
    owner's pause and receipts afterwards (the stricter of both)."""

    memories: int
    paused: bool
    receipts: bool
