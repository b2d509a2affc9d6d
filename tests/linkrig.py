"""A bot with account linking on the real stack, for tests: the composition root on embedded
Postgres, its web server on a real port, supabase-py talking to the Supabase Auth stand-in, and
browsers that are aiohttp sessions with their own cookie jars."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from adapters.console import to_event
from adapters.web import build_web_app
from bot.app import Services, services
from bot.config import Settings
from bot.events import ChatEvent, Reply
from tests.conftest import serve_web
from tests.fakes.supabase import FakeSupabaseAuth

__all__ = ["LOGINS", "Browser", "LinkRig", "Page", "free_port", "link_rig"]

_URL = re.compile(r"https?://\S+")
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
_CODE = re.compile(r'<span id="code" aria-hidden="true">([A-Z0-9]{4}-[A-Z0-9]{4})<')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Page:
    status: int
    text: str
    url: str
    headers: dict[str, str]

    @property
    def csrf(self) -> str:
        found = _CSRF.search(self.text)
        assert found, f"no CSRF field on the page:\n{self.text}"
        return found.group(1)

    @property
    def action(self) -> str:
        found = _ACTION.search(self.text)
        assert found, f"no form on the page:\n{self.text}"
        return found.group(1)

    @property
    def code(self) -> str:
        found = _CODE.search(self.text)
        assert found, f"no code on the page:\n{self.text}"
        return found.group(1)


class Browser:
    """One browser: its own cookies, following redirects like a person's browser would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    def _url(self, url: str) -> str:
        return url if url.startswith("http") else self.base + url

    async def get(self, url: str, *, follow: bool = True) -> Page:
        async with self.session.get(self._url(url), allow_redirects=follow) as response:
            return Page(response.status, await response.text(), str(response.url),
                        dict(response.headers))

    async def post(self, url: str, fields: dict[str, str]) -> Page:
        async with self.session.post(self._url(url), data=fields,
                                     allow_redirects=False) as response:
            return Page(response.status, await response.text(), str(response.url),
                        dict(response.headers))

    async def close(self) -> None:
        await self.session.close()


class LinkRig:
    """The running bot and the Supabase stand-in, with the steps a person takes."""

    def __init__(self, app: Services, auth: FakeSupabaseAuth, base: str) -> None:
        self.app = app
        self.auth = auth
        self.base = base
        self._browsers: list[Browser] = []
        self._turns = 0

    def browser(self) -> Browser:
        browser = Browser(self.base)
        self._browsers.append(browser)
        return browser

    async def command(self, user: str, name: str, arguments: str = "") -> Reply:
        return await self.app.commands.run(self.event(user, ""), name, arguments)

    def event(self, user: str, text: str) -> ChatEvent:
        self._turns += 1
        return to_event(user, text, session=f"{user}-{self._turns}")

    async def link_url(self, user: str) -> str:
        reply = await self.command(user, "link")
        found = _URL.search(reply.text)
        assert found, reply.text
        return found.group(0)

    async def email_sent(self, browser: Browser, url: str, email: str) -> Page:
        page = await browser.get(url)
        assert page.status == 200, page.text
        return await browser.post(page.action, {"csrf": page.csrf, "email": email})

    async def confirm_page(self, browser: Browser, email: str, count: int = 1) -> Page:
        """Open the newest login email's link in ``browser`` and land on the confirm page."""
        mail = await self.auth.wait_for_mail_async(email, count=count)
        return await browser.get(mail.link)

    async def confirm(self, browser: Browser, confirm: Page) -> Page:
        """Press Confirm on the confirm page (posting the login code it carries)."""
        return await browser.post(confirm.action, {"csrf": confirm.csrf,
                                                   "code": _field(confirm.text, "code")})

    async def code_page(self, browser: Browser, url: str, email: str) -> Page:
        """Walk the pages from the one-time ``url`` as the owner of ``email``: the email, the
        login link back (through the stand-in's 303), Confirm. The page with the code."""
        count = len(self.auth.mails_to(email)) + 1
        if count > 1:
            self.auth.advance(61)  # Supabase sends one email a minute per address
        sent = await self.email_sent(browser, url, email)
        assert sent.status == 200, sent.text
        confirm = await self.confirm_page(browser, email, count)
        assert confirm.status == 200, confirm.text
        shown = await self.confirm(browser, confirm)
        assert shown.status == 200, shown.text
        return shown

    async def code_for(self, user: str, email: str) -> str:
        """The code the pages show ``user`` as the owner of ``email``, in a new browser."""
        return (await self.code_page(self.browser(), await self.link_url(user), email)).code

    async def linked(self, user: str, email: str) -> Reply:
        return await self.command(user, "link", await self.code_for(user, email))

    async def close(self) -> None:
        for browser in self._browsers:
            await browser.close()


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name}"
    return found.group(1)


LOGINS = ("alice@example.com", "work@example.com")


@asynccontextmanager
async def link_rig(
    make_settings: Callable[..., Settings], database_url: str, *,
    logins: Sequence[str] = LOGINS, **overrides: Any
) -> AsyncIterator[LinkRig]:
    """Start the stand-in (it makes ``auth.users``, as Supabase has) with a user for each of
    ``logins`` (the bot creates none by default), then the bot and its web server on a free
    port that ``PUBLIC_URL`` names."""
    with FakeSupabaseAuth(database_url=database_url) as auth:
        for email in logins:
            auth.add_user(email)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = make_settings(
            supabase_url=auth.url,
            supabase_key=SecretStr(auth.service_key),
            public_url_setting=base,
            **overrides,
        )
        async with services(settings) as app:
            runner, _ = await serve_web(
                build_web_app(linking=app.linking, secure_cookies=False), port
            )
            rig = LinkRig(app, auth, base)
            try:
                yield rig
            finally:
                await rig.close()
                await runner.cleanup()
