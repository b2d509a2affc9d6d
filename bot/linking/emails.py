"""The login emails the link pages send, claimed in Postgres before each one goes out.

A claim is what holds the limits on email: a link request mails one address (its first claim
binds it), and within the last hour an address, a chat account and the whole bot each get at
most so many. Claims are made one at a time under a transaction-scoped advisory lock, so a burst
of requests (from one browser or from several processes) cannot all pass the count before any
of them is written.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

__all__ = ["EmailLimits", "LoginEmails", "Refusal"]

_CLAIMS_LOCK = 0x6D656D626F74_0007  # "membot" and the migration that made the table
_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailLimits:
    """Login emails allowed in any hour: to one address, for one chat account, by the bot."""

    per_address: int = 3
    per_account: int = 5
    per_bot: int = 30


class Refusal(enum.Enum):
    """Why a login email may not be sent."""

    OTHER_ADDRESS = "other_address"  # the request already mailed a different address
    ADDRESS = "address"
    ACCOUNT = "account"
    BOT = "bot"


class LoginEmails:
    """The ``link_email_claims`` table of migration 007."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def claim(self, *, request_id: str, account_key: str, email_hash: bytes,
                    limits: EmailLimits) -> int | Refusal:
        """Claim one login email for ``email_hash`` (an HMAC of the address) from the request
        of ``account_key``: the claim's id, or why not. Atomic: of racing claims, no more than
        the limits allow succeed. Claims older than a day are dropped on the way."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _CLAIMS_LOCK)
            row = await conn.fetchrow(
                "select"
                " (select email_hash from link_email_claims where request_id = $1"
                "  order by id limit 1) as bound,"
                " count(*) filter (where email_hash = $3) as address,"
                " count(*) filter (where account_key = $2) as account,"
                " count(*) as bot"
                " from link_email_claims where claimed_at > now() - $4::interval",
                uuid.UUID(request_id), account_key, email_hash, _WINDOW,
            )
            assert row is not None
            refusal = _refusal(row, email_hash, limits)
            if refusal is not None:
                return refusal
            await conn.execute(
                "delete from link_email_claims where claimed_at < now() - interval '1 day'"
            )
            claim_id = await conn.fetchval(
                "insert into link_email_claims (request_id, account_key, email_hash)"
                " values ($1, $2, $3) returning id",
                uuid.UUID(request_id), account_key, email_hash,
            )
            return int(claim_id)

    async def release(self, claim_id: int) -> None:
        """Give back a claim whose email was not sent after all."""
        await self._pool.execute("delete from link_email_claims where id = $1", claim_id)


def _refusal(row: asyncpg.Record, email_hash: bytes, limits: EmailLimits) -> Refusal | None:
    if row["bound"] is not None and bytes(row["bound"]) != email_hash:
        return Refusal.OTHER_ADDRESS
    if row["address"] >= limits.per_address:
        return Refusal.ADDRESS
    if row["account"] >= limits.per_account:
        return Refusal.ACCOUNT
    if row["bot"] >= limits.per_bot:
        return Refusal.BOT
    return None
