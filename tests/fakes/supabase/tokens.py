"""Keys, JWTs, one-time tokens and PKCE checks, made and judged as Supabase Auth does.

All JWTs are HS256 with the project's JWT secret (Supabase's legacy setup). Expiry is judged
against the fake's clock, not the wall clock, so `advance()` can expire access tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from typing import Any

import jwt

from tests.fakes.supabase.errors import AuthError

__all__ = ["bearer_token", "check_code_challenge", "decode_jwt", "encode_jwt", "new_otp",
           "new_refresh_token", "project_key", "token_hash", "verify_pkce"]

_BEARER = re.compile(r"^[Bb]earer (\S+)$")
_CHALLENGE = re.compile(r"^[a-zA-Z._~0-9-]+$")
_TEN_YEARS = 10 * 365 * 24 * 3600


def encode_jwt(claims: dict[str, Any], secret: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def project_key(secret: str, role: str, now: float) -> str:
    """A legacy project API key: a long-lived HS256 JWT whose `role` is anon or service_role."""
    claims = {"iss": "supabase", "ref": "fake", "role": role, "iat": int(now),
              "exp": int(now) + _TEN_YEARS}
    return encode_jwt(claims, secret)


def decode_jwt(token: str, secret: str, now: float) -> dict[str, Any]:
    """The claims of a JWT signed with `secret` and not expired at `now`; 403 bad_jwt if not."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"],
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                     "verify_nbf": False})
    except jwt.InvalidTokenError as error:
        raise AuthError(403, "bad_jwt",
                        f"invalid JWT: unable to parse or verify signature, {error}") from error
    exp = claims.get("exp")
    if isinstance(exp, int | float) and now >= exp:
        raise AuthError(403, "bad_jwt", "invalid JWT: unable to parse or verify signature, "
                                        "token has invalid claims: token is expired")
    return claims


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; 401 no_authorization if none."""
    match = _BEARER.match(authorization or "")
    if match is None:
        raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
    return match.group(1)


def token_hash(email: str, otp: str) -> str:
    """What the server stores for an emailed OTP, and puts in links: sha224(email + otp), hex."""
    return hashlib.sha224((email + otp).encode()).hexdigest()


def new_otp(length: int = 6) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))


def new_refresh_token() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))


def check_code_challenge(challenge: str, method: str) -> None:
    """400 validation_failed unless both or neither are given and the challenge is well formed."""
    if bool(challenge) != bool(method):
        raise AuthError(400, "validation_failed",
                        "PKCE flow requires code_challenge_method and code_challenge")
    if not challenge:
        return
    if not 43 <= len(challenge) <= 128:
        raise AuthError(400, "validation_failed",
                        "code challenge has to be between 43 and 128 characters")
    if not _CHALLENGE.match(challenge):
        raise AuthError(400, "validation_failed", "code challenge can only contain alphanumeric "
                                                  "characters, hyphens, periods, underscores and "
                                                  "tildes")
    if method.lower() not in ("s256", "plain"):
        # The server fails here with an unhandled error, hence a 500.
        raise AuthError(500, "unexpected_failure",
                        "Unexpected failure, please check server logs for more information")


def verify_pkce(challenge: str, method: str, verifier: str) -> str | None:
    """Why `verifier` does not answer `challenge` (S256: unpadded base64url of its SHA-256),
    or None if it does."""
    if method.lower() == "s256":
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    elif method.lower() == "plain":
        expected = verifier
    else:
        return "code challenge method not supported"
    if not hmac.compare_digest(challenge.encode(), expected.encode()):
        return "code challenge does not match previously saved code verifier"
    return None
