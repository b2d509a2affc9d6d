"""Account links and one-time link requests, in Postgres.

Every state change a request goes through is one conditional ``UPDATE ... RETURNING``, so two
processes (or two browser tabs) racing on the same request cannot both win. Times come from the
database's clock, the one every process shares.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from bot.events import Account
from bot.ports import Moved, OwnerMove

__all__ = ["AccountLink", "AlreadyLinked", "CodeOutcome", "LinkRequest", "LinkStore"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountLink:
    """A platform account tied to a Supabase user. ``email_hint`` is the masked address."""

    account: Account
    user_id: str
    email_hint: str
    linked_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkRequest:
    """One ``/link``, as the web pages see it. ``expired`` is judged by the database clock."""

    id: str
    account: Account
    account_name: str
    expires_at: datetime
    expired: bool
    browser_hash: bytes | None
    email_hint: str | None
    code_verifier: str | None
    confirmed: bool
    used: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeOutcome:
    """What a confirmation code sent in chat did: ``link`` is set when it made the link;
    otherwise ``pending`` says whether a confirmed request was waiting for a code at all, and
    ``tries_left`` how many wrong codes it still takes (0: it is cancelled now). ``paused`` and
    ``receipts`` are the linked owner's choices after the link (see ``redeem_code``)."""

    link: AccountLink | None = None
    moved: int = 0
    pending: bool = False
    tries_left: int = 0
    paused: bool = False
    receipts: bool = True


class AlreadyLinked(Exception):
    """The account got linked (to ``link``) before this request could link it."""

    def __init__(self, link: AccountLink) -> None:
        super().__init__("account already linked")
        self.link = link


_REQUEST_COLUMNS = (
    "id::text as id, platform, workspace, platform_user, account_name, expires_at,"
    " expires_at <= now() as expired, browser_hash, email_hint, code_verifier,"
    " confirmed_at is not null as confirmed, used_at is not null as used"
)


def _request(row: asyncpg.Record) -> LinkRequest:
    return LinkRequest(
        id=row["id"],
        account=Account(
            platform=row["platform"], workspace=row["workspace"], user=row["platform_user"]
        ),
        account_name=row["account_name"],
        expires_at=row["expires_at"],
        expired=row["expired"],
        browser_hash=row["browser_hash"],
        email_hint=row["email_hint"],
        code_verifier=row["code_verifier"],
        confirmed=row["confirmed"],
        used=row["used"],
    )


def _link(row: asyncpg.Record) -> AccountLink:
    return AccountLink(
        account=Account(
            platform=row["platform"], workspace=row["workspace"], user=row["platform_user"]
        ),
        user_id=row["user_id"],
        email_hint=row["email_hint"],
        linked_at=row["linked_at"],
    )


_LINK_COLUMNS = (
    "platform, workspace, platform_user, user_id::text as user_id, email_hint, linked_at"
)


class LinkStore:
    """The tables of migration 003. ``move`` gives a new link everything of the account's
    unlinked owner id (the ``OwnerMove`` port)."""

    def __init__(self, pool: asyncpg.Pool[Any], *, move: OwnerMove) -> None:
        self._pool = pool
        self._move = move
        self._site_key: bytes | None = None

    async def site_key(self) -> bytes:
        """A 32-byte secret shared by every process on this database, made on first use."""
        if self._site_key is None:
            await self._pool.execute(
                "insert into site_keys (name, key) values ('link', $1) on conflict do nothing",
                secrets.token_bytes(32),
            )
            self._site_key = await self._pool.fetchval(
                "select key from site_keys where name = 'link'"
            )
        assert self._site_key is not None
        return self._site_key

    # Links.

    async def link_of(self, account: Account) -> AccountLink | None:
        row = await self._pool.fetchrow(
            f"select {_LINK_COLUMNS} from account_links where account_key = $1", account.key
        )
        return _link(row) if row else None

    async def owner_of(self, account_key: str) -> str:
        """The ``Owners`` port: the linked user id, else the account key."""
        user = await self._pool.fetchval(
            "select user_id::text from account_links where account_key = $1", account_key
        )
        return str(user) if user else account_key

    async def unlink(self, account: Account) -> AccountLink | None:
        """Remove the account's link; its memories stay with the user. None if not linked."""
        row = await self._pool.fetchrow(
            f"delete from account_links where account_key = $1 returning {_LINK_COLUMNS}",
            account.key,
        )
        return _link(row) if row else None

    async def move_memories(self, old: str, new: str) -> Moved:
        """Move everything of ``old`` to ``new`` in one transaction (the ``OwnerMove`` port)."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._move(conn, old, new)

    # Requests.

    async def requests_since(self, account: Account, window: timedelta) -> int:
        """How many link requests the account made within ``window``."""
        count = await self._pool.fetchval(
            "select count(*) from link_requests where platform = $1 and workspace = $2"
            " and platform_user = $3 and created_at > now() - $4::interval",
            account.platform,
            account.workspace,
            account.user,
            window,
        )
        return int(count)

    async def create_request(
        self, account: Account, account_name: str, token_hash: bytes, ttl: timedelta
    ) -> LinkRequest:
        row = await self._pool.fetchrow(
            "insert into link_requests (id, token_hash, platform, workspace, platform_user,"
            " account_name, expires_at) values ($1, $2, $3, $4, $5, $6, now() + $7::interval)"
            f" returning {_REQUEST_COLUMNS}",
            uuid.uuid4(),
            token_hash,
            account.platform,
            account.workspace,
            account.user,
            account_name,
            ttl,
        )
        assert row is not None
        return _request(row)

    async def request_by_token(self, token_hash: bytes) -> LinkRequest | None:
        row = await self._pool.fetchrow(
            f"select {_REQUEST_COLUMNS} from link_requests where token_hash = $1", token_hash
        )
        return _request(row) if row else None

    async def request_by_id(self, request_id: str) -> LinkRequest | None:
        try:
            key = uuid.UUID(request_id)
        except ValueError:
            return None
        row = await self._pool.fetchrow(
            f"select {_REQUEST_COLUMNS} from link_requests where id = $1", key
        )
        return _request(row) if row else None

    async def bind_browser(self, request_id: str, browser_hash: bytes) -> bool:
        """Bind an open request to the first browser that sends an email from it; True if the
        request is open and bound to this browser (now or before)."""
        bound = await self._pool.fetchval(
            "update link_requests set browser_hash = $2 where id = $1 and used_at is null"
            " and confirmed_at is null and expires_at > now()"
            " and (browser_hash is null or browser_hash = $2) returning true",
            uuid.UUID(request_id),
            browser_hash,
        )
        return bool(bound)

    async def record_email(
        self,
        request_id: str,
        browser_hash: bytes,
        *,
        email_hint: str,
        code_verifier: str,
    ) -> bool:
        """Keep the PKCE verifier of the email just sent; False if the request closed or moved
        to another browser meanwhile. (The email itself was claimed, and counted against the
        limits, by ``bot.linking.emails.LoginEmails`` before it was sent.)"""
        done = await self._pool.fetchval(
            "update link_requests set email_hint = $3, code_verifier = $4,"
            " email_sent_at = now() where id = $1 and browser_hash = $2"
            " and used_at is null and confirmed_at is null and expires_at > now()"
            " returning true",
            uuid.UUID(request_id),
            browser_hash,
            email_hint,
            code_verifier,
        )
        return bool(done)

    async def confirm(
        self,
        request_id: str,
        browser_hash: bytes,
        *,
        user_id: str,
        email_hint: str,
        code_hash: bytes,
        ttl: timedelta,
    ) -> bool:
        """Record who logged in and the hash of the code they must send in chat. Exactly one
        of any number of racing confirmations returns True. The code is good for ``ttl``."""
        done = await self._pool.fetchval(
            "update link_requests set auth_user_id = $3, email_hint = $4, code_hash = $5,"
            " confirmed_at = now(), code_verifier = null, expires_at = now() + $6::interval"
            " where id = $1 and browser_hash = $2 and confirmed_at is null"
            " and used_at is null and expires_at > now() returning true",
            uuid.UUID(request_id),
            browser_hash,
            uuid.UUID(user_id),
            email_hint,
            code_hash,
            ttl,
        )
        return bool(done)

    async def redeem_code(self, account: Account, code_hash: bytes, max_wrong: int) -> CodeOutcome:
        """Use the account's confirmed request whose code matches: one transaction consumes it,
        links the account, and moves the account's memories to the user. A wrong code counts
        against every confirmed request of the account; at ``max_wrong`` they are cancelled.
        The user keeps the stricter of their own and the account's choices: paused if either
        was, receipts only if both had them, the later "forget everything".
        Raises :class:`AlreadyLinked` (and changes nothing) when the account is linked."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "update link_requests set used_at = now() where platform = $1"
                " and workspace = $2 and platform_user = $3 and code_hash = $4"
                " and confirmed_at is not null and used_at is null and expires_at > now()"
                " returning auth_user_id::text as user_id, email_hint",
                account.platform,
                account.workspace,
                account.user,
                code_hash,
            )
            if row is None:
                tries = await conn.fetchval(
                    "update link_requests set failed_codes = failed_codes + 1,"
                    " used_at = case when failed_codes + 1 >= $4 then now() end"
                    " where platform = $1 and workspace = $2 and platform_user = $3"
                    " and confirmed_at is not null and used_at is null and expires_at > now()"
                    " returning $4 - failed_codes",
                    account.platform,
                    account.workspace,
                    account.user,
                    max_wrong,
                )
                return CodeOutcome(pending=tries is not None, tries_left=int(tries or 0))
            linked = await conn.fetchrow(
                "insert into account_links (platform, workspace, platform_user, account_key,"
                " user_id, email_hint) values ($1, $2, $3, $4, $5::uuid, $6)"
                f" on conflict do nothing returning {_LINK_COLUMNS}",
                account.platform,
                account.workspace,
                account.user,
                account.key,
                row["user_id"],
                row["email_hint"],
            )
            if linked is None:
                existing = await conn.fetchrow(
                    f"select {_LINK_COLUMNS} from account_links where account_key = $1",
                    account.key,
                )
                assert existing is not None
                raise AlreadyLinked(_link(existing))
            await conn.execute(
                "insert into memory_owners (user_id) values ($1::uuid) on conflict do nothing",
                row["user_id"],
            )
            moved = await self._move(conn, account.key, row["user_id"])
            return CodeOutcome(link=_link(linked), moved=moved.memories, pending=True,
                               paused=moved.paused, receipts=moved.receipts)

    async def prune_requests(self) -> int:
        """Delete requests that ended more than a day ago."""
        status = await self._pool.execute(
            "delete from link_requests where expires_at < now() - interval '1 day'"
        )
        return int(status.split()[-1])

    # Purges.

    async def pending_purges(self) -> list[str]:
        """Owners queued for purging (by the delete of their Supabase user)."""
        rows = await self._pool.fetch(
            "select owner_id from owner_purges order by requested_at limit 100"
        )
        return [row["owner_id"] for row in rows]

    async def finish_purge(self, owner_id: str) -> None:
        await self._pool.execute("delete from owner_purges where owner_id = $1", owner_id)
