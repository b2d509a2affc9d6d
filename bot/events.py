"""The common event every adapter builds, and the reply the core gives back.

Both are frozen values: no platform objects, no reference back to an app, no raw payload.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = ["Account", "Action", "Attachment", "ChatEvent", "MessageRef", "Reply", "ReplyKind"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """One person's account on one platform: ``user`` is unique within ``workspace`` (a Slack
    team; empty where ids are global, as on Discord and in the terminal)."""

    platform: str
    workspace: str
    user: str

    @property
    def key(self) -> str:
        """A stable string for the account, such as ``console:alice``,
        ``discord:80351110224678912`` or ``slack:T01:U02``: the memory owner of an unlinked
        account. Never shared between two accounts."""
        return ":".join(part for part in (self.platform, self.workspace, self.user) if part)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRef:
    """Where a person's message is, so something can be attached to it later (the 🧠 receipt):
    ``channel`` is the platform's channel of the message itself (a Discord thread's own id, a
    Slack channel), ``message`` its id there (a Discord snowflake, a Slack ``ts``)."""

    platform: str
    channel: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatEvent:
    """One message addressed to the bot, as plain values.

    ``event_id`` is unique per platform message and is the idempotency key for everything the
    message causes. ``conversation_id`` names the place the message was said (a DM, a channel
    thread, a terminal session); short-term context is kept per conversation. ``author_id`` is
    unique within ``identity_scope`` (a Slack team; None where ids are global, as on Discord).
    ``author_name`` is empty where the platform does not say it. ``source`` points at the
    message itself (None for slash commands and button presses). ``author_is_admin`` says the
    author may change the bot's settings for ``workspace_id`` (Discord: Manage Server; Slack:
    workspace admin or owner); adapters fill it in for commands that need it, else it is False.
    ``link`` is a URL that opens the message in its app (a Discord jump URL, a Slack
    permalink), None where the adapter cannot make one.
    """

    event_id: str
    platform: str
    author_id: str
    author_name: str
    text: str
    conversation_id: str
    identity_scope: str | None = None
    workspace_id: str | None = None
    channel_id: str | None = None
    thread_id: str | None = None
    is_direct: bool = False
    mentions_bot: bool = False
    source: MessageRef | None = None
    author_is_admin: bool = False
    link: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def account(self) -> Account:
        """The author's account, the same wherever they speak (any guild, channel or DM)."""
        return Account(
            platform=self.platform, workspace=self.identity_scope or "", user=self.author_id
        )


class ReplyKind(enum.Enum):
    """What sort of answer a reply is, so adapters can present it fittingly."""

    ANSWER = "answer"
    """The model's answer to the person."""
    HINT = "hint"
    """A short hint about how to use the bot (no model was called)."""
    ERROR = "error"
    """One short, honest sentence saying that something went wrong."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """A button under a reply. Pressing it runs command ``command`` with ``arguments`` (as if
    typed) for whoever pressed it, never for the person the reply was first sent to; the answer
    replaces the message that had the button. Where there are no buttons (the terminal) it is
    shown as the command to type."""

    label: str
    command: str
    arguments: str = ""
    style: Literal["default", "primary", "danger"] = "default"


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file sent with a reply, only to the person the reply is for."""

    filename: str
    content: bytes
    media_type: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What the adapter sends back. ``notice`` is an optional note about the person's message
    itself (for example that it was cut), shown alongside the answer. A ``private`` reply must
    reach only the author: an ephemeral message, or a DM; its ``files`` too (a DM where the
    platform has no private files). ``actions`` are buttons under the text, in order. ``cause``,
    on an error, says what failed in an operator's terms ("connection refused by
    127.0.0.1:8765"; never a secret or a message's text): the terminal shows it, where the
    person is the operator; chat platforms leave it out, since it is logged anyway."""

    text: str
    kind: ReplyKind = ReplyKind.ANSWER
    notice: str | None = None
    cause: str | None = None
    private: bool = False
    actions: tuple[Action, ...] = ()
    files: tuple[Attachment, ...] = ()
