"""The account-linking pages in a real browser: Debian's headless Chromium, driven by Playwright
(no browser download), walks the whole flow on a phone-sized screen with JavaScript turned off,
and full-page screenshots of each page are saved as test artifacts.

CI installs ``chromium`` from Debian (see ``.ci/run``); without it these tests fail, not skip.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import (
    ConsoleMessage,
    Page,
    Request,
    Response,
    ViewportSize,
    async_playwright,
    expect,
)

from bot.config import Settings
from tests.linkrig import LinkRig

MakeSettings = Callable[..., Settings]

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say: without the background-networking flags Chromium keeps trying to
# reach Google's hosts, which this closed network refuses. Playwright's launch() gives every
# browser a new, empty --user-data-dir of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = ViewportSize(width=390, height=844)
EMAIL = "alice@example.com"
TIMEOUT_MS = 5_000
ACCENT = "rgb(79, 70, 229)"  # --accent in link.css: proof the stylesheet got past the CSP


def artifacts() -> Path:
    folder = Path(os.environ.get("MEMBOT_TEST_ARTIFACTS", "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@asynccontextmanager
async def phone() -> AsyncIterator[Page]:
    """A page in Debian's Chromium under Playwright, in a new context the size of a phone, with
    JavaScript off. No Chromium fails the test (CI installs it); nothing is downloaded."""
    if not await asyncio.to_thread(CHROMIUM.exists):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y "
                    "chromium), as .ci/run does; these tests never download a browser")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(
                java_script_enabled=False, viewport=PHONE, is_mobile=True, has_touch=True,
                device_scale_factor=2,
            )
            context.set_default_timeout(TIMEOUT_MS)
            yield await context.new_page()
        finally:
            await browser.close()



class Watched:
    """A page whose failed requests, error responses and console errors are collected."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("console", self._console)

    def _failed(self, request: Request) -> None:
        self.problems.append(f"failed: {request.method} {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"{response.status}: {response.request.method} {response.url}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")


async def check_fits_the_phone(page: Page, name: str) -> None:
    """No horizontal scrolling at 390 CSS pixels, and the stylesheet is applied. (The test's own
    evaluate() runs even with the page's JavaScript off; the page's scripts don't.)"""
    inner, document, body = await page.evaluate(
        "[innerWidth, document.scrollingElement.scrollWidth, document.body.scrollWidth]"
    )
    # With is_mobile a page wider than the screen is zoomed out, which widens innerWidth too.
    assert inner == PHONE["width"] and max(document, body) <= inner, (
        f"{name} scrolls sideways on a {PHONE['width']}px-wide phone: innerWidth {inner}, "
        f"scrollWidth {document} (document), {body} (body)"
    )
    await expect(page.locator(".brand")).to_have_css("color", ACCENT)


async def screenshot(page: Page, name: str) -> None:
    await page.screenshot(path=artifacts() / f"link-flow-{name}.png", full_page=True)


async def test_the_link_pages_work_in_chromium_on_a_phone_without_javascript(
    rig: LinkRig,
) -> None:
    url = await rig.link_url("alice")
    async with phone() as page:
        watched = Watched(page)

        # The page the link command gives: which account, and a labelled email field.
        response = await page.goto(url)
        assert response is not None and response.status == 200
        await expect(page).to_have_title(re.compile(r"^Link your terminal account · membot$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Link your terminal account")
        await expect(page.locator("main")).to_contain_text("terminal account alice")
        email = page.get_by_label("Your email address")
        await expect(email).to_be_visible()
        await expect(email).to_have_attribute("type", "email")
        await expect(email).to_have_accessible_description(re.compile("send you a link to log in"))
        send = page.get_by_role("button", name="Email me a login link")
        await expect(send).to_be_visible()
        box = await send.bounding_box()
        assert box is not None and box["height"] >= 44, f"tap target too small: {box}"
        await check_fits_the_phone(page, "email page")
        await email.fill(EMAIL)
        await screenshot(page, "email")
        await send.click()

        # "Check your email", with the address hidden but recognisable.
        await expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
        await expect(page.get_by_role("status")).to_contain_text("a***@example.com")
        await check_fits_the_phone(page, "sent page")
        await screenshot(page, "sent")

        # The email's link goes to the stand-in, whose 303 brings the browser back to confirm.
        mail = await rig.auth.wait_for_mail_async(EMAIL)
        assert mail.link.startswith(rig.auth.url)
        response = await page.goto(mail.link)
        assert response is not None and response.status == 200
        assert page.url.startswith(f"{rig.base}/link/confirm/"), page.url
        await expect(page.get_by_role("heading", level=1)).to_have_text("Confirm the link")
        await expect(page.locator("main")).to_contain_text("terminal account alice")
        await check_fits_the_phone(page, "confirm page")
        await screenshot(page, "confirm")
        await page.get_by_role("button", name="Confirm and show my code").click()

        # The code, and the command to type in chat.
        await expect(page.get_by_role("heading", level=1)).to_have_text("Send this code in chat")
        code = (await page.locator("#code").inner_text()).strip()
        assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code), code
        await expect(page.locator("main code")).to_have_text(re.compile(rf"link {code}$"))
        await check_fits_the_phone(page, "code page")
        await screenshot(page, "code")
        assert watched.problems == []

    reply = await rig.command("alice", "link", code)
    assert reply.text.startswith("Linked"), reply.text
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None and await rig.app.links.owner_of("console:alice") == user.id


async def test_the_browser_checks_the_email_field_before_anything_is_sent(rig: LinkRig) -> None:
    """The form's own validation (no JavaScript): an empty or malformed address never leaves
    the browser, and Enter in the field submits like the button does."""
    url = await rig.link_url("alice")
    async with phone() as page:
        await page.goto(url)
        email = page.get_by_label("Your email address")
        send = page.get_by_role("button", name="Email me a login link")
        for typed in ("", "not an address"):
            await email.fill(typed)
            await send.click()
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Link your terminal account")
            assert not await email.evaluate("field => field.validity.valid")
        assert rig.auth.calls("POST /otp") == []
        await email.fill(EMAIL)
        await email.press("Enter")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
        assert len(rig.auth.calls("POST /otp")) == 1
