"""`FakeSlack`: Slack's Web API (and, from `socketmode`, Socket Mode) on 127.0.0.1, in its own
thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.recorder import Recorder
from tests.fakes.slack import payloads as p
from tests.fakes.slack.blocks import block_errors
from tests.fakes.slack.files import UploadRefused, Uploads
from tests.fakes.slack.payloads import (
    FakeSlackUser,
    Json,
    PayloadBuilders,
    Recorded,
    UploadedFile,
)
from tests.fakes.slack.socketmode import SocketMode
from tests.fakes.threaded import ThreadedServer

_Method = Callable[[Json], Json]
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# The bot token scopes each method accepts (any one of them will do), from Slack's method docs.
_SCOPES: dict[str, frozenset[str]] = {
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.startStream": frozenset({"chat:write"}),
    "chat.appendStream": frozenset({"chat:write"}),
    "chat.stopStream": frozenset({"chat:write"}),
    "assistant.threads.setSuggestedPrompts": frozenset({"assistant:write"}),
    "assistant.threads.setTitle": frozenset({"assistant:write"}),
    "reactions.add": frozenset({"reactions:write"}),
    "reactions.remove": frozenset({"reactions:write"}),
    "users.info": frozenset({"users:read"}),
    "conversations.open": frozenset({"im:write", "mpim:write", "channels:manage",
                                     "groups:write"}),
    "conversations.replies": frozenset({"channels:history", "groups:history", "im:history",
                                        "mpim:history"}),
    "files.getUploadURLExternal": frozenset({"files:write"}),
    "files.completeUploadExternal": frozenset({"files:write"}),
    "assistant.threads.setStatus": frozenset({"assistant:write", "chat:write"}),
}
_STREAM_METHODS = frozenset({"chat.startStream", "chat.appendStream", "chat.stopStream"})


class SlackError(Exception):
    """A method's `{"ok": false, "error": ...}` answer; `fields` go into the answer too."""

    def __init__(self, error: str, **fields: Any) -> None:
        super().__init__(error)
        self.fields = fields


def _need(args: Json, name: str, error: str) -> str:
    value = args.get(name)
    if value in (None, ""):
        raise SlackError(error)
    return str(value)


def _need_content(args: Json) -> None:
    if not any(args.get(key) for key in ("text", "blocks", "attachments")):
        raise SlackError("no_text")
    errors = block_errors(args["blocks"]) if "blocks" in args else []
    if errors:
        raise SlackError("invalid_blocks", errors=errors)


class FakeSlack(PayloadBuilders, SocketMode, ThreadedServer, Recorder[Recorded]):
    """Slack's Web API (`api_url`) and Socket Mode (`socket_url`) for real slack-bolt/slack-sdk.

    The bot's identity is `bot_user_id` / `bot_id` in team `team_id`; `user` is the default
    human in scripted payloads, and `users` adds more members for `users.info`. With `scopes`,
    the bot token has only those, and a method that needs another answers `missing_scope` (as
    for an app installed from a manifest that lacks it); without, it has every scope.
    """

    def __init__(self, *, bot_token: str = "xoxb-fake", app_token: str = "xapp-fake",
                 signing_secret: str = "fake-signing-secret", team_id: str = "T0FAKE",
                 team_name: str = "Fake Team", bot_user_id: str = "U0BOT", bot_id: str = "B0BOT",
                 api_app_id: str = "A0FAKE", users: Iterable[FakeSlackUser] = (),
                 scopes: Iterable[str] | None = None, port: int = 0) -> None:
        ThreadedServer.__init__(self, port)
        self._thread_name = "fake-slack"
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.team_name = team_name
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.api_app_id = api_app_id
        self.scopes = None if scopes is None else frozenset(scopes)
        self.user = FakeSlackUser("U0ALICE", "alice", "Alice Example", "alice")
        self._users = {u.id: u for u in (self.user, *users)}
        self._users.setdefault(bot_user_id, FakeSlackUser(bot_user_id, "membot", is_bot=True))
        self._dms: dict[str, str] = {}  # user id -> DM channel id
        self._messages: dict[tuple[str, str], Json] = {}  # (channel, ts) -> message
        self._reactions: set[tuple[str, str, str]] = set()  # (channel, ts, name)
        self._failures: dict[str, list[int]] = {}  # method -> [remaining, retry_after]
        self._refusals: dict[str, tuple[int, str]] = {}  # method -> (remaining, error)
        self._uploads = Uploads()
        # What chat.startStream (and the other streaming methods) answer in a workspace without
        # them, e.g. "unknown_method" or "not_allowed"; None: streaming works.
        self.stream_refusal: str | None = None
        Recorder.__init__(self)
        self._init_socket_mode()
        self._methods: dict[str, _Method] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.update": self._update,
            "reactions.add": lambda args: self._react(args, add=True),
            "reactions.remove": lambda args: self._react(args, add=False),
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "conversations.replies": self._conversations_replies,
            "chat.delete": self._delete,
            "chat.startStream": self._start_stream,
            "chat.appendStream": lambda args: self._stream(args, stop=False),
            "chat.stopStream": lambda args: self._stream(args, stop=True),
            "assistant.threads.setStatus": self._set_status,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
            "assistant.threads.setTitle": self._set_title,
            "apps.connections.open": self._connections_open,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The Web API base, for `AsyncWebClient(base_url=...)` (ends with "/")."""
        return f"http://127.0.0.1:{self._port}/api/"

    def _build_app(self) -> web.Application:
        self._connected = asyncio.Event()  # built on the server's loop, like everything here
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_post("/upload/v1/{token}", self._upload)
        return app

    # --- observation (any thread) ------------------------------------------------------------

    def posted_messages(self) -> list[Recorded]:
        """Successful `chat.postMessage` calls (`body`: channel, text, thread_ts, blocks...)."""
        return [r for r in self.calls("chat.postMessage") if r.ok]

    def ephemerals(self) -> list[Recorded]:
        """Successful `chat.postEphemeral` calls (response URL posts are separate)."""
        return [r for r in self.calls("chat.postEphemeral") if r.ok]

    def reactions(self) -> list[Recorded]:
        """`reactions.add` and `reactions.remove` calls, in order."""
        with self._cond:
            return [r for r in self._records if r.kind.startswith("reactions.")]

    def response_url_posts(self) -> list[Recorded]:
        """What was POSTed to response URLs (`body`: text, blocks, response_type,
        replace_original, ...; `path`). Posts with invalid blocks have status 400."""
        return self.calls("response_url")

    def uploaded_files(self) -> list[UploadedFile]:
        """Files shared by files.completeUploadExternal, one per file and channel, in order,
        with the exact bytes that reached the upload URL."""
        with self._cond:
            return self._uploads.shared()

    def dm_channel(self, user_id: str) -> str:
        """The bot's DM channel with `user_id` (what conversations.open answers)."""
        return p.dm_channel_id(user_id)

    def message(self, channel: str, ts: str) -> Json:
        """A message the bot posted or streamed, as Slack shows it now (`text` is a streamed
        message's Markdown so far; `streaming` is true until chat.stopStream). Raises
        LookupError when there is none (never sent, or deleted)."""
        with self._cond:
            return dict(self._messages[(channel, ts)])

    def replies_to(self, event: Json) -> list[Json]:
        """The bot's messages after a person's message `event` where it answers it: in the
        message's thread, or (a DM message outside a thread) in the DM itself; oldest first,
        as Slack shows them now."""
        channel, ts = str(event["channel"]), str(event["ts"])
        thread = event.get("thread_ts") or (None if event.get("channel_type") == "im" else ts)
        with self._cond:
            found = [dict(m) for (c, t), m in self._messages.items()
                     if c == channel and float(t) > float(ts) and m.get("thread_ts") == thread]
        return sorted(found, key=lambda m: float(m["ts"]))

    def unknown_methods(self) -> list[Recorded]:
        with self._cond:
            return [r for r in self._records if r.error == "unknown_method"]

    def reset(self) -> None:
        """Forget records, scripted failures, messages and reactions; connections stay."""
        with self._cond:
            self._records.clear()
            self._failures.clear()
            self._messages.clear()
            self._reactions.clear()
            self._refusals.clear()
            self._uploads.clear()

    def _describe(self, record: Recorded) -> str:
        return f"{record.kind} -> {record.status} {record.error or 'ok'}"

    # --- scripting (any thread but the server's) ---------------------------------------------

    def user_name(self, user_id: str) -> str:
        with self._cond:
            user = self._users.get(user_id)
        return user.name if user else "user"

    def member(self, user_id: str | None = None) -> FakeSlackUser:
        with self._cond:
            user = self._users.get(user_id or self.user.id)
        return user or FakeSlackUser(user_id or self.user.id, "user")

    def add_user(self, user: FakeSlackUser) -> None:
        with self._cond:
            self._users[user.id] = user

    def fail_next(self, method: str, count: int = 1, retry_after: int = 1) -> None:
        """Answer the next `count` calls of `method` with HTTP 429, `Retry-After: retry_after`
        and `{"ok": false, "error": "ratelimited"}`."""
        with self._cond:
            self._failures[method] = [count, retry_after]

    def refuse_next(self, method: str, error: str, count: int = 1) -> None:
        """Answer the next `count` calls of `method` with HTTP 200 and
        `{"ok": false, "error": error}` (no effect), as Slack refuses a call it will not do."""
        with self._cond:
            self._refusals[method] = (count, error)

    def response_url(self) -> str:
        """A new response URL on the fake; POSTs to it are recorded as "response_url"."""
        return f"http://127.0.0.1:{self._port}/response/{uuid.uuid4().hex}"

    # --- HTTP and websocket handlers (the server's loop) ---------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: Json = dict(request.query)
        if request.content_type == "application/json" and request.can_read_body:
            with contextlib.suppress(ValueError):
                body = await request.json()
                if isinstance(body, dict):
                    args.update(body)
        elif request.can_read_body:
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in ("blocks", "attachments", "files"):
            if isinstance(args.get(key), str):
                with contextlib.suppress(ValueError):
                    args[key] = json.loads(args[key])
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        token = str(args.pop("token", "") or (bearer.strip() if scheme == "Bearer" else ""))
        status, headers, result = 200, {}, {"ok": False, "error": "ratelimited"}
        with self._cond:  # a rate-limited call has no effect
            failure = self._failures.get(method)
            if failure is not None:
                failure[0] -= 1
                if failure[0] <= 0:
                    del self._failures[method]
                status, headers = 429, {"Retry-After": str(failure[1])}
            refusal = self._refusals.pop(method, None) if status == 200 else None
            if refusal is not None:
                if refusal[0] > 1:
                    self._refusals[method] = (refusal[0] - 1, refusal[1])
                result = {"ok": False, "error": refusal[1]}
        if status == 200 and refusal is None:
            result = self._answer(method, args, token or None)
        error = None if result.get("ok") else str(result.get("error"))
        self._record(Recorded(method, args, time.monotonic(), request.path, status, error,
                              token or None, result))
        return web.json_response(result, status=status, headers=headers)

    def _answer(self, method: str, args: Json, token: str | None) -> Json:
        handler = self._methods.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        if method in _STREAM_METHODS and self.stream_refusal is not None:
            return {"ok": False, "error": self.stream_refusal}
        wanted = self.app_token if method in _APP_TOKEN_METHODS else self.bot_token
        if token is None:
            return {"ok": False, "error": "not_authed"}
        if token in (self.app_token, self.bot_token) and token != wanted:
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != wanted:
            return {"ok": False, "error": "invalid_auth"}
        needed = _SCOPES.get(method, frozenset())
        if self.scopes is not None and needed and not needed & self.scopes:
            return {"ok": False, "error": "missing_scope", "needed": ",".join(sorted(needed)),
                    "provided": ",".join(sorted(self.scopes))}
        try:
            with self._cond:
                return {"ok": True, **handler(args)}
        except SlackError as error:
            return {"ok": False, "error": str(error), **error.fields}
        except UploadRefused as error:
            return {"ok": False, "error": str(error)}

    async def _response_url(self, request: web.Request) -> web.Response:
        body: Json = {}
        with contextlib.suppress(ValueError):
            data = await request.json()
            body = data if isinstance(data, dict) else {"body": data}
        error = None  # Slack answers a bad post to a response URL with 400 and the error
        if "blocks" in body and block_errors(body["blocks"]):
            error = "invalid_blocks"
        elif not body.get("text") and not body.get("blocks") and not body.get("delete_original"):
            error = "no_text"
        self._record(Recorded("response_url", body, time.monotonic(), request.path,
                              400 if error else 200, error))
        if error:
            return web.Response(status=400, text=error)
        return web.json_response({"ok": True})

    async def _upload(self, request: web.Request) -> web.Response:
        """An upload URL: the file's bytes, raw or as the first file of a multipart form."""
        if request.content_type.startswith("multipart/"):
            content = b""
            async for part in await request.multipart():
                if isinstance(part, BodyPartReader) and part.filename is not None:
                    content = await part.read()
                    break
        else:
            content = await request.read()
        with self._cond:
            file_id = self._uploads.receive(request.match_info["token"], content)
        self._record(Recorded("upload_url", {"file_id": file_id, "length": len(content)},
                              time.monotonic(), request.path, 200 if file_id else 404,
                              None if file_id else "not_found"))
        if file_id is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(text=f"OK - {len(content)}")

    # --- Web API methods (called with self._cond held) -----------------------------------------

    def _auth_test(self, args: Json) -> Json:
        return {"url": "https://fake-team.slack.com/", "team": self.team_name,
                "user": self._users[self.bot_user_id].name, "team_id": self.team_id,
                "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _channel(self, args: Json, name: str = "channel") -> str:
        channel = _need(args, name, "channel_not_found")
        return self._dm_channel(channel) if channel.startswith(("U", "W")) else channel

    def _dm_channel(self, user: str) -> str:
        return self._dms.setdefault(user, p.dm_channel_id(user))

    def _post_message(self, args: Json) -> Json:
        channel = self._channel(args)
        _need_content(args)
        ts = p.new_ts()
        message: Json = {"type": "message", "text": args.get("text", ""), "user":
                         self.bot_user_id, "bot_id": self.bot_id, "ts": ts, "team": self.team_id,
                         "app_id": self.api_app_id}
        for key in ("thread_ts", "blocks", "attachments", "metadata"):
            if args.get(key):
                message[key] = args[key]
        self._messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": message}

    def _post_ephemeral(self, args: Json) -> Json:
        self._channel(args)
        if _need(args, "user", "user_not_in_channel") not in self._users:
            raise SlackError("user_not_in_channel")
        _need_content(args)
        return {"message_ts": p.new_ts()}

    def _update(self, args: Json) -> Json:
        channel = self._channel(args)
        ts = _need(args, "ts", "message_not_found")
        message = self._messages.get((channel, ts))
        if message is None:
            raise SlackError("message_not_found")
        if "blocks" in args and block_errors(args["blocks"]):
            raise SlackError("invalid_blocks", errors=block_errors(args["blocks"]))
        message.update({k: args[k] for k in ("text", "blocks", "attachments") if k in args})
        message["edited"] = {"user": self.bot_user_id, "ts": p.new_ts()}
        return {"channel": channel, "ts": ts, "text": message.get("text", ""),
                "message": dict(message)}

    def _delete(self, args: Json) -> Json:
        channel, ts = self._channel(args), _need(args, "ts", "message_not_found")
        if self._messages.pop((channel, ts), None) is None:
            raise SlackError("message_not_found")
        return {"channel": channel, "ts": ts}

    @staticmethod
    def _markdown(args: Json) -> str:
        """The Markdown a streaming call adds: `markdown_text`, or its `markdown_text`
        chunks (what slack-sdk's chat_stream sends)."""
        if args.get("markdown_text") and args.get("chunks"):
            raise SlackError("invalid_arguments")
        chunks = args.get("chunks") or []
        if not isinstance(chunks, list):
            raise SlackError("invalid_chunks")
        texts = [str(c.get("text", "")) for c in chunks
                 if isinstance(c, dict) and c.get("type") == "markdown_text"]
        text = str(args.get("markdown_text") or "") + "".join(texts)
        if len(text) > 12_000:  # Slack's limit per call
            raise SlackError("msg_too_long")
        return text

    def _start_stream(self, args: Json) -> Json:
        """chat.startStream: a message in a thread (`thread_ts`) that grows as text is
        appended. Outside a DM it needs the person it streams to (`recipient_user_id`,
        `recipient_team_id`)."""
        channel = self._channel(args)
        thread_ts = _need(args, "thread_ts", "invalid_thread_ts")
        if not channel.startswith("D") and not (args.get("recipient_user_id")
                                                and args.get("recipient_team_id")):
            raise SlackError("invalid_arguments")
        ts = p.new_ts()
        self._messages[(channel, ts)] = {
            "type": "message", "text": self._markdown(args), "user": self.bot_user_id,
            "bot_id": self.bot_id, "ts": ts, "team": self.team_id, "app_id": self.api_app_id,
            "thread_ts": thread_ts, "streaming": True}
        return {"channel": channel, "ts": ts}

    def _stream(self, args: Json, *, stop: bool) -> Json:
        """chat.appendStream and chat.stopStream: more Markdown for a message still
        streaming (stopping ends it, with optional `blocks` under it)."""
        channel, ts = self._channel(args), _need(args, "ts", "message_not_found")
        message = self._messages.get((channel, ts))
        if message is None:
            raise SlackError("message_not_found")
        if not message.get("streaming"):
            raise SlackError("message_not_in_streaming_state")
        added = self._markdown(args)
        if not added and not stop:
            raise SlackError("no_text")
        message["text"] += added
        if stop:
            message["streaming"] = False
            if args.get("blocks"):
                message["blocks"] = args["blocks"]
        return {"channel": channel, "ts": ts}

    def _assistant_thread(self, args: Json) -> str:
        channel = _need(args, "channel_id", "channel_not_found")
        if not channel.startswith("D"):
            raise SlackError("invalid_channel")  # assistant threads are in the app's DM
        return channel

    def _set_status(self, args: Json) -> Json:
        self._assistant_thread(args)
        _need(args, "thread_ts", "invalid_thread_ts")
        if "status" not in args:
            raise SlackError("invalid_arguments")
        return {}

    def _set_suggested_prompts(self, args: Json) -> Json:
        self._assistant_thread(args)
        prompts = args.get("prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4 or not all(
                isinstance(x, dict) and x.get("title") and x.get("message") for x in prompts):
            raise SlackError("invalid_arguments")
        return {}

    def _set_title(self, args: Json) -> Json:
        self._assistant_thread(args)
        _need(args, "thread_ts", "invalid_thread_ts")
        _need(args, "title", "invalid_arguments")
        return {}

    def _react(self, args: Json, add: bool) -> Json:
        key = (self._channel(args), _need(args, "timestamp", "no_item_specified"),
               _need(args, "name", "invalid_name"))
        if (key in self._reactions) == add:
            raise SlackError("already_reacted" if add else "no_reaction")
        (self._reactions.add if add else self._reactions.discard)(key)
        return {}

    def _users_info(self, args: Json) -> Json:
        user = self._users.get(_need(args, "user", "user_not_found"))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user.payload(self.team_id)}

    def _conversations_open(self, args: Json) -> Json:
        if args.get("channel"):
            return {"channel": {"id": str(args["channel"])}, "already_open": True}
        users = [u for u in str(args.get("users", "")).split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            return {"channel": {"id": "G" + p.slack_id("", 9)}}
        already = users[0] in self._dms
        return {"channel": {"id": self._dm_channel(users[0])}, "already_open": already,
                "no_op": already}

    def _conversations_replies(self, args: Json) -> Json:
        channel, ts = self._channel(args), _need(args, "ts", "thread_not_found")
        found = [m for (c, t), m in self._messages.items()
                 if c == channel and (t == ts or m.get("thread_ts") == ts)]
        found.sort(key=lambda m: str(m["ts"]))
        return {"messages": found, "has_more": False,
                "response_metadata": {"next_cursor": ""}}

    def _get_upload_url(self, args: Json) -> Json:
        return self._uploads.upload_url(args, f"http://127.0.0.1:{self._port}/upload/v1/")

    def _complete_upload(self, args: Json) -> Json:
        return self._uploads.complete(args, self.bot_user_id, self._share_target)

    def _share_target(self, channel: str, users_allowed: bool) -> str | None:
        """The channel a file may be shared to: any public or private channel id, the bot's DM
        with a member, or (where `users_allowed`) a member's id, meaning that DM."""
        if channel.startswith(("C", "G")):
            return channel
        members = [u for u in self._users if u != self.bot_user_id]
        if channel.startswith("D"):
            known = set(self._dms.values()) | {p.dm_channel_id(u) for u in members}
            return channel if channel in known else None
        if users_allowed and channel in members:
            return self._dm_channel(channel)
        return None

