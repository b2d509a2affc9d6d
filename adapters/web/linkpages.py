"""The account-linking pages: plain HTML forms that work without JavaScript.

``GET`` pages only read. Every ``POST`` needs the browser cookie this server set and the form's
CSRF token made from it; the cookie is also what binds a link request to one browser. The
cookie's value is the server's own (random, signed with the site key): one the client made up
counts as no cookie. Pages are
never cached, never sent in a Referer (their URLs carry the one-time token) and never framed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

import jinja2
from aiohttp import web

from bot.linking.flow import Linking
from bot.linking.steps import LinkProblem, platform_label

__all__ = ["add_link_routes"]

log = logging.getLogger(__name__)

BROWSER_COOKIE = "membot_browser"

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Pages:
    def __init__(self, linking: Linking, *, secure_cookie: bool) -> None:
        self._linking = linking
        self._secure = secure_cookie
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("adapters.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def _render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        body = self._templates.get_template(name).render(**context)
        return web.Response(text=body, status=status, content_type="text/html",
                            charset="utf-8", headers=_SECURITY_HEADERS)

    def _problem(self, problem: LinkProblem) -> web.Response:
        titles = {"email_limit": "Please wait a moment", "auth_down": "Please try again soon"}
        title = titles.get(problem.problem.value, "This link can't be used")
        return self._render("problem.html", problem.status, title=title, message=problem.message)

    async def _known_browser(self, request: web.Request) -> str:
        """The browser's cookie if this server issued it, else "" (no cookie)."""
        return await self._linking.known_browser(request.cookies.get(BROWSER_COOKIE, "")) or ""

    async def _browser(self, request: web.Request) -> tuple[str, bool]:
        """The browser's cookie, and whether it is new (to be set on the response): a cookie
        this server did not issue is replaced by one it does."""
        if known := await self._known_browser(request):
            return known, False
        return await self._linking.new_browser(), True

    def _set_browser(self, response: web.Response, browser: str) -> None:
        response.set_cookie(BROWSER_COOKIE, browser, path="/link", max_age=86400,
                            httponly=True, samesite="Lax", secure=self._secure)

    async def _form(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """The cookie and the fields of a POST whose CSRF token matches it; else LinkProblem."""
        form = await request.post()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        browser = await self._known_browser(request)
        await self._linking.check_csrf(browser, fields.get("csrf", ""))
        return browser, fields

    async def link_page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        browser, new = await self._browser(request)
        try:
            page = await self._linking.page(token)
        except LinkProblem as problem:
            return self._problem(problem)
        response = self._render(
            "link.html",
            title=f"Link your {platform_label(page.platform)} account",
            platform=platform_label(page.platform),
            account_name=page.account_name,
            email_hint=page.email_hint,
            minutes_left=page.minutes_left,
            action=f"/link/{token}",
            csrf=await self._linking.csrf_token(browser),
        )
        if new:
            self._set_browser(response, browser)
        return response

    async def send_email(self, request: web.Request) -> web.Response:
        try:
            browser, fields = await self._form(request)
            sent = await self._linking.send_email(
                request.match_info["token"], browser, fields.get("email", "")
            )
        except LinkProblem as problem:
            return self._problem(problem)
        return self._render("sent.html", title="Check your email", email_hint=sent.email_hint,
                            if_known=sent.if_known)

    async def confirm_page(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        if "error" in request.query or "error_code" in request.query:
            # The value is the requester's to choose: quoted, and no longer than a real code.
            log.info("a login link came back with %r",
                     request.query.get("error_code", "error")[:40])
            return self._render(
                "problem.html", 410, title="This login link didn't work",
                message="The login link in that email has expired or was already used. Go back "
                "to the page membot linked you to and send a new email.",
            )
        browser = await self._known_browser(request)
        try:
            page = await self._linking.confirm_page(request_id, browser,
                                                    request.query.get("code", ""))
        except LinkProblem as problem:
            return self._problem(problem)
        return self._render(
            "confirm.html",
            title="Confirm the link",
            platform=platform_label(page.platform),
            account_name=page.account_name,
            code=page.code,
            action=f"/link/confirm/{page.request_id}",
            csrf=await self._linking.csrf_token(browser),
        )

    async def confirm(self, request: web.Request) -> web.Response:
        try:
            browser, fields = await self._form(request)
            page = await self._linking.confirm(
                request.match_info["request_id"], browser, fields.get("code", "")
            )
        except LinkProblem as problem:
            return self._problem(problem)
        return self._render(
            "code.html",
            title="Send this code in chat",
            code=page.code,
            platform=platform_label(page.platform),
            account_name=page.account_name,
            command=page.command,
            where="the terminal" if page.platform == "console" else platform_label(page.platform),
            minutes_left=page.minutes_left,
        )


def add_link_routes(app: web.Application, linking: Linking, *, secure_cookie: bool) -> None:
    """``/link/<token>`` (GET the page, POST the email) and ``/link/confirm/<request id>`` (GET
    the Confirm button Supabase's email leads to, POST the confirmation)."""
    pages = _Pages(linking, secure_cookie=secure_cookie)
    app.router.add_get("/link/confirm/{request_id}", pages.confirm_page)
    app.router.add_post("/link/confirm/{request_id}", pages.confirm)
    app.router.add_get("/link/{token}", pages.link_page)
    app.router.add_post("/link/{token}", pages.send_email)
    app.router.add_static("/static", str(files("adapters.web") / "static"))
