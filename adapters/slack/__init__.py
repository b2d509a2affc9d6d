"""The Slack adapter. ``events`` maps Events API bodies to the common event without I/O; ``app``
is the bolt app (answers, the slash command, rendering to mrkdwn); ``run_socket_mode`` connects
it over Socket Mode, and ``adapters.web`` serves it in HTTP mode."""

from __future__ import annotations

import asyncio

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from adapters.slack.app import build_app, render, web_client
from adapters.slack.events import to_event

__all__ = ["build_app", "render", "run_socket_mode", "to_event", "web_client"]


async def run_socket_mode(app: AsyncApp, app_token: str) -> None:
    """Serve over Socket Mode (no public URL needed) until cancelled."""
    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await asyncio.Event().wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
