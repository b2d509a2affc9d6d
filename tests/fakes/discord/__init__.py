"""A local stand-in for Discord's REST API and gateway, used by the test suite.

`FakeDiscord` is a real HTTP and websocket server (aiohttp) on 127.0.0.1, in its own thread and
event loop, that speaks the small part of Discord a bot uses: login (`/users/@me`,
`/oauth2/applications/@me`, `/gateway/bot`), sending messages, typing and reactions, opening
DMs, editing and deleting the bot's messages (every version kept, `channel_message_versions`;
edits recorded with their arrival times, `edits`; more than `edit_limit` edits in one channel
within its window get 429 with `Retry-After`, as Discord answers), syncing application
commands, and answering interactions (callback types 4-7, followups
and edits of the original, with file uploads). Slash commands and button presses
(`interaction_create`, `component_interaction`) carry the member's permissions in guilds; the
messages interactions made are kept as Discord shows them (`message`), buttons and attachments
included, so a test can press a button that exists and see its message change in place.
Its gateway (`/gateway`) sends HELLO, acks heartbeats, answers IDENTIFY with READY and a
GUILD_CREATE for each guild the shard owns, and relays the events a test dispatches, with
sequence numbers, as plain JSON text frames. Sharding is Discord's: an IDENTIFY carrying
`shard: [id, count]` owns the guilds with `(guild_id >> 22) % count == id`, a guild's events go
to every session of that shard (two sessions of one shard both get them), DMs go to shard 0
only, and a shard outside `0..count-1` is closed with 4010 (`FakeGuild.on_shard` makes a guild
for a given shard).

Production code never knows: a test points discord.py at it by setting
`discord.http.Route.BASE = fake.rest_base` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)`.

Where a bot could tell the difference it behaves like Discord: REST answers carry
`Content-Type: application/json` exactly, a wrong token gets 401 (and 4004 on the gateway),
unapproved privileged intents close the gateway with 4014, a message to an unknown channel gets
404, an interaction answered twice or after `interaction_deadline` seconds gets 400 or 404, and
without the message content intent a guild message that neither mentions nor replies to the bot
arrives with empty content. Buttons with long or repeated custom ids are refused (400), as is a
reaction on an unknown channel or message (404). Unknown routes get 404 and are recorded
(`unknown_routes`) so a test can see what it missed. Everything that arrives is recorded;
`wait_for` blocks a thread and `wait_for_async` waits on the test's event loop.
"""

from tests.fakes.discord.payloads import (
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    FakeChannel,
    FakeGuild,
    FakeUser,
    Json,
    Recorded,
    Upload,
    custom_ids,
    shard_for,
    snowflake,
)
from tests.fakes.discord.server import FakeDiscord

__all__ = ["MANAGE_GUILD", "MEMBER_PERMISSIONS", "FakeChannel", "FakeDiscord", "FakeGuild",
           "FakeUser", "Json", "Recorded", "Upload", "custom_ids", "shard_for", "snowflake"]
