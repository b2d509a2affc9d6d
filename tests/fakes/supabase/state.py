"""The fake's users, sessions, clock and outbox, and the rules the real server applies to them.

`AuthState` knows nothing of HTTP: each method takes what a route reads from the request and
returns the JSON to answer, or raises `AuthError` with the status, error code and message the
server uses. Every method holds the condition it was given, so state is safe to share between
the server's thread and a test's.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable

from tests.fakes.supabase import tokens
from tests.fakes.supabase.errors import AuthError
from tests.fakes.supabase.mirror import UsersMirror
from tests.fakes.supabase.model import AuthUser, FlowState, Json, Mail, Session, User
from tests.fakes.supabase.urls import RedirectPolicy, email_link

__all__ = ["AuthState", "parse_uuid"]

# The server's email check (checkmail), which lowercases what it accepts.
_EMAIL = re.compile(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}"
                    r"[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
_ADMIN_ROLES = frozenset({"service_role", "supabase_admin"})
_NIL_UUID = "00000000-0000-0000-0000-000000000000"


def parse_uuid(value: object) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def valid_email(email: str) -> str:
    """`email` lowercased, or 400 validation_failed."""
    if not email:
        raise AuthError(400, "validation_failed", "An email address is required")
    if len(email) > 255:
        raise AuthError(400, "validation_failed", "An email address is too long")
    if not _EMAIL.match(email):
        raise AuthError(400, "validation_failed",
                        "Unable to validate email address: invalid format")
    return email.lower()


class AuthState:
    """Users, sessions, PKCE flow states and mail, on a clock a test can move forward."""

    def __init__(self, cond: threading.Condition, *, jwt_secret: str, policy: RedirectPolicy,
                 external_url: Callable[[], str], resend_interval: float, otp_ttl: float,
                 jwt_exp: int, flow_state_ttl: float, mirror: UsersMirror | None) -> None:
        self._cond = cond
        self.jwt_secret = jwt_secret
        self.policy = policy
        self.external_url = external_url
        self.resend_interval = resend_interval
        self.otp_ttl = otp_ttl
        self.jwt_exp = jwt_exp
        self.flow_state_ttl = flow_state_ttl
        self.mirror = mirror
        self._offset = 0.0
        self.users: dict[str, User] = {}
        self.sessions: dict[str, Session] = {}
        self.flow_states: list[FlowState] = []
        self.outbox: list[Mail] = []

    # --- clock -------------------------------------------------------------------------------

    def now(self) -> float:
        with self._cond:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the fake's clock only moves forward")
        with self._cond:
            self._offset += seconds

    # --- users -------------------------------------------------------------------------------

    def find_user(self, email: str) -> User | None:
        """The user with this address (any case), if any."""
        with self._cond:
            return next((u for u in self.users.values() if u.email == email.lower()), None)

    def snapshots(self) -> list[AuthUser]:
        with self._cond:
            return [u.snapshot() for u in self.users.values()]

    def create_user(self, email: str, *, user_metadata: Json | None = None,
                    confirmed: bool = False, user_id: str | None = None,
                    role: str = "authenticated", phone: str = "") -> User:
        """A new user, written to auth.users first when mirroring (500 if that fails)."""
        with self._cond:
            if user_id in self.users:
                raise AuthError(500, "unexpected_failure", "Database error creating new user")
            now = self.now()
            user = User(user_id or str(uuid.uuid4()), email.lower(), now,
                        dict(user_metadata or {}), phone=phone, role=role,
                        email_confirmed_at=now if confirmed else None)
            if self.mirror is not None:
                self.mirror.insert(user.id, user.email)
            self.users[user.id] = user
            return user

    def delete_user(self, user: User) -> None:
        """Delete the user, their auth.users row first (which may refuse), then their
        sessions and flow states."""
        with self._cond:
            if self.mirror is not None:
                self.mirror.delete(user.id)
            self._forget(user.id)

    def forget_deleted_rows(self) -> None:
        """Forget users whose auth.users row a test deleted with SQL."""
        if self.mirror is None or not self.mirror.is_open:
            return
        with self._cond:
            present = self.mirror.ids()
            for user_id in [i for i in self.users if i not in present]:
                self._forget(user_id)

    def _forget(self, user_id: str) -> None:
        self.users.pop(user_id, None)
        self._end_sessions(lambda s: s.user_id == user_id)
        self.flow_states = [f for f in self.flow_states if f.user_id != user_id]

    def confirm(self, user: User) -> None:
        with self._cond:
            if user.email_confirmed_at is None:
                user.email_confirmed_at = user.updated_at = self.now()
            user.confirmation_token = ""

    # --- mail --------------------------------------------------------------------------------

    def send_mail(self, user: User, kind: str, *, pkce: bool, redirect_to: str) -> Mail:
        """Mail `user` a `kind` ("magiclink" or "signup") link, replacing their previous one.

        429 over_email_send_rate_limit if the last link of that kind went out less than
        `resend_interval` ago (magic links share the recovery timer, as on the server).
        """
        with self._cond:
            now = self.now()
            sent_at = user.recovery_sent_at if kind == "magiclink" else user.confirmation_sent_at
            if sent_at is not None and sent_at + self.resend_interval > now:
                left = int(sent_at + self.resend_interval - now)
                raise AuthError(429, "over_email_send_rate_limit", "For security purposes, you "
                                f"can only request this after {left} seconds.")
            otp = tokens.new_otp()
            token = ("pkce_" if pkce else "") + tokens.token_hash(user.email, otp)
            self.set_token(user, kind, token)
            subject = "Your sign-in link" if kind == "magiclink" else "Confirm your email address"
            mail = Mail(user.email, subject, self.link(token, kind, redirect_to), now, otp, kind)
            self.outbox.append(mail)
            self._cond.notify_all()
            return mail

    def link(self, token: str, kind: str, redirect_to: str) -> str:
        return email_link(self.external_url(), token, kind, redirect_to)

    def set_token(self, user: User, kind: str, token: str) -> None:
        """Make `token` the user's one pending `kind` token, sent now."""
        with self._cond:
            now = self.now()
            if kind in ("magiclink", "recovery"):
                user.recovery_token, user.recovery_sent_at = token, now
            else:
                user.confirmation_token, user.confirmation_sent_at = token, now
                if kind == "invite":
                    user.invited_at = now

    # --- one-time tokens ---------------------------------------------------------------------

    def user_by_token_hash(self, token_hash: str, kind: str) -> tuple[User, str]:
        """The user whose `kind` link carries `token_hash` (exactly, `pkce_` prefix and all),
        and the kind it resolved to; 403 otp_expired if none or too old."""
        slots = {"signup": ("confirmation",), "invite": ("confirmation",),
                 "magiclink": ("recovery",), "recovery": ("recovery",),
                 "email": ("confirmation", "recovery"), "email_change": ()}
        if kind not in slots:
            raise AuthError(400, "validation_failed", "Invalid email verification type")
        with self._cond:
            for user in self.users.values():
                for slot in slots[kind]:
                    if getattr(user, f"{slot}_token") != token_hash:
                        continue
                    sent_at = getattr(user, f"{slot}_sent_at")
                    if sent_at is None or self.now() > sent_at + self.otp_ttl:
                        break
                    resolved = kind if kind != "email" else (
                        "signup" if slot == "confirmation" else "magiclink")
                    return user, resolved
        raise AuthError(403, "otp_expired", "Email link is invalid or has expired")

    def user_by_otp(self, email: str, token_hash: str, kind: str) -> tuple[User, str]:
        """The user `email` whose pending `kind` code hashes to `token_hash`; 403 otp_expired."""
        invalid = AuthError(403, "otp_expired", "Token has expired or is invalid")
        user = self.find_user(email)
        if user is None:
            raise invalid
        checks = {"signup": ["confirmation"], "invite": ["confirmation"],
                  "magiclink": ["recovery"], "recovery": ["recovery"],
                  "email": ["confirmation", "recovery"]}.get(kind, [])
        with self._cond:
            for slot in checks:
                expected, sent_at = (getattr(user, f"{slot}_token"),
                                     getattr(user, f"{slot}_sent_at"))
                if (expected and sent_at is not None and self.now() <= sent_at + self.otp_ttl
                        and expected in (token_hash, "pkce_" + token_hash)):
                    resolved = kind if kind != "email" else (
                        "signup" if slot == "confirmation" else "magiclink")
                    return user, resolved
        raise invalid

    def consume(self, user: User, kind: str) -> None:
        """Spend the token `user` just verified: confirms the address, clears the token."""
        with self._cond:
            if kind in ("signup", "invite"):
                self.confirm(user)
            elif kind in ("magiclink", "recovery"):
                user.recovery_token = ""
                self.confirm(user)
            else:
                raise AuthError(400, "validation_failed", "Unsupported verification type")

    # --- PKCE flow states --------------------------------------------------------------------

    def new_flow_state(self, user: User, method: str, challenge: str,
                       challenge_method: str) -> FlowState:
        with self._cond:
            flow = FlowState(str(uuid.uuid4()), user.id, method, challenge,
                             challenge_method.lower(), self.now())
            self.flow_states.append(flow)
            return flow

    def latest_flow_state(self, user: User, method: str) -> FlowState:
        with self._cond:
            for flow in reversed(self.flow_states):
                if flow.user_id == user.id and flow.method == method:
                    return flow
        raise AuthError(400, "flow_state_not_found", "No associated flow state found. "
                                                      "422: No valid flow state found for user.")

    def take_flow_state(self, auth_code: str, verifier: str) -> FlowState:
        """The flow of `auth_code` if `verifier` answers its challenge; removed once taken."""
        with self._cond:
            flow = next((f for f in self.flow_states if f.auth_code == auth_code), None)
            if flow is None or flow.user_id not in self.users:
                raise AuthError(404, "flow_state_not_found",
                                "invalid flow state, no valid flow state found")
            if flow.expired(self.now(), self.flow_state_ttl):
                raise AuthError(422, "flow_state_expired",
                                "invalid flow state, flow state has expired")
            problem = tokens.verify_pkce(flow.challenge, flow.challenge_method, verifier)
            if problem is not None:  # the flow stays: the right verifier still works
                raise AuthError(400, "bad_code_verifier", problem)
            self.flow_states.remove(flow)
            return flow

    # --- sessions ----------------------------------------------------------------------------

    def issue_session(self, user: User, method: str) -> Json:
        """A new session for `user`: the token response the server answers with."""
        with self._cond:
            now = self.now()
            session = Session(str(uuid.uuid4()), user.id, now, method,
                              tokens.new_refresh_token())
            self.sessions[session.id] = session
            user.last_sign_in_at = now
            return self._token_response(user, session)

    def refresh(self, refresh_token: str) -> Json:
        with self._cond:
            for session in self.sessions.values():
                if session.refresh_token == refresh_token:
                    session.used_refresh_tokens.add(refresh_token)
                    session.refresh_token = tokens.new_refresh_token()
                    return self._token_response(self.users[session.user_id], session)
                if refresh_token in session.used_refresh_tokens:
                    raise AuthError(400, "refresh_token_already_used",
                                    "Invalid Refresh Token: Already Used")
        raise AuthError(400, "refresh_token_not_found",
                        "Invalid Refresh Token: Refresh Token Not Found")

    def _token_response(self, user: User, session: Session) -> Json:
        now = int(self.now())
        exp = now + self.jwt_exp
        claims: Json = {
            "iss": self.external_url(), "sub": user.id, "aud": "authenticated", "exp": exp,
            "iat": now, "email": user.email, "phone": user.phone,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": dict(user.user_metadata), "role": user.role, "aal": "aal1",
            "amr": [{"method": session.method, "timestamp": int(session.created_at)}],
            "session_id": session.id, "is_anonymous": False,
        }
        return {"access_token": tokens.encode_jwt(claims, self.jwt_secret),
                "token_type": "bearer", "expires_in": self.jwt_exp, "expires_at": exp,
                "refresh_token": session.refresh_token, "user": user.to_json()}

    def authenticate(self, authorization: str | None) -> tuple[User, Session | None]:
        """The user (and session) of a bearer user JWT, as the server's requireAuthentication
        judges it: 401 without one, 403 bad_jwt, user_not_found or session_not_found."""
        token = tokens.bearer_token(authorization)
        with self._cond:
            claims = tokens.decode_jwt(token, self.jwt_secret, self.now())
            return self._load(claims)

    def _load(self, claims: Json) -> tuple[User, Session | None]:
        subject = claims.get("sub")
        if not subject:
            raise AuthError(403, "bad_jwt", "invalid claim: missing sub claim")
        user_id = parse_uuid(subject)
        if user_id is None:
            raise AuthError(400, "bad_jwt", "invalid claim: sub claim must be a UUID")
        user = self.users.get(user_id)
        if user is None:
            raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
        session_id = claims.get("session_id")
        if not session_id or session_id == _NIL_UUID:
            return user, None
        if parse_uuid(session_id) is None:
            raise AuthError(403, "bad_jwt", "invalid claim: session_id claim must be a UUID")
        session = self.sessions.get(str(session_id))
        if session is None:
            raise AuthError(403, "session_not_found",
                            "Session from session_id claim in JWT does not exist")
        return user, session

    def require_admin(self, authorization: str | None) -> None:
        """401 without a bearer token, 403 bad_jwt for a bad one, 403 not_admin unless its
        role is service_role (or supabase_admin)."""
        token = tokens.bearer_token(authorization)
        with self._cond:
            claims = tokens.decode_jwt(token, self.jwt_secret, self.now())
            if claims.get("session_id") and claims.get("session_id") != _NIL_UUID:
                self._load(claims)
        if claims.get("role") not in _ADMIN_ROLES:
            raise AuthError(403, "not_admin", "User not allowed")

    def logout(self, authorization: str | None, scope: str) -> None:
        user, session = self.authenticate(authorization)
        if scope not in ("", "global", "local", "others"):
            raise AuthError(400, "validation_failed", f'Unsupported logout scope "{scope}"')
        current = session.id if session is not None else None
        if current is None or scope in ("", "global"):
            self._end_sessions(lambda s: s.user_id == user.id)
        elif scope == "local":
            self._end_sessions(lambda s: s.id == current)
        else:
            self._end_sessions(lambda s: s.user_id == user.id and s.id != current)

    def _end_sessions(self, which: Callable[[Session], bool]) -> None:
        with self._cond:
            self.sessions = {k: s for k, s in self.sessions.items() if not which(s)}

    def session_ids(self, user_id: str) -> list[str]:
        with self._cond:
            return [s.id for s in self.sessions.values() if s.user_id == user_id]
