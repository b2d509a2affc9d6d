"""Account linking: ties a platform account to a Supabase user, so one person's memories follow
them across Discord, Slack and the terminal.

The flow, and what each step guards against:

1. ``/link`` in chat answers privately with a one-time URL: 32 random bytes, of which only a
   hash is stored, good for ``LINK_TTL``; at most a few per account an hour.
2. Opening the URL changes nothing (chat and mail scanners prefetch links). The page asks for an
   email; that POST carries a CSRF token and binds the request to the browser's cookie (a value
   the server issued and signed) and to the one address it mails. Login emails are capped per
   address, per chat account and per bot; an address without a login gets none unless the
   operator lets linking create users.
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

import hashlib
import hmac
import logging
import math
import re
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from bot.errors import (
    AuthCodeInvalid,
    AuthError,
    AuthNoSuchUser,
    AuthUnavailable,
)
from bot.events import Account, ChatEvent, Reply, ReplyKind
from bot.linking.emails import LoginEmails, Refusal
from bot.linking.steps import (
    CodePage,
    ConfirmPage,
    EmailSent,
    LinkPage,
    LinkPolicy,
    LinkProblem,
    Problem,
    command_hint,
    kept_choices,
    mask_email,
    not_sent,
    platform_label,
    refused,
)
from bot.linking.store import AlreadyLinked, LinkRequest, LinkStore
from bot.ports import AuthProvider

__all__ = ["Linking"]

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _normalise_code(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


class Linking:
    """The chat commands ``link``/``unlink`` and the steps of the web flow. ``auth`` is None
    when Supabase is not configured: then ``link`` says so and nothing else changes.

    Guarantees: a token, an email login and a confirmation code each work once; nothing is
    linked without both a login to the Supabase user and the code coming back from the same
    chat account; an account is linked to at most one user, and re-linking needs ``unlink``.
    """

    def __init__(self, store: LinkStore, auth: AuthProvider | None, policy: LinkPolicy,
                 emails: LoginEmails) -> None:
        self._store = store
        self._auth = auth
        self._policy = policy
        self._emails = emails

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
            kept = kept_choices(account.platform, outcome.paused, outcome.receipts)
            return Reply(
                text=f"Linked: this {platform_label(account.platform)} account now shares its "
                f"memory with {outcome.link.email_hint}.{moved}{kept}",
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

    async def new_browser(self) -> str:
        """A browser cookie value of this server's own: 32 random bytes and their signature
        with the site key, so that :meth:`known_browser` can tell it from a made-up one."""
        nonce = secrets.token_urlsafe(32)
        return f"{nonce}.{await self._browser_signature(nonce)}"

    async def known_browser(self, cookie: str) -> str | None:
        """``cookie`` if this server issued it (see :meth:`new_browser`); None for a value the
        client made up or changed, which the pages treat as no cookie at all."""
        nonce, _, signature = cookie.partition(".")
        if not nonce or not signature or len(cookie) > 200:
            return None
        expected = await self._browser_signature(nonce)
        return cookie if hmac.compare_digest(expected, signature) else None

    async def _browser_signature(self, nonce: str) -> str:
        key = await self._store.site_key()
        return hmac.digest(key, f"browser:{nonce}".encode(), "sha256").hex()

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
        login link that comes back to the confirm page.

        A request mails one address only (the first one; it may be sent to again), and the
        hourly limits per address, per chat account and per bot hold however many POSTs race.
        Without ``create_users`` an address with no login gets no email and no user, and the
        same page as one that has a login."""
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
        browser_hash = _hash(browser)
        if not await self._store.bind_browser(request.id, browser_hash):
            raise await self._closed(request.id)
        claim = await self._emails.claim(request_id=request.id, account_key=request.account.key,
                                         email_hash=email_hash, limits=self._policy.emails)
        if isinstance(claim, Refusal):
            raise refused(claim, request.account.platform)
        redirect = self._url(f"/link/confirm/{quote(request.id)}")
        hint = mask_email(email)
        create = self._policy.create_users
        try:
            verifier = await self._auth.send_login_email(email, redirect, create_user=create)
        except AuthNoSuchUser:
            # The claim stays: the request is bound to this address like any other.
            log.info("a login email was asked for an address with no login; none sent "
                     "(LINK_CREATE_USERS is off)")
            return EmailSent(email_hint=hint, if_known=True)
        except AuthError as exc:
            await self._emails.release(claim)  # nothing was sent
            raise not_sent(exc) from exc
        if not await self._store.record_email(request.id, browser_hash, email_hint=hint,
                                              code_verifier=verifier):
            raise await self._closed(request.id)
        return EmailSent(email_hint=hint, if_known=not create)

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
