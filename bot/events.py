"""The common event every adapter builds, and the reply the core gives back.

Both are frozen values: no platform objects, no reference back to an app, no raw payload.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Account", "ChatEvent", "Reply", "ReplyKind"]


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
class ChatEvent:
    """One message addressed to the bot, as plain values.

    ``event_id`` is unique per platform message and is the idempotency key for everything the
    message causes. ``conversation_id`` names the place the message was said (a DM, a channel
    thread, a terminal session); short-term context is kept per conversation. ``author_id`` is
    unique within ``identity_scope`` (a Slack team; None where ids are global, as on Discord).
    ``author_name`` is empty where the platform does not say it.
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
class Reply:
    """What the adapter sends back. ``notice`` is an optional note about the person's message
    itself (for example that it was cut), shown alongside the answer. A ``private`` reply must
    reach only the author: an ephemeral message, or a DM."""

    text: str
    kind: ReplyKind = ReplyKind.ANSWER
    notice: str | None = None
    private: bool = False
