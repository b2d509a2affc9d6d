"""Account linking across platforms, end to end on the real stack: the discord.py client against
the fake Discord, the bolt app in HTTP mode against the fake Slack, the link pages over HTTP with
supabase-py talking to the Supabase Auth stand-in, and the core on PostgreSQL and mem0 with the
scripted model server.

The story: Alice tells the bot something on Discord, links Discord with ``/link`` (the page, the
email, the callback, Confirm, the code sent back in chat), links Slack the same way with
``/membot link``, and on Slack the bot uses what she said on Discord. Bob on Slack does not get it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from adapters.discord import MembotDiscordClient
from adapters.slack import build_app, web_client
from adapters.web import build_web_app
from bot.config import Settings
from tests.conftest import serve_web
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.harness import TIMEOUT, running
from tests.fakes.discord.payloads import EPHEMERAL, Json
from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.slack import FakeSlack, form_body
from tests.linkrig import LinkRig, Page, link_rig

MakeSettings = Callable[..., Settings]
EMAIL = "alice@example.com"
MASKED = "a***@example.com"
BOB = "U0BOB"
_URL = re.compile(r"https?://\S+")


class QuickClient(MembotDiscordClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause before IDENTIFY: the fake has no identify rate limit."""


@dataclass
class Stack:
    """One bot with every front door open: Discord, Slack (HTTP mode) and the link pages."""

    rig: LinkRig
    discord: FakeDiscord
    slack: FakeSlack
    slack_events: str
    session: aiohttp.ClientSession
    model: ScriptedOpenAI
    discord_client: MembotDiscordClient

    # Discord.

    async def discord_command(self, name: str, code: str | None = None) -> Json:
        """Alice's slash command in the fake Discord; the (single) followup it got."""
        options = [] if code is None else [{"name": "code", "type": 3, "value": code}]
        interaction = self.discord.interaction_create(name, options=options)
        self.discord.dispatch("INTERACTION_CREATE", interaction)
        token = interaction["token"]
        followup = await self.discord.wait_for_async(
            lambda r: r.kind == "followup" and token in r.path, timeout=TIMEOUT)
        body: Json = followup.body
        return body

    async def discord_dm(self, text: str) -> str:
        """Alice's DM to the bot; the bot's answer."""
        dm = self.discord.message_create(text, dm=True)
        self.discord.dispatch("MESSAGE_CREATE", dm)
        channel = int(dm["channel_id"])
        sent = await self.discord.wait_for_async(
            lambda r: r.kind == "message" and r.channel_id == channel, timeout=TIMEOUT)
        async with asyncio.timeout(TIMEOUT):  # the answer streams: wait for its last edit
            while self.discord_client.replies_in_flight:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return str(self.discord.message(sent.message_id or 0)["content"])

    # Slack.

    async def _post(self, body: bytes, content_type: str) -> None:
        headers = self.slack.signed_headers(body, content_type=content_type)
        async with self.session.post(self.slack_events, data=body, headers=headers) as response:
            assert response.status == 200, await response.text()

    async def slack_command(self, text: str, user: str | None = None) -> str:
        """``/membot <text>`` from ``user`` (default Alice); what came back on the response URL."""
        fields = self.slack.slash_command(text=text, user_id=user)
        path = urlsplit(fields["response_url"]).path
        await self._post(form_body(fields), "application/x-www-form-urlencoded")
        answer = await self.slack.wait_for_async(
            lambda r: r.kind == "response_url" and r.path == path, timeout=TIMEOUT)
        assert answer.body["response_type"] == "ephemeral"
        return str(answer.body["text"])

    async def slack_dm(self, text: str, user: str | None = None) -> str:
        """A DM to the bot from ``user`` (default Alice); the bot's answer in that DM."""
        payload = self.slack.message_im(text, user=user)
        channel = payload["event"]["channel"]
        await self._post(json.dumps(payload).encode(), "application/json")
        posted = await self.slack.wait_for_async(
            lambda r: r.kind == "chat.postMessage" and r.ok and r.body.get("channel") == channel,
            timeout=TIMEOUT)
        return str(posted.body["text"])

    # The web pages.

    async def code_from_the_pages(self, link_reply: str) -> Page:
        """Walk the link pages in a fresh browser from the URL in ``link_reply``."""
        found = _URL.search(link_reply)
        assert found, link_reply
        url = found.group(0)
        assert url.startswith(f"{self.rig.base}/link/")
        return await self.rig.code_page(self.rig.browser(), url, EMAIL)

    # The model.

    def last_prompt(self) -> list[dict[str, Any]]:
        return list(self.model.calls("chat")[-1].body["messages"])


@pytest.fixture
async def stack(
    make_settings: MakeSettings,
    database_url: str,
    openai_server: ScriptedOpenAI,
    discord_fake: FakeDiscord,
    slack_fake: FakeSlack,
) -> AsyncIterator[Stack]:
    async with link_rig(make_settings, database_url) as rig:
        app = rig.app
        client = QuickClient(handle=app.core.handle, commands=app.commands)
        slack = build_app(client=web_client(slack_fake.bot_token, slack_fake.api_url),
                          handle=app.core.handle, commands=app.commands,
                          signing_secret=slack_fake.signing_secret)
        runner, port = await serve_web(build_web_app(slack=slack))
        try:
            async with running(client, discord_fake.token), aiohttp.ClientSession() as session:
                yield Stack(rig, discord_fake, slack_fake,
                            f"http://127.0.0.1:{port}/slack/events", session, openai_server,
                            client)
        finally:
            await runner.cleanup()


async def test_a_memory_told_on_discord_is_used_on_slack_once_both_are_linked(
    stack: Stack,
) -> None:
    rig = stack.rig
    alice_discord = f"discord:{stack.discord.user.id}"
    alice_slack = f"slack:{stack.slack.team_id}:{stack.slack.user.id}"

    # 1. Alice tells the bot something in a Discord DM; it is learned for her Discord account.
    said = await stack.discord_dm("My locker code is 4711")
    assert "My locker code is 4711" in said
    await rig.app.jobs.wait_idle()
    assert "4711" in (await rig.app.memory.search(alice_discord, "locker code", 5))[0].text

    # 2. /link in Discord: an ephemeral followup with the one-time URL, then the web flow.
    asked = await stack.discord_command("link")
    assert asked["flags"] & EPHEMERAL, asked
    shown = await stack.code_from_the_pages(asked["content"])
    assert "Discord" in shown.text
    assert f"/link code: {shown.code}" in shown.text, shown.text

    # 3. The code sent back with /link code: ... links the Discord account.
    linked = await stack.discord_command("link", code=shown.code)
    assert linked["flags"] & EPHEMERAL, linked
    assert linked["content"].startswith("Linked"), linked["content"]
    assert MASKED in linked["content"] and EMAIL not in linked["content"]
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None
    assert await rig.app.links.owner_of(alice_discord) == user.id

    # 4. /membot link in Slack, the same flow with the same email, then /membot link CODE.
    asked_on_slack = await stack.slack_command("link")
    shown_on_slack = await stack.code_from_the_pages(asked_on_slack)
    assert "Slack" in shown_on_slack.text
    assert f"/membot link {shown_on_slack.code}" in shown_on_slack.text, shown_on_slack.text
    linked_on_slack = await stack.slack_command(f"link {shown_on_slack.code}")
    assert linked_on_slack.startswith("Linked"), linked_on_slack
    assert MASKED in linked_on_slack and EMAIL not in linked_on_slack
    assert await rig.app.links.owner_of(alice_slack) == user.id

    # 5. On Slack, Alice's question is answered with what she said on Discord in the prompt.
    await stack.slack_dm("what is my locker code?")
    assert "4711" in stack.last_prompt()[0]["content"]

    # Bob, on the same Slack team, asking the same, gets nothing of Alice's.
    await stack.slack_dm("what is my locker code?", user=BOB)
    assert "4711" not in str(stack.last_prompt())
