"""What each step of the linking flow shows or refuses: the policy, the pages' values, and the
problems a step reports (each with a sentence for the person and the HTTP status that fits)."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from bot.errors import AuthError, AuthRateLimited, AuthRejected
from bot.linking.emails import EmailLimits, Refusal
from bot.usage import typed

__all__ = [
    "CodePage",
    "ConfirmPage",
    "EmailSent",
    "LinkPage",
    "LinkPolicy",
    "LinkProblem",
    "Problem",
    "command_hint",
    "kept_choices",
    "mask_email",
    "not_sent",
    "platform_label",
    "refused",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkPolicy:
    """Where links point and how much they allow. Without ``create_users`` a login email goes
    only to an address that already has a Supabase user (no sign-ups through the bot)."""

    public_url: str
    ttl: timedelta = timedelta(minutes=10)
    requests_per_hour: int = 5
    emails: EmailLimits = field(default_factory=EmailLimits)
    create_users: bool = False
    max_wrong_codes: int = 5


class Problem(enum.Enum):
    """Why a link page cannot go on."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    OTHER_BROWSER = "other_browser"
    BAD_EMAIL = "bad_email"
    OTHER_EMAIL = "other_email"
    EMAIL_LIMIT = "email_limit"
    AUTH_DOWN = "auth_down"
    LOGIN_FAILED = "login_failed"
    BAD_FORM = "bad_form"


class LinkProblem(Exception):
    """A step of the flow cannot go on; ``message`` says what happened and what to do, for the
    person, and ``status`` is the HTTP status that fits."""

    def __init__(self, problem: Problem, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkPage:
    """The first page: which account is being linked; an email sent already, if any."""

    request_id: str
    platform: str
    account_name: str
    email_hint: str | None
    minutes_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailSent:
    """The email is on its way, or, when ``if_known``, on its way if the address has a login
    (the page says the same either way, so it tells nobody which addresses have one)."""

    email_hint: str
    if_known: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmPage:
    request_id: str
    platform: str
    account_name: str
    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CodePage:
    """The code to send in chat, and the exact command that sends it."""

    code: str
    platform: str
    account_name: str
    command: str
    minutes_left: int


_PLATFORMS = {"discord": "Discord", "slack": "Slack", "console": "terminal"}


def platform_label(platform: str) -> str:
    return _PLATFORMS.get(platform, platform.capitalize())


def command_hint(platform: str, name: str, arguments: str = "") -> str:
    """How a person types command ``name`` (whose one option is the code) on ``platform``."""
    return typed(platform, name, option="code", value=arguments)


def kept_choices(platform: str, paused: bool, receipts: bool) -> str:
    """What a new link keeps of the stricter choices, as a sentence for the reply (or "")."""
    kept = []
    if paused:
        kept.append(f"memory stays paused ({typed(platform, 'memory', 'resume')} turns it back "
                    "on)")
    if not receipts:
        kept.append("the 🧠 receipts stay off")
    if not kept:
        return ""
    return " Linking keeps the stricter settings: " + " and ".join(kept) + "."


def mask_email(email: str) -> str:
    """``alice@example.com`` → ``a***@example.com``: enough to recognise, not to harvest."""
    local, _, domain = email.strip().partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def refused(refusal: Refusal, platform: str) -> LinkProblem:
    """The page for a login email the limits do not allow (logged for the operator)."""
    if refusal is Refusal.OTHER_ADDRESS:
        return LinkProblem(
            Problem.OTHER_EMAIL,
            "This link already sent a login email to another address, and one link works with "
            f"one email address. To use a different one, ask membot for a new link with "
            f"{command_hint(platform, 'link')}.",
            409,
        )
    log.warning("a login email refused: over the hourly limit per %s", refusal.value)
    message = {
        Refusal.ADDRESS: "Several login emails went to this address in the last hour. Use the "
        "newest one, or try again later.",
        Refusal.ACCOUNT: "Several login emails were sent for this account in the last hour. "
        "Use the newest one, or try again later.",
        Refusal.BOT: "membot has sent many login emails in the last hour. Please try again "
        "later.",
    }[refusal]
    return LinkProblem(Problem.EMAIL_LIMIT, message, 429)


def not_sent(exc: AuthError) -> LinkProblem:
    """The page for a login email Supabase Auth did not send."""
    if isinstance(exc, AuthRateLimited):
        return LinkProblem(Problem.EMAIL_LIMIT, "A login email was just sent to this address. "
                           "Wait a minute, then try again.", 429)
    if isinstance(exc, AuthRejected):
        return LinkProblem(Problem.BAD_EMAIL, "The login service did not accept that address. "
                           "Check it and try again.")
    log.error("sending a login email failed: %s", exc)
    return LinkProblem(Problem.AUTH_DOWN, "The login service can't be reached right now. "
                       "Please try again in a few minutes.", 503)
