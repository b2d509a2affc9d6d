"""The bot's web server (aiohttp): Slack's HTTP mode at ``/slack/events`` and ``/healthz``.

The account-linking pages will live here too. One server per process; any number of processes
can serve the same routes behind a load balancer, since none keeps state outside Postgres.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

__all__ = ["build_web_app", "serve"]


def build_web_app(slack: AsyncApp | None = None) -> web.Application:
    """The routes: ``GET /healthz`` always; ``POST /slack/events`` when Slack runs in HTTP mode
    (bolt checks each request's signature and timestamp and answers 401 to a bad one)."""
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)
    if slack is not None:

        async def slack_events(request: web.Request) -> web.Response:
            bolt_response = await slack.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(bolt_response)

        app.router.add_post("/slack/events", slack_events)
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until cancelled, then stop accepting and close."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
