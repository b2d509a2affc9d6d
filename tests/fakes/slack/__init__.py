"""A local stand-in for Slack's Web API and Socket Mode, used by the test suite.

`FakeSlack` is a real HTTP and websocket server (aiohttp) on 127.0.0.1, in its own thread and
event loop, that speaks the small part of Slack a bot uses. Its Web API (`api_url`, POST
`/api/<method>` with form or JSON bodies and `Authorization: Bearer <token>`) answers HTTP 200
with `{"ok": true, ...}` or `{"ok": false, ...}` as Slack does for auth.test,
chat.postMessage, chat.postEphemeral, chat.update, chat.delete, the streaming methods
(chat.startStream in a thread, with `recipient_user_id` and `recipient_team_id` outside a DM;
chat.appendStream; chat.stopStream; `markdown_text` or `markdown_text` chunks, 12,000
characters a call; `stream_refusal` makes a workspace without them), reactions.add/remove,
users.info (members may be admins, owners or the primary owner), conversations.open,
conversations.replies, assistant.threads.setStatus, setSuggestedPrompts and setTitle (in a DM
channel, with their real arguments), apps.connections.open, and the file upload steps
(files.getUploadURLExternal, the upload URL it hands out, files.completeUploadExternal;
`uploaded_files` shows what was shared, with its bytes). A wrong token gets "invalid_auth", the
app token where the bot token belongs (or the reverse) "not_allowed_token_type", an unknown
method "unknown_method", a method the token's `scopes` do not cover "missing_scope", and blocks
that break Block Kit's limits "invalid_blocks" (all recorded). `fail_next` scripts HTTP 429
with `Retry-After`, `refuse_next` an `{"ok": false}` answer.

Its Socket Mode endpoint (`/socket`, whose URL apps.connections.open hands out with a one-off
ticket) sends `hello`, relays envelopes a test sends with `send_envelope`, answers the SDK's
pings, and records every ack. Slash commands and button presses get response URLs on the fake,
so what `respond()` posts is recorded too (400 for invalid blocks, as on Slack). Builders make
realistic payloads (`app_mention`, `message_im`, `bot_message`, `message_changed`,
`assistant_thread_started`,
`slash_command`, and `press` for a `block_actions` payload from the blocks the app sent) and
`signed_headers` signs a body with the signing secret so it can be dispatched to a bolt app or
POSTed to the bot (`interactive_form` for button presses in HTTP mode).

Production code never knows: a test builds `AsyncWebClient(token=fake.bot_token,
base_url=fake.api_url)` and hands it to the app. `message` and `replies_to` show the bot's
messages as Slack shows them now (posted, updated or streamed). Everything that arrives is
recorded, with its arrival time (`at`, to check the pace of updates and appends);
`wait_for` blocks a thread and `wait_for_async` waits on the test's event loop.
"""

from tests.fakes.slack.payloads import (
    FakeSlackUser,
    Json,
    PayloadBuilders,
    Recorded,
    UploadedFile,
    dm_channel_id,
    form_body,
    interactive_form,
    new_ts,
    slack_id,
)
from tests.fakes.slack.server import FakeSlack, SlackError
from tests.fakes.slack.socketmode import EnvelopeType

__all__ = ["EnvelopeType", "FakeSlack", "FakeSlackUser", "Json", "PayloadBuilders", "Recorded",
           "SlackError", "UploadedFile", "dm_channel_id", "form_body", "interactive_form",
           "new_ts", "slack_id"]
