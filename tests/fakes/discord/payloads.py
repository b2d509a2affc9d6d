"""Discord-shaped values for the fake: ids, users, guilds, and the JSON payloads built from them.

Everything here is plain data and pure functions; `server.FakeDiscord` fills in its own bot,
guilds and defaults. Payloads carry the fields discord.py 2.7 reads, as strings where Discord
sends strings (ids, permissions).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]
DISCORD_EPOCH_MS = 1_420_070_400_000
EPHEMERAL = 1 << 6
LOADING = 1 << 7  # a deferred interaction response: "membot is thinking..."
MESSAGE_CONTENT_INTENT = 1 << 15
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | MESSAGE_CONTENT_INTENT  # members, presences, content
MANAGE_GUILD = 1 << 5  # "Manage Server" in Discord's client
# What @everyone may do in a new server: a plain member (no Manage Server).
MEMBER_PERMISSIONS = sum(1 << bit for bit in (
    0,  # create instant invite
    6,  # add reactions
    10, 11,  # view channel, send messages
    14, 15, 16,  # embed links, attach files, read message history
    18, 20, 21,  # external emojis, connect, speak
    26, 31,  # change nickname, use application commands
    35, 36, 38,  # create public/private threads, send messages in threads
))
# What the bot's role is granted (the interaction's app_permissions).
BOT_PERMISSIONS = sum(1 << bit for bit in (6, 10, 11, 14, 15, 16, 18, 38))
BUTTON_ROWS, BUTTONS_PER_ROW, CUSTOM_ID_LIMIT, LABEL_LIMIT = 5, 5, 100, 80
_lock = threading.Lock()
_counter = itertools.count()


def snowflake() -> int:
    """A new, increasing Discord-style id (milliseconds since Discord's epoch in the top bits)."""
    with _lock:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(_counter) & 0x3FFFFF)


def shard_for(guild_id: int, shard_count: int) -> int:
    """The shard that gets a guild's events, as Discord routes them."""
    return (guild_id >> 22) % shard_count


def now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class FakeUser:
    id: int
    username: str
    bot: bool = False

    def payload(self) -> Json:
        return {"id": str(self.id), "username": self.username, "discriminator": "0",
                "global_name": None, "avatar": None, "bot": self.bot}


@dataclass(frozen=True)
class FakeChannel:
    id: int
    name: str
    type: int = 0  # 0 text, 2 voice, 4 category
    position: int = 0


@dataclass
class FakeGuild:
    id: int
    name: str
    channels: list[FakeChannel] = field(default_factory=list)

    @classmethod
    def make(cls, name: str = "Test Guild", channels: Sequence[str] = ("general",),
             guild_id: int | None = None) -> FakeGuild:
        """A guild with text channels of the given names, all with fresh ids."""
        return cls(guild_id or snowflake(), name,
                   [FakeChannel(snowflake(), n, 0, i) for i, n in enumerate(channels)])

    @classmethod
    def on_shard(cls, shard: int, count: int, name: str = "Test Guild") -> FakeGuild:
        """A guild (one text channel, "general") whose events Discord routes to `shard` of
        `count`."""
        top = snowflake() >> 22
        return cls.make(name, guild_id=(top - top % count + shard) << 22)

    def text_channel(self, channel_id: int | None = None) -> FakeChannel:
        """The channel `channel_id`, or the first text channel."""
        for channel in self.channels:
            if channel.id == channel_id or (channel_id is None and channel.type == 0):
                return channel
        raise LookupError(f"guild {self.id} has no channel {channel_id or '(text)'}")


@dataclass(frozen=True)
class Upload:
    """A file as it arrived in a multipart request."""

    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class Recorded:
    """One REST request or gateway command as it arrived, and the status it was answered with.

    `kind` names the route: users_me, application, gateway_bot, gateway, message, typing,
    reaction, open_dm, commands, interaction_callback, followup, edit_original, unknown (404),
    and for the gateway identify and resume. `body` is the parsed JSON (payload_json for
    uploads, whose files are `uploads`). `message_id` is the message the request created,
    edited or reacted to (for an interaction callback, its response message, if any); `emoji`
    is a reaction's emoji, decoded.
    """

    kind: str
    method: str
    path: str
    body: Any
    at: float
    status: int = 200
    channel_id: int | None = None
    guild_id: int | None = None
    message_id: int | None = None
    uploads: tuple[Upload, ...] = ()
    emoji: str | None = None


def member(user: FakeUser | None = None) -> Json:
    """A guild member; without `user` it is the partial member Discord puts in messages."""
    data: Json = {"roles": [], "joined_at": now(), "deaf": False, "mute": False, "flags": 0,
                  "nick": None, "pending": False}
    return data if user is None else {**data, "user": user.payload()}


def channel(guild: FakeGuild, chan: FakeChannel) -> Json:
    return {"id": str(chan.id), "type": chan.type, "name": chan.name,
            "position": chan.position, "guild_id": str(guild.id),
            "permission_overwrites": [], "nsfw": False, "parent_id": None}


def thread(thread_id: int, guild_id: int, parent_id: int, owner_id: int) -> Json:
    """A public thread as Discord describes it (THREAD_CREATE, or an interaction's channel)."""
    return {
        "id": str(thread_id), "guild_id": str(guild_id), "parent_id": str(parent_id),
        "type": 11, "name": "planning", "owner_id": str(owner_id), "flags": 0,
        "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                            "archive_timestamp": "2026-11-24T00:00:00+00:00"},
        "member_count": 1, "message_count": 0, "rate_limit_per_user": 0,
    }


def dm_channel(channel_id: int, recipient: FakeUser) -> Json:
    return {"id": str(channel_id), "type": 1, "flags": 0, "last_message_id": None,
            "recipients": [recipient.payload()]}


def ready(bot: FakeUser, application_id: int, guilds: Sequence[FakeGuild], session_id: str,
          resume_url: str, shard: tuple[int, int]) -> Json:
    return {
        "v": 10, "user": {**bot.payload(), "verified": True, "mfa_enabled": False, "flags": 0},
        "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
        "session_id": session_id, "resume_gateway_url": resume_url, "shard": list(shard),
        "private_channels": [], "relationships": [],
        "application": {"id": str(application_id), "flags": 0},
    }


def guild_create(guild: FakeGuild, bot: FakeUser, owner: FakeUser) -> Json:
    everyone = {"id": str(guild.id), "name": "@everyone", "permissions": "0", "position": 0,
                "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
    return {
        "id": str(guild.id), "name": guild.name, "unavailable": False, "icon": None,
        "owner_id": str(owner.id), "member_count": 2, "large": False, "features": [],
        "roles": [everyone], "emojis": [], "stickers": [], "threads": [],
        "channels": [channel(guild, c) for c in guild.channels], "members": [member(bot)],
        "presences": [], "voice_states": [], "joined_at": now(), "preferred_locale": "en-US",
        "premium_tier": 0,
    }


def application(application_id: int, bot: FakeUser, owner: FakeUser) -> Json:
    return {"id": str(application_id), "name": bot.username, "description": "", "icon": None,
            "bot_public": True, "bot_require_code_grant": False, "owner": owner.payload(),
            "team": None, "verify_key": "0" * 64, "flags": 0, "bot": bot.payload()}


def attachment(upload: Upload, channel_id: int) -> Json:
    """The attachment object Discord shows for an uploaded file."""
    attachment_id = snowflake()
    url = f"https://cdn.discordapp.com/attachments/{channel_id}/{attachment_id}/{upload.filename}"
    return {"id": str(attachment_id), "filename": upload.filename, "size": len(upload.content),
            "url": url, "proxy_url": url, "content_type": upload.content_type}


def components_problem(components: Any) -> str | None:
    """Why Discord would refuse these message components (Invalid Form Body), or None."""
    if not isinstance(components, list):
        return None if components is None else "components must be a list"
    if len(components) > BUTTON_ROWS:
        return f"more than {BUTTON_ROWS} action rows"
    seen: set[str] = set()
    for row in components:
        children = row.get("components") or [] if isinstance(row, dict) else None
        if not isinstance(row, dict) or row.get("type") != 1 or not children:
            return "each top-level component must be a non-empty action row (type 1)"
        if len(children) > BUTTONS_PER_ROW:
            return f"more than {BUTTONS_PER_ROW} buttons in an action row"
        for button in children:
            if button.get("type") != 2:
                continue
            if len(button.get("label") or "") > LABEL_LIMIT:
                return f"button label longer than {LABEL_LIMIT} characters"
            if button.get("style") == 5:  # a link button has a url, no custom_id
                continue
            custom_id = str(button.get("custom_id") or "")
            if not 1 <= len(custom_id) <= CUSTOM_ID_LIMIT:
                return f"custom_id must be 1-{CUSTOM_ID_LIMIT} characters: {custom_id!r}"
            if custom_id in seen:
                return f"duplicate custom_id {custom_id!r} (COMPONENT_CUSTOM_ID_DUPLICATED)"
            seen.add(custom_id)
    return None


def custom_ids(message: Json) -> list[str]:
    """The custom ids of a message's buttons, in order."""
    return [str(c["custom_id"]) for row in message.get("components") or []
            for c in row.get("components") or [] if c.get("type") == 2 and "custom_id" in c]


def sent_message(author: FakeUser, channel_id: int, body: Json, *, message_id: int | None = None,
                 webhook_id: int | None = None, uploads: Sequence[Upload] = ()) -> Json:
    """The message object Discord answers a send (or an interaction message) with."""
    message: Json = {
        "id": str(message_id or snowflake()), "channel_id": str(channel_id),
        "author": author.payload(), "content": body.get("content") or "", "timestamp": now(),
        "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
        "mention_roles": [], "attachments": [attachment(u, channel_id) for u in uploads],
        "embeds": body.get("embeds") or [], "components": body.get("components") or [],
        "pinned": False, "flags": body.get("flags") or 0,
        "type": 19 if body.get("message_reference") else 0,
    }
    if isinstance(reference := body.get("message_reference"), dict):
        ids = ("message_id", "channel_id", "guild_id")  # discord.py sends ints, Discord strings
        message["message_reference"] = {
            "type": 0, **{k: str(v) if k in ids else v for k, v in reference.items()}}
    if webhook_id is not None:
        message["webhook_id"] = message["application_id"] = str(webhook_id)
    return message


def message_create(content: str, *, author: FakeUser, channel_id: int,
                   guild_id: int | None = None, mentions: Sequence[FakeUser] = (),
                   reply_to: Json | None = None, message_id: int | None = None) -> Json:
    """A MESSAGE_CREATE payload; a guild message (with `guild_id`) carries `member`s."""
    in_guild: Json = {} if guild_id is None else {"member": member()}
    data: Json = {
        "id": str(message_id or snowflake()), "type": 19 if reply_to else 0, "content": content,
        "channel_id": str(channel_id), "author": author.payload(),
        "mentions": [{**m.payload(), **in_guild} for m in mentions], "mention_roles": [],
        "mention_everyone": False, "attachments": [], "embeds": [], "components": [],
        "timestamp": now(), "edited_timestamp": None, "tts": False, "pinned": False, "flags": 0,
        "nonce": str(snowflake()), **in_guild,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if reply_to is not None:
        data["message_reference"] = {
            "type": 0, "message_id": str(reply_to["id"]),
            "channel_id": str(reply_to.get("channel_id", channel_id)),
            **({} if guild_id is None else {"guild_id": str(guild_id)})}
        data["referenced_message"] = reply_to
    return data


def _interaction(kind: int, data: Json, *, application_id: int, user: FakeUser,
                 channel_payload: Json, guild_id: int | None, permissions: int) -> Json:
    """What every INTERACTION_CREATE carries: in a guild the `member` with their permissions in
    the channel (a string bitfield), in a DM the `user`."""
    payload: Json = {
        "id": str(snowflake()), "application_id": str(application_id), "type": kind,
        "token": f"itok-{uuid.uuid4().hex}", "version": 1, "data": data,
        "channel_id": channel_payload["id"], "channel": channel_payload,
        "app_permissions": str(BOT_PERMISSIONS), "locale": "en-US", "entitlements": [],
        "authorizing_integration_owners": {}, "attachment_size_limit": 10 * 1024 * 1024,
    }
    if guild_id is None:
        payload.update(user=user.payload(), context=1)
    else:
        payload.update(guild_id=str(guild_id), guild_locale="en-US", context=0,
                       member={**member(user), "permissions": str(permissions)},
                       guild={"id": str(guild_id), "locale": "en-US", "features": []})
    return payload


def interaction_create(name: str, *, application_id: int, command_id: int, user: FakeUser,
                       channel_payload: Json, guild_id: int | None = None,
                       options: Sequence[Json] = (),
                       permissions: int = MEMBER_PERMISSIONS) -> Json:
    """An INTERACTION_CREATE payload for a slash command (type 2) in a guild or a DM."""
    data = {"id": str(command_id), "name": name, "type": 1, "options": list(options)}
    return _interaction(2, data, application_id=application_id, user=user,
                        channel_payload=channel_payload, guild_id=guild_id,
                        permissions=permissions)


def component_interaction(custom_id: str, *, message: Json, application_id: int,
                          user: FakeUser, channel_payload: Json, guild_id: int | None = None,
                          permissions: int = MEMBER_PERMISSIONS) -> Json:
    """An INTERACTION_CREATE payload for a press of button `custom_id` (MESSAGE_COMPONENT,
    type 3) on `message`, the message object the button is on."""
    data = {"custom_id": custom_id, "component_type": 2}
    return {**_interaction(3, data, application_id=application_id, user=user,
                           channel_payload=channel_payload, guild_id=guild_id,
                           permissions=permissions), "message": message}


def as_seen_by(message: Json, bot_id: int, intents: int) -> Json:
    """A message as a bot with `intents` gets it: without the message content intent, guild
    messages that neither come from, mention nor reply to the bot arrive with no content."""
    if intents & MESSAGE_CONTENT_INTENT or not message.get("guild_id"):
        return message
    me = str(bot_id)
    author = (message.get("author") or {}).get("id")
    mentioned = any(str(m.get("id")) == me for m in message.get("mentions", []))
    replied = ((message.get("referenced_message") or {}).get("author") or {}).get("id")
    if mentioned or me in (author, replied):
        return message
    return {**message, "content": "", "embeds": [], "attachments": [], "components": []}
