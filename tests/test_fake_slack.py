"""FakeSlack against the real slack-bolt and slack-sdk: signed HTTP dispatch, slash commands with
response URLs, button presses, Socket Mode envelopes and acks, file uploads, rate limits, scopes,
Block Kit limits, and the Web API's error answers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond, AsyncSay
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack, FakeSlackUser, form_body, interactive_form


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(users=[FakeSlackUser("U0ADMIN", "root", is_admin=True),
                          FakeSlackUser("U0BOSS", "boss", is_owner=True, is_admin=True,
                                        is_primary_owner=True)]) as server:
        yield server


@pytest.fixture
async def client(fake: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    web = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    yield web
    if web.session is not None:  # only if the test handed it a session
        await web.session.close()


def new_app(fake: FakeSlack, client: AsyncWebClient) -> AsyncApp:
    """A bolt app answering mentions in their thread and DMs, and /membot ephemerally."""
    app = AsyncApp(client=client, signing_secret=fake.signing_secret)

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: AsyncSay) -> None:
        await say(text=f"heard: {event['text']}", thread_ts=event.get("thread_ts") or event["ts"])

    @app.event("message")
    async def on_message(event: dict[str, Any], say: AsyncSay) -> None:
        if event.get("bot_id") or event.get("subtype"):
            return
        await say(text=f"dm: {event['text']}")

    @app.command("/membot")
    async def on_command(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        await ack()
        await respond(text=f"help for {command['user_name']}", response_type="ephemeral")

    return app


def signed(fake: FakeSlack, body: bytes, timestamp: int | None = None) -> AsyncBoltRequest:
    headers: dict[str, str | Sequence[str]] = {**fake.signed_headers(body, timestamp)}
    return AsyncBoltRequest(body=body.decode(), headers=headers)


async def test_signed_app_mention_replies_in_thread(fake: FakeSlack,
                                                    client: AsyncWebClient) -> None:
    app = new_app(fake, client)
    payload = fake.app_mention("hello there", thread_ts="1699999999.000001")
    response = await app.async_dispatch(signed(fake, json.dumps(payload).encode()))
    assert response.status == 200
    async with asyncio.timeout(5):
        posted = await fake.wait_for_async("chat.postMessage")
    assert posted.ok and posted.token == fake.bot_token
    assert posted.body["channel"] == "C0GENERAL"
    assert posted.body["thread_ts"] == "1699999999.000001"
    assert posted.body["text"] == "heard: <@U0BOT> hello there"
    assert posted.response is not None and posted.response["ts"].startswith("17")
    assert [r.kind for r in fake.requests] == ["auth.test", "chat.postMessage"]


async def test_bad_or_stale_signature_is_refused(fake: FakeSlack, client: AsyncWebClient) -> None:
    app = new_app(fake, client)
    body = json.dumps(fake.app_mention("hi")).encode()
    headers: dict[str, str | Sequence[str]] = {**fake.signed_headers(body),
                                               "X-Slack-Signature": "v0=" + "0" * 64}
    forged = AsyncBoltRequest(body=body.decode(), headers=headers)
    assert (await app.async_dispatch(forged)).status == 401
    stale = signed(fake, body, timestamp=int(time.time()) - 600)
    assert (await app.async_dispatch(stale)).status == 401
    await asyncio.sleep(0.05)
    assert fake.posted_messages() == []


async def test_slash_command_responds_ephemerally(fake: FakeSlack,
                                                  client: AsyncWebClient) -> None:
    app = new_app(fake, client)
    fields = fake.slash_command(text="help")
    response = await app.async_dispatch(signed(fake, form_body(fields)))
    assert response.status == 200
    async with asyncio.timeout(5):
        post = await fake.wait_for_async("response_url")
    assert post.body == {"text": "help for alice", "response_type": "ephemeral"}
    assert fields["response_url"].endswith(post.path)
    assert fake.posted_messages() == []


async def test_socket_mode_envelope_is_acked_and_answered(fake: FakeSlack,
                                                          client: AsyncWebClient) -> None:
    handler = AsyncSocketModeHandler(new_app(fake, client), fake.app_token)
    try:
        async with asyncio.timeout(5):
            await handler.connect_async()  # type: ignore[no-untyped-call]
            envelope_id = fake.send_envelope("events_api", fake.message_im("remember tea"))
            ack = await fake.wait_for_ack_async(envelope_id)
            posted = await fake.wait_for_async("chat.postMessage")
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert ack.body["envelope_id"] == envelope_id
    assert posted.body["text"] == "dm: remember tea"
    assert posted.body["channel"].startswith("D")
    opened = fake.calls("apps.connections.open")
    assert opened[0].ok and opened[0].token == fake.app_token
    assert [r.error for r in fake.calls("socket.connect")] == [None]


async def test_socket_mode_slash_command_and_ignored_messages(fake: FakeSlack,
                                                              client: AsyncWebClient) -> None:
    handler = AsyncSocketModeHandler(new_app(fake, client), fake.app_token)
    try:
        async with asyncio.timeout(5):
            await handler.connect_async()  # type: ignore[no-untyped-call]
            ignored = [fake.send_envelope("events_api", fake.bot_message("beep")),
                       fake.send_envelope("events_api",
                                          fake.message_changed("new", "old", ts="1.000001"))]
            command = fake.send_envelope("slash_commands", fake.slash_command())
            for envelope_id in [*ignored, command]:
                await fake.wait_for_ack_async(envelope_id)
            post = await fake.wait_for_async("response_url")
            assert fake.disconnect() == 1  # Slack asks for a reconnect; the SDK does so
            await fake.wait_for_async("socket.connect", count=2)
            again = fake.send_envelope("events_api", fake.message_im("still there?"))
            await fake.wait_for_ack_async(again)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert post.body["response_type"] == "ephemeral"
    assert len(fake.calls("apps.connections.open")) == 2
    async with asyncio.timeout(5):
        reply = await fake.wait_for_async("chat.postMessage")
    assert reply.body["text"] == "dm: still there?"  # and nothing for the ignored messages
    assert len(fake.posted_messages()) == 1


async def test_rate_limited_call_is_retried_once(fake: FakeSlack) -> None:
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url,
                            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    fake.fail_next("chat.postMessage", retry_after=0)
    async with asyncio.timeout(5):
        response = await client.chat_postMessage(channel="C0GENERAL", text="hi")
    assert response["ok"] is True
    assert [r.status for r in fake.calls("chat.postMessage")] == [429, 200]

    fake.reset()
    fake.fail_next("chat.postMessage", count=2, retry_after=0)
    with pytest.raises(SlackApiError) as raised:
        async with asyncio.timeout(5):
            await client.chat_postMessage(channel="C0GENERAL", text="again")
    assert raised.value.response.status_code == 429
    assert raised.value.response["error"] == "ratelimited"
    assert len(fake.calls("chat.postMessage")) == 2


async def test_web_api_answers_like_slack(fake: FakeSlack, client: AsyncWebClient) -> None:
    async with asyncio.timeout(5):
        auth = await client.auth_test()
        assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("U0BOT", "B0BOT", "T0FAKE")
        admin = await client.users_info(user="U0ADMIN")
        assert admin["user"]["is_admin"] is True
        assert admin["user"]["is_owner"] is admin["user"]["is_primary_owner"] is False
        boss = await client.users_info(user="U0BOSS")
        assert boss["user"]["is_primary_owner"] is boss["user"]["is_owner"] is True
        assert (await client.users_info(user="U0ALICE"))["user"]["is_admin"] is False
        assert admin["user"]["profile"]["display_name"] == "root"
        dm = await client.conversations_open(users="U0ALICE")
        posted = await client.chat_postMessage(channel=dm["channel"]["id"], text="one")
        reply = await client.chat_postMessage(channel=posted["channel"], text="two",
                                              thread_ts=posted["ts"])
        assert reply["ts"] > posted["ts"]
        await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="edited")
        thread = await client.conversations_replies(channel=posted["channel"], ts=posted["ts"])
        assert [m["text"] for m in thread["messages"]] == ["edited", "two"]
        await client.reactions_add(channel=posted["channel"], timestamp=posted["ts"],
                                   name="eyes")
        await client.reactions_remove(channel=posted["channel"], timestamp=posted["ts"],
                                      name="eyes")
        await client.chat_postEphemeral(channel="C0GENERAL", user="U0ALICE", text="psst")
        await client.assistant_threads_setStatus(channel_id=posted["channel"],
                                                 thread_ts=posted["ts"], status="thinking")
        errors = {}
        for call in (client.users_info(user="U0NOBODY"), client.api_call("no.such.method"),
                     AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test(),
                     client.apps_connections_open(app_token=fake.bot_token)):
            with pytest.raises(SlackApiError) as raised:
                await call
            errors[raised.value.response["error"]] = raised.value.response.status_code
    assert errors == {"user_not_found": 200, "unknown_method": 200, "invalid_auth": 200,
                      "not_allowed_token_type": 200}
    assert [r.kind for r in fake.reactions()] == ["reactions.add", "reactions.remove"]
    assert fake.ephemerals()[0].body["text"] == "psst"
    assert [r.kind for r in fake.unknown_methods()] == ["no.such.method"]
    assert fake.calls("assistant.threads.setStatus")[0].body["status"] == "thinking"


def test_wait_for_blocks_a_thread_and_times_out(fake: FakeSlack) -> None:
    with pytest.raises(TimeoutError, match=re.escape("chat.postMessage")):
        fake.wait_for("chat.postMessage", timeout=0.05)
    with pytest.raises(LookupError):
        fake.send_envelope("events_api", fake.app_mention("nobody listening"), timeout=0.05)


BUTTONS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Page 1 of 2"}},
    {"type": "actions", "block_id": "paging", "elements": [
        {"type": "button", "action_id": "next", "value": "memory list 2", "style": "primary",
         "text": {"type": "plain_text", "text": "Next"}},
        {"type": "button", "action_id": "wipe", "value": "memory forget-all", "style": "danger",
         "text": {"type": "plain_text", "text": "Forget all"}}]},
]


def button_app(fake: FakeSlack, client: AsyncWebClient) -> AsyncApp:
    """A bolt app that answers a button press by replacing the message, naming the value."""
    app = AsyncApp(client=client, signing_secret=fake.signing_secret)

    @app.action(re.compile("^(next|wipe)$"))
    async def on_press(ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any],
                       action: dict[str, Any]) -> None:
        await ack()
        await respond(text=f"{body['user']['id']} pressed {action['value']}",
                      replace_original=True, response_type="ephemeral")

    return app


def test_a_press_payload_is_what_slack_sends_for_that_button(fake: FakeSlack) -> None:
    payload = fake.press(BUTTONS, "Forget all", user_id="U0ADMIN", channel_id="D0000ADMIN")
    assert payload["type"] == "block_actions" and payload["trigger_id"]
    assert payload["user"] == {"id": "U0ADMIN", "username": "root", "name": "root",
                               "team_id": fake.team_id}
    assert payload["team"]["id"] == fake.team_id
    assert payload["channel"] == {"id": "D0000ADMIN", "name": "directmessage"}
    assert payload["container"]["is_ephemeral"] is True and "message" not in payload
    [action] = payload["actions"]
    assert {k: action[k] for k in ("action_id", "block_id", "value", "style", "type")} == {
        "action_id": "wipe", "block_id": "paging", "value": "memory forget-all",
        "style": "danger", "type": "button"}
    assert action["action_ts"].startswith("17") and action["text"]["text"] == "Forget all"
    assert payload["response_url"].startswith(fake.api_url.removesuffix("api/") + "response/")
    in_channel = fake.press(BUTTONS, "Next", is_ephemeral=False, message_ts="1700000000.000001")
    assert in_channel["message"]["ts"] == "1700000000.000001"
    with pytest.raises(LookupError, match="Next"):
        fake.press(BUTTONS, "Previous")


async def test_a_button_press_over_socket_mode_and_http_reaches_bolt(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    app = button_app(fake, client)
    handler = AsyncSocketModeHandler(app, fake.app_token)
    try:
        async with asyncio.timeout(5):
            await handler.connect_async()  # type: ignore[no-untyped-call]
            envelope = fake.send_envelope("interactive", fake.press(BUTTONS, "Next"))
            await fake.wait_for_ack_async(envelope)
            over_socket = await fake.wait_for_async("response_url")
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert over_socket.body == {"text": "U0ALICE pressed memory list 2",
                                "response_type": "ephemeral", "replace_original": True}

    body = interactive_form(fake.press(BUTTONS, "Forget all", user_id="U0ADMIN"))
    assert (await app.async_dispatch(signed(fake, body))).status == 200
    async with asyncio.timeout(5):
        over_http = await fake.wait_for_async("response_url", count=2)
    assert over_http.body["text"] == "U0ADMIN pressed memory forget-all"


async def test_files_upload_v2_shares_the_exact_bytes(fake: FakeSlack,
                                                      client: AsyncWebClient) -> None:
    data = bytes(range(256)) * 3
    async with asyncio.timeout(5):
        dm = (await client.conversations_open(users="U0ALICE"))["channel"]["id"]
        done = await client.files_upload_v2(
            channel=dm, initial_comment="your export",
            file_uploads=[{"filename": "memories.json", "content": data, "title": "Memories"},
                          {"filename": "notes.txt", "content": "héllo"}])
    assert [f["name"] for f in done["files"]] == ["memories.json", "notes.txt"]
    assert done["files"][0]["ims"] == [dm] and done["files"][0]["size"] == len(data)
    shared = fake.uploaded_files()
    assert [(f.filename, f.title, f.content, f.channel, f.initial_comment) for f in shared] == [
        ("memories.json", "Memories", data, dm, "your export"),
        ("notes.txt", "notes.txt", "héllo".encode(), dm, "your export")]
    assert [r.kind for r in fake.requests][1:] == [
        "files.getUploadURLExternal", "files.getUploadURLExternal", "upload_url", "upload_url",
        "files.completeUploadExternal"]


async def test_the_upload_url_takes_multipart_and_unknown_urls_are_404(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    async with asyncio.timeout(5):
        url = await client.files_getUploadURLExternal(filename="a.csv", length=3)
        form = aiohttp.FormData()
        form.add_field("filename", b"a,b", filename="a.csv")
        async with aiohttp.ClientSession() as session:
            async with session.post(str(url["upload_url"]), data=form) as response:
                assert (response.status, await response.text()) == (200, "OK - 3")
            async with session.post(str(url["upload_url"]) + "x", data=b"a,b") as response:
                assert response.status == 404
        await client.files_completeUploadExternal(files=[{"id": str(url["file_id"])}],
                                                  channels=["U0ADMIN"])
    [shared] = fake.uploaded_files()
    assert (shared.content, shared.channel, shared.title) == (b"a,b", "D0000ADMIN", "a.csv")


async def test_uploads_are_refused_as_slack_refuses_them(fake: FakeSlack,
                                                         client: AsyncWebClient) -> None:
    async def error(call: Any) -> str:
        with pytest.raises(SlackApiError) as raised:
            await call
        return str(raised.value.response["error"])

    async with asyncio.timeout(5):
        assert await error(client.files_getUploadURLExternal(filename="a", length=0)) == \
            "missing_argument"
        never_sent = await client.files_getUploadURLExternal(filename="a.txt", length=1)
        assert await error(client.files_completeUploadExternal(
            files=[{"id": str(never_sent["file_id"])}])) == "file_not_found"
        assert await error(client.files_completeUploadExternal(
            files=[{"id": "F0NOSUCH"}])) == "file_not_found"
        assert await error(client.files_upload_v2(channel="U0ALICE", content=b"x",
                                                  filename="x.txt")) == "channel_not_found"
        assert await error(client.files_upload_v2(channel="D0NOBODY", content=b"x",
                                                  filename="x.txt")) == "channel_not_found"
        fake.refuse_next("files.completeUploadExternal", "file_uploads_disabled")
        assert await error(client.files_upload_v2(channel="C0GENERAL", content=b"x",
                                                  filename="x.txt")) == "file_uploads_disabled"
        await client.files_upload_v2(channel="C0GENERAL", content=b"x", filename="x.txt")
    assert [f.channel for f in fake.uploaded_files()] == ["C0GENERAL"]


async def test_a_token_without_a_scope_gets_missing_scope() -> None:
    with FakeSlack(scopes=["chat:write", "im:write"]) as fake:
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        async with asyncio.timeout(5):
            await client.chat_postMessage(channel="C0GENERAL", text="allowed")
            await client.conversations_open(users="U0ALICE")
            with pytest.raises(SlackApiError) as raised:
                await client.files_upload_v2(channel="C0GENERAL", content=b"x", filename="x")
            with pytest.raises(SlackApiError) as reacting:
                await client.reactions_add(channel="C0GENERAL", timestamp="1.0", name="brain")
    assert raised.value.response["error"] == "missing_scope"
    assert raised.value.response["needed"] == "files:write"
    assert raised.value.response["provided"] == "chat:write,im:write"
    assert reacting.value.response["needed"] == "reactions:write"
    assert fake.uploaded_files() == [] and fake.reactions()[0].error == "missing_scope"


async def test_blocks_over_slacks_limits_are_invalid_blocks(fake: FakeSlack,
                                                           client: AsyncWebClient) -> None:
    long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    buttons = [{"type": "button", "action_id": f"b{n}", "value": str(n),
                "text": {"type": "plain_text", "text": str(n)}} for n in range(26)]
    async with asyncio.timeout(5):
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel="C0GENERAL", text="t", blocks=long_section)
        assert raised.value.response["errors"] == [
            "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]
        fine = await client.chat_postMessage(channel="C0GENERAL", text="t", blocks=BUTTONS)
        assert fine["message"]["blocks"] == BUTTONS
        url = fake.response_url()
        async with aiohttp.ClientSession() as session:
            too_many = [{"type": "actions", "elements": buttons}]
            same_id_twice = [{"type": "actions", "elements": [buttons[0], buttons[0]]}]
            for blocks in (too_many, same_id_twice, BUTTONS):
                async with session.post(url, json={"text": "t", "blocks": blocks}):
                    pass
    assert [(r.status, r.error) for r in fake.response_url_posts()] == [
        (400, "invalid_blocks"), (400, "invalid_blocks"), (200, None)]
