"""The memory commands on Slack on the real stack: the composition root's commands and core on
PostgreSQL and mem0 with the scripted model server, behind the real bolt app over Socket Mode
against the fake Slack. What a person does there: learns with a 🧠, exports to their DM,
forgets with a confirm button, and (as an admin) limits memory to channels."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from adapters.slack import build_app, run_socket_mode, web_client
from bot.app import Services, services
from bot.config import Settings
from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.slack import EnvelopeType, FakeSlack, FakeSlackUser, Recorded
from tests.fakes.slack.payloads import Json

MakeSettings = Callable[..., Settings]
TIMEOUT = 10.0


@dataclass
class Rig:
    app: Services
    fake: FakeSlack

    async def envelope(self, kind: EnvelopeType, payload: Json) -> None:
        envelope_id = await asyncio.to_thread(self.fake.send_envelope, kind, payload,
                                              timeout=TIMEOUT)
        await self.fake.wait_for_ack_async(envelope_id, timeout=TIMEOUT)

    async def answer_at(self, url: str) -> Recorded:
        return await self.fake.wait_for_async(
            lambda r: r.kind == "response_url" and url.endswith(r.path), TIMEOUT)

    async def command(self, text: str, user_id: str | None = None) -> Recorded:
        fields = self.fake.slash_command(text=text, user_id=user_id)
        await self.envelope("slash_commands", fields)
        return await self.answer_at(fields["response_url"])

    async def press(self, answer: Recorded, label: str) -> Recorded:
        payload = self.fake.press(answer.body["blocks"], label)
        await self.envelope("interactive", payload)
        return await self.answer_at(payload["response_url"])

    async def tell(self, text: str) -> Json:
        """A DM from alice, answered, with every memory write finished."""
        dm = self.fake.message_im(text)
        answered = len(self.fake.posted_messages())
        await self.envelope("events_api", dm)
        await self.fake.wait_for_async("chat.postMessage", TIMEOUT, count=answered + 1)
        await self.app.jobs.wait_idle()
        return dm

    def exported(self) -> Json:
        """The JSON file of the latest export."""
        [document] = [json.loads(f.content) for f in self.fake.uploaded_files()[-2:]
                      if f.filename.endswith(".json")]
        assert isinstance(document, dict)
        return document


@asynccontextmanager
async def slack_on_real_stack(make_settings: MakeSettings, fake: FakeSlack
                              ) -> AsyncIterator[Rig]:
    fake.add_user(FakeSlackUser("U0ADMIN", "root", is_admin=True))
    async with services(make_settings()) as app:
        slack = build_app(client=web_client(fake.bot_token, fake.api_url),
                          handle=app.core.handle, commands=app.commands, signing_secret=None,
                          receipts=app.receipts)
        runner = asyncio.create_task(run_socket_mode(slack, fake.app_token))
        try:
            yield Rig(app, fake)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def test_learn_export_and_forget_everything_with_the_confirm_button(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, slack_fake: FakeSlack
) -> None:
    async with slack_on_real_stack(make_settings, slack_fake) as rig:
        told = await rig.tell("my locker code is 4711")
        brain = await slack_fake.wait_for_async(
            lambda r: r.kind == "reactions.add" and r.body.get("name") == "brain", TIMEOUT)
        assert (brain.body["channel"], brain.body["timestamp"]) == (
            told["event"]["channel"], told["event"]["ts"])

        export = await rig.command("memory export")
        files = slack_fake.uploaded_files()
        assert sorted(f.filename.rsplit(".", 1)[1] for f in files) == ["json", "md"]
        assert {f.channel for f in files} == {slack_fake.dm_channel(slack_fake.user.id)}
        assert "to our direct messages" in export.body["text"]
        assert "4711" in json.dumps(rig.exported()["memories"])

        asked = await rig.command("memory forget-all")
        assert [(b["text"]["text"], b.get("style")) for b in asked.body["blocks"][-1]["elements"]
                ] == [("Forget everything", "danger"), ("Cancel", None)]
        done = await rig.press(asked, "Forget everything")
        assert done.body["replace_original"] is True and done.body["response_type"] == "ephemeral"
        assert not any(b["type"] == "actions" for b in done.body["blocks"])

        await rig.command("memory export")
        assert rig.exported()["memories"] == []


async def test_only_an_admin_limits_memory_to_a_channel_named_as_slack_sends_it(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, slack_fake: FakeSlack
) -> None:
    async with slack_on_real_stack(make_settings, slack_fake) as rig:
        # With should_escape, Slack sends a typed #channel as <#C…|name>.
        await rig.command("settings channels add <#C0OTHER|other>")  # alice is no admin
        assert "C0OTHER" not in (await rig.command("settings show")).body["text"]
        await rig.command("settings channels add <#C0RANDOM|random>", user_id="U0ADMIN")
        shown = (await rig.command("settings show")).body["text"]
    assert "<#C0RANDOM>" in shown  # a channel link, not escaped text
    assert "C0OTHER" not in shown
    assert [r.body["user"] for r in slack_fake.calls("users.info")] == ["U0ALICE", "U0ALICE",
                                                                        "U0ADMIN", "U0ALICE"]
