"""`FakeDiscord`: Discord's REST API and gateway on 127.0.0.1, in its own thread and event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord import payloads as p
from tests.fakes.discord.interactions import Answer, Interactions
from tests.fakes.discord.payloads import FakeGuild, FakeUser, Json, Recorded, Upload, snowflake
from tests.fakes.recorder import Recorder
from tests.fakes.threaded import ThreadedServer


@dataclass
class _Session:
    """One gateway connection; IDENTIFY gives it a shard and a session id."""

    ws: web.WebSocketResponse
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    shard: tuple[int, int] | None = None
    session_id: str = ""
    intents: int = 0
    seq: int = 0

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        async with self.lock:  # keeps sequence numbers in sending order
            seq = None
            if op == 0:
                self.seq += 1
                seq = self.seq
            with contextlib.suppress(ConnectionError, RuntimeError):  # the client went away
                await self.ws.send_str(json.dumps({"op": op, "d": data, "s": seq, "t": event}))


def _json(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": discord.py reads "...; charset=utf-8" as text and fails.
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


def _error(status: int, message: str, code: int = 0) -> web.Response:
    return _json({"message": message, "code": code}, status)


def _json_limited(retry_after: float) -> web.Response:
    """Discord's 429 for a route's limit: the body and headers discord.py reads."""
    response = _json({"message": "You are being rate limited.", "retry_after": retry_after,
                      "global": False}, 429)
    response.headers.update({"Retry-After": f"{retry_after:g}", "X-RateLimit-Scope": "user",
                             "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                             "X-RateLimit-Reset-After": f"{retry_after:g}",
                             "Via": "1.1 google"})
    return response


def _response(answer: Answer) -> web.Response:
    return web.Response(status=204) if answer.body is None else _json(answer.body, answer.status)


@dataclass(frozen=True)
class _Sent:
    """What a REST request carried: its JSON (payload_json for uploads) and its files."""

    json: Any
    uploads: tuple[Upload, ...] = ()


# A route answers with a response, or with an Answer that also names the message it made.
_Handler = Callable[[web.Request, re.Match[str], _Sent], Awaitable[web.Response | Answer]]
_OPEN_ROUTES = frozenset({"interaction_callback", "followup", "edit_original"})  # token in URL


class FakeDiscord(ThreadedServer, Recorder[Recorded]):
    """Discord's REST API (`rest_base`) and gateway (`gateway_url`) for a real discord.py client.

    Configured with the bot's `token`, its `guilds` and the `shard_count` `/gateway/bot`
    advises. `bot_user` (id `bot_user_id` = `application_id`) is the bot; `user` is the default
    human author of scripted messages and interactions.
    """

    def __init__(self, *, token: str = "fake-bot-token", guilds: Sequence[FakeGuild] | None = None,
                 shard_count: int = 1, bot_name: str = "membot", port: int = 0,
                 heartbeat_interval_ms: int = 41_250, allow_privileged_intents: bool = False,
                 interaction_deadline: float = 3.0) -> None:
        ThreadedServer.__init__(self, port)
        self._thread_name = "fake-discord"
        self.token = token
        self.bot_user = FakeUser(snowflake(), bot_name, bot=True)
        self.bot_user_id = self.application_id = self.bot_user.id
        self.user = FakeUser(snowflake(), "alice")
        self.guilds: list[FakeGuild] = list(guilds) if guilds is not None else [FakeGuild.make()]
        self.shard_count = shard_count
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.allow_privileged_intents = allow_privileged_intents
        self._interactions = Interactions(self.bot_user, self.application_id,
                                          interaction_deadline)
        self._users: dict[int, FakeUser] = {u.id: u for u in (self.bot_user, self.user)}
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self._seen_channels: set[int] = set()  # channel ids of dispatched events
        self._seen_messages: set[int] = set()  # ids of dispatched and sent messages
        self._channel_messages: dict[int, list[Json]] = {}  # the bot's, each version in order
        # Edits of the bot's messages allowed per channel in a window of seconds, as the limit
        # observed on Discord (5 per 5 s); beyond it: 429 with Retry-After, which discord.py
        # waits out and retries.
        self.edit_limit: tuple[int, float] = (5, 5.0)
        self._edit_times: dict[int, list[float]] = {}  # channel id -> accepted edits' times
        self._synced: dict[int | None, list[Json]] = {}  # guild id (None: global) -> commands
        self._sessions: list[_Session] = []  # open gateway connections
        self._resumable: dict[str, _Session] = {}  # by session id, connected or not
        Recorder.__init__(self)
        routes: list[tuple[str, str, str, _Handler]] = [
            ("GET", r"/users/@me", "users_me", self._users_me),
            ("GET", r"/oauth2/applications/@me", "application", self._application),
            ("GET", r"/gateway/bot", "gateway_bot", self._gateway_bot),
            ("GET", r"/gateway", "gateway", self._gateway_info),
            ("POST", r"/channels/(?P<channel>\d+)/messages", "message", self._create_message),
            ("PATCH", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)", "edit",
             self._edit_message),
            ("DELETE", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)", "delete",
             self._delete_message),
            ("POST", r"/channels/(?P<channel>\d+)/typing", "typing", self._typing),
            ("PUT", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)/reactions/"
                    r"(?P<emoji>[^/]+)/@me", "reaction", self._react),
            ("POST", r"/users/@me/channels", "open_dm", self._open_dm),
            ("PUT", r"/applications/(?P<app>\d+)(?:/guilds/(?P<guild>\d+))?/commands",
             "commands", self._put_commands),
            ("POST", r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback",
             "interaction_callback", self._callback),
            ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", "followup", self._followup),
            ("PATCH", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/@original",
             "edit_original", self._edit_original),
        ]
        self._routes = [(m, re.compile(pattern + "/?"), k, h) for m, pattern, k, h in routes]

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def rest_base(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    @property
    def interaction_deadline(self) -> float:
        """Seconds an interaction may wait for its first response (Discord: 3)."""
        return self._interactions.deadline

    @interaction_deadline.setter
    def interaction_deadline(self, seconds: float) -> None:
        self._interactions.deadline = seconds

    @property
    def bot_mention(self) -> str:
        """How message content mentions the bot."""
        return f"<@{self.bot_user_id}>"

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/{path:.*}", self._rest)
        return app

    async def _close_connections(self) -> None:
        for session in list(self._sessions):
            with contextlib.suppress(Exception):
                await session.ws.close(code=1001)

    # --- observation (any thread) ------------------------------------------------------------

    def sent_messages(self) -> list[Recorded]:
        """`POST /channels/{id}/messages` requests (`channel_id`, `body`), answered or not."""
        return self.calls("message")

    def typing_calls(self) -> list[Recorded]:
        return self.calls("typing")

    def reactions(self) -> list[Recorded]:
        """`PUT .../reactions/{emoji}/@me` requests (`channel_id`, `message_id`, `emoji`)."""
        return self.calls("reaction")

    def interaction_responses(self) -> list[Recorded]:
        """Interaction callbacks, followups and edits of the original response, in order."""
        with self._cond:
            return [r for r in self._records if r.kind in _OPEN_ROUTES]

    def message(self, message_id: int) -> Json:
        """A message the bot made (in a channel, or through an interaction: a response or
        followup), as Discord shows it now: `content`, `components`, `attachments`, `flags`,
        `edited_timestamp`. Raises LookupError for any other id."""
        with self._cond:
            versions = self._channel_messages.get(message_id)
            if versions:
                return versions[-1]
        return self._interactions.message(message_id)

    def channel_message_versions(self, message_id: int) -> list[Json]:
        """Every version of a message the bot sent to a channel, oldest first (as sent, then
        each edit); empty once it was deleted."""
        with self._cond:
            return list(self._channel_messages.get(message_id, []))

    def edits(self, message_id: int | None = None) -> list[Recorded]:
        """`PATCH /channels/{id}/messages/{id}` requests (all, or of one message), answered or
        not (a 429 has `status` 429); `at` is when each arrived."""
        return [r for r in self.calls("edit") if message_id in (None, r.message_id)]

    def message_versions(self, message_id: int) -> list[Json]:
        """Every version of such a message, oldest first (a loading message, then its edits)."""
        return self._interactions.versions(message_id)

    def commands(self, guild_id: int | None = None) -> list[Json]:
        """The commands last synced globally (or to `guild_id`), with the ids Discord gave them.

        What the bot sent is in `calls("commands")`.
        """
        with self._cond:
            return list(self._synced.get(guild_id, []))

    def identifies(self) -> list[Json]:
        """The `d` of every IDENTIFY (token, intents, shard if sharded, properties, ...)."""
        return [r.body for r in self.calls("identify")]

    def unknown_routes(self) -> list[Recorded]:
        """Requests the fake has no route for (answered 404)."""
        return self.calls("unknown")

    def reset(self) -> None:
        """Forget what was recorded; connections, sessions and synced commands stay."""
        with self._cond:
            self._records.clear()

    def _describe(self, record: Recorded) -> str:
        return f"{record.kind} {record.method} {record.path} -> {record.status}"

    # --- scripting (any thread but the server's) ---------------------------------------------

    def dispatch(self, event: str, data: Json, shard_id: int | None = None) -> int:
        """Send a DISPATCH (op 0) to every identified connection of a shard; return how many.

        `shard_id` None routes as Discord does: by the data's `guild_id`, else to shard 0.
        Raises LookupError if no connection got it, so a test never dispatches into the void.
        """
        sent = self._call(self._dispatch(event, data, shard_id))
        if sent == 0:
            raise LookupError(f"no identified gateway connection for {event} (shard {shard_id})")
        return sent

    def reconnect(self, shard_id: int = 0) -> int:
        """Ask the shard's connections to reconnect (op 7), as Discord does before a restart.

        Each closes and RESUMEs on a new connection (events dispatched meanwhile are lost, not
        replayed). Returns how many connections were asked.
        """
        return self._call(self._reconnect(shard_id))

    async def _reconnect(self, shard_id: int) -> int:
        sessions = [s for s in self._sessions if s.shard is not None and s.shard[0] == shard_id]
        for session in sessions:
            session.shard = None  # going away: dispatch to its successor
            await session.send(7, None)
        return len(sessions)

    def _call(self, coroutine: Coroutine[Any, Any, int]) -> int:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            coroutine.close()
            raise RuntimeError("FakeDiscord is not running")
        if threading.current_thread() is thread:
            coroutine.close()
            raise RuntimeError("this waits for the server's loop; call it from elsewhere")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=5.0)

    async def _dispatch(self, event: str, data: Json, shard_id: int | None) -> int:
        if event == "INTERACTION_CREATE":
            self._interactions.issue(data)
        if event == "MESSAGE_CREATE":
            self._seen_messages.add(int(data["id"]))
        if "channel_id" in data:
            self._seen_channels.add(int(data["channel_id"]))
        sent = 0
        for session in list(self._sessions):
            if session.shard is None:
                continue
            shard, count = session.shard
            guild_id = data.get("guild_id")
            target = shard_id if shard_id is not None else (
                p.shard_for(int(guild_id), count) if guild_id else 0)
            if shard == target:
                seen = data
                if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
                    seen = p.as_seen_by(data, self.bot_user_id, session.intents)
                await session.send(0, seen, event)
                sent += 1
        return sent

    def register_user(self, user: FakeUser) -> FakeUser:
        """Make `user` known, e.g. to `POST /users/@me/channels`."""
        with self._cond:
            self._users[user.id] = user
        return user

    def dm_channel_id(self, user_id: int) -> int:
        """The id of the bot's DM channel with a user (made on first use, then stable)."""
        with self._cond:
            return self._dm_channels.setdefault(user_id, snowflake())

    def guild(self, guild_id: int | None = None) -> FakeGuild:
        """The configured guild `guild_id`, or the first."""
        for guild in self.guilds:
            if guild_id in (None, guild.id):
                return guild
        raise LookupError(f"no configured guild {guild_id}")

    def message_create(self, content: str, *, author: FakeUser | None = None, dm: bool = False,
                       guild_id: int | None = None, channel_id: int | None = None,
                       mentions: Sequence[FakeUser] = (), reply_to: Json | None = None,
                       message_id: int | None = None) -> Json:
        """A MESSAGE_CREATE payload to `dispatch`: from `author` (default `user`) in a guild
        channel (default: the first guild's first text channel) or, with `dm`, the bot's DM.

        Put `bot_mention` in `content` and `bot_user` in `mentions` to mention the bot;
        `reply_to` is the message object replied to.
        """
        author = self.register_user(author or self.user)
        if dm:
            channel, guild = channel_id or self.dm_channel_id(author.id), None
        else:
            guild = self.guild(guild_id).id
            channel = self.guild(guild_id).text_channel(channel_id).id
        return p.message_create(content, author=author, channel_id=channel, guild_id=guild,
                                mentions=mentions, reply_to=reply_to, message_id=message_id)

    def interaction_create(self, name: str, *, options: Sequence[Json] = (),
                           user: FakeUser | None = None, dm: bool = False,
                           guild_id: int | None = None, channel_id: int | None = None,
                           command_id: int | None = None,
                           permissions: int = p.MEMBER_PERMISSIONS) -> Json:
        """An INTERACTION_CREATE payload to `dispatch` for the slash command `name`, with the
        id it was synced under (if it was), in a guild channel or, with `dm`, the bot's DM.

        In a guild the member has `permissions` in the channel (default: a plain member; add
        `payloads.MANAGE_GUILD` for someone who may manage the server). A subcommand and its
        options go in `options`, as Discord nests them.
        """
        user = self.register_user(user or self.user)
        synced = {c["name"]: int(c["id"]) for c in self.commands(None if dm else guild_id)}
        command = command_id or synced.get(name) or snowflake()
        if dm:
            chan = p.dm_channel(channel_id or self.dm_channel_id(user.id), user)
            return p.interaction_create(name, application_id=self.application_id, user=user,
                                        command_id=command, channel_payload=chan,
                                        options=options)
        guild = self.guild(guild_id)
        return p.interaction_create(
            name, application_id=self.application_id, command_id=command, user=user,
            channel_payload=p.channel(guild, guild.text_channel(channel_id)), guild_id=guild.id,
            options=options, permissions=permissions)

    def component_interaction(self, message_id: int, custom_id: str, *,
                              user: FakeUser | None = None,
                              permissions: int = p.MEMBER_PERMISSIONS) -> Json:
        """An INTERACTION_CREATE payload to `dispatch` for `user` (default `user`) pressing the
        button `custom_id` on message `message_id`, one the bot made through an interaction,
        in that message's channel (with `permissions` there, in a guild).

        As on Discord, only existing buttons can be pressed (LookupError otherwise), and only
        by the person an ephemeral message was shown to (PermissionError otherwise).
        """
        user = self.register_user(user or self.user)
        return self._interactions.press(message_id, custom_id, user, permissions)

    # --- gateway -----------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        session = _Session(ws)
        self._sessions.append(session)
        try:
            await session.send(10, {"heartbeat_interval": self.heartbeat_interval_ms})
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._on_command(session, json.loads(message.data))
        finally:
            self._sessions.remove(session)
        return ws

    async def _on_command(self, session: _Session, message: Json) -> None:
        op, data = message.get("op"), message.get("d")
        if op == 1:  # HEARTBEAT
            await session.send(11, None)
        elif op == 2 and isinstance(data, dict):  # IDENTIFY
            await self._identify(session, data)
        elif op == 6 and isinstance(data, dict):  # RESUME
            self._record(Recorded("resume", "WS", "/gateway", data, time.monotonic()))
            old = self._resumable.get(str(data.get("session_id")))
            if old is None or data.get("token") != self.token:
                await session.send(9, False)  # INVALID_SESSION, not resumable: identify again
                return
            session.shard, session.session_id = old.shard or (0, 1), old.session_id
            session.intents, session.seq = old.intents, old.seq
            self._resumable[session.session_id] = session
            await session.send(0, {}, "RESUMED")
        elif op == 8 and isinstance(data, dict):  # REQUEST_GUILD_MEMBERS: just the bot
            chunk = {"guild_id": data.get("guild_id"), "members": [p.member(self.bot_user)],
                     "chunk_index": 0, "chunk_count": 1, "nonce": data.get("nonce")}
            await session.send(0, chunk, "GUILD_MEMBERS_CHUNK")

    async def _identify(self, session: _Session, data: Json) -> None:
        self._record(Recorded("identify", "WS", "/gateway", data, time.monotonic()))
        intents = int(data.get("intents") or 0)
        if data.get("token") != self.token:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return
        if intents & p.PRIVILEGED_INTENTS and not self.allow_privileged_intents:
            await session.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard_id, count = (int(n) for n in data.get("shard") or (0, 1))
        if not 0 <= shard_id < count:
            await session.ws.close(code=4010, message=b"Invalid shard.")
            return
        session.shard, session.intents = (shard_id, count), intents
        session.session_id = uuid.uuid4().hex
        self._resumable[session.session_id] = session
        owned = [g for g in self.guilds if p.shard_for(g.id, session.shard[1]) == session.shard[0]]
        await session.send(0, p.ready(self.bot_user, self.application_id, owned,
                                      session.session_id, self.gateway_url, session.shard),
                           "READY")
        for guild in owned:
            await session.send(0, p.guild_create(guild, self.bot_user, self.user), "GUILD_CREATE")

    # --- REST --------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        prefix = "/api/v10/"
        path = request.path[len(prefix) - 1:] if request.path.startswith(prefix) else None
        sent = await self._sent(request)
        for method, pattern, kind, handler in self._routes:
            match = pattern.fullmatch(path) if path is not None else None
            if match is None or request.method != method:
                continue
            ids = match.groupdict()
            message_id = int(ids["message"]) if ids.get("message") else None
            if kind not in _OPEN_ROUTES and (
                    request.headers.get("Authorization") != f"Bot {self.token}"):
                response = _error(401, "401: Unauthorized")
            else:
                answered = await handler(request, match, sent)
                if isinstance(answered, Answer):
                    message_id = answered.message_id
                    answered = _response(answered)
                response = answered
            self._record(Recorded(
                kind, method, match.string, sent.json, time.monotonic(), response.status,
                int(ids["channel"]) if ids.get("channel") else None,
                int(ids["guild"]) if ids.get("guild") else None,
                message_id, sent.uploads, ids.get("emoji")))
            return response
        self._record(Recorded("unknown", request.method, path or request.path, sent.json,
                              time.monotonic(), 404, uploads=sent.uploads))
        return _error(404, "404: Not Found")

    @staticmethod
    async def _sent(request: web.Request) -> _Sent:
        """The parsed JSON and, for a multipart upload, its files (`files[n]` fields)."""
        if not request.can_read_body:
            return _Sent(None)
        if request.content_type.startswith("multipart/"):  # uploads: the JSON is payload_json
            form = await request.post()
            raw = form.get("payload_json")
            uploads = tuple(
                Upload(field.filename, field.file.read(), field.content_type)
                for name, field in form.items()
                if name.startswith("files[") and isinstance(field, web.FileField))
            return _Sent(json.loads(raw) if isinstance(raw, str) else None, uploads)
        text = await request.text()
        try:
            return _Sent(json.loads(text) if text else None)
        except json.JSONDecodeError:
            return _Sent(text)

    def _known_channel(self, channel_id: int) -> bool:
        with self._cond:
            dms = set(self._dm_channels.values())
        return (channel_id in self._seen_channels or channel_id in dms
                or any(c.id == channel_id for g in self.guilds for c in g.channels))

    async def _users_me(self, request: web.Request, match: re.Match[str], sent: _Sent
                        ) -> web.Response | Answer:
        return _json({**self.bot_user.payload(), "verified": True, "flags": 0})

    async def _application(self, request: web.Request, match: re.Match[str], sent: _Sent
                           ) -> web.Response | Answer:
        return _json(p.application(self.application_id, self.bot_user, self.user))

    async def _gateway_bot(self, request: web.Request, match: re.Match[str], sent: _Sent
                           ) -> web.Response | Answer:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": self.shard_count,
                      "session_start_limit": limit})

    async def _gateway_info(self, request: web.Request, match: re.Match[str], sent: _Sent
                            ) -> web.Response | Answer:
        return _json({"url": self.gateway_url})

    async def _create_message(self, request: web.Request, match: re.Match[str], sent: _Sent
                              ) -> web.Response | Answer:
        channel_id = int(match["channel"])
        if not self._known_channel(channel_id):
            return _error(404, "Unknown Channel", 10003)
        if problem := p.components_problem((sent.json or {}).get("components")):
            return _error(400, f"Invalid Form Body: {problem}", 50035)
        message = p.sent_message(self.bot_user, channel_id, sent.json or {}, uploads=sent.uploads)
        self._seen_messages.add(int(message["id"]))
        with self._cond:
            self._channel_messages[int(message["id"])] = [message]
        return Answer(200, message, int(message["id"]))

    async def _edit_message(self, request: web.Request, match: re.Match[str], sent: _Sent
                            ) -> web.Response | Answer:
        channel_id, message_id = int(match["channel"]), int(match["message"])
        with self._cond:
            versions = self._channel_messages.get(message_id)
        if not versions or int(versions[-1]["channel_id"]) != channel_id:
            return _error(404, "Unknown Message", 10008)
        limit, window = self.edit_limit
        now = time.monotonic()
        recent = [t for t in self._edit_times.get(channel_id, []) if now - t < window]
        if len(recent) >= limit:
            retry = round(window - (now - recent[0]), 3)
            # "Via" tells discord.py this is Discord's own limit, not a Cloudflare ban.
            return _json_limited(retry)
        self._edit_times[channel_id] = [*recent, now]
        edited = {**versions[-1], **{k: v for k, v in (sent.json or {}).items()
                                     if k in ("content", "components", "embeds", "flags")},
                  "edited_timestamp": p.now()}
        with self._cond:
            versions.append(edited)
        return Answer(200, edited, message_id)

    async def _delete_message(self, request: web.Request, match: re.Match[str], sent: _Sent
                              ) -> web.Response | Answer:
        message_id = int(match["message"])
        with self._cond:
            if self._channel_messages.pop(message_id, None) is None:
                return _error(404, "Unknown Message", 10008)
        return web.Response(status=204)

    async def _react(self, request: web.Request, match: re.Match[str], sent: _Sent
                     ) -> web.Response | Answer:
        if not self._known_channel(int(match["channel"])):
            return _error(404, "Unknown Channel", 10003)
        message_id = int(match["message"])
        if message_id not in self._seen_messages and not self._interactions.owns(message_id):
            return _error(404, "Unknown Message", 10008)
        return web.Response(status=204)

    async def _typing(self, request: web.Request, match: re.Match[str], sent: _Sent
                      ) -> web.Response | Answer:
        if not self._known_channel(int(match["channel"])):
            return _error(404, "Unknown Channel", 10003)
        return web.Response(status=204)

    async def _open_dm(self, request: web.Request, match: re.Match[str], sent: _Sent
                       ) -> web.Response | Answer:
        user_id = int((sent.json or {}).get("recipient_id", 0))
        with self._cond:
            user = self._users.get(user_id, FakeUser(user_id, f"user{user_id}"))
        return _json(p.dm_channel(self.dm_channel_id(user_id), user))

    async def _put_commands(self, request: web.Request, match: re.Match[str], sent: _Sent
                            ) -> web.Response | Answer:
        guild = int(match["guild"]) if match["guild"] else None
        if int(match["app"]) != self.application_id or (
                guild is not None and all(g.id != guild for g in self.guilds)):
            return _error(403, "Missing Access", 50001)
        stored = [{"type": 1, "description": "", "options": [], "nsfw": False,
                   "default_member_permissions": None, **command, "id": str(snowflake()),
                   "application_id": str(self.application_id), "version": str(snowflake()),
                   **({} if guild is None else {"guild_id": str(guild)})}
                  for command in sent.json or []]
        with self._cond:
            self._synced[guild] = stored
        return _json(stored)

    async def _callback(self, request: web.Request, match: re.Match[str], sent: _Sent
                        ) -> web.Response | Answer:
        answer = self._interactions.callback(match["id"], match["token"], sent.json or {},
                                             sent.uploads)
        if answer.status == 200 and request.query.get("with_response") not in (
                "1", "true", "True"):
            return Answer(204, None, answer.message_id)
        return answer

    async def _followup(self, request: web.Request, match: re.Match[str], sent: _Sent
                        ) -> web.Response | Answer:
        if int(match["app"]) != self.application_id:
            return _error(404, "Unknown Webhook", 10015)
        return self._interactions.followup(match["token"], sent.json or {}, sent.uploads)

    async def _edit_original(self, request: web.Request, match: re.Match[str], sent: _Sent
                             ) -> web.Response | Answer:
        if int(match["app"]) != self.application_id:
            return _error(404, "Unknown Message", 10008)
        return self._interactions.edit_original(match["token"], sent.json or {}, sent.uploads)
