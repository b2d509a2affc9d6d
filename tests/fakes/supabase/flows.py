"""The sign-in flows and admin actions, step for step as Supabase Auth runs them.

Each function takes the request's JSON body (and the redirect the server would pick) and
returns what the route answers, or raises `AuthError`. They follow the server's code rather
than its OpenAPI description where the two differ: `create_user: false` for an unknown address
is a 422 `otp_disabled`, not a silent 200; an unknown, used or expired link redirects with
`error_code=otp_expired`; a failed PKCE step leaves the link unspent.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.supabase import tokens
from tests.fakes.supabase.errors import AuthError
from tests.fakes.supabase.model import Json, User
from tests.fakes.supabase.state import AuthState, parse_uuid, valid_email
from tests.fakes.supabase.urls import fragment_url, merge_query

__all__ = ["admin_create_user", "admin_delete_user", "admin_user", "exchange_code",
           "generate_link", "send_otp", "verify_code", "verify_link"]

_FLOW_METHODS = {"magiclink": "magiclink", "signup": "email/signup", "invite": "invite",
                 "recovery": "recovery", "email_change": "email_change"}
_OAUTH_ERRORS = {400: "invalid_request", 401: "unauthorized_client", 403: "access_denied",
                 500: "server_error", 503: "temporarily_unavailable"}


def _text(body: Json, name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AuthError(400, "bad_json", f"Could not parse request body as JSON: {name} "
                                         "must be a string")
    return value


def _object(body: Json, name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AuthError(400, "bad_json", f"Could not parse request body as JSON: {name} "
                                         "must be an object")
    return value


def send_otp(state: AuthState, body: Json, redirect_to: str, *, autoconfirm: bool) -> None:
    """POST /otp for an email address: a magic link (or, for an address not yet confirmed
    when sign-ups need confirming, a sign-up confirmation link)."""
    email, phone = _text(body, "email"), _text(body, "phone")
    challenge, method = _text(body, "code_challenge"), _text(body, "code_challenge_method")
    create_user = body.get("create_user")
    if email and phone:
        raise AuthError(400, "validation_failed",
                        "Only an email address or phone number should be provided")
    if email and _text(body, "channel"):
        raise AuthError(400, "validation_failed", "Channel should only be specified with "
                                                  "Phone OTP")
    tokens.check_code_challenge(challenge, method)
    if create_user is False and (email or phone):
        try:
            known = phone == "" and state.find_user(valid_email(email)) is not None
        except AuthError:
            known = False
        if not known:
            raise AuthError(422, "otp_disabled", "Signups not allowed for otp")
    if phone:
        raise AuthError(400, "phone_provider_disabled", "Unsupported phone provider")
    if not email:
        raise AuthError(400, "validation_failed", "One of email or phone must be set")
    _magic_link(state, valid_email(email), _object(body, "data"), challenge, method,
                redirect_to, autoconfirm)


def _magic_link(state: AuthState, email: str, data: Json, challenge: str, method: str,
                redirect_to: str, autoconfirm: bool) -> None:
    pkce = bool(challenge)
    user = state.find_user(email)
    if user is None or user.email_confirmed_at is None:
        # The server signs the address up first (and keeps the user if the mail fails).
        if user is None:
            user = state.create_user(email, user_metadata=data)
        if not autoconfirm:
            if pkce:
                state.new_flow_state(user, "email/signup", challenge, method)
            state.send_mail(user, "signup", pkce=pkce, redirect_to=redirect_to)
            return
        state.confirm(user)
    if pkce:
        state.new_flow_state(user, "magiclink", challenge, method)
    state.send_mail(user, "magiclink", pkce=pkce, redirect_to=redirect_to)


def verify_link(state: AuthState, token: str, kind: str, redirect_to: str) -> str:
    """GET /verify: where to send the browser (303). PKCE links (`pkce_...`) get `code` merged
    into the redirect's query; others get the session in the fragment. Failures redirect with
    `error`, `error_code` and `error_description` in the fragment (and query, for PKCE)."""
    if not kind:
        raise AuthError(400, "validation_failed", "Verify requires a verification type")
    if not token:
        raise AuthError(400, "validation_failed", "Verify requires a token or a token hash")
    pkce = token.startswith("pkce_")
    if pkce and kind not in _FLOW_METHODS:
        raise AuthError(500, "unexpected_failure",
                        "Unexpected failure, please check server logs for more information")
    try:
        user, resolved = state.user_by_token_hash(token, kind)
        flow = state.latest_flow_state(user, _FLOW_METHODS[resolved]) if pkce else None
        state.consume(user, resolved)
        if flow is None:
            session = state.issue_session(user, "otp")
            params = {"access_token": session["access_token"], "token_type": "bearer",
                      "expires_in": str(session["expires_in"]),
                      "expires_at": str(session["expires_at"]),
                      "refresh_token": session["refresh_token"], "type": kind, "sb": ""}
            return fragment_url(redirect_to, params)
        flow.code_issued_at = state.now()
        return merge_query(redirect_to, {"code": flow.auth_code})
    except AuthError as error:
        details = {"error_code": error.code, "error_description": error.message}
        if error.status in _OAUTH_ERRORS:
            details = {"error": _OAUTH_ERRORS[error.status], **details}
        url = merge_query(redirect_to, details) if pkce else redirect_to
        return fragment_url(url, {**details, "sb": ""}, replace=True)


def verify_code(state: AuthState, body: Json) -> Json:
    """POST /verify with {type, token_hash} or {type, token, email}: a session."""
    kind, token, token_hash = _text(body, "type"), _text(body, "token"), _text(body, "token_hash")
    email, phone = _text(body, "email"), _text(body, "phone")
    if not kind:
        raise AuthError(400, "validation_failed", "Verify requires a verification type")
    if bool(token) == bool(token_hash):
        raise AuthError(400, "validation_failed", "Verify requires either a token or a token "
                                                  "hash")
    if token_hash:
        if email or phone or _text(body, "redirect_to"):
            raise AuthError(400, "validation_failed",
                            "Only the token_hash and type should be provided")
        user, resolved = state.user_by_token_hash(token_hash, kind)
    elif email and not phone:
        try:
            email = valid_email(email)
        except AuthError as error:
            raise AuthError(422, "validation_failed", "Invalid email format") from error
        user, resolved = state.user_by_otp(email, tokens.token_hash(email, token), kind)
    elif phone and not email:
        raise AuthError(403, "otp_expired", "Token has expired or is invalid")
    else:
        raise AuthError(400, "validation_failed",
                        "Only an email address or phone number should be provided on verify")
    state.consume(user, resolved)
    return state.issue_session(user, "otp")


def exchange_code(state: AuthState, body: Json) -> Json:
    """POST /token?grant_type=pkce: the session for an auth code and its verifier, once."""
    auth_code, verifier = _text(body, "auth_code"), _text(body, "code_verifier")
    if not auth_code or not verifier:
        raise AuthError(400, "validation_failed", "invalid request: both auth code and code "
                                                  "verifier should be non-empty")
    flow = state.take_flow_state(auth_code, verifier)
    return state.issue_session(state.users[flow.user_id], flow.method)


def generate_link(state: AuthState, body: Json, referrer: str) -> Json:
    """POST /admin/generate_link: the user plus an implicit-flow link and its code. No mail is
    sent; the link replaces the user's previous one of its kind."""
    kind, email = _text(body, "type"), valid_email(_text(body, "email"))
    if state.policy.allows(_text(body, "redirect_to")):
        referrer = _text(body, "redirect_to")
    user = state.find_user(email)
    if user is None and kind == "magiclink":
        kind = "signup"
    elif user is None and kind in ("recovery", "email_change_current", "email_change_new"):
        raise AuthError(404, "user_not_found", "User with this email not found")
    if kind in ("signup", "invite") and user is not None and user.email_confirmed_at:
        raise AuthError(422, "email_exists",
                        "A user with this email address has already been registered")
    if kind not in ("magiclink", "recovery", "signup", "invite"):
        raise AuthError(400, "validation_failed",
                        f"Invalid email action link type requested: {kind}")
    if user is None:
        user = state.create_user(email, user_metadata=_object(body, "data"))
    elif kind == "signup":
        user.user_metadata.update(_object(body, "data"))
    otp = tokens.new_otp()
    hashed = tokens.token_hash(email, otp)
    state.set_token(user, kind, hashed)
    return {**user.to_json(), "action_link": state.link(hashed, kind, referrer),
            "email_otp": otp, "hashed_token": hashed, "verification_type": kind,
            "redirect_to": referrer}


def admin_create_user(state: AuthState, body: Json) -> Json:
    """POST /admin/users: a new user (confirmed if `email_confirm`), 422 email_exists."""
    email, phone = _text(body, "email"), _text(body, "phone")
    if not email and not phone:
        raise AuthError(400, "validation_failed",
                        "Cannot create a user without either an email or phone")
    if email:
        email = valid_email(email)
        if state.find_user(email) is not None:
            raise AuthError(422, "email_exists",
                            "A user with this email address has already been registered")
    user_id = None
    if _text(body, "id"):
        user_id = parse_uuid(body["id"])
        if user_id is None:
            raise AuthError(400, "validation_failed", "ID must conform to the uuid v4 format")
    user = state.create_user(email, user_metadata=_object(body, "user_metadata"),
                             confirmed=body.get("email_confirm") is True, user_id=user_id,
                             role=_text(body, "role") or "authenticated", phone=phone)
    return user.to_json()


def admin_user(state: AuthState, user_id: str) -> User:
    """The user of an /admin/users/{user_id} route, or 404."""
    parsed = parse_uuid(user_id)
    if parsed is None:
        raise AuthError(404, "validation_failed", "user_id must be an UUID")
    user = state.users.get(parsed)
    if user is None:
        raise AuthError(404, "user_not_found", "User not found")
    return user


def admin_delete_user(state: AuthState, user_id: str, body: Json) -> None:
    """DELETE /admin/users/{user_id}: the user, their sessions and their auth.users row."""
    user = admin_user(state, user_id)
    if body.get("should_soft_delete") is True:
        raise AuthError(501, "not_implemented", "The fake does not implement soft deletes")
    state.delete_user(user)
