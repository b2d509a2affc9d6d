"""The Slack app: mentions in channels and threads, direct messages, and ``/membot <command>``.

One bolt ``AsyncApp`` serves both transports: Socket Mode (no public URL; the default) and HTTP
mode (events at ``/slack/events`` on the bot's web server, for replicas behind a load balancer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from markdown_to_mrkdwn import SlackMarkdownConverter
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.events import reply_thread, to_event
from bot.chunks import split_message
from bot.commands import Commands
from bot.errors import ConfigError, StartupError
from bot.events import ChatEvent, Reply

__all__ = ["build_app", "check_token", "render", "web_client"]

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 3000  # Slack truncates block text at 3,000 characters; keep messages under it
WORKING = "eyes"  # the reaction that says "thinking", removed when the answer lands
Handle = Callable[[ChatEvent], Awaitable[Reply | None]]

_CONVERTER = SlackMarkdownConverter()


def _escape(text: str) -> str:
    """Slack's control characters, escaped as Slack asks: model text can never become a mention
    (``<!everyone>``, ``<@U…>``) or a link it did not write in Markdown."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(reply: Reply) -> list[str]:
    """A reply as Slack messages in mrkdwn, each under ``MESSAGE_LIMIT``."""
    text = _CONVERTER.convert(_escape(reply.text))
    if reply.notice:
        text = f"_{_escape(reply.notice)}_\n{text}"
    return split_message(text, MESSAGE_LIMIT)


def web_client(token: str, base_url: str | None = None) -> AsyncWebClient:
    """The Web API client, built once: rate limits (429) are waited out and retried."""
    client = AsyncWebClient(token=token, base_url=base_url or AsyncWebClient.BASE_URL)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    return client


async def check_token(client: AsyncWebClient) -> str:
    """Start-up check: Slack accepts ``SLACK_BOT_TOKEN``. Returns the team id. Raises
    :class:`ConfigError` or :class:`StartupError` in one sentence."""
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        raise ConfigError(
            f"Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error', 'error')})."
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise StartupError(f"Cannot reach Slack: {exc.__class__.__name__}.") from None
    return str(answer.get("team_id", ""))


def command_event(command: Mapping[str, Any]) -> ChatEvent:
    """The common event for ``/membot ...`` (trigger ids are unique per invocation)."""
    team, user, channel = command["team_id"], command["user_id"], command["channel_id"]
    return ChatEvent(
        event_id=f"slack:command:{command.get('trigger_id') or datetime.now(UTC).isoformat()}",
        platform="slack",
        author_id=user,
        author_name=command.get("user_name") or user,
        text=f"{command.get('command', '/membot')} {command.get('text', '')}".strip(),
        conversation_id=f"slack:{team}:{channel}:{user}",
        identity_scope=team,
        workspace_id=team,
        channel_id=channel,
        is_direct=str(channel).startswith("D"),
    )


def build_app(
    *,
    client: AsyncWebClient,
    handle: Handle,
    commands: Commands,
    signing_secret: str | None,
    slash_command: str = "/membot",
) -> AsyncApp:
    """The bolt app. Events are acknowledged by bolt at once and answered afterwards; the slash
    command is acknowledged before any slow work, inside Slack's 3-second window."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        # Socket Mode needs no signature; HTTP mode always checks it.
        request_verification_enabled=signing_secret is not None,
    )

    async def answer(body: dict[str, Any], context: dict[str, Any]) -> None:
        event = to_event(body, str(context.get("bot_user_id") or ""))
        if event is None:
            return
        raw = body["event"]
        channel, ts = raw["channel"], raw["ts"]
        await _react(client, "reactions.add", channel, ts)
        try:
            reply = await handle(event)
            for piece in render(reply) if reply is not None else []:
                await client.chat_postMessage(channel=channel, text=piece, mrkdwn=True,
                                              thread_ts=reply_thread(raw))
        finally:
            await _react(client, "reactions.remove", channel, ts)  # once the answer has landed

    app.event("app_mention")(answer)
    app.event("message")(answer)

    async def run_command(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        await ack()  # first: Slack gives a command 3 seconds
        name, _, arguments = str(command.get("text") or "help").strip().partition(" ")
        reply = await commands.run(command_event(command), name or "help", arguments)
        for piece in render(reply):
            await respond(text=piece, response_type="ephemeral")

    app.command(slash_command)(run_command)
    return app


async def _react(client: AsyncWebClient, method: str, channel: str, ts: str) -> None:
    """The working indicator; failing to show it never stops the answer."""
    try:
        await client.api_call(method, json={"channel": channel, "timestamp": ts, "name": WORKING})
    except Exception as exc:
        log.warning("%s failed: %s", method, exc)
