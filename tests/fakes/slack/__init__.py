"""A local stand-in for Slack's Web API and Socket Mode, used by the test suite.

`FakeSlack` is a real HTTP and websocket server (aiohttp) on 127.0.0.1, in its own thread and
event loop, that speaks the small part of Slack a bot uses. Its Web API (`api_url`, POST
`/api/<method>` with form or JSON bodies and `Authorization: Bearer <token>`) answers HTTP 200
with `{"ok": true, ...}` or `{"ok": false, "error": ...}` as Slack does for auth.test,
chat.postMessage, chat.postEphemeral, chat.update, reactions.add/remove, users.info,
conversations.open, conversations.replies, assistant.threads.setStatus and
apps.connections.open. A wrong token gets "invalid_auth", the app token where the bot token
belongs (or the reverse) "not_allowed_token_type", and an unknown method "unknown_method" (all
recorded). `fail_next` scripts HTTP 429 with `Retry-After`.

Its Socket Mode endpoint (`/socket`, whose URL apps.connections.open hands out with a one-off
ticket) sends `hello`, relays envelopes a test sends with `send_envelope`, answers the SDK's
pings, and records every ack. Slash commands get response URLs on the fake, so what
`respond()` posts is recorded too. Builders make realistic payloads (`app_mention`,
`message_im`, `bot_message`, `message_changed`, `slash_command`) and `signed_headers` signs a
body with the signing secret so it can be dispatched to a bolt app or POSTed to the bot.

Production code never knows: a test builds `AsyncWebClient(token=fake.bot_token,
base_url=fake.api_url)` and hands it to the app. Everything that arrives is recorded;
`wait_for` blocks a thread and `wait_for_async` waits on the test's event loop.
"""

from tests.fakes.slack.payloads import (
    FakeSlackUser,
    Json,
    PayloadBuilders,
    Recorded,
    dm_channel_id,
    form_body,
    new_ts,
    slack_id,
)
from tests.fakes.slack.server import EnvelopeType, FakeSlack, SlackError

__all__ = ["EnvelopeType", "FakeSlack", "FakeSlackUser", "Json", "PayloadBuilders", "Recorded",
           "SlackError", "dm_channel_id", "form_body", "new_ts", "slack_id"]
