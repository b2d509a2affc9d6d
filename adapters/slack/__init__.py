"""The Slack adapter. ``events`` maps Events API bodies, slash commands and button presses to the
common event and ``messages`` renders replies as mrkdwn and Block Kit, both without I/O; ``app``
is the bolt app (answers, the slash command, buttons, receipts, admin lookups) and ``files``
sends files to a person's DM; ``run_socket_mode`` connects it over Socket Mode, and
``adapters.web`` serves it in HTTP mode."""

from __future__ import annotations

import asyncio

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import build_app, check_token, web_client
from adapters.slack.events import to_event
from adapters.slack.messages import render
from bot.errors import ConfigError

__all__ = ["build_app", "check_token", "render", "run_socket_mode", "to_event", "web_client"]


async def run_socket_mode(app: AsyncApp, app_token: str) -> None:
    """Serve over Socket Mode (no public URL needed) until cancelled. Raises
    :class:`ConfigError` when Slack refuses the app token (the SDK's own client would retry a
    refused token forever, so it is checked once here first)."""
    try:
        await AsyncWebClient(token=app_token, base_url=app.client.base_url).apps_connections_open(
            app_token=app_token
        )
    except SlackApiError as exc:
        raise ConfigError(
            f"Slack rejected SLACK_APP_TOKEN ({exc.response.get('error', 'error')}); it needs "
            "the connections:write scope."
        ) from None
    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await asyncio.Event().wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
