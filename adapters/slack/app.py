"""The Slack app: mentions in channels and threads, direct messages, ``/membot <command>`` and
the buttons under its answers.

One bolt ``AsyncApp`` serves both transports: Socket Mode (no public URL; the default) and HTTP
mode (events and interactions at ``/slack/events`` on the bot's web server, for replicas behind
a load balancer).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.events import action_event, command_event, reply_thread, to_event
from adapters.slack.files import send_files
from adapters.slack.messages import ACTION_PREFIX, Message, parse_value, render_messages
from bot.commands.registry import Commands
from bot.errors import ConfigError, StartupError
from bot.events import ChatEvent, MessageRef, Reply
from bot.ports import Handle
from bot.receipts import ReceiptRouter

__all__ = ["build_app", "check_token", "is_admin", "reaction_adder", "web_client"]

log = logging.getLogger(__name__)

WORKING = "eyes"  # the reaction that says "thinking", removed when the answer lands
EMOJI_NAMES = {"🧠": "brain", "👀": "eyes"}  # Slack reacts by name, not by character


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


def build_app(
    *,
    client: AsyncWebClient,
    handle: Handle,
    commands: Commands,
    signing_secret: str | None,
    slash_command: str = "/membot",
    receipts: ReceiptRouter | None = None,
) -> AsyncApp:
    """The bolt app. Events are acknowledged by bolt at once and answered afterwards; slash
    commands and button presses are acknowledged before any slow work, inside Slack's 3-second
    window. With ``receipts``, Slack's reactions are registered there for platform "slack"."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        # Socket Mode needs no signature; HTTP mode always checks it.
        request_verification_enabled=signing_secret is not None,
    )
    if receipts is not None:
        receipts.register("slack", reaction_adder(client))
    workspace = _Workspace(client)

    async def answer(body: dict[str, Any], context: dict[str, Any]) -> None:
        event = to_event(body, str(context.get("bot_user_id") or ""), await workspace.url())
        if event is None:
            return
        raw = body["event"]
        channel, ts = raw["channel"], raw["ts"]
        await _working(client, "reactions.add", channel, ts)
        try:
            reply = await handle(event)
            if reply is not None:
                await _post(client, raw, event, reply)
        finally:
            await _working(client, "reactions.remove", channel, ts)  # once the answer landed

    app.event("app_mention")(answer)
    app.event("message")(answer)

    async def run(event: ChatEvent, name: str, arguments: str, respond: AsyncRespond,
                  context: AsyncBoltContext, *, replacing: bool) -> None:
        """Run a command for ``event``'s author and answer privately through ``respond``;
        ``replacing``: the answer replaces the message whose button was pressed."""
        if commands.needs_admin(name):
            # The workspace the bot is installed in, as auth.test told bolt: not the payload's
            # team, which in a shared channel can be the person's own.
            installed = context.authorize_result.team_id if context.authorize_result else None
            admin = await is_admin(client, event.author_id, installed)
            event = replace(event, author_is_admin=admin)
        reply = await commands.run(event, name, arguments)
        if reply.files:
            asked = f"{slash_command} {name} {arguments}".strip()
            note = await send_files(client, event.author_id, reply.files, f"From `{asked}`:")
            reply = replace(reply, text=f"{reply.text}\n\n{note}")
        for n, message in enumerate(render_messages(reply, blocks=replacing)):
            await _respond(respond, message, replace_original=replacing and n == 0,
                           continuing=replacing and n > 0)

    async def run_command(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any],
                          context: AsyncBoltContext) -> None:
        await ack()  # first: Slack gives a command 3 seconds
        name, _, arguments = str(command.get("text") or "help").strip().partition(" ")
        await run(command_event(command), name or "help", arguments, respond, context,
                  replacing=False)

    async def press(ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any],
                    action: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()  # first: Slack gives an interaction 3 seconds
        name, arguments = parse_value(str(action.get("value") or ""))
        await run(action_event(body, action, slash_command), name or "help", arguments,
                  respond, context, replacing=True)

    app.command(slash_command)(run_command)
    app.action(re.compile(f"^{re.escape(ACTION_PREFIX)}"))(press)
    return app


async def is_admin(client: AsyncWebClient, user: str, workspace: str | None) -> bool:
    """Whether ``user`` is an admin or owner of ``workspace`` (``users.info``). The flags count
    only when the person's own team is ``workspace``: an admin of another organisation in a
    Slack Connect channel, or of another workspace of the same Enterprise Grid organisation, is
    no admin here. A failed lookup, or no ``workspace``, is logged and answers False: settings
    stay closed rather than open."""
    try:
        info = await client.users_info(user=user)
    except SlackApiError as exc:
        log.warning("users.info failed (%s); treated as no admin", exc.response.get("error"))
        return False
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("users.info failed (%s); treated as no admin", exc.__class__.__name__)
        return False
    person: Mapping[str, Any] = info.get("user") or {}
    flagged = any(bool(person.get(flag)) for flag in ("is_admin", "is_owner", "is_primary_owner"))
    if flagged and (not workspace or person.get("team_id") != workspace):
        log.info("an admin of another workspace is treated as no admin of this one")
        return False
    return flagged


def reaction_adder(client: AsyncWebClient) -> Callable[[MessageRef, str], Awaitable[None]]:
    """``react(source, emoji)`` for :class:`ReceiptRouter`: adds the reaction to the message.
    Already there counts as done; any other failure (and an emoji with no Slack name here)
    raises, for the router to log."""

    async def react(source: MessageRef, emoji: str) -> None:
        name = EMOJI_NAMES.get(emoji)
        if name is None:
            raise ValueError(f"no Slack name known for the emoji {emoji!r}")
        try:
            await client.reactions_add(channel=source.channel, timestamp=source.message,
                                       name=name)
        except SlackApiError as exc:
            if exc.response.get("error") != "already_reacted":
                raise

    return react


async def _post(client: AsyncWebClient, raw: Mapping[str, Any], event: ChatEvent,
                reply: Reply) -> None:
    """Answer a message where it was said; a private reply outside a DM only to its author
    (ephemeral). Files always go to the author's DM."""
    if reply.files:
        reply = replace(reply, text=f"{reply.text}\n\n"
                                    f"{await send_files(client, event.author_id, reply.files)}")
    ephemeral = reply.private and not event.is_direct
    for message in render_messages(reply):
        extra: dict[str, Any] = {"blocks": list(message.blocks)} if message.blocks else {}
        if ephemeral:
            await client.chat_postEphemeral(channel=raw["channel"], user=event.author_id,
                                            text=message.text, thread_ts=reply_thread(raw),
                                            **extra)
        else:
            await client.chat_postMessage(channel=raw["channel"], text=message.text,
                                          mrkdwn=True, thread_ts=reply_thread(raw), **extra)


async def _respond(respond: AsyncRespond, message: Message, *, replace_original: bool,
                   continuing: bool) -> None:
    """One private answer through a response URL; a refusal is logged (bolt does not raise)."""
    response = await respond(
        text=message.text,
        blocks=list(message.blocks) or None,
        response_type="ephemeral",
        # None leaves the field out: a slash command's answer is a new message anyway.
        replace_original=True if replace_original else (False if continuing else None),
    )
    if response.status_code != 200:
        log.warning("Slack refused an answer to a response URL: %s %s", response.status_code,
                    response.body)


async def _working(client: AsyncWebClient, method: str, channel: str, ts: str) -> None:
    """The working indicator; failing to show it never stops the answer."""
    try:
        await client.api_call(method, json={"channel": channel, "timestamp": ts, "name": WORKING})
    except Exception as exc:
        log.warning("%s failed: %s", method, exc)


class _Workspace:
    """The installed workspace's address (``auth.test``'s ``url``), asked once and kept: it
    makes messages' permalinks. Bolt's own single-team authorization does not keep it."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._url: str | None = None
        self._known = False

    async def url(self) -> str | None:
        """The address, or None while Slack cannot be asked (asked again next time)."""
        if not self._known:
            try:
                answer = await self._client.auth_test()
            except (SlackApiError, aiohttp.ClientError, OSError) as exc:
                log.warning("could not ask Slack for the workspace's address (%s); messages "
                            "are kept without links for now", exc.__class__.__name__)
                return None
            self._url, self._known = answer.get("url"), True
        return self._url
