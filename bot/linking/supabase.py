"""Supabase Auth for account linking, through supabase-py's auth client.

Each flow step gets a short-lived ``AsyncGoTrueClient`` with storage of its own: the library keeps
one PKCE verifier slot per storage and switches a client's Authorization header to the user's
token after a login, so a shared client would mix people up. The HTTP connection pool is shared.
"""

from __future__ import annotations

import logging

import httpx
from supabase_auth import AsyncGoTrueClient, AsyncMemoryStorage
from supabase_auth.errors import AuthApiError, AuthError, AuthRetryableError

from bot.errors import (
    AuthCodeInvalid,
    AuthNoSuchUser,
    AuthRateLimited,
    AuthRejected,
    AuthUnavailable,
)
from bot.ports import AuthUser

__all__ = ["SupabaseAuth"]

log = logging.getLogger(__name__)

_STORAGE_KEY = "membot-link"
_VERIFIER_KEY = f"{_STORAGE_KEY}-code-verifier"  # where supabase-py keeps the PKCE verifier


class SupabaseAuth:
    """The ``AuthProvider`` port on a Supabase project (``SUPABASE_URL``, and its secret or
    service-role key). Build once; :meth:`close` releases the connection pool."""

    def __init__(self, url: str, key: str, *, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/") + "/auth/v1"
        self._headers = {"apiKey": key, "Authorization": f"Bearer {key}"}
        self._http = httpx.AsyncClient(timeout=timeout)

    def _flow_client(self, storage: AsyncMemoryStorage) -> AsyncGoTrueClient:
        return AsyncGoTrueClient(
            url=self._url,
            headers=self._headers,
            storage_key=_STORAGE_KEY,
            storage=storage,
            auto_refresh_token=False,
            persist_session=False,
            flow_type="pkce",
            http_client=self._http,
        )

    async def send_login_email(self, email: str, redirect_to: str, *,
                               create_user: bool = False) -> str:
        storage = AsyncMemoryStorage()
        client = self._flow_client(storage)
        try:
            await client.sign_in_with_otp(
                {"email": email, "options": {"email_redirect_to": redirect_to,
                                             "should_create_user": create_user}}
            )
        except AuthApiError as exc:
            if exc.status == 429:
                raise AuthRateLimited(str(exc.code or "rate limited")) from exc
            if exc.code == "otp_disabled" and not create_user:
                # Supabase Auth's answer for an unknown address when sign-ups are not allowed.
                raise AuthNoSuchUser("otp_disabled") from exc
            if 400 <= exc.status < 500 and exc.status not in (401, 403):
                raise AuthRejected(str(exc.code or exc.status)) from exc
            raise AuthUnavailable(f"Supabase Auth answered {exc.status} ({exc.code})") from exc
        except (AuthRetryableError, AuthError, httpx.HTTPError) as exc:
            raise AuthUnavailable(f"Supabase Auth failed: {exc.__class__.__name__}") from exc
        verifier = await storage.get_item(_VERIFIER_KEY)
        if not verifier:
            raise AuthUnavailable("supabase-py kept no PKCE verifier for the login email")
        return verifier

    async def user_for_code(self, code: str, verifier: str) -> AuthUser:
        client = self._flow_client(AsyncMemoryStorage())
        try:
            response = await client.exchange_code_for_session(
                {"auth_code": code, "code_verifier": verifier, "redirect_to": ""}
            )
        except AuthApiError as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                raise AuthCodeInvalid(str(exc.code or exc.status)) from exc
            raise AuthUnavailable(f"Supabase Auth answered {exc.status} ({exc.code})") from exc
        except (AuthRetryableError, AuthError, httpx.HTTPError) as exc:
            raise AuthUnavailable(f"Supabase Auth failed: {exc.__class__.__name__}") from exc
        user = response.user
        if user is None or not user.email:
            raise AuthCodeInvalid("the login gave no user with an email address")
        try:
            await client.sign_out({"scope": "local"})  # only the identity was needed
        except (AuthError, httpx.HTTPError) as exc:
            log.warning("ending the linking session failed: %s", exc.__class__.__name__)
        return AuthUser(id=user.id, email=user.email)

    async def close(self) -> None:
        await self._http.aclose()
