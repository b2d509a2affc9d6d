"""Slash commands, buttons, files, the admin flag and receipts on Slack, end to end: the real bolt
app over Socket Mode (one button press over HTTP mode) against the fake Slack, with a small
command registry of its own so nothing here depends on the memory commands' code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from adapters.slack import build_app, run_socket_mode, web_client
from adapters.web import build_web_app
from bot.commands.registry import Command, Commands
from bot.events import Action, Attachment, ChatEvent, MessageRef, Reply
from bot.ports import ReplyStream
from bot.receipts import ReceiptRouter
from tests.conftest import serve_web
from tests.fakes.slack import (
    EnvelopeType,
    FakeSlack,
    FakeSlackUser,
    Recorded,
    interactive_form,
)
from tests.fakes.slack.payloads import Json

MANIFEST = Path(__file__).parent.parent / "deploy" / "slack" / "manifest.yaml"

TIMEOUT = 5.0
EXPORT = b'{"memories": ["likes tea"]}\n\x00\xff binary tail'
MEMBERS = [FakeSlackUser("U0BOB", "bob"), FakeSlackUser("U0ADMIN", "root", is_admin=True),
           FakeSlackUser("U0OWNER", "owner", is_owner=True),
           FakeSlackUser("U0PRIMARY", "founder", is_primary_owner=True)]


@dataclass
class Heard:
    """What the registry's handlers and the message handler were given, in order."""

    commands: list[tuple[str, ChatEvent, str]] = field(default_factory=list)
    messages: list[ChatEvent] = field(default_factory=list)
    message_reply: Reply = field(default_factory=lambda: Reply(text="ok"))


def registry(heard: Heard) -> Commands:
    """A group `grp` (page [n] with buttons, export with a file, echo) and an admin command."""

    async def page(event: ChatEvent, arguments: str) -> Reply:
        heard.commands.append(("page", event, arguments))
        n = int(arguments or "1")
        return Reply(text=f"Page {n} for {event.author_id}", actions=(
            Action(label="Next", command="grp", arguments=f"page {n + 1}", style="primary"),
            Action(label="Forget all", command="grp", arguments="echo wipe", style="danger"),
            Action(label="Who am I", command="whoami"),
        ))

    async def export(event: ChatEvent, arguments: str) -> Reply:
        heard.commands.append(("export", event, arguments))
        return Reply(text="Your export.", files=(
            Attachment(filename="memories.json", content=EXPORT, media_type="application/json"),
        ))

    async def echo(event: ChatEvent, arguments: str) -> Reply:
        heard.commands.append(("echo", event, arguments))
        return Reply(text=f"echo {arguments!r}")

    async def whoami(event: ChatEvent, arguments: str) -> Reply:
        heard.commands.append(("whoami", event, arguments))
        return Reply(text=f"{event.author_id} admin={event.author_is_admin}")

    return Commands([
        Command(name="grp", summary="a group", subcommands=(
            Command(name="page", usage="[n]", summary="a page with buttons", handler=page),
            Command(name="export", summary="a file", handler=export),
            Command(name="echo", usage="<words>", summary="says them back", handler=echo))),
        Command(name="whoami", summary="says whether you are an admin", handler=whoami,
                admin=True),
    ])


@dataclass
class Rig:
    fake: FakeSlack
    heard: Heard
    receipts: ReceiptRouter

    async def envelope(self, kind: EnvelopeType, payload: Json) -> None:
        envelope_id = await asyncio.to_thread(self.fake.send_envelope, kind, payload,
                                              timeout=TIMEOUT)
        await self.fake.wait_for_ack_async(envelope_id, timeout=TIMEOUT)

    async def answer_at(self, response_url: str) -> Recorded:
        return await self.fake.wait_for_async(
            lambda r: r.kind == "response_url" and response_url.endswith(r.path), TIMEOUT)

    async def command(self, text: str, user_id: str | None = None,
                      channel_id: str = "C0GENERAL") -> Recorded:
        """`/membot text` by `user_id`; what came back to its response URL."""
        fields = self.fake.slash_command(text=text, user_id=user_id, channel_id=channel_id)
        await self.envelope("slash_commands", fields)
        return await self.answer_at(fields["response_url"])

    async def press(self, answer: Recorded, label: str, user_id: str | None = None,
                    channel_id: str = "C0GENERAL") -> Recorded:
        """`user_id` presses `label` in an earlier answer; what came back to the press's URL."""
        payload = self.fake.press(answer.body["blocks"], label, user_id=user_id,
                                  channel_id=channel_id)
        await self.envelope("interactive", payload)
        return await self.answer_at(payload["response_url"])


@contextlib.asynccontextmanager
async def running(fake: FakeSlack) -> AsyncIterator[Rig]:
    """The Slack app on `fake` over Socket Mode, with `MEMBERS` in the workspace."""
    for member in MEMBERS:
        fake.add_user(member)
    heard, receipts = Heard(), ReceiptRouter()

    async def handle(event: ChatEvent, stream: ReplyStream | None = None) -> Reply:
        heard.messages.append(event)
        return heard.message_reply

    slack = build_app(client=web_client(fake.bot_token, fake.api_url), handle=handle,
                      commands=registry(heard), signing_secret=None, receipts=receipts)
    runner = asyncio.create_task(run_socket_mode(slack, fake.app_token))
    try:
        yield Rig(fake, heard, receipts)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


@pytest.fixture
async def rig(slack_fake: FakeSlack) -> AsyncIterator[Rig]:
    async with running(slack_fake) as started:
        yield started


def buttons(answer: Recorded) -> list[dict[str, Any]]:
    return [e for b in answer.body.get("blocks", []) if b["type"] == "actions"
            for e in b["elements"]]


async def test_a_subcommand_runs_with_its_arguments_and_answers_privately(rig: Rig) -> None:
    answer = await rig.command("grp echo  two  words", channel_id="C0RANDOM")
    assert answer.ok and answer.body["response_type"] == "ephemeral"
    assert answer.body["text"] == "echo 'two  words'"
    assert "blocks" not in answer.body  # no buttons: plain text, as before
    [(name, event, arguments)] = rig.heard.commands
    assert (name, arguments) == ("echo", "two  words")
    assert (event.author_id, event.channel_id, event.workspace_id) == (
        "U0ALICE", "C0RANDOM", rig.fake.team_id)
    assert rig.fake.posted_messages() == [] and rig.fake.ephemerals() == []


async def test_buttons_render_as_an_actions_block_under_the_text(rig: Rig) -> None:
    answer = await rig.command("grp page")
    assert answer.ok  # the fake refuses blocks over Slack's limits with 400 invalid_blocks
    assert answer.body["response_type"] == "ephemeral"
    assert answer.body["text"] == "Page 1 for U0ALICE"  # the fallback for notifications
    section, actions = answer.body["blocks"]
    assert section["type"] == "section" and section["text"]["text"] == "Page 1 for U0ALICE"
    assert actions["type"] == "actions"
    assert [(b["text"]["text"], b["value"], b.get("style")) for b in buttons(answer)] == [
        ("Next", "grp page 2", "primary"), ("Forget all", "grp echo wipe", "danger"),
        ("Who am I", "whoami", None)]
    assert [b["action_id"] for b in buttons(answer)] == [
        "membot_action_0", "membot_action_1", "membot_action_2"]


async def test_pressing_a_button_runs_it_for_the_presser_and_replaces_the_message(
    rig: Rig,
) -> None:
    first = await rig.command("grp page 1")
    replaced = await rig.press(first, "Next", user_id="U0BOB", channel_id="C0GENERAL")
    assert replaced.ok and replaced.body["replace_original"] is True
    assert replaced.body["response_type"] == "ephemeral"
    assert replaced.body["text"] == "Page 2 for U0BOB"
    assert buttons(replaced)[0]["value"] == "grp page 3"
    name, event, arguments = rig.heard.commands[-1]
    assert (name, arguments, event.author_id, event.channel_id) == (
        "page", "2", "U0BOB", "C0GENERAL")
    assert event.event_id.startswith("slack:action:")

    plain = await rig.press(replaced, "Forget all")
    assert plain.body["replace_original"] is True and plain.body["text"] == "echo 'wipe'"
    # Replacing a message with buttons by one without: blocks still, so none survive.
    assert [b["type"] for b in plain.body["blocks"]] == ["section"]
    assert len(rig.fake.response_url_posts()) == 3 and rig.fake.posted_messages() == []


async def test_the_admin_flag_is_true_only_for_admins_and_owners(rig: Rig) -> None:
    said = {}
    for user in ("U0ALICE", "U0BOB", "U0ADMIN", "U0OWNER", "U0PRIMARY"):
        said[user] = (await rig.command("whoami", user_id=user)).body["text"]
    assert said == {"U0ALICE": "U0ALICE admin=False", "U0BOB": "U0BOB admin=False",
                    "U0ADMIN": "U0ADMIN admin=True", "U0OWNER": "U0OWNER admin=True",
                    "U0PRIMARY": "U0PRIMARY admin=True"}
    assert [r.body["user"] for r in rig.fake.calls("users.info")] == list(said)

    page = await rig.command("grp page")  # not an admin command: nobody is looked up
    assert len(rig.fake.calls("users.info")) == 5
    pressed = await rig.press(page, "Who am I", user_id="U0ADMIN")
    assert pressed.body["text"] == "U0ADMIN admin=True"  # the presser, not alice


async def test_a_failed_admin_lookup_counts_as_no_admin_and_is_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.fake.refuse_next("users.info", "ratelimited")
    with caplog.at_level(logging.WARNING, logger="adapters.slack"):
        answer = await rig.command("whoami", user_id="U0ADMIN")
    assert answer.body["text"] == "U0ADMIN admin=False"
    assert "users.info failed (ratelimited)" in caplog.text


async def test_a_file_arrives_in_the_persons_dm_with_exactly_its_bytes(rig: Rig) -> None:
    answer = await rig.command("grp export", channel_id="C0GENERAL")
    [shared] = rig.fake.uploaded_files()
    assert (shared.filename, shared.content) == ("memories.json", EXPORT)
    assert shared.channel == rig.fake.dm_channel("U0ALICE")
    assert shared.initial_comment is not None and "/membot grp export" in shared.initial_comment
    assert answer.body["response_type"] == "ephemeral"
    assert answer.body["text"].startswith("Your export.")
    assert "I sent `memories.json` to our direct messages." in answer.body["text"]
    kinds = [r.kind for r in rig.fake.requests]  # uploaded before the answer says so
    assert kinds.index("files.completeUploadExternal") < kinds.index("response_url")
    assert rig.fake.posted_messages() == []


async def test_a_failed_upload_is_told_in_one_sentence_and_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.fake.refuse_next("files.completeUploadExternal", "file_uploads_disabled")
    with caplog.at_level(logging.WARNING, logger="adapters.slack"):
        answer = await rig.command("grp export")
    assert rig.fake.uploaded_files() == []
    assert answer.body["text"].endswith("I couldn't send you `memories.json`: Slack refused "
                                        "the upload (file_uploads_disabled).")
    assert "direct messages" not in answer.body["text"]
    assert "file_uploads_disabled" in caplog.text


async def test_a_receipt_adds_the_brain_reaction_to_that_message(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    mention = rig.fake.app_mention("I like tea", thread_ts="1700000000.000001")
    await rig.envelope("events_api", mention)
    await rig.fake.wait_for_async("chat.postMessage", TIMEOUT)
    [event] = rig.heard.messages
    assert event.source == MessageRef(platform="slack", channel="C0GENERAL",
                                      message=mention["event"]["ts"])

    with caplog.at_level(logging.WARNING):
        await rig.receipts.learned(event.source)
        await rig.receipts.learned(event.source)  # already there: done, not an error
    brains = [r for r in rig.fake.reactions() if r.body.get("name") == "brain"]
    assert [(r.body["channel"], r.body["timestamp"]) for r in brains] == [
        ("C0GENERAL", mention["event"]["ts"])] * 2
    assert [r.error for r in brains] == [None, "already_reacted"]
    assert "learned-receipt" not in caplog.text

    rig.fake.refuse_next("reactions.add", "message_not_found")
    with caplog.at_level(logging.WARNING, logger="bot.receipts"):
        await rig.receipts.learned(event.source)  # fails in the adapter; the router logs it
    assert "learned-receipt on a slack message failed" in caplog.text


async def test_a_direct_message_carries_its_source(rig: Rig) -> None:
    dm = rig.fake.message_im("remember this")
    await rig.envelope("events_api", dm)
    await rig.fake.wait_for_async("chat.postMessage", TIMEOUT)
    [event] = rig.heard.messages
    assert event.source == MessageRef(platform="slack", channel=dm["event"]["channel"],
                                      message=dm["event"]["ts"])


async def test_a_private_answer_to_a_channel_mention_is_ephemeral_with_its_buttons(
    rig: Rig,
) -> None:
    rig.heard.message_reply = Reply(text="Memory is paused here.", private=True,
                                    actions=(Action(label="Resume", command="grp",
                                                    arguments="echo resume"),))
    mention = rig.fake.app_mention("hello", user="U0BOB")
    await rig.envelope("events_api", mention)
    sent = await rig.fake.wait_for_async("chat.postEphemeral", TIMEOUT)
    assert sent.ok and sent.body["user"] == "U0BOB" and sent.body["channel"] == "C0GENERAL"
    assert sent.body["thread_ts"] == mention["event"]["ts"]
    [button] = [e for b in sent.body["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["value"] == "grp echo resume"
    assert rig.fake.posted_messages() == []


async def test_a_button_press_in_http_mode_replaces_the_message(slack_fake: FakeSlack) -> None:
    heard = Heard()

    async def handle(event: ChatEvent, stream: ReplyStream | None = None) -> Reply:
        return Reply(text="unused")

    slack = build_app(client=web_client(slack_fake.bot_token, slack_fake.api_url),
                      handle=handle, commands=registry(heard),
                      signing_secret=slack_fake.signing_secret)
    runner, port = await serve_web(build_web_app(slack=slack))
    url = f"http://127.0.0.1:{port}/slack/events"
    page = {"type": "actions", "elements": [
        {"type": "button", "action_id": "membot_action_0", "value": "grp page 7",
         "text": {"type": "plain_text", "text": "Next"}}]}
    payload = slack_fake.press([page], "Next", channel_id="D0000ALICE")
    body = interactive_form(payload)
    try:
        async with aiohttp.ClientSession() as session:
            forged = {**slack_fake.signed_headers(body), "X-Slack-Signature": "v0=" + "0" * 64}
            async with session.post(url, data=body, headers=forged) as response:
                assert response.status == 401
            async with session.post(url, data=body,
                                    headers=slack_fake.signed_headers(body)) as response:
                assert response.status == 200
            answer = await slack_fake.wait_for_async("response_url", TIMEOUT)
    finally:
        await runner.cleanup()
    assert payload["response_url"].endswith(answer.path)
    assert answer.body["replace_original"] is True and answer.body["text"] == "Page 7 for U0ALICE"
    [(name, event, arguments)] = heard.commands  # once: the forged press ran nothing
    assert (name, arguments, event.channel_id, event.is_direct) == (
        "page", "7", "D0000ALICE", True)
    assert buttons(answer)[0]["value"] == "grp page 8"


async def test_the_manifest_grants_every_scope_the_app_uses() -> None:
    """Installed from deploy/slack/manifest.yaml, the bot token can make every call: answers,
    the admin lookup, buttons, the export's DM upload and the receipt."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["slash_commands"][0]["should_escape"] is True
    with FakeSlack(scopes=manifest["oauth_config"]["scopes"]["bot"]) as fake:
        async with running(fake) as rig:
            mention = fake.app_mention("I like tea")
            await rig.envelope("events_api", mention)
            await fake.wait_for_async("chat.postMessage", TIMEOUT)
            rig.heard.message_reply = Reply(text="Paused.", private=True)
            await rig.envelope("events_api", fake.app_mention("hello"))
            await fake.wait_for_async("chat.postEphemeral", TIMEOUT)
            assert (await rig.command("whoami", user_id="U0OWNER")).body["text"].endswith("True")
            await rig.press(await rig.command("grp page"), "Next")
            await rig.command("grp export")
            assert rig.heard.messages[0].source is not None
            await rig.receipts.learned(rig.heard.messages[0].source)
    assert [r.kind for r in fake.requests if r.error == "missing_scope"] == []
    assert len(fake.uploaded_files()) == 1
    assert [r.body["name"] for r in fake.reactions() if r.ok].count("brain") == 1
