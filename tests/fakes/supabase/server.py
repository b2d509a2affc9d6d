"""`FakeSupabaseAuth`: Supabase Auth (GoTrue) under `/auth/v1` on 127.0.0.1, in its own thread."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from tests.fakes.recorder import Recorder
from tests.fakes.supabase import flows, tokens
from tests.fakes.supabase.errors import API_VERSION_HEADER, AuthError, error_body, versioned
from tests.fakes.supabase.mirror import UsersMirror
from tests.fakes.supabase.model import AuthUser, Json, Mail, Recorded
from tests.fakes.supabase.state import AuthState, valid_email
from tests.fakes.supabase.urls import RedirectPolicy
from tests.fakes.threaded import ThreadedServer

__all__ = ["BASE_PATH", "FakeSupabaseAuth"]

BASE_PATH = "/auth/v1"
_OPEN_ROUTES = frozenset({("GET", BASE_PATH + "/verify")})  # the gateway asks no apikey here
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_log = logging.getLogger(__name__)


class _GatewayRefusal(Exception):
    """The API gateway's 401, before the request reaches the auth server."""


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class FakeSupabaseAuth(ThreadedServer, Recorder[Recorded]):
    """Supabase Auth for the real supabase-py clients: `url` is what SUPABASE_URL would be.

    Keys are legacy HS256 JWTs signed with `jwt_secret` (`anon_key`, `service_key`); every
    route but `GET /verify` wants one of them in an `apikey` header (or query parameter).
    Redirects are judged against `site_url` and `redirect_allow_list`; a link can be re-sent
    to an address after `resend_interval` seconds and is good for `otp_ttl` seconds; a PKCE
    auth code for 300 s after the link is opened; access tokens for `jwt_exp` seconds, all on
    the fake's clock (`advance`). `mailer_autoconfirm` (the Supabase CLI's default) signs new
    addresses up confirmed and mails them a magic link; without it they get a sign-up
    confirmation link, as on a hosted project with "Confirm email" on. With `database_url`,
    users are mirrored into that database's `auth.users`.
    """

    def __init__(self, *, jwt_secret: str | None = None,
                 site_url: str = "http://localhost:3000",
                 redirect_allow_list: Sequence[str] = (), resend_interval: float = 60.0,
                 otp_ttl: float = 3600.0, database_url: str | None = None,
                 mailer_autoconfirm: bool = True, jwt_exp: int = 3600, port: int = 0) -> None:
        ThreadedServer.__init__(self, port)
        Recorder.__init__(self)
        self._thread_name = "fake-supabase-auth"
        self.jwt_secret = jwt_secret or secrets.token_urlsafe(32)
        self.mailer_autoconfirm = mailer_autoconfirm
        self._mirror = UsersMirror(database_url) if database_url else None
        self._state = AuthState(self._cond, jwt_secret=self.jwt_secret,
                               policy=RedirectPolicy(site_url, redirect_allow_list),
                               external_url=lambda: self.url + BASE_PATH,
                               resend_interval=resend_interval, otp_ttl=otp_ttl,
                               jwt_exp=jwt_exp, flow_state_ttl=300.0, mirror=self._mirror)
        now = time.time()
        self._anon_key = tokens.project_key(self.jwt_secret, "anon", now)
        self._service_key = tokens.project_key(self.jwt_secret, "service_role", now)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The project URL (SUPABASE_URL); the auth API lives under `url + "/auth/v1"`."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def anon_key(self) -> str:
        """The project's legacy anon key (a JWT with role "anon")."""
        return self._anon_key

    @property
    def service_key(self) -> str:
        """The project's legacy service_role key: passes the admin routes' check."""
        return self._service_key

    @property
    def site_url(self) -> str:
        return self._state.policy.site_url

    def _build_app(self) -> web.Application:
        if self._mirror is not None:
            self._mirror.open()
        app = web.Application(middlewares=[self._middleware])
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "/health", self._health), ("GET", "/settings", self._settings),
            ("GET", "/.well-known/jwks.json", self._jwks), ("POST", "/otp", self._otp),
            ("GET", "/verify", self._verify_get), ("POST", "/verify", self._verify_post),
            ("POST", "/token", self._token), ("GET", "/user", self._user),
            ("POST", "/logout", self._logout),
            ("POST", "/admin/generate_link", self._generate_link),
            ("GET", "/admin/users", self._list_users), ("POST", "/admin/users", self._create),
            ("GET", "/admin/users/{user_id}", self._get_user),
            ("DELETE", "/admin/users/{user_id}", self._delete_user),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, BASE_PATH + path, handler)
        return app

    async def _close_connections(self) -> None:
        if self._mirror is not None:
            self._mirror.close()

    # --- the clock, users and mail (any thread) ----------------------------------------------

    def now(self) -> float:
        """The fake's time (epoch seconds): the wall clock plus every `advance`."""
        return self._state.now()

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (expiring links, codes, tokens and resend waits)."""
        self._state.advance(seconds)

    @property
    def users(self) -> list[AuthUser]:
        """Snapshots of every user, confirmed or not, in creation order."""
        self._state.forget_deleted_rows()
        return self._state.snapshots()

    def user_by_email(self, email: str) -> AuthUser | None:
        self._state.forget_deleted_rows()
        user = self._state.find_user(email)
        return user.snapshot() if user else None

    def add_user(self, email: str, *, confirmed: bool = True,
                 user_metadata: Json | None = None) -> AuthUser:
        """Create a user without any request (mirrored into auth.users, so with a
        `database_url` start the server first)."""
        user = self._state.create_user(valid_email(email), user_metadata=user_metadata,
                                      confirmed=confirmed)
        return user.snapshot()

    def session_ids(self, user_id: str) -> list[str]:
        """The user's live sessions (logout and admin delete end them)."""
        self._state.forget_deleted_rows()
        return self._state.session_ids(user_id)

    @property
    def outbox(self) -> list[Mail]:
        """Every mail sent so far, oldest first."""
        with self._cond:
            return list(self._state.outbox)

    def mails_to(self, address: str) -> list[Mail]:
        """The mails sent to `address` (any case), oldest first."""
        with self._cond:
            return [m for m in self._state.outbox if m.to == address.lower()]

    def clear_outbox(self) -> None:
        """Forget sent mail (links already sent stay valid)."""
        with self._cond:
            self._state.outbox.clear()

    def wait_for_mail(self, address: str, timeout: float = 5.0, count: int = 1) -> Mail:
        """Block until `count` mails went to `address`; the latest. TimeoutError if not.

        Blocks the calling thread: on an event loop use `wait_for_mail_async`.
        """
        with self._cond:
            if self._cond.wait_for(lambda: len(self.mails_to(address)) >= count, timeout):
                return self.mails_to(address)[-1]
        raise TimeoutError(self._mail_timeout(address, count))

    async def wait_for_mail_async(self, address: str, timeout: float = 5.0,  # noqa: ASYNC109
                                  count: int = 1) -> Mail:
        """`wait_for_mail` that polls instead of blocking the running event loop."""
        deadline = time.monotonic() + timeout
        while True:
            mails = self.mails_to(address)
            if len(mails) >= count:
                return mails[-1]
            if time.monotonic() >= deadline:
                raise TimeoutError(self._mail_timeout(address, count))
            await asyncio.sleep(0.005)

    def _mail_timeout(self, address: str, count: int) -> str:
        return f"waited for {count} mail(s) to {address}; sent: {[m.to for m in self.outbox]}"

    def _describe(self, record: Recorded) -> str:
        return f"{record.kind} -> {record.status} {record.error_code or ''}".rstrip()

    # --- HTTP plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        raw = await request.read()  # kept by aiohttp: handlers read it again
        try:
            self._check_apikey(request)
            self._state.forget_deleted_rows()
            response = await handler(request)
        except _GatewayRefusal as refusal:
            message, hint = refusal.args
            response = web.json_response({"message": message, "hint": hint}, status=401)
        except AuthError as error:
            response = self._error(request, error)
        except web.HTTPException as exc:  # no such route or method
            response = self._error(request, AuthError(exc.status, "not_found", exc.reason))
        except Exception:  # a bug in the fake: answered and recorded like the server's 500s
            _log.exception("FakeSupabaseAuth failed on %s %s", request.method, request.path)
            response = self._error(request, AuthError(
                500, "unexpected_failure",
                "Unexpected failure, please check server logs for more information"))
        self._record_exchange(request, raw, response)
        return response

    def _check_apikey(self, request: web.Request) -> None:
        if (request.method, request.path) in _OPEN_ROUTES:
            return
        key = request.headers.get("apikey") or request.query.get("apikey")
        if not key:
            raise _GatewayRefusal("No API key found in request",
                                  "No `apikey` request header or url param was found.")
        if key not in (self.anon_key, self.service_key):
            raise _GatewayRefusal("Invalid API key",
                                  "Double check your Supabase `anon` or `service_role` API key.")

    @staticmethod
    def _error(request: web.Request, error: AuthError) -> web.Response:
        version_2024 = versioned(request.headers.get(API_VERSION_HEADER))
        headers = {"x-sb-error-code": error.code}
        if version_2024:
            headers[API_VERSION_HEADER] = "2024-01-01"
        return web.json_response(error_body(error, version_2024=version_2024),
                                 status=error.status, headers=headers)

    def _record_exchange(self, request: web.Request, raw: bytes,
                         response: web.StreamResponse) -> None:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else request.path
        answer = response.body if isinstance(response, web.Response) else None
        answer = answer if isinstance(answer, bytes) else b""
        self._record(Recorded(
            kind=f"{request.method} {route.removeprefix(BASE_PATH)}", method=request.method,
            path=request.path, query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=_json_or_none(raw), status=response.status, response=_json_or_none(answer),
            response_headers={k.lower(): v for k, v in response.headers.items()},
            at=self.now(), raw_body=raw, raw_response=answer))

    @staticmethod
    async def _body(request: web.Request) -> Json:
        """The JSON object sent (an empty body counts as `{}`); 400 bad_json otherwise."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as error:
            raise AuthError(400, "bad_json",
                            f"Could not parse request body as JSON: {error}") from error
        if not isinstance(body, dict):
            raise AuthError(400, "bad_json", "Could not parse request body as JSON: "
                                             "expected an object")
        return body

    def _referrer(self, request: web.Request) -> str:
        """The redirect the server would use: `redirect_to`, else Referer, else site URL."""
        asked = request.headers.get("redirect_to") or request.query.get("redirect_to")
        return self._state.policy.choose(asked, request.headers.get("Referer"))

    def _admin(self, request: web.Request) -> None:
        self._state.require_admin(request.headers.get("Authorization"))

    # --- routes ------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "fake", "name": "GoTrue",
                                  "description": "GoTrue is a user registration and "
                                                 "authentication API"})

    async def _settings(self, request: web.Request) -> web.Response:
        return web.json_response({
            "external": {"email": True, "phone": False, "anonymous_users": False},
            "disable_signup": False, "mailer_autoconfirm": self.mailer_autoconfirm,
            "phone_autoconfirm": False, "sms_provider": "", "saml_enabled": False,
            "saml_private_key_next_configured": False, "passkeys_enabled": False})

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": []})  # HS256 keys are never published

    async def _otp(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        with self._cond:
            flows.send_otp(self._state, body, self._referrer(request),
                           autoconfirm=self.mailer_autoconfirm)
        return web.json_response({})

    async def _verify_get(self, request: web.Request) -> web.Response:
        with self._cond:
            location = flows.verify_link(self._state, request.query.get("token", ""),
                                         request.query.get("type", ""), self._referrer(request))
        return web.Response(status=303, headers={"Location": location}, content_type="text/html",
                            text=f'<a href="{html.escape(location)}">See Other</a>.\n')

    async def _verify_post(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        with self._cond:
            return web.json_response(flows.verify_code(self._state, body))

    async def _token(self, request: web.Request) -> web.Response:
        grant, body = request.query.get("grant_type", ""), await self._body(request)
        if grant == "pkce":
            with self._cond:
                return web.json_response(flows.exchange_code(self._state, body))
        if grant == "refresh_token":
            refresh_token = body.get("refresh_token")
            if not isinstance(refresh_token, str) or not refresh_token:
                raise AuthError(400, "validation_failed", "refresh_token required")
            return web.json_response(self._state.refresh(refresh_token))
        raise AuthError(400, "invalid_credentials", "unsupported_grant_type")

    async def _user(self, request: web.Request) -> web.Response:
        with self._cond:
            user, _ = self._state.authenticate(request.headers.get("Authorization"))
            return web.json_response(user.to_json())

    async def _logout(self, request: web.Request) -> web.Response:
        self._state.logout(request.headers.get("Authorization"), request.query.get("scope", ""))
        return web.Response(status=204)

    async def _generate_link(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        with self._cond:
            link = flows.generate_link(self._state, body, self._referrer(request))
        return web.json_response(link)

    async def _list_users(self, request: web.Request) -> web.Response:
        self._admin(request)
        with self._cond:
            users = sorted(self._state.users.values(), key=lambda u: u.created_at, reverse=True)
            listed = [u.to_json() for u in users]
        return web.json_response({"users": listed, "aud": "authenticated"},
                                 headers={"X-Total-Count": str(len(listed))})

    async def _create(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        with self._cond:
            return web.json_response(flows.admin_create_user(self._state, body))

    async def _get_user(self, request: web.Request) -> web.Response:
        self._admin(request)
        with self._cond:
            user = flows.admin_user(self._state, request.match_info["user_id"]).to_json()
        return web.json_response(user)

    async def _delete_user(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        with self._cond:
            flows.admin_delete_user(self._state, request.match_info["user_id"], body)
        return web.json_response({})
