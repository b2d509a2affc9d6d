"""What the fake keeps (users, sessions, PKCE flow states) and what it shows a test (mails,
recorded requests, user snapshots), with the JSON shapes Supabase Auth gives users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["AuthUser", "Json", "Mail", "Recorded", "timestamp"]

Json = dict[str, Any]


def timestamp(seconds: float) -> str:
    """A time as the server writes it: RFC 3339 in UTC, microseconds, 'Z'."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Mail:
    """One email the fake "sent". `kind` is the link's type (magiclink or signup), `otp` the
    six-digit code the same email carries, `sent_at` the fake clock's time (epoch seconds)."""

    to: str
    subject: str
    link: str
    sent_at: float
    otp: str = ""
    kind: str = "magiclink"

    @property
    def token(self) -> str:
        """The `token` query parameter of the link (`pkce_...` in the PKCE flow)."""
        return parse_qs(urlsplit(self.link).query)["token"][0]


@dataclass(frozen=True)
class Recorded:
    """One request and the fake's answer. `kind` is the method and route below /auth/v1, e.g.
    "POST /otp" or "GET /admin/users/{user_id}"; header names are lower case; `body` and
    `response` are the parsed JSON (None if there was none); `at` is the fake clock's time."""

    kind: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int
    response: Any
    response_headers: dict[str, str]
    at: float
    raw_body: bytes = b""
    raw_response: bytes = b""

    @property
    def error_code(self) -> str | None:
        """The Supabase error code of an error answer (`x-sb-error-code`)."""
        return self.response_headers.get("x-sb-error-code")


@dataclass(frozen=True)
class AuthUser:
    """A snapshot of one user, for assertions (times on the fake clock, epoch seconds)."""

    id: str
    email: str
    created_at: float
    email_confirmed_at: float | None
    user_metadata: Json


@dataclass
class User:
    id: str
    email: str
    created_at: float
    user_metadata: Json = field(default_factory=dict)
    identity_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    phone: str = ""
    role: str = "authenticated"
    email_confirmed_at: float | None = None
    invited_at: float | None = None
    confirmation_token: str = ""
    confirmation_sent_at: float | None = None
    recovery_token: str = ""
    recovery_sent_at: float | None = None
    last_sign_in_at: float | None = None
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at

    def snapshot(self) -> AuthUser:
        return AuthUser(self.id, self.email, self.created_at, self.email_confirmed_at,
                        dict(self.user_metadata))

    def identity_json(self) -> Json:
        data = {"email": self.email, "email_verified": self.email_confirmed_at is not None,
                "phone_verified": False, "sub": self.id}
        identity: Json = {"identity_id": self.identity_id, "id": self.id, "user_id": self.id,
                          "identity_data": data, "provider": "email"}
        if self.last_sign_in_at is not None:
            identity["last_sign_in_at"] = timestamp(self.last_sign_in_at)
        identity.update(created_at=timestamp(self.created_at),
                        updated_at=timestamp(self.updated_at), email=self.email)
        return identity

    def to_json(self) -> Json:
        """The user as the server answers it: unset times are left out, never null."""
        user: Json = {"id": self.id, "aud": "authenticated", "role": self.role,
                      "email": self.email}
        times = {"email_confirmed_at": self.email_confirmed_at, "invited_at": self.invited_at}
        user.update({k: timestamp(v) for k, v in times.items() if v is not None})
        user["phone"] = self.phone
        times = {"confirmation_sent_at": self.confirmation_sent_at,
                 "confirmed_at": self.email_confirmed_at,
                 "recovery_sent_at": self.recovery_sent_at,
                 "last_sign_in_at": self.last_sign_in_at}
        user.update({k: timestamp(v) for k, v in times.items() if v is not None})
        user.update(app_metadata={"provider": "email", "providers": ["email"]},
                    user_metadata=dict(self.user_metadata), identities=[self.identity_json()],
                    created_at=timestamp(self.created_at), updated_at=timestamp(self.updated_at),
                    is_anonymous=False)
        return user


@dataclass
class Session:
    id: str
    user_id: str
    created_at: float
    method: str  # the amr method: "otp", "magiclink", "email/signup", ...
    refresh_token: str
    used_refresh_tokens: set[str] = field(default_factory=set)


@dataclass
class FlowState:
    """A PKCE flow: made when the link is sent, its code handed out when the link is opened."""

    id: str
    user_id: str
    method: str  # "magiclink" or "email/signup"
    challenge: str
    challenge_method: str
    created_at: float
    auth_code: str = field(default_factory=lambda: str(uuid.uuid4()))
    code_issued_at: float | None = None

    def expired(self, now: float, lifetime: float) -> bool:
        """Magic-link flows count from when the code was issued, others from creation."""
        start = self.code_issued_at if (self.code_issued_at is not None
                                        and self.method == "magiclink") else self.created_at
        return now > start + lifetime
