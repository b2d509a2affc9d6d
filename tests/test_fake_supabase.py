"""FakeSupabaseAuth against the real supabase_auth client over HTTP: the PKCE and implicit magic
link flows, single use and expiry on the fake's clock, the redirect allow-list, resend limits,
sessions, the admin API, mirroring users into Postgres, and the OpenAPI description."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import psycopg
import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.datatypes import RequestParameters
from supabase_auth import AsyncGoTrueClient, AsyncMemoryStorage
from supabase_auth.errors import AuthApiError, AuthImplicitGrantRedirectError
from supabase_auth.types import AuthFlowType, GenerateSignupLinkParams
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.fakes.supabase import FakeSupabaseAuth, Mail, Recorded, RedirectPolicy

SITE = "https://site.example"
CALLBACK = "https://bot.example/link/callback?state=abc&from=chat"
ALLOW_LIST = ("https://bot.example/link/**", "http://localhost:*/link/**")
EMAIL = "Person@Example.com"
ADDRESS = EMAIL.lower()  # the server keeps addresses lower case
# Supabase Auth's OpenAPI description (MIT, from the supabase/auth repository), vendored with
# its licence; SUPABASE_AUTH_OPENAPI names another copy to check against.
VENDORED_SPEC = Path(__file__).resolve().parent / "fakes/supabase/openapi/openapi.yaml"


@pytest.fixture
def fake() -> Iterator[FakeSupabaseAuth]:
    with FakeSupabaseAuth(site_url=SITE, redirect_allow_list=ALLOW_LIST) as server:
        yield server


def auth_client(fake: FakeSupabaseAuth, key: str,
                flow: AuthFlowType = "pkce") -> AsyncGoTrueClient:
    """The client as supabase-py builds it, with storage the test controls."""
    return AsyncGoTrueClient(url=f"{fake.url}/auth/v1",
                             headers={"apiKey": key, "Authorization": f"Bearer {key}"},
                             flow_type=flow, storage=AsyncMemoryStorage(),
                             auto_refresh_token=False)


@pytest.fixture
async def client(fake: FakeSupabaseAuth) -> AsyncIterator[AsyncGoTrueClient]:
    """A user-side client on the anon key, PKCE flow."""
    auth = auth_client(fake, fake.anon_key)
    yield auth
    await auth.close()


@pytest.fixture
async def admin(fake: FakeSupabaseAuth) -> AsyncIterator[AsyncGoTrueClient]:
    """A server-side client on the service key (use `.admin`)."""
    auth = auth_client(fake, fake.service_key)
    yield auth
    await auth.close()


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """What opens emailed links: no apikey, redirects not followed."""
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield http


async def send_link(fake: FakeSupabaseAuth, client: AsyncGoTrueClient, email: str = EMAIL,
                    redirect_to: str = CALLBACK) -> Mail:
    count = len(fake.mails_to(email)) + 1
    await client.sign_in_with_otp({"email": email,
                                   "options": {"email_redirect_to": redirect_to}})
    return await fake.wait_for_mail_async(email, count=count)


async def open_link(browser: httpx.AsyncClient, link: str) -> str:
    """The Location the emailed link redirects to (asserting the 303)."""
    response = await browser.get(link)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def fragment_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).fragment, keep_blank_values=True).items()}


async def api_error(awaitable: Any) -> AuthApiError:
    with pytest.raises(AuthApiError) as caught:
        await awaitable
    return caught.value


# --- the PKCE magic link ------------------------------------------------------------------


async def test_pkce_magic_link_round_trip(fake: FakeSupabaseAuth, client: AsyncGoTrueClient,
                                          browser: httpx.AsyncClient) -> None:
    mail = await send_link(fake, client)
    assert mail.to == ADDRESS and mail.kind == "magiclink"
    assert mail.subject == "Your sign-in link" and re.fullmatch(r"\d{6}", mail.otp)
    assert mail.link.startswith(f"{fake.url}/auth/v1/verify?token=pkce_")
    assert query_of(mail.link)["type"] == "magiclink"
    assert query_of(mail.link)["redirect_to"] == CALLBACK

    location = await open_link(browser, mail.link)
    assert location.startswith("https://bot.example/link/callback?")
    params = query_of(location)
    assert params["state"] == "abc" and params["from"] == "chat"  # the redirect's own query
    uuid.UUID(params["code"])
    assert not urlsplit(location).fragment

    response = await client.exchange_code_for_session({"auth_code": params["code"]})
    assert response.user is not None and response.session is not None
    known = fake.user_by_email(EMAIL)
    assert known is not None and response.user.id == known.id
    assert response.user.email == ADDRESS and response.user.email_confirmed_at is not None
    assert response.session.token_type == "bearer" and response.session.expires_in == 3600
    claims = jwt.decode(response.session.access_token, fake.jwt_secret, algorithms=["HS256"],
                        audience="authenticated")
    assert claims["sub"] == known.id and claims["role"] == "authenticated"
    assert claims["email"] == ADDRESS and claims["exp"] - claims["iat"] == 3600
    assert fake.session_ids(known.id) == [claims["session_id"]]
    me = await client.get_user()
    assert me is not None and me.user.id == known.id

    otp, verify, token, user = fake.requests
    assert (otp.kind, verify.kind, token.kind, user.kind) == \
        ("POST /otp", "GET /verify", "POST /token", "GET /user")
    assert otp.body["code_challenge_method"] == "s256" and otp.body["create_user"] is True
    assert otp.query == {"redirect_to": CALLBACK}
    assert otp.headers["apikey"] == fake.anon_key
    assert otp.headers["x-supabase-api-version"] == "2024-01-01"
    assert "apikey" not in verify.headers  # browsers open links without one
    assert token.query == {"grant_type": "pkce"} and token.body["auth_code"] == params["code"]


async def test_email_link_and_auth_code_are_single_use(
        fake: FakeSupabaseAuth, client: AsyncGoTrueClient, browser: httpx.AsyncClient) -> None:
    mail = await send_link(fake, client)
    code = query_of(await open_link(browser, mail.link))["code"]
    again = await open_link(browser, mail.link)
    for params in (query_of(again), fragment_of(again)):  # PKCE: query and fragment
        assert params["error"] == "access_denied" and params["error_code"] == "otp_expired"
        assert params["error_description"] == "Email link is invalid or has expired"
    assert query_of(again)["state"] == "abc" and "code" not in query_of(again)

    await client.exchange_code_for_session({"auth_code": code})
    error = await api_error(client.exchange_code_for_session(
        {"auth_code": code, "code_verifier": "v" * 43}))
    assert (error.status, error.code) == (404, "flow_state_not_found")


async def test_links_expire_after_otp_ttl(fake: FakeSupabaseAuth, client: AsyncGoTrueClient,
                                          browser: httpx.AsyncClient) -> None:
    mail = await send_link(fake, client)
    fake.advance(3601)
    location = await open_link(browser, mail.link)
    assert query_of(location)["error_code"] == "otp_expired"


async def test_auth_code_expires_300_s_after_the_link_is_opened(
        fake: FakeSupabaseAuth, client: AsyncGoTrueClient, browser: httpx.AsyncClient) -> None:
    mail = await send_link(fake, client)
    fake.advance(299)  # the flow counts from when the code is handed out
    code = query_of(await open_link(browser, mail.link))["code"]
    fake.advance(301)
    error = await api_error(client.exchange_code_for_session({"auth_code": code}))
    assert (error.status, error.code) == (422, "flow_state_expired")


async def test_wrong_code_verifier_is_refused_and_the_code_survives(
        fake: FakeSupabaseAuth, client: AsyncGoTrueClient, browser: httpx.AsyncClient) -> None:
    mail = await send_link(fake, client)
    code = query_of(await open_link(browser, mail.link))["code"]
    error = await api_error(client.exchange_code_for_session(
        {"auth_code": code, "code_verifier": "x" * 64}))
    assert (error.status, error.code) == (400, "bad_code_verifier")
    assert error.message == "code challenge does not match previously saved code verifier"
    response = await client.exchange_code_for_session({"auth_code": code})  # stored verifier
    assert response.user is not None and response.user.email == ADDRESS


async def test_redirect_outside_the_allow_list_becomes_the_site_url(
        fake: FakeSupabaseAuth, client: AsyncGoTrueClient, browser: httpx.AsyncClient) -> None:
    mail = await send_link(fake, client, redirect_to="https://evil.example/link/callback")
    assert query_of(mail.link)["redirect_to"] == SITE
    location = await open_link(browser, mail.link)
    assert location.startswith(SITE + "?code=")
    fake.advance(60)
    mail = await send_link(fake, client, redirect_to="http://localhost:8123/link/cb")
    assert query_of(mail.link)["redirect_to"] == "http://localhost:8123/link/cb"


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://bot.example/link/callback?state=1", True),  # ** crosses '/' and '?'
    ("https://bot.example/other", False),
    ("https://x.bot.example/link/a", False),
    ("http://localhost:9/link/x", True),  # * stays within the port
    ("https://site.example/anything", True),  # the site itself
    ("https://site.example:8443/anything", False),  # ... on its own port
    ("http://127.0.0.1:5000/whatever", True),  # loopback IPs always pass, as on the server
    ("http://10.0.0.1/link/x", False),
    ("http://2130706433/link/x", False),  # decimal IPs never pass
    ("", False),
])
def test_redirect_policy_follows_the_server(url: str, allowed: bool) -> None:
    assert RedirectPolicy(SITE, ALLOW_LIST).allows(url) is allowed


def test_allow_list_globs() -> None:
    policy = RedirectPolicy(SITE, ["https://*.bot.example/{a,b}/?", "https://[!x]y.example/*"])
    assert policy.allows("https://app.bot.example/a/1")
    assert not policy.allows("https://app.eu.bot.example/a/1")  # '*' stops at '.'
    assert not policy.allows("https://app.bot.example/c/1")
    assert policy.allows("https://zy.example/p") and not policy.allows("https://xy.example/p")
    assert not policy.allows("https://zy.example/p/q")


async def test_resend_within_the_interval_is_429_then_allowed_after_it(
        fake: FakeSupabaseAuth, client: AsyncGoTrueClient, browser: httpx.AsyncClient) -> None:
    first = await send_link(fake, client)
    fake.advance(10)
    error = await api_error(client.sign_in_with_otp({"email": EMAIL}))
    assert (error.status, error.code) == (429, "over_email_send_rate_limit")
    # Whole seconds left, rounded down (the wall clock moved on a little too).
    assert re.fullmatch(r"For security purposes, you can only request this after (49|50) "
                        r"seconds\.", error.message)
    assert len(fake.mails_to(EMAIL)) == 1
    fake.advance(50)
    second = await send_link(fake, client)
    assert second != first and len(fake.mails_to(EMAIL)) == 2
    assert query_of(await open_link(browser, first.link))["error_code"] == "otp_expired"
    assert "code" in query_of(await open_link(browser, second.link))


async def test_create_user_false_refuses_unknown_addresses(fake: FakeSupabaseAuth,
                                                           client: AsyncGoTrueClient) -> None:
    # The server's code, not its description (which promises 200 either way).
    error = await api_error(client.sign_in_with_otp(
        {"email": "nobody@example.com", "options": {"should_create_user": False}}))
    assert (error.status, error.code) == (422, "otp_disabled")
    assert fake.outbox == [] and fake.users == []
    fake.add_user("known@example.com")
    await client.sign_in_with_otp({"email": "known@example.com",
                                   "options": {"should_create_user": False}})
    assert [m.to for m in fake.outbox] == ["known@example.com"]


async def test_verify_otp_with_the_mailed_code(fake: FakeSupabaseAuth,
                                               client: AsyncGoTrueClient,
                                               browser: httpx.AsyncClient) -> None:
    mail = await send_link(fake, client)
    error = await api_error(client.verify_otp({"email": EMAIL, "token": "000000",
                                               "type": "email"}))
    assert (error.status, error.code) == (403, "otp_expired")
    response = await client.verify_otp({"email": EMAIL, "token": mail.otp, "type": "email"})
    assert response.session is not None and response.user is not None
    assert response.user.email == ADDRESS
    assert query_of(await open_link(browser, mail.link))["error_code"] == "otp_expired"


async def test_unconfirmed_address_gets_a_signup_link_without_autoconfirm(
        browser: httpx.AsyncClient) -> None:
    with FakeSupabaseAuth(redirect_allow_list=ALLOW_LIST, mailer_autoconfirm=False) as fake:
        async with auth_client(fake, fake.anon_key) as client:
            mail = await send_link(fake, client)
            assert mail.kind == "signup" and mail.subject == "Confirm your email address"
            assert query_of(mail.link)["type"] == "signup" and mail.token.startswith("pkce_")
            pending = fake.user_by_email(EMAIL)
            assert pending is not None and pending.email_confirmed_at is None
            code = query_of(await open_link(browser, mail.link))["code"]
            response = await client.exchange_code_for_session({"auth_code": code})
            assert response.user is not None and response.user.email_confirmed_at is not None


# --- sessions -------------------------------------------------------------------------------


async def signed_in(fake: FakeSupabaseAuth, client: AsyncGoTrueClient,
                    browser: httpx.AsyncClient) -> tuple[str, str]:
    """Sign in through the link; the access and refresh tokens."""
    mail = await send_link(fake, client)
    code = query_of(await open_link(browser, mail.link))["code"]
    response = await client.exchange_code_for_session({"auth_code": code})
    assert response.session is not None
    return response.session.access_token, response.session.refresh_token


async def test_sign_out_ends_the_session(fake: FakeSupabaseAuth, client: AsyncGoTrueClient,
                                         browser: httpx.AsyncClient) -> None:
    access, refresh = await signed_in(fake, client, browser)
    await client.sign_out()
    logout = fake.calls("POST /logout")[-1]
    assert logout.status == 204 and logout.query == {"scope": "global"}
    assert logout.headers["authorization"] == f"Bearer {access}"
    error = await api_error(client.get_user(access))
    assert (error.status, error.code) == (403, "session_not_found")
    error = await api_error(client.refresh_session(refresh))
    assert (error.status, error.code) == (400, "refresh_token_not_found")


async def test_refresh_rotates_the_refresh_token(fake: FakeSupabaseAuth,
                                                 client: AsyncGoTrueClient,
                                                 browser: httpx.AsyncClient) -> None:
    _, refresh = await signed_in(fake, client, browser)
    refreshed = await client.refresh_session(refresh)
    assert refreshed.session is not None and refreshed.session.refresh_token != refresh
    error = await api_error(client.refresh_session(refresh))
    assert (error.status, error.code) == (400, "refresh_token_already_used")


async def test_access_tokens_expire_on_the_fake_clock(fake: FakeSupabaseAuth,
                                                      client: AsyncGoTrueClient,
                                                      browser: httpx.AsyncClient) -> None:
    access, _ = await signed_in(fake, client, browser)
    fake.advance(3600)
    error = await api_error(client.get_user(access))
    assert (error.status, error.code) == (403, "bad_jwt")
    error = await api_error(client.get_user("not-a-jwt"))
    assert (error.status, error.code) == (403, "bad_jwt")


async def test_implicit_flow_puts_the_session_in_the_fragment(
        fake: FakeSupabaseAuth, browser: httpx.AsyncClient) -> None:
    async with auth_client(fake, fake.anon_key, flow="implicit") as client:
        await check_implicit_flow(fake, client, browser)


async def check_implicit_flow(fake: FakeSupabaseAuth, client: AsyncGoTrueClient,
                              browser: httpx.AsyncClient) -> None:
    mail = await send_link(fake, client)
    assert not mail.token.startswith("pkce_")
    location = await open_link(browser, mail.link)
    assert query_of(location) == {"state": "abc", "from": "chat"}  # nothing for a server
    tokens = fragment_of(location)
    assert tokens["token_type"] == "bearer" and tokens["type"] == "magiclink"
    assert tokens["expires_in"] == "3600" and tokens["refresh_token"]
    await client.initialize_from_url(location)  # the client reads the fragment itself
    session = await client.get_session()
    assert session is not None and session.user.email == ADDRESS

    again = await open_link(browser, mail.link)
    assert "error" not in query_of(again) and fragment_of(again)["error_code"] == "otp_expired"
    with pytest.raises(AuthImplicitGrantRedirectError) as caught:
        await client.initialize_from_url(again)
    assert caught.value.details == {"code": "otp_expired", "error": "access_denied"}


# --- the admin API and the gateway ------------------------------------------------------------


async def test_admin_routes_need_the_service_role(fake: FakeSupabaseAuth,
                                                  client: AsyncGoTrueClient) -> None:
    error = await api_error(client.admin.generate_link({"type": "magiclink", "email": EMAIL}))
    assert (error.status, error.code) == (403, "not_admin")
    error = await api_error(client.admin.get_user_by_id(str(uuid.uuid4())))
    assert (error.status, error.code) == (403, "not_admin")
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{fake.url}/auth/v1/user")
        assert response.status_code == 401
        assert response.json()["message"] == "No API key found in request"
        response = await http.get(f"{fake.url}/auth/v1/health", headers={"apikey": "nope"})
        assert response.status_code == 401 and response.json()["message"] == "Invalid API key"


async def test_generate_link_sends_no_mail_and_replaces_the_last_link(
        fake: FakeSupabaseAuth, admin: AsyncGoTrueClient, client: AsyncGoTrueClient,
        browser: httpx.AsyncClient) -> None:
    first = await admin.admin.generate_link(
        {"type": "magiclink", "email": EMAIL, "options": {"redirect_to": CALLBACK}})
    props = first.properties
    assert props.verification_type == "signup"  # an unknown address is signed up
    assert first.user.email == ADDRESS and first.user.email_confirmed_at is None
    assert props.hashed_token == hashlib.sha224((ADDRESS + props.email_otp).encode()).hexdigest()
    assert props.redirect_to == CALLBACK and fake.outbox == []
    assert props.action_link.startswith(f"{fake.url}/auth/v1/verify?token={props.hashed_token}")

    signup: GenerateSignupLinkParams = {"type": "signup", "email": EMAIL,
                                        "password": "not-checked-by-the-fake"}
    second = await admin.admin.generate_link(signup)
    assert second.user.id == first.user.id
    error = await api_error(client.verify_otp({"token_hash": props.hashed_token,
                                               "type": "signup"}))
    assert (error.status, error.code) == (403, "otp_expired")  # replaced by the second
    location = await open_link(browser, second.properties.action_link)
    assert location.startswith(SITE + "#") and fragment_of(location)["type"] == "signup"
    fetched = await admin.admin.get_user_by_id(first.user.id)
    assert fetched.user.email_confirmed_at is not None
    error = await api_error(admin.admin.generate_link(signup))
    assert (error.status, error.code) == (422, "email_exists")

    third = await admin.admin.generate_link({"type": "magiclink", "email": EMAIL})
    fourth = await admin.admin.generate_link({"type": "magiclink", "email": EMAIL})
    assert fourth.properties.verification_type == "magiclink"
    error = await api_error(client.verify_otp({"token_hash": third.properties.hashed_token,
                                               "type": "magiclink"}))
    assert (error.status, error.code) == (403, "otp_expired")
    response = await client.verify_otp({"token_hash": fourth.properties.hashed_token,
                                        "type": "magiclink"})
    assert response.user is not None and response.user.id == first.user.id
    assert fake.outbox == []


async def test_admin_create_get_and_delete(fake: FakeSupabaseAuth,
                                           admin: AsyncGoTrueClient) -> None:
    created = await admin.admin.create_user({"email": EMAIL, "email_confirm": True,
                                             "user_metadata": {"name": "P"}})
    assert created.user.email == ADDRESS and created.user.user_metadata == {"name": "P"}
    assert created.user.email_confirmed_at is not None
    error = await api_error(admin.admin.create_user({"email": EMAIL}))
    assert (error.status, error.code) == (422, "email_exists")
    fetched = await admin.admin.get_user_by_id(created.user.id)
    assert fetched.user.id == created.user.id
    await admin.admin.delete_user(created.user.id)
    error = await api_error(admin.admin.get_user_by_id(created.user.id))
    assert (error.status, error.code) == (404, "user_not_found")
    assert fake.users == []


async def test_error_shapes_follow_the_api_version_header(fake: FakeSupabaseAuth) -> None:
    url = f"{fake.url}/auth/v1/admin/users/{uuid.uuid4()}"
    headers = {"apikey": fake.anon_key, "Authorization": f"Bearer {fake.anon_key}"}
    async with httpx.AsyncClient() as http:
        legacy = await http.get(url, headers=headers)
        dated = await http.get(url, headers={**headers, "X-Supabase-Api-Version": "2024-01-01"})
    assert legacy.json() == {"code": 403, "error_code": "not_admin", "msg": "User not allowed"}
    assert "x-supabase-api-version" not in legacy.headers
    assert dated.json() == {"code": "not_admin", "message": "User not allowed"}
    assert dated.headers["x-supabase-api-version"] == "2024-01-01"
    assert legacy.headers["x-sb-error-code"] == dated.headers["x-sb-error-code"] == "not_admin"


async def test_wait_for_mail_times_out(fake: FakeSupabaseAuth) -> None:
    with pytest.raises(TimeoutError, match=r"nobody@example\.com"):
        fake.wait_for_mail("nobody@example.com", timeout=0.01)
    with pytest.raises(TimeoutError):
        await fake.wait_for_mail_async("nobody@example.com", timeout=0.01)


# --- auth.users in Postgres -------------------------------------------------------------------


async def test_users_are_mirrored_into_auth_users(database_url: str,
                                                  browser: httpx.AsyncClient) -> None:
    with FakeSupabaseAuth(redirect_allow_list=ALLOW_LIST, database_url=database_url) as fake:
        async with auth_client(fake, fake.anon_key) as client, \
                auth_client(fake, fake.service_key) as admin:
            await check_mirroring(fake, client, admin, browser, database_url)


async def check_mirroring(fake: FakeSupabaseAuth, client: AsyncGoTrueClient,
                          admin: AsyncGoTrueClient, browser: httpx.AsyncClient,
                          database_url: str) -> None:
    mail = await send_link(fake, client)
    user = fake.user_by_email(EMAIL)
    assert user is not None
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("select id::text, email from auth.users").fetchall()
        assert rows == [(user.id, ADDRESS)]
        conn.execute("create table links (user_id uuid not null references auth.users(id) "
                     "on delete cascade)")
        conn.execute("create table strict_refs (user_id uuid references auth.users(id))")
        conn.execute("insert into links values (%s)", (user.id,))
        conn.execute("insert into strict_refs values (%s)", (user.id,))

        # A reference without a cascade blocks the delete, as on Supabase.
        error = await api_error(admin.admin.delete_user(user.id))
        assert (error.status, error.code) == (500, "unexpected_failure")
        assert fake.user_by_email(EMAIL) is not None
        conn.execute("delete from strict_refs")

        code = query_of(await open_link(browser, mail.link))["code"]
        await client.exchange_code_for_session({"auth_code": code})
        assert len(fake.session_ids(user.id)) == 1
        await admin.admin.delete_user(user.id)
        assert conn.execute("select count(*) from auth.users").fetchone() == (0,)
        assert conn.execute("select count(*) from links").fetchone() == (0,)
        assert fake.users == [] and fake.session_ids(user.id) == []

        # Deleting the row with SQL deletes the user, sessions and all, as on Supabase.
        access, _ = await signed_in(fake, client, browser)
        again = fake.user_by_email(EMAIL)
        assert again is not None and again.id != user.id
        conn.execute("delete from auth.users where id = %s", (again.id,))
        error = await api_error(client.get_user(access))
        assert (error.status, error.code) == (403, "user_not_found")
        assert fake.users == []


# --- the OpenAPI description ----------------------------------------------------------------

# Where the server (and so the fake) and its description disagree; the server wins.
KNOWN_DISAGREEMENTS = {
    ("GET /verify", 303): "answers 303, described as 302; browsers need no apikey",
    ("POST /token", 404): "flow_state_not_found is not described",
    ("POST /verify", 403): "otp_expired is not described",
    ("GET /user", 403): "session_not_found is not described",
    ("POST /admin/users", 200): "creating users is not described",
}


def load_description(server_url: str) -> OpenAPI:
    named = os.environ.get("SUPABASE_AUTH_OPENAPI")
    path = Path(named) if named else VENDORED_SPEC
    assert path.is_file(), f"Supabase Auth's OpenAPI description is not at {path}"
    spec = stringify_keys(yaml.safe_load(path.read_text()))
    spec["servers"] = [{"url": server_url}]
    # The file itself is not valid OpenAPI 3.0 (it uses patternProperties), so skip that check.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def stringify_keys(value: Any) -> Any:
    """YAML reads `200:` as an int; OpenAPI wants status codes as strings."""
    if isinstance(value, dict):
        return {str(k): stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringify_keys(v) for v in value]
    return value


def without_nulls(value: Any) -> Any:
    """JSON nulls dropped: the server's decoder treats them as absent (supabase-py sends many,
    which the description does not allow)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


class RecordedRequest:
    """A recorded request in openapi-core's request protocol."""

    def __init__(self, host_url: str, record: Recorded) -> None:
        self.host_url = host_url
        self.path = record.path
        self.method = record.method.lower()
        self.body = json.dumps(without_nulls(record.body)).encode() if record.raw_body else None
        self.content_type = record.headers.get("content-type", "")
        self.parameters = RequestParameters(query=ImmutableMultiDict(list(record.query.items())),
                                            header=Headers(list(record.headers.items())))


class RecordedResponse:
    def __init__(self, record: Recorded) -> None:
        self.status_code = record.status
        self.headers = Headers(list(record.response_headers.items()))
        self.content_type = record.response_headers.get("content-type", "")
        self.data = record.raw_response or None


def check_against(description: OpenAPI, host_url: str, record: Recorded) -> list[Exception]:
    """What the description finds wrong with a recorded request and with its answer."""
    request, found = RecordedRequest(host_url, record), []
    checks: list[Callable[[], object]] = [
        lambda: description.validate_request(request),
        lambda: description.validate_response(request, RecordedResponse(record))]
    for check in checks:
        try:
            check()
        except Exception as error:  # openapi-core's validation errors share no base class
            found.append(error)
    return found


async def test_exchanges_match_the_openapi_description(
        fake: FakeSupabaseAuth, client: AsyncGoTrueClient, admin: AsyncGoTrueClient,
        browser: httpx.AsyncClient) -> None:
    description = load_description(f"{fake.url}/auth/v1")
    access, _ = await signed_in(fake, client, browser)
    await client.get_user()
    created = await admin.admin.create_user({"email": "made@example.com"})
    await admin.admin.get_user_by_id(created.user.id)
    await admin.admin.generate_link({"type": "magiclink", "email": "new@example.com"})
    await client.sign_out()
    await api_error(client.get_user(access))
    await api_error(client.verify_otp({"token_hash": "0" * 56, "type": "magiclink"}))
    # Errors without X-Supabase-Api-Version come in the shape the description gives.
    key = {"apikey": fake.anon_key}
    await browser.post(f"{fake.url}/auth/v1/otp", json={"email": EMAIL}, headers=key)  # 429
    await browser.post(f"{fake.url}/auth/v1/token?grant_type=pkce", headers=key,
                       json={"auth_code": str(uuid.uuid4()), "code_verifier": "v" * 43})
    await browser.post(f"{fake.url}/auth/v1/token?grant_type=pkce", headers=key, json={})
    await browser.get(f"{fake.url}/auth/v1/health", headers=key)
    await browser.get(f"{fake.url}/auth/v1/settings", headers=key)

    seen: dict[tuple[str, int], list[Exception]] = {}
    for record in fake.requests:
        seen[(record.kind, record.status)] = check_against(description, fake.url, record)
    agreed = {k for k in seen if k not in KNOWN_DISAGREEMENTS}
    assert {("POST /otp", 200), ("POST /otp", 429), ("POST /token", 200), ("POST /token", 400),
            ("GET /user", 200), ("POST /logout", 204), ("POST /admin/generate_link", 200),
            ("GET /admin/users/{user_id}", 200), ("GET /health", 200),
            ("GET /settings", 200)} <= agreed
    assert {k: seen[k] for k in agreed if seen[k]} == {}
    assert set(KNOWN_DISAGREEMENTS) <= set(seen)
    assert all(seen[k] for k in KNOWN_DISAGREEMENTS), "the description caught up"
    request_error, status_error = seen[("GET /verify", 303)]
    assert "APIKeyAuth" in str(request_error) and "303" in str(status_error)
