"""Slack-shaped values for the fake: ids, timestamps, users, and the payloads Slack sends to apps.

Everything here is plain data and pure functions, plus `PayloadBuilders`, which fills in one
team, app and bot (`server.FakeSlack` is one). Shapes follow Slack's documentation of the
Events API (`event_callback`), slash commands (form fields), interactive `block_actions`
payloads and Web API objects, with the fields slack-bolt 1.30 reads.
"""

from __future__ import annotations

import itertools
import json
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

Json = dict[str, Any]
_lock = threading.Lock()
_ts_counter = itertools.count(100)
_ALNUM = string.ascii_uppercase + string.digits


def new_ts() -> str:
    """A new, unique, increasing message timestamp in Slack's "1700000000.000100" form."""
    with _lock:
        n = next(_ts_counter)
    return f"{1_700_000_000 + n // 1_000_000}.{n % 1_000_000:06d}"


def dm_channel_id(user_id: str) -> str:
    """The id of the bot's DM channel with a user (stable per user)."""
    return "D" + user_id[1:].rjust(9, "0")


def slack_id(prefix: str, length: int = 10) -> str:
    """A random Slack-style id: `prefix` ("U", "C", "Ev", ...) then capitals and digits."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def trigger_id() -> str:
    """A trigger id shaped like Slack's ("13345224609.738474920.8088930838d88f008e0")."""
    return f"{secrets.randbelow(10**11)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived, and how the fake answered it.

    `kind` is the Web API method ("chat.postMessage", ...), "response_url" for a POST to a
    slash command's response URL, or for Socket Mode "socket.connect" and "socket.ack". `body`
    holds the request's arguments: query string, form fields and JSON merged (for an ack, the
    JSON frame). `status` is the HTTP status, `error` Slack's error string if `ok` was false,
    `path` the URL path, `response` the JSON answered.
    """

    kind: str
    body: Json
    at: float
    path: str = ""
    status: int = 200
    error: str | None = None
    token: str | None = None
    response: Json | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass(frozen=True)
class UploadedFile:
    """A file shared through files.getUploadURLExternal, the upload URL and
    files.completeUploadExternal: what a person would see in `channel`."""

    id: str
    filename: str
    title: str
    content: bytes
    channel: str | None
    initial_comment: str | None = None
    thread_ts: str | None = None


@dataclass(frozen=True)
class FakeSlackUser:
    """A workspace member, as `users.info` describes it."""

    id: str
    name: str
    real_name: str = ""
    display_name: str = ""
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    is_bot: bool = False
    tz: str = "Europe/London"
    extra: Json = field(default_factory=dict)

    def payload(self, team_id: str) -> Json:
        real = self.real_name or self.name
        return {
            "id": self.id, "team_id": team_id, "name": self.name, "deleted": False,
            "real_name": real, "tz": self.tz, "tz_offset": 0,
            "profile": {"real_name": real, "display_name": self.display_name or self.name,
                        "real_name_normalized": real, "team": team_id},
            "is_admin": self.is_admin, "is_owner": self.is_owner,
            "is_primary_owner": self.is_primary_owner, "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot, "is_app_user": False, "updated": int(time.time()),
            **self.extra,
        }


def event_callback(event: Json, *, team_id: str, api_app_id: str, bot_user_id: str,
                   token: str = "fake-verification-token") -> Json:
    """The Events API wrapper Slack POSTs (or sends in a Socket Mode envelope) for an event."""
    return {
        "token": token,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": slack_id("Ev"),
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_urlsafe(24),
    }


def _rich_text(text: str) -> list[Json]:
    return [{"type": "rich_text", "block_id": slack_id("", 5), "elements": [
        {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}]


def user_message(text: str, user: str, channel: str, *, team_id: str, ts: str | None = None,
                 thread_ts: str | None = None, event_type: str = "message",
                 channel_type: str | None = None) -> Json:
    """A message by a person: the `event` of `message.*` and (with `event_type`) app_mention."""
    ts = ts or new_ts()
    event: Json = {"type": event_type, "user": user, "text": text, "ts": ts, "channel": channel,
                   "event_ts": ts, "team": team_id, "client_msg_id": str(uuid.uuid4()),
                   "blocks": _rich_text(text)}
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    if channel_type is not None:
        event["channel_type"] = channel_type
    return event


def bot_message_event(text: str, bot_id: str, channel: str, *, username: str = "otherbot",
                      ts: str | None = None, thread_ts: str | None = None,
                      channel_type: str = "channel") -> Json:
    """A message by another app (subtype "bot_message", no `user`)."""
    ts = ts or new_ts()
    event: Json = {"type": "message", "subtype": "bot_message", "text": text, "ts": ts,
                   "bot_id": bot_id, "username": username, "channel": channel, "event_ts": ts,
                   "channel_type": channel_type}
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def message_changed_event(text: str, previous_text: str, user: str, channel: str, *,
                          ts: str, channel_type: str = "channel") -> Json:
    """An edit of the message `ts` (subtype "message_changed", hidden)."""
    event_ts = new_ts()
    return {
        "type": "message", "subtype": "message_changed", "hidden": True, "channel": channel,
        "ts": event_ts, "event_ts": event_ts, "channel_type": channel_type,
        "message": {"type": "message", "user": user, "text": text, "ts": ts,
                    "edited": {"user": user, "ts": event_ts}},
        "previous_message": {"type": "message", "user": user, "text": previous_text, "ts": ts},
    }


def slash_command_fields(command: str, text: str, user_id: str, channel_id: str, *,
                         team_id: str, api_app_id: str, response_url: str,
                         trigger: str | None = None, user_name: str = "alice",
                         channel_name: str = "general",
                         token: str = "fake-verification-token") -> dict[str, str]:
    """The form fields Slack POSTs for a slash command (also the Socket Mode payload)."""
    return {
        "token": token, "team_id": team_id, "team_domain": "fake-team",
        "channel_id": channel_id, "channel_name": channel_name,
        "user_id": user_id, "user_name": user_name, "command": command, "text": text,
        "api_app_id": api_app_id, "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": trigger or trigger_id(),
    }


def block_actions_payload(button: Json, *, block_id: str, user: FakeSlackUser, team_id: str,
                          api_app_id: str, channel_id: str, channel_name: str,
                          response_url: str, message_ts: str, is_ephemeral: bool = True,
                          message: Json | None = None, trigger: str | None = None,
                          token: str = "fake-verification-token") -> Json:
    """The `block_actions` payload Slack sends when `user` presses `button` (a button element as
    the app sent it) in block `block_id` of a message. An ephemeral message is not echoed back
    (`container.is_ephemeral`, no `message`); any other message is, as `message`."""
    action: Json = {"action_id": button.get("action_id") or slack_id("", 5), "block_id": block_id,
                    "text": button.get("text", {"type": "plain_text", "text": ""}),
                    "type": "button", "action_ts": new_ts()}
    for key in ("value", "style", "url"):
        if key in button:
            action[key] = button[key]
    payload: Json = {
        "type": "block_actions",
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": team_id},
        "api_app_id": api_app_id, "token": token,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                      "is_ephemeral": is_ephemeral},
        "trigger_id": trigger or trigger_id(),
        "team": {"id": team_id, "domain": "fake-team"}, "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    if not is_ephemeral:
        payload["message"] = message or {"type": "message", "ts": message_ts, "text": ""}
    return payload


def find_button(blocks: list[Json], label: str) -> tuple[Json, str]:
    """The button labelled `label` in a message's `blocks`, and its block's id (Slack makes one
    up for a block sent without). Raises LookupError naming the labels there are."""
    labels = []
    for block in blocks:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            text = element.get("text", {}).get("text")
            labels.append(text)
            if element.get("type") == "button" and text == label:
                return element, str(block.get("block_id") or slack_id("", 5))
    raise LookupError(f"no button {label!r}; buttons: {labels}")


def interactive_form(payload: Json) -> bytes:
    """An interactive payload as Slack POSTs it in HTTP mode: the form field `payload`."""
    return form_body({"payload": json.dumps(payload)})


def hello_frame(app_id: str, num_connections: int) -> Json:
    """What Slack sends first on a new Socket Mode connection."""
    return {"type": "hello", "num_connections": num_connections,
            "debug_info": {"host": "fake-slack", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": app_id}}


def form_body(fields: dict[str, str]) -> bytes:
    """Fields url-encoded as Slack sends them (`application/x-www-form-urlencoded`)."""
    return urlencode(fields).encode()


class PayloadBuilders:
    """Builders of the payloads Slack sends one app in one workspace; `FakeSlack` is one.

    Event builders return the whole `event_callback` body (dispatch it signed over HTTP, or send
    it as an "events_api" envelope); `slash_command` returns form fields; `press` returns a
    `block_actions` payload (an "interactive" envelope, or `interactive_form` over HTTP).
    """

    team_id: str
    api_app_id: str
    bot_user_id: str
    signing_secret: str
    user: FakeSlackUser

    @property
    def bot_mention(self) -> str:
        return f"<@{self.bot_user_id}>"

    def response_url(self) -> str:
        """A new response URL for a slash command."""
        return f"https://hooks.slack.com/commands/{self.team_id}/{uuid.uuid4().hex}"

    def user_name(self, user_id: str) -> str:
        return self.user.name if user_id == self.user.id else "user"

    def _wrap(self, event: Json) -> Json:
        return event_callback(event, team_id=self.team_id, api_app_id=self.api_app_id,
                              bot_user_id=self.bot_user_id)

    def app_mention(self, text: str, user: str | None = None, channel: str = "C0GENERAL",
                    thread_ts: str | None = None, ts: str | None = None) -> Json:
        """An `app_mention` event_callback; the bot's mention is prepended if `text` lacks it."""
        if self.bot_mention not in text:
            text = f"{self.bot_mention} {text}"
        return self._wrap(user_message(text, user or self.user.id, channel, ts=ts,
                                       team_id=self.team_id, thread_ts=thread_ts,
                                       event_type="app_mention"))

    def message_im(self, text: str, user: str | None = None, channel: str | None = None,
                   thread_ts: str | None = None, ts: str | None = None) -> Json:
        """A direct message to the bot (`message`, channel_type "im", channel "D...")."""
        user = user or self.user.id
        channel = channel or dm_channel_id(user)
        return self._wrap(user_message(text, user, channel, team_id=self.team_id, ts=ts,
                                       thread_ts=thread_ts, channel_type="im"))

    def assistant_thread_started(self, user: str | None = None,
                                 context_channel: str = "C0GENERAL") -> Json:
        """`assistant_thread_started`: the person opened membot's assistant panel, which is a
        new thread (its `thread_ts`) in their DM with the app, seen from `context_channel`."""
        user = user or self.user.id
        return self._wrap({
            "type": "assistant_thread_started",
            "assistant_thread": {"user_id": user, "channel_id": dm_channel_id(user),
                                 "thread_ts": new_ts(),
                                 "context": {"channel_id": context_channel,
                                             "team_id": self.team_id, "enterprise_id": None}},
            "event_ts": new_ts()})

    def message_channel(self, text: str, user: str | None = None, channel: str = "C0GENERAL",
                        thread_ts: str | None = None, ts: str | None = None) -> Json:
        """A plain channel message (`message`, channel_type "channel")."""
        return self._wrap(user_message(text, user or self.user.id, channel, ts=ts,
                                       team_id=self.team_id, thread_ts=thread_ts,
                                       channel_type="channel"))

    def bot_message(self, text: str, channel: str = "C0GENERAL", bot_id: str = "B0OTHER",
                    username: str = "otherbot", thread_ts: str | None = None) -> Json:
        """Another app's message (subtype "bot_message", with `bot_id`)."""
        return self._wrap(bot_message_event(text, bot_id, channel, username=username,
                                            thread_ts=thread_ts))

    def message_changed(self, text: str, previous_text: str, ts: str, user: str | None = None,
                        channel: str = "C0GENERAL") -> Json:
        """An edit of message `ts` (subtype "message_changed")."""
        return self._wrap(message_changed_event(text, previous_text, user or self.user.id,
                                                channel, ts=ts))

    def slash_command(self, command: str = "/membot", text: str = "help",
                      user_id: str | None = None, channel_id: str = "C0GENERAL",
                      response_url: str | None = None,
                      trigger_id: str | None = None) -> dict[str, str]:
        """A slash command's form fields; `response_url` defaults to a new one on the fake.

        POST them with `form_body(fields)`, or send them as a "slash_commands" envelope.
        """
        user_id = user_id or self.user.id
        return slash_command_fields(command, text, user_id, channel_id, team_id=self.team_id,
                                    api_app_id=self.api_app_id,
                                    response_url=response_url or self.response_url(),
                                    trigger=trigger_id, user_name=self.user_name(user_id))

    def member(self, user_id: str | None = None) -> FakeSlackUser:
        """The workspace member `user_id` (default: `user`)."""
        if user_id is None or user_id == self.user.id:
            return self.user
        return FakeSlackUser(user_id, "user")

    def press(self, blocks: list[Json], label: str, *, user_id: str | None = None,
              channel_id: str = "C0GENERAL", message_ts: str | None = None,
              is_ephemeral: bool = True, message: Json | None = None,
              response_url: str | None = None, trigger_id: str | None = None) -> Json:
        """The `block_actions` payload for `user_id` pressing the button labelled `label` in
        `blocks` (as the app sent them, to a response URL or in a message); `response_url`
        defaults to a new one on the fake. Send it as an "interactive" envelope, or POST
        `interactive_form(payload)` signed."""
        button, block_id = find_button(blocks, label)
        return block_actions_payload(
            button, block_id=block_id, user=self.member(user_id), team_id=self.team_id,
            api_app_id=self.api_app_id, channel_id=channel_id,
            channel_name="directmessage" if channel_id.startswith("D") else "general",
            response_url=response_url or self.response_url(),
            message_ts=message_ts or new_ts(), is_ephemeral=is_ephemeral, message=message,
            trigger=trigger_id)

    def signed_headers(self, body: bytes | str, timestamp: int | None = None,
                       content_type: str | None = None) -> dict[str, str]:
        """Headers Slack would send with `body`, signed with `signing_secret`.

        The content type is JSON if the body looks like JSON, else form-encoded.
        """
        text = body.decode() if isinstance(body, bytes) else body
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(self.signing_secret).generate_signature(timestamp=stamp,
                                                                              body=text)
        if content_type is None:
            json_like = text.lstrip().startswith("{")
            content_type = "application/json" if json_like else "application/x-www-form-urlencoded"
        return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature or ""}
