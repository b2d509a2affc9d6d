"""Account linking: ties a platform account to a Supabase user, so one person's memories follow
them across Discord, Slack and the terminal.

The flow, and what each step guards against:

1. ``/link`` in chat answers privately with a one-time URL: 32 random bytes, of which only a
   hash is stored, good for ``LINK_TTL``; at most a few per account an hour.
2. Opening the URL changes nothing (chat and mail scanners prefetch links). The page asks for an
   email; that POST carries a CSRF token and binds the request to the browser's cookie.
3. Supabase emails a magic link (PKCE; the verifier stays here, with the request). It comes back
   to the confirm page, whose Confirm POST exchanges the code for the user's id and shows a short
   code. Only one confirmation of a request can win.
4. The person sends that code in chat from the account that asked for the link: a forwarded URL
   cannot tie someone else's chat account. One transaction consumes the request, writes the
   link and moves what the bot knew about the account to the user.

The web pages call the ``page``/``send_email``/``confirm_page``/``confirm`` steps; each returns
what to show or raises :class:`LinkProblem` with a message that says what happened and what to
do next.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from bot.errors import (
    AuthCodeInvalid,
    AuthError,
    AuthRateLimited,
    AuthRejected,
    AuthUnavailable,
)
from bot.events import Account, ChatEvent, Reply, ReplyKind
from bot.linkstore import AlreadyLinked, CodeOutcome, LinkRequest, LinkStore
from bot.ports import AuthProvider
from bot.syntax import typed

__all__ = [
    "CodePage",
    "ConfirmPage",
    "EmailSent",
    "LinkPage",
    "LinkPolicy",
    "LinkProblem",
    "Linking",
    "Problem",
    "command_hint",
    "mask_email",
    "platform_label",
]

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkPolicy:
    """Where links point and how much they allow."""

    public_url: str
    ttl: timedelta = timedelta(minutes=10)
    requests_per_hour: int = 5
    emails_per_hour: int = 3
    max_wrong_codes: int = 5


class Problem(enum.Enum):
    """Why a link page cannot go on."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    OTHER_BROWSER = "other_browser"
    BAD_EMAIL = "bad_email"
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
    email_hint: str


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


def mask_email(email: str) -> str:
    """``alice@example.com`` → ``a***@example.com``: enough to recognise, not to harvest."""
    local, _, domain = email.strip().partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _choices(account: Account, outcome: CodeOutcome) -> str:
    """What the linked memory keeps of the stricter choices, in a sentence (or nothing)."""
    kept = []
    if outcome.paused:
        kept.append(f"memory stays paused ({typed(account.platform, 'memory', 'resume')} "
                    "turns it back on)")
    if not outcome.receipts:
        kept.append("the 🧠 receipts stay off")
    if not kept:
        return ""
    return " Linking keeps the stricter settings: " + " and ".join(kept) + "."


def _normalise_code(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


class Linking:
    """The chat commands ``link``/``unlink`` and the steps of the web flow. ``auth`` is None
    when Supabase is not configured: then ``link`` says so and nothing else changes.

    Guarantees: a token, an email login and a confirmation code each work once; nothing is
    linked without both a login to the Supabase user and the code coming back from the same
    chat account; an account is linked to at most one user, and re-linking needs ``unlink``.
    """

    def __init__(self, store: LinkStore, auth: AuthProvider | None, policy: LinkPolicy) -> None:
        self._store = store
        self._auth = auth
        self._policy = policy

    @property
    def configured(self) -> bool:
        return self._auth is not None

    # Chat.

    async def link(self, event: ChatEvent, arguments: str) -> Reply:
        """``link``: a new one-time URL, or with a code, finish linking."""
        if self._auth is None:
            return Reply(
                text="Account linking is not configured on this bot, so what I remember stays "
                "with this account.",
                kind=ReplyKind.HINT,
            )
        account = event.account
        if arguments:
            return await self._redeem(account, arguments)
        existing = await self._store.link_of(account)
        if existing is not None:
            return Reply(
                text=f"This {platform_label(account.platform)} account is already linked to "
                f"{existing.email_hint}. To link it to another login, first use "
                f"{command_hint(account.platform, 'unlink')}.",
                kind=ReplyKind.HINT,
            )
        if await self._store.requests_since(account, timedelta(hours=1)) >= (
            self._policy.requests_per_hour
        ):
            log.warning("link requests over the hourly limit for one %s account",
                        account.platform)
            return Reply(
                text="You have asked for several links in the last hour. Please use the newest "
                "one, or try again later.",
                kind=ReplyKind.HINT,
            )
        token = secrets.token_urlsafe(32)
        await self._store.create_request(account, event.author_name, _hash(token), self._policy.ttl)
        minutes = int(self._policy.ttl.total_seconds() // 60)
        return Reply(
            text="Open this link to tie this account to your membot login, so your memories "
            "follow you on every account you link. It works once, for the next "
            f"{minutes} minutes; don't share it.\n{self._url(f'/link/{token}')}",
            kind=ReplyKind.HINT,
        )

    async def _redeem(self, account: Account, text: str) -> Reply:
        code = _normalise_code(text)
        if len(code) != 8:
            return Reply(
                text=f"That doesn't look like a link code. Send just "
                f"{command_hint(account.platform, 'link')} for a new link, or the code from the "
                "page, like ABCD-EFGH.",
                kind=ReplyKind.HINT,
            )
        try:
            outcome = await self._store.redeem_code(
                account, await self._code_hash(code), self._policy.max_wrong_codes
            )
        except AlreadyLinked as exc:
            return Reply(
                text=f"This account is already linked to {exc.link.email_hint}. Use "
                f"{command_hint(account.platform, 'unlink')} first to link it elsewhere.",
                kind=ReplyKind.HINT,
            )
        if outcome.link is not None:
            log.info("linked a %s account to a Supabase user (%d memories moved)",
                     account.platform, outcome.moved)
            things = "thing" if outcome.moved == 1 else "things"
            moved = (
                f" The {outcome.moved} {things} I knew about you here moved with it."
                if outcome.moved
                else ""
            )
            return Reply(
                text=f"Linked: this {platform_label(account.platform)} account now shares its "
                f"memory with {outcome.link.email_hint}.{moved}{_choices(account, outcome)}",
            )
        if not outcome.pending:
            return Reply(
                text="No confirmed link is waiting for a code from this account. Use "
                f"{command_hint(account.platform, 'link')} and follow the page to the end; the "
                "code must be sent from the account that asked for the link.",
                kind=ReplyKind.HINT,
            )
        if outcome.tries_left <= 0:
            return Reply(
                text="That code is wrong too many times, so the link is cancelled. Start again "
                f"with {command_hint(account.platform, 'link')}.",
                kind=ReplyKind.ERROR,
            )
        return Reply(
            text=f"That code doesn't match. Check it on the page and send it again "
            f"({outcome.tries_left} tries left).",
            kind=ReplyKind.HINT,
        )

    async def unlink(self, event: ChatEvent, arguments: str) -> Reply:
        """``unlink``: remove the account's link; the memories stay with the login."""
        removed = await self._store.unlink(event.account)
        if removed is None:
            return Reply(text="This account isn't linked to a login.", kind=ReplyKind.HINT)
        log.info("unlinked a %s account", event.platform)
        return Reply(
            text=f"Unlinked from {removed.email_hint}. What I know stays with that login; this "
            "account starts fresh.",
        )

    # Web.

    def _url(self, path: str) -> str:
        return self._policy.public_url.rstrip("/") + path

    async def _code_hash(self, code: str) -> bytes:
        return hmac.digest(await self._store.site_key(), f"code:{code}".encode(), "sha256")

    async def csrf_token(self, browser: str) -> str:
        """The form token for this browser's cookie (a signed double-submit token)."""
        key = await self._store.site_key()
        return hmac.digest(key, f"csrf:{browser}".encode(), "sha256").hex()

    async def check_csrf(self, browser: str, token: str) -> None:
        if not browser or not hmac.compare_digest(await self.csrf_token(browser), token):
            raise LinkProblem(
                Problem.BAD_FORM,
                "This form has expired or did not come from this page. Go back, reload the page "
                "and try again.",
                status=403,
            )

    async def _open_request(self, request: LinkRequest | None) -> LinkRequest:
        again = ("Ask membot for a new one with /link (in Slack: /membot link)." if self.configured
                 else "Account linking is not turned on for this bot.")
        if request is None:
            raise LinkProblem(Problem.UNKNOWN, f"This link is not valid. {again}", 404)
        if request.used or request.confirmed:
            raise LinkProblem(Problem.USED, f"This link has already been used. {again}", 410)
        if request.expired:
            raise LinkProblem(Problem.EXPIRED, f"This link has expired. {again}", 410)
        return request

    @staticmethod
    def _check_browser(request: LinkRequest, browser: str) -> None:
        if request.browser_hash is not None and not hmac.compare_digest(
            request.browser_hash, _hash(browser)
        ):
            raise LinkProblem(
                Problem.OTHER_BROWSER,
                "This link is being used in another browser. Open the email link in the browser "
                "where you typed your email, or ask membot for a new link.",
                403,
            )

    @staticmethod
    def _minutes_left(request: LinkRequest) -> int:
        left = (request.expires_at - datetime.now(UTC)).total_seconds()
        return max(1, math.ceil(left / 60))

    async def page(self, token: str) -> LinkPage:
        """What ``GET /link/<token>`` shows. Changes nothing."""
        request = await self._open_request(await self._store.request_by_token(_hash(token)))
        return LinkPage(
            request_id=request.id,
            platform=request.account.platform,
            account_name=request.account_name or request.account.user,
            email_hint=request.email_hint,
            minutes_left=self._minutes_left(request),
        )

    async def send_email(self, token: str, browser: str, email: str) -> EmailSent:
        """``POST /link/<token>``: bind the request to this browser and have Supabase email a
        login link that comes back to the confirm page."""
        if self._auth is None:
            raise LinkProblem(Problem.AUTH_DOWN, "Account linking is not configured here.", 503)
        request = await self._open_request(await self._store.request_by_token(_hash(token)))
        self._check_browser(request, browser)
        email = email.strip()
        if not EMAIL_PATTERN.match(email) or len(email) > 254:
            raise LinkProblem(Problem.BAD_EMAIL, "That doesn't look like an email address. "
                              "Check it and try again.")
        key = await self._store.site_key()
        email_hash = hmac.digest(key, f"email:{email.lower()}".encode(), "sha256")
        if await self._store.emails_since(email_hash, timedelta(hours=1)) >= (
            self._policy.emails_per_hour
        ):
            log.warning("login emails over the hourly limit for one address")
            raise LinkProblem(Problem.EMAIL_LIMIT, "Several login emails went to this address "
                              "in the last hour. Use the newest one, or try again later.", 429)
        browser_hash = _hash(browser)
        if not await self._store.bind_browser(request.id, browser_hash):
            raise await self._closed(request.id)
        redirect = self._url(f"/link/confirm/{quote(request.id)}")
        try:
            verifier = await self._auth.send_login_email(email, redirect)
        except AuthRateLimited as exc:
            raise LinkProblem(Problem.EMAIL_LIMIT, "A login email was just sent to this address. "
                              "Wait a minute, then try again.", 429) from exc
        except AuthRejected as exc:
            raise LinkProblem(Problem.BAD_EMAIL, "The login service did not accept that "
                              "address. Check it and try again.") from exc
        except AuthError as exc:
            log.error("sending a login email failed: %s", exc)
            raise LinkProblem(Problem.AUTH_DOWN, "The login service can't be reached right now. "
                              "Please try again in a few minutes.", 503) from exc
        hint = mask_email(email)
        if not await self._store.record_email(request.id, browser_hash, email_hash=email_hash,
                                              email_hint=hint, code_verifier=verifier):
            raise await self._closed(request.id)
        return EmailSent(email_hint=hint)

    async def _closed(self, request_id: str) -> LinkProblem:
        """The problem with a request that changed under us."""
        request = await self._store.request_by_id(request_id)
        try:
            await self._open_request(request)
        except LinkProblem as problem:
            return problem
        return LinkProblem(
            Problem.OTHER_BROWSER,
            "This link is being used in another browser. Ask membot for a new link.",
            403,
        )

    async def _emailed_request(self, request_id: str, browser: str) -> LinkRequest:
        """The open request a login email was sent from, in this browser; else LinkProblem."""
        request = await self._open_request(await self._store.request_by_id(request_id))
        if request.browser_hash is None or request.code_verifier is None:
            raise LinkProblem(Problem.UNKNOWN, "No login email was sent for this link. Open the "
                              "link membot gave you and enter your email there.", 404)
        self._check_browser(request, browser)
        return request

    async def confirm_page(self, request_id: str, browser: str, code: str) -> ConfirmPage:
        """What ``GET /link/confirm/<id>?code=...`` shows: a Confirm button. Changes nothing."""
        request = await self._emailed_request(request_id, browser)
        if not code:
            raise LinkProblem(Problem.LOGIN_FAILED, "This login link is missing its code. Open "
                              "the newest email from the login service.")
        return ConfirmPage(
            request_id=request.id,
            platform=request.account.platform,
            account_name=request.account_name or request.account.user,
            code=code,
        )

    async def confirm(self, request_id: str, browser: str, code: str) -> CodePage:
        """``POST /link/confirm/<id>``: exchange the login code for the user, then record the
        user and a fresh confirmation code. Of racing confirmations, exactly one succeeds."""
        if self._auth is None:
            raise LinkProblem(Problem.AUTH_DOWN, "Account linking is not configured here.", 503)
        request = await self._emailed_request(request_id, browser)
        assert request.code_verifier is not None  # checked by _emailed_request
        try:
            user = await self._auth.user_for_code(code, request.code_verifier)
        except AuthCodeInvalid as exc:
            raise LinkProblem(Problem.LOGIN_FAILED, "This login link has expired or was "
                              "already used. Go back to the page membot linked you to and send "
                              "a new email.", 410) from exc
        except (AuthUnavailable, AuthError) as exc:
            log.error("exchanging a login code failed: %s", exc)
            raise LinkProblem(Problem.AUTH_DOWN, "The login service can't be reached right now. "
                              "Please reload this page in a few minutes.", 503) from exc
        chat_code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
        if not await self._store.confirm(
            request.id,
            _hash(browser),
            user_id=user.id,
            email_hint=mask_email(user.email),
            code_hash=await self._code_hash(chat_code),
            ttl=self._policy.ttl,
        ):
            raise await self._closed(request.id)
        shown = f"{chat_code[:4]}-{chat_code[4:]}"
        return CodePage(
            code=shown,
            platform=request.account.platform,
            account_name=request.account_name or request.account.user,
            command=command_hint(request.account.platform, "link", shown),
            minutes_left=max(1, int(self._policy.ttl.total_seconds() // 60)),
        )
