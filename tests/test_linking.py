"""Account linking on the real stack: the chat commands, the web pages over HTTP, supabase-py
talking to the Supabase Auth stand-in, and Postgres with the stand-in's ``auth.users``."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import psycopg
import pytest
from yarl import URL

from adapters.console import to_event
from adapters.web import build_web_app
from bot.app import services
from bot.config import Settings
from bot.events import ReplyKind
from bot.logs import configure_logging
from tests.conftest import answer, serve_web
from tests.fakes.openai_server import ScriptedOpenAI
from tests.linkrig import LinkRig, link_rig

MakeSettings = Callable[..., Settings]
EMAIL = "alice@example.com"



def requests_of(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("select * from link_requests order by created_at").fetchall()


async def test_without_supabase_link_says_it_is_not_configured(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings()) as app:
        reply = await app.commands.run(to_event("alice", "", session="s"), "link")
        assert reply.private and "not configured" in reply.text
        reply = await answer(app.core, to_event("alice", "hello", session="s"))
        assert reply.kind is ReplyKind.ANSWER  # nothing else breaks


async def test_without_supabase_a_link_page_does_not_send_people_to_ask_for_another(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings()) as app:
        runner, port = await serve_web(build_web_app(linking=app.linking, secure_cookies=False))
        try:
            async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/link/an-old-token"
            ) as page:
                status, html = page.status, await page.text()
        finally:
            await runner.cleanup()
    assert status == 404 and "not valid" in html
    assert "not turned on for this bot" in html and "for a new one" not in html


async def test_the_whole_flow_links_and_the_memory_follows_to_the_other_account(
    rig: LinkRig, openai_server: ScriptedOpenAI
) -> None:
    await answer(rig.app.core, rig.event("alice", "My locker code is 4711"))
    await rig.app.jobs.wait_idle()

    url = await rig.link_url("alice")
    assert url.startswith(f"{rig.base}/link/") and len(url.rsplit("/", 1)[1]) >= 43
    browser = rig.browser()
    page = await browser.get(url)
    assert page.status == 200 and "terminal account <strong>alice</strong>" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    sent = await browser.post(page.action, {"csrf": page.csrf, "email": EMAIL})
    assert sent.status == 200 and "a***@example.com" in sent.text

    [otp] = rig.auth.calls("POST /otp")
    assert otp.body["code_challenge_method"] == "s256"  # PKCE; the verifier stays with us
    confirm = await rig.confirm_page(browser, EMAIL)
    assert confirm.status == 200 and "Confirm" in confirm.text
    assert confirm.url.startswith(f"{rig.base}/link/confirm/") and "code=" in confirm.url
    shown = await rig.confirm(browser, confirm)
    assert shown.status == 200 and ":link " in shown.text

    reply = await rig.command("alice", "link", shown.code)
    assert reply.private and "a***@example.com" in reply.text and "alice@" not in reply.text
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None
    assert await rig.app.links.owner_of("console:alice") == user.id
    assert rig.auth.session_ids(user.id) == []  # the linking session was ended at once

    # Alice links a second account to the same login; what she said on the first is used there.
    await rig.linked("alice-phone", EMAIL)
    await answer(rig.app.core, rig.event("alice-phone", "what is my locker code?"))
    prompt = openai_server.calls("chat")[-1].body["messages"][0]["content"]
    assert "4711" in prompt
    await answer(rig.app.core, rig.event("bob", "what is my locker code?"))
    assert "4711" not in openai_server.calls("chat")[-1].body["messages"][0]["content"]


async def test_memories_merge_without_duplicates(rig: LinkRig) -> None:
    for account in ("alice", "alice-phone"):
        await answer(rig.app.core, rig.event(account, "My locker code is 4711"))
    await rig.app.jobs.wait_idle()
    await rig.linked("alice", EMAIL)
    await rig.linked("alice-phone", EMAIL)
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None
    [hit] = await rig.app.memory.search(user.id, "locker code", 10)
    assert "4711" in hit.text
    assert await rig.app.memory.search("console:alice", "locker code", 10) == []


async def test_a_write_running_while_the_account_links_lands_with_the_user(
    rig: LinkRig, openai_server: ScriptedOpenAI
) -> None:
    code = await rig.code_for("alice", EMAIL)
    openai_server.hold("extraction")
    await answer(rig.app.core, rig.event("alice", "My locker code is 4711"))
    assert await asyncio.to_thread(openai_server.wait_for, "extraction", 1)
    assert (await rig.command("alice", "link", code)).text.startswith("Linked")
    openai_server.release("extraction")
    await rig.app.jobs.wait_idle()
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None
    assert "4711" in (await rig.app.memory.search(user.id, "locker", 5))[0].text
    assert await rig.app.memory.search("console:alice", "locker", 5) == []


async def test_opening_pages_changes_nothing(rig: LinkRig, database_url: str) -> None:
    url = await rig.link_url("alice")
    before = requests_of(database_url)
    prefetcher = rig.browser()
    for _ in range(2):
        assert (await prefetcher.get(url)).status == 200
    assert requests_of(database_url) == before
    browser = rig.browser()
    await rig.email_sent(browser, url, EMAIL)
    mail = await rig.auth.wait_for_mail_async(EMAIL)
    after_email = requests_of(database_url)
    confirm = await browser.get(mail.link)
    await browser.get(confirm.url)  # reloading the confirm page
    assert requests_of(database_url) == after_email
    # The person can still finish: nothing was used up by the GETs.
    shown = await rig.confirm(browser, confirm)
    assert shown.status == 200


async def test_a_used_link_cannot_be_used_again(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    browser = rig.browser()
    await rig.email_sent(browser, url, EMAIL)
    confirm = await rig.confirm_page(browser, EMAIL)
    shown = await rig.confirm(browser, confirm)
    assert shown.status == 200
    again = await browser.get(url)
    assert again.status == 410 and "already been used" in again.text
    replay = await rig.confirm(browser, confirm)
    assert replay.status == 410 and shown.code not in replay.text


async def test_an_expired_link_is_refused(rig: LinkRig, database_url: str) -> None:
    url = await rig.link_url("alice")
    with psycopg.connect(database_url) as conn:
        conn.execute("update link_requests set expires_at = now() - interval '1 second'")
    browser = rig.browser()
    page = await browser.get(url)
    assert page.status == 410 and "expired" in page.text and "/link" in page.text


async def test_a_missing_or_wrong_csrf_token_sends_nothing(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    browser = rig.browser()
    page = await browser.get(url)
    for fields in ({"email": EMAIL}, {"email": EMAIL, "csrf": "0" * 64}):
        refused = await browser.post(page.action, fields)
        assert refused.status == 403
    stranger = rig.browser()  # a page's token is worth nothing with another cookie
    refused = await stranger.post(page.action, {"email": EMAIL, "csrf": page.csrf})
    assert refused.status == 403
    assert rig.auth.calls("POST /otp") == []


async def test_a_code_works_only_from_the_account_that_asked(rig: LinkRig) -> None:
    code = await rig.code_for("alice", EMAIL)
    reply = await rig.command("mallory", "link", code)
    assert "No confirmed link" in reply.text
    assert await rig.app.links.owner_of("console:mallory") == "console:mallory"
    reply = await rig.command("alice", "link", code)
    assert reply.text.startswith("Linked")


async def test_wrong_and_replayed_codes_are_refused(rig: LinkRig) -> None:
    code = await rig.code_for("alice", EMAIL)
    wrong = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    reply = await rig.command("alice", "link", wrong)
    assert "doesn't match" in reply.text and "4 tries left" in reply.text
    assert (await rig.command("alice", "link", code.lower())).text.startswith("Linked")
    await rig.command("alice", "unlink")
    replay = await rig.command("alice", "link", code)
    assert "No confirmed link" in replay.text
    assert await rig.app.links.owner_of("console:alice") == "console:alice"


async def test_too_many_wrong_codes_cancel_the_link(rig: LinkRig) -> None:
    code = await rig.code_for("alice", EMAIL)
    wrong = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    for _ in range(5):
        reply = await rig.command("alice", "link", wrong)
    assert "cancelled" in reply.text
    assert "No confirmed link" in (await rig.command("alice", "link", code)).text


async def test_racing_confirmations_exactly_one_wins(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    browser = rig.browser()
    await rig.email_sent(browser, url, EMAIL)
    confirm = await rig.confirm_page(browser, EMAIL)
    pages = await asyncio.gather(*(rig.confirm(browser, confirm) for _ in range(4)))
    assert sorted(p.status for p in pages).count(200) == 1


async def test_racing_codes_link_once(rig: LinkRig) -> None:
    code = await rig.code_for("alice", EMAIL)
    replies = await asyncio.gather(*(rig.command("alice", "link", code) for _ in range(4)))
    assert [r.text.startswith("Linked") for r in replies].count(True) == 1


async def test_a_redirect_parameter_leads_nowhere(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    browser = rig.browser()
    page = await browser.get(f"{url}?redirect_to=https://evil.example/&next=https://evil.example",
                             follow=False)
    assert page.status == 200 and "evil" not in page.text
    sent = await browser.post(page.action + "?redirect_to=https://evil.example/",
                              {"csrf": page.csrf, "email": EMAIL})
    assert sent.status == 200
    [otp] = rig.auth.calls("POST /otp")
    assert otp.query["redirect_to"].startswith(f"{rig.base}/link/confirm/")
    mail = await rig.auth.wait_for_mail_async(EMAIL)
    landed = await browser.get(mail.link, follow=False)
    assert landed.headers["Location"].startswith(f"{rig.base}/link/confirm/")


async def test_the_email_link_must_come_back_to_the_same_browser(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    await rig.email_sent(rig.browser(), url, EMAIL)
    elsewhere = await rig.confirm_page(rig.browser(), EMAIL)
    assert elsewhere.status == 403 and "another browser" in elsewhere.text


async def test_an_expired_login_email_says_to_send_a_new_one(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    browser = rig.browser()
    await rig.email_sent(browser, url, EMAIL)
    rig.auth.advance(3601)
    page = await rig.confirm_page(browser, EMAIL)
    assert page.status == 410 and "send a new email" in page.text


async def test_email_rate_limits_say_to_wait(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    browser = rig.browser()
    assert (await rig.email_sent(browser, url, EMAIL)).status == 200
    again = await rig.email_sent(browser, url, EMAIL)  # Supabase: one a minute
    assert again.status == 429 and "Wait a minute" in again.text
    for _ in range(2):
        rig.auth.advance(61)
        await rig.email_sent(browser, url, EMAIL)
    rig.auth.advance(61)
    over = await rig.email_sent(browser, url, EMAIL)  # ours: three an hour per address
    assert over.status == 429 and "last hour" in over.text
    assert len(rig.auth.mails_to(EMAIL)) == 3


async def test_link_requests_are_rate_limited_per_account(rig: LinkRig) -> None:
    for _ in range(5):
        await rig.link_url("alice")
    reply = await rig.command("alice", "link")
    assert "http" not in reply.text and "last hour" in reply.text
    assert "http" in (await rig.command("bob", "link")).text


async def test_supabase_unreachable_gets_a_page_that_says_so(
    make_settings: MakeSettings, database_url: str, openai_server: ScriptedOpenAI
) -> None:
    async with link_rig(make_settings, database_url) as rig:
        url = await rig.link_url("alice")
        rig.auth.stop()
        page = await rig.email_sent(rig.browser(), url, EMAIL)
        assert page.status == 503 and "be reached right now" in page.text
        rig.auth.start()


async def test_relinking_needs_unlink_and_unlinking_keeps_memories_with_the_login(
    rig: LinkRig,
) -> None:
    await answer(rig.app.core, rig.event("alice", "My locker code is 4711"))
    await rig.app.jobs.wait_idle()
    await rig.linked("alice", EMAIL)
    reply = await rig.command("alice", "link")
    assert "already linked to a***@example.com" in reply.text and ":unlink" in reply.text
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None

    assert "Unlinked" in (await rig.command("alice", "unlink")).text
    assert await rig.app.links.owner_of("console:alice") == "console:alice"
    assert await rig.app.memory.search("console:alice", "locker", 5) == []
    assert "4711" in (await rig.app.memory.search(user.id, "locker", 5))[0].text
    assert "isn't linked" in (await rig.command("alice", "unlink")).text

    other = await rig.code_for("alice", "work@example.com")
    assert (await rig.command("alice", "link", other)).text.startswith("Linked")


async def test_deleting_the_supabase_user_removes_the_link_and_purges_memories(
    rig: LinkRig, database_url: str
) -> None:
    await answer(rig.app.core, rig.event("alice", "My locker code is 4711"))
    await rig.app.jobs.wait_idle()
    await rig.linked("alice", EMAIL)
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None
    assert await rig.app.memory.search(user.id, "locker", 5)

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from auth.users where id = %s", (user.id,))
    assert await rig.app.links.owner_of("console:alice") == "console:alice"
    assert await rig.app.purger.sweep() == 1
    assert await rig.app.memory.search(user.id, "locker", 5) == []
    with psycopg.connect(database_url) as conn:
        turns = conn.execute("select count(*) from conversation_turns where owner_id = %s",
                             (user.id,)).fetchone()
    assert turns == (0,)
    assert await rig.app.purger.sweep() == 0


async def test_behind_https_the_browser_cookie_is_secure_and_http_only(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    runner, port = await serve_web(build_web_app(linking=rig.app.linking, secure_cookies=True))
    try:
        page = await rig.browser().get(url.replace(rig.base, f"http://127.0.0.1:{port}"))
    finally:
        await runner.cleanup()
    cookie = page.headers["Set-Cookie"]
    assert "membot_browser=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Path=/link" in cookie


async def test_one_link_request_mails_one_address(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    browser = rig.browser()
    assert (await rig.email_sent(browser, url, EMAIL)).status == 200
    rig.auth.advance(61)
    other = await rig.email_sent(browser, url, "work@example.com")
    assert other.status == 409 and "one email address" in other.text and ":link" in other.text
    assert rig.auth.mails_to("work@example.com") == []
    again = await rig.email_sent(browser, url, EMAIL.upper())  # the same address, sent again
    assert again.status == 200
    assert len(rig.auth.mails_to(EMAIL)) == 2


async def test_a_burst_of_posts_on_one_link_sends_one_email(
    make_settings: MakeSettings, database_url: str, openai_server: ScriptedOpenAI
) -> None:
    addresses = [f"person{n}@example.com" for n in range(30)]
    async with link_rig(make_settings, database_url, logins=addresses) as rig:
        url = await rig.link_url("alice")
        browser = rig.browser()
        page = await browser.get(url)
        pages = await asyncio.gather(*(browser.post(page.action, {"csrf": page.csrf,
                                                                  "email": address})
                                       for address in addresses))
        assert [p.status for p in pages].count(200) == 1
        assert len(rig.auth.outbox) == 1
        assert len(rig.auth.users) == 30  # nobody new


async def test_login_emails_are_capped_per_chat_account_and_per_bot(
    make_settings: MakeSettings, database_url: str, openai_server: ScriptedOpenAI
) -> None:
    logins = [f"person{n}@example.com" for n in range(6)]
    async with link_rig(make_settings, database_url, logins=logins,
                        link_emails_per_account=2, link_emails_per_hour=4) as rig:
        for n in range(2):
            sent = await rig.email_sent(rig.browser(), await rig.link_url("alice"), logins[n])
            assert sent.status == 200
        over = await rig.email_sent(rig.browser(), await rig.link_url("alice"), logins[2])
        assert over.status == 429 and "this account" in over.text and "later" in over.text
        for n in (2, 3):
            sent = await rig.email_sent(rig.browser(), await rig.link_url("bob"), logins[n])
            assert sent.status == 200
        busy = await rig.email_sent(rig.browser(), await rig.link_url("carol"), logins[4])
        assert busy.status == 429 and "many login emails" in busy.text
        assert len(rig.auth.outbox) == 4


async def test_an_address_without_a_login_gets_no_user_and_the_same_page(
    rig: LinkRig,
) -> None:
    known = await rig.email_sent(rig.browser(), await rig.link_url("alice"), EMAIL)
    unknown = await rig.email_sent(rig.browser(), await rig.link_url("bob"),
                                   "nobody@example.com")
    assert known.status == unknown.status == 200
    assert unknown.text.replace("n***@", "a***@") == known.text  # says nothing about logins
    assert "If <strong>a***@example.com</strong> has a login" in known.text
    assert rig.auth.user_by_email("nobody@example.com") is None
    assert rig.auth.mails_to("nobody@example.com") == []
    assert [c.body["create_user"] for c in rig.auth.calls("POST /otp")] == [False, False]


async def test_the_operator_can_let_linking_create_logins(
    make_settings: MakeSettings, database_url: str, openai_server: ScriptedOpenAI
) -> None:
    async with link_rig(make_settings, database_url, logins=(),
                        link_create_users=True) as rig:
        shown = await rig.code_page(rig.browser(), await rig.link_url("alice"), EMAIL)
        assert (await rig.command("alice", "link", shown.code)).text.startswith("Linked")
        sent = rig.auth.calls("POST /otp")[0]
        assert sent.body["create_user"] is True
        assert rig.auth.user_by_email(EMAIL) is not None


@pytest.fixture
def text_logs() -> Iterator[io.StringIO]:
    """Logging as ``membot`` sets it up at INFO with ``LOG_FORMAT=text``, into a buffer."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(logging.INFO, "text", stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_request_values_cannot_forge_a_log_line(
    rig: LinkRig, text_logs: io.StringIO
) -> None:
    forged = "otp_expired\n2026-01-01 00:00:00,000 ERROR bot.linking: linked admin\r\x1b[2J"
    page = await rig.browser().get(
        f"/link/confirm/x?error=access_denied&error_code={quote(forged)}")
    assert page.status == 410
    lines = text_logs.getvalue().splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ", line)
                         and "linked admin" not in line.split(": ", 1)[0] for line in lines)
    [came_back] = [line for line in lines if "login link came back" in line]
    assert "\x1b" not in came_back and "\r" not in came_back


async def test_the_server_accepts_only_browser_cookies_it_issued(rig: LinkRig) -> None:
    url = await rig.link_url("alice")
    browser = rig.browser()
    chosen = "A" * 43  # a value the client picked, of a plausible length
    browser.session.cookie_jar.update_cookies({"membot_browser": chosen}, URL(rig.base + "/link"))
    page = await browser.get(url)
    issued = page.headers.get("Set-Cookie", "")
    assert "membot_browser=" in issued and chosen not in issued  # a cookie of its own instead
    sent = await browser.post(page.action, {"csrf": page.csrf, "email": EMAIL})
    assert sent.status == 200

    tampered = rig.browser()
    first = await tampered.get(url)
    [cookie] = [c for c in tampered.session.cookie_jar if c.key == "membot_browser"]
    forged = cookie.value[:-1] + ("A" if cookie.value[-1] != "A" else "B")
    tampered.session.cookie_jar.update_cookies({"membot_browser": forged},
                                               URL(rig.base + "/link"))
    refused = await tampered.post(first.action, {"csrf": first.csrf, "email": EMAIL})
    assert refused.status == 403
    assert len(rig.auth.mails_to(EMAIL)) == 1
