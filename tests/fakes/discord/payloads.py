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
MESSAGE_CONTENT_INTENT = 1 << 15
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | MESSAGE_CONTENT_INTENT  # members, presences, content
ALL_PERMISSIONS = str((1 << 41) - 1)
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

    def text_channel(self, channel_id: int | None = None) -> FakeChannel:
        """The channel `channel_id`, or the first text channel."""
        for channel in self.channels:
            if channel.id == channel_id or (channel_id is None and channel.type == 0):
                return channel
        raise LookupError(f"guild {self.id} has no channel {channel_id or '(text)'}")


@dataclass(frozen=True)
class Recorded:
    """One REST request or gateway command as it arrived, and the status it was answered with.

    `kind` names the route: users_me, application, gateway_bot, gateway, message, typing,
    open_dm, commands, interaction_callback, followup, edit_original, unknown (404), and for the
    gateway identify and resume. `body` is the parsed JSON (payload_json for uploads).
    """

    kind: str
    method: str
    path: str
    body: Any
    at: float
    status: int = 200
    channel_id: int | None = None
    guild_id: int | None = None


def member(user: FakeUser | None = None) -> Json:
    """A guild member; without `user` it is the partial member Discord puts in messages."""
    data: Json = {"roles": [], "joined_at": now(), "deaf": False, "mute": False, "flags": 0,
                  "nick": None, "pending": False}
    return data if user is None else {**data, "user": user.payload()}


def channel(guild: FakeGuild, chan: FakeChannel) -> Json:
    return {"id": str(chan.id), "type": chan.type, "name": chan.name,
            "position": chan.position, "guild_id": str(guild.id),
            "permission_overwrites": [], "nsfw": False, "parent_id": None}


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


def sent_message(author: FakeUser, channel_id: int, body: Json, *, message_id: int | None = None,
                 webhook_id: int | None = None) -> Json:
    """The message object Discord answers a send (or an interaction message) with."""
    message: Json = {
        "id": str(message_id or snowflake()), "channel_id": str(channel_id),
        "author": author.payload(), "content": body.get("content") or "", "timestamp": now(),
        "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": body.get("embeds") or [],
        "components": [], "pinned": False, "flags": body.get("flags") or 0,
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


def interaction_create(name: str, *, application_id: int, command_id: int, user: FakeUser,
                       channel_payload: Json, guild_id: int | None = None,
                       options: Sequence[Json] = ()) -> Json:
    """An INTERACTION_CREATE payload for a slash command (type 2) in a guild or a DM."""
    data: Json = {
        "id": str(snowflake()), "application_id": str(application_id), "type": 2,
        "token": f"itok-{uuid.uuid4().hex}", "version": 1,
        "data": {"id": str(command_id), "name": name, "type": 1, "options": list(options)},
        "channel_id": channel_payload["id"], "channel": channel_payload,
        "app_permissions": "0", "locale": "en-US", "entitlements": [],
        "authorizing_integration_owners": {}, "attachment_size_limit": 10 * 1024 * 1024,
    }
    if guild_id is None:
        data.update(user=user.payload(), context=1)
    else:
        data.update(guild_id=str(guild_id), guild_locale="en-US", context=0,
                    member={**member(user), "permissions": ALL_PERMISSIONS},
                    guild={"id": str(guild_id), "locale": "en-US", "features": []})
    return data


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
