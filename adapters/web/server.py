"""The bot's web server (aiohttp): the account-linking pages, Slack's HTTP mode at
``/slack/events``, and what operators probe: ``/healthz``, ``/readyz`` and ``/metrics``.

One server per process; any number of processes can serve the same routes behind a load
balancer, since none keeps state outside Postgres.
"""

from __future__ import annotations

import asyncio
import errno
import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from adapters.web.linkpages import add_link_routes
from bot.errors import StartupError
from bot.linking.flow import Linking
from bot.metrics import Metrics
from bot.ports import Readiness

__all__ = ["build_web_app", "serve"]

log = logging.getLogger(__name__)


def build_web_app(
    *,
    linking: Linking | None = None,
    slack: AsyncApp | None = None,
    secure_cookies: bool = True,
    readiness: Readiness | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """The routes: ``GET /healthz`` always (the process is up; asks nothing of anyone); ``GET
    /readyz`` with ``readiness`` (200 when every check passes, else 503; the JSON body names
    each check and what failed, never a secret); ``GET /metrics`` with ``metrics`` (Prometheus
    text format); the link pages with ``linking``; ``POST /slack/events`` when Slack runs in
    HTTP mode (bolt checks each request's signature and timestamp and answers 401 to a bad
    one). ``secure_cookies`` is for an https public URL."""
    app = web.Application()
    if linking is not None:
        add_link_routes(app, linking, secure_cookie=secure_cookies)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)
    if readiness is not None:

        async def readyz(request: web.Request) -> web.Response:
            report = await readiness.report()
            checks = {name: problem or "ok" for name, problem in report.problems.items()}
            return web.json_response(
                {"status": "ready" if report.ready else "not ready", "failed": report.failed,
                 "checks": checks},
                status=200 if report.ready else 503,
                headers={"Cache-Control": "no-store"},
            )

        app.router.add_get("/readyz", readyz)
    if metrics is not None:

        async def scrape(request: web.Request) -> web.Response:
            body, content_type = metrics.exposition()
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.router.add_get("/metrics", scrape)
    if slack is not None:

        async def slack_events(request: web.Request) -> web.Response:
            bolt_response = await slack.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(bolt_response)

        app.router.add_post("/slack/events", slack_events)
    return app


async def serve(app: web.Application, host: str, port: int, *, setting: str = "PORT",
                announce: str | None = None) -> None:
    """Serve until cancelled, then stop accepting and close; ``announce`` is logged once the
    port is listened on. Raises :class:`StartupError`, in one sentence naming ``setting`` (the
    variable that chose ``port``), when the address is taken or cannot be listened on."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"Port {port} on {host} is already in use ({setting}): another membot "
                    f"process or another program listens there; stop it or set {setting} to a "
                    "free port."
                ) from None
            raise StartupError(
                f"Cannot listen on {host}:{port} ({setting}, WEB_HOST): {exc.strerror or exc}."
            ) from None
        if announce:
            log.info("%s", announce)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
