"""The Slack app: mentions in channels and threads, direct messages, the assistant panel,
``/membot <command>`` and the buttons under its answers. Answers stream as they are written
(``streaming``).

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
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.events import action_event, command_event, reply_thread, to_event
from adapters.slack.files import send_files
from adapters.slack.messages import ACTION_PREFIX, Message, parse_value, render_messages
from adapters.slack.streaming import Place, SlackStream, StreamSupport
from bot.commands.registry import Commands
from bot.errors import ConfigError, StartupError
from bot.events import ChatEvent, MessageRef, Reply
from bot.ports import Handle
from bot.receipts import ReceiptRouter

__all__ = ["build_app", "check_token", "is_admin", "reaction_adder", "web_client"]

log = logging.getLogger(__name__)

WORKING = "eyes"  # the reaction that says "thinking", removed when the answer lands
EMOJI_NAMES = {"🧠": "brain", "👀": "eyes"}  # Slack reacts by name, not by character
THINKING = "is thinking…"  # the assistant panel's status line while it thinks
PROMPTS_TITLE = "Try asking"
TITLE_LIMIT = 60


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
    streaming = StreamSupport()

    async def reply_streaming(raw: Mapping[str, Any], event: ChatEvent) -> None:
        """Answer ``event`` where it was said, shown as it is written."""
        place = Place(channel=str(raw["channel"]), thread_ts=reply_thread(raw),
                      user=event.author_id, team=event.identity_scope or "")
        stream = SlackStream(client, place, streaming)
        reply = await handle(event, stream)
        if reply is not None and not await stream.finish(reply):
            await _post(client, raw, event, reply)

    async def answer(body: dict[str, Any], context: dict[str, Any]) -> None:
        event = to_event(body, str(context.get("bot_user_id") or ""), await workspace.url())
        if event is None:
            return
        raw = body["event"]
        channel, ts = raw["channel"], raw["ts"]
        await _working(client, "reactions.add", channel, ts)
        try:
            await reply_streaming(raw, event)
        finally:
            await _working(client, "reactions.remove", channel, ts)  # once the answer landed

    app.event("app_mention")(answer)
    app.event("message")(answer)

    async def with_admin(event: ChatEvent, name: str, context: AsyncBoltContext) -> ChatEvent:
        """``event`` with ``author_is_admin`` filled in when command ``name`` needs it."""
        if not commands.needs_admin(name):
            return event
        # The workspace the bot is installed in, as auth.test told bolt: not the payload's
        # team, which in a shared channel can be the person's own.
        installed = context.authorize_result.team_id if context.authorize_result else None
        return replace(event, author_is_admin=await is_admin(client, event.author_id, installed))

    # The assistant panel: a thread in the person's DM with the app, whose messages come as
    # DM messages in that thread (bolt's Assistant middleware routes them here, and only
    # here). Memory works as in any DM; commands are typed ("/membot memory list").
    assistant = AsyncAssistant()

    async def thread_started(payload: dict[str, Any]) -> None:
        thread = payload["assistant_thread"]
        await _assisting(client.assistant_threads_setSuggestedPrompts(
            channel_id=thread["channel_id"], thread_ts=thread["thread_ts"],
            title=PROMPTS_TITLE, prompts=suggested_prompts(slash_command)))

    async def user_message(body: dict[str, Any], context: AsyncBoltContext) -> None:
        event = to_event(body, str(context.get("bot_user_id") or ""), await workspace.url())
        if event is None:
            return
        raw = body["event"]
        channel, thread = str(raw["channel"]), str(raw["thread_ts"])
        typed = typed_command(event.text, slash_command, {c.name for c in commands.all})
        if typed is not None:
            name, arguments = typed
            reply = await commands.run(await with_admin(event, name, context), name, arguments)
            await _post(client, raw, event, reply)
            return
        status = await _assisting(client.assistant_threads_setStatus(
            channel_id=channel, thread_ts=thread, status=THINKING))
        if not status:  # a DM thread outside the panel: the 👀, as for any message
            await answer(body, dict(context))
            return
        if await _first_question(client, channel, thread, str(context.get("bot_user_id"))):
            await _assisting(client.assistant_threads_setTitle(
                channel_id=channel, thread_ts=thread, title=_title(event.text)))
        try:
            await reply_streaming(raw, event)
        finally:  # Slack clears the status when the answer comes; not when none does
            await _assisting(client.assistant_threads_setStatus(
                channel_id=channel, thread_ts=thread, status=""))

    assistant.thread_started(thread_started)
    assistant.user_message(user_message)
    app.assistant(assistant)

    async def run(event: ChatEvent, name: str, arguments: str, respond: AsyncRespond,
                  context: AsyncBoltContext, *, replacing: bool) -> None:
        """Run a command for ``event``'s author and answer privately through ``respond``;
        ``replacing``: the answer replaces the message whose button was pressed."""
        reply = await commands.run(await with_admin(event, name, context), name, arguments)
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


def suggested_prompts(slash_command: str = "/membot") -> list[dict[str, str]]:
    """The prompts the assistant panel offers when a thread starts (Slack shows up to four)."""
    return [
        {"title": "What do you remember about me?", "message": "What do you remember about me?"},
        {"title": "List my memories", "message": f"{slash_command} memory list"},
        {"title": "How does membot work?", "message": f"{slash_command} help"},
    ]


def typed_command(text: str, slash_command: str, names: set[str]) -> tuple[str, str] | None:
    """``(name, arguments)`` when a message in the assistant panel is a command typed out:
    ``/membot memory list`` (Slack runs no slash commands there), or ``/memory list`` for one
    of ``names``. Anything else is a message."""
    words = text.strip()
    if words.lower().startswith(slash_command + " ") or words.lower() == slash_command:
        name, _, arguments = words[len(slash_command):].strip().partition(" ")
        return (name or "help"), arguments.strip()
    if words.startswith("/"):
        name, _, arguments = words[1:].partition(" ")
        if name.lower() in names:
            return name.lower(), arguments.strip()
    return None


def _title(text: str) -> str:
    """A thread's title from its first question."""
    words = " ".join(text.split())
    return words if len(words) <= TITLE_LIMIT else words[:TITLE_LIMIT - 1].rstrip() + "…"


async def _first_question(client: AsyncWebClient, channel: str, thread_ts: str,
                          bot_user_id: str) -> bool:
    """Whether the thread has no answer from the bot yet (so its title is still to be set).
    If that cannot be read, False: a thread keeps the title it has."""
    try:
        replies = await client.conversations_replies(channel=channel, ts=thread_ts, limit=50)
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
        log.info("reading the assistant thread failed (%s); its title stays", exc)
        return False
    return not any(m.get("user") == bot_user_id for m in replies.get("messages") or [])


async def _assisting(call: Awaitable[Any]) -> bool:
    """An assistant panel call (status, title, prompts): best effort, never stops an answer.
    False when Slack refused it (a thread outside the panel) or could not be reached."""
    try:
        await call
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
        log.info("an assistant.threads call failed: %s", exc)
        return False
    return True


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
