"""The memory commands on Slack on the real stack: the composition root's commands and core on
PostgreSQL and mem0 with the scripted model server, behind the real bolt app over Socket Mode
against the fake Slack. What a person does there: learns with a 🧠, pages through and searches
what the bot remembers, forgets one memory or (with a confirm button) everything, exports to
their DM, pauses memory and its receipts; and what a workspace admin (only an admin) does with
the workspace's settings, seen in the bot's answers in channels and DMs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from adapters.slack import build_app, run_socket_mode, web_client
from bot.app import Services, services
from bot.choices import PAUSED_NOTICE, Place
from bot.config import Settings
from bot.ports import MemoryRecord
from tests.fakes.openai_server import ScriptedOpenAI, kept_notes, new_messages
from tests.fakes.slack import EnvelopeType, FakeSlack, FakeSlackUser, Recorded
from tests.fakes.slack.payloads import Json

MakeSettings = Callable[..., Settings]
TIMEOUT = 10.0
ALICE, BOB, ADMIN = "U0ALICE", "U0BOB", "U0ADMIN"  # alice is the fake's default person
GENERAL, RANDOM = "C0GENERAL", "C0RANDOM"
REMEMBERS = "I remember:"  # the scripted model quotes the memories its prompt held after this


@dataclass(frozen=True)
class Said:
    """A message a person sent the bot (the Slack event), and the text of the bot's answer."""

    event: Json
    answer: str

    @property
    def recalled(self) -> bool:
        """Whether the answer's prompt held any of the person's memories."""
        return REMEMBERS in self.answer


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

    async def command(self, text: str, user_id: str | None = None,
                      channel_id: str = GENERAL) -> Recorded:
        fields = self.fake.slash_command(text=text, user_id=user_id, channel_id=channel_id)
        await self.envelope("slash_commands", fields)
        return await self.answer_at(fields["response_url"])

    async def press(self, answer: Recorded, label: str) -> Recorded:
        payload = self.fake.press(answer.body["blocks"], label)
        await self.envelope("interactive", payload)
        return await self.answer_at(payload["response_url"])

    async def said(self, payload: Json) -> Said:
        """A message event sent to the bot, answered where it was said, with every memory write
        it queued finished (and so its 🧠, if any, given)."""
        await self.envelope("events_api", payload)
        ts = payload["event"]["ts"]  # the working 👀 comes off once the answer has ended
        await self.fake.wait_for_async(
            lambda r: r.kind == "reactions.remove" and r.body.get("timestamp") == ts, TIMEOUT)
        await self.app.jobs.wait_idle()
        answers = self.fake.replies_to(payload["event"])
        assert answers, f"no answer to {payload['event']['text']!r}"
        return Said(payload["event"], "\n".join(str(m["text"]) for m in answers))

    async def tell(self, text: str, user_id: str | None = None) -> Said:
        """A DM to the bot (from alice unless said otherwise)."""
        return await self.said(self.fake.message_im(text, user=user_id))

    async def mention(self, text: str, channel: str = GENERAL) -> Said:
        """Alice mentioning the bot in a channel."""
        return await self.said(self.fake.app_mention(text, channel=channel))

    def brain_on(self, said: Said) -> bool:
        """Whether the bot put a 🧠 on that message."""
        where = (said.event["channel"], said.event["ts"])
        return any(r.ok and r.body.get("name") == "brain"
                   and (r.body["channel"], r.body["timestamp"]) == where
                   for r in self.fake.calls("reactions.add"))

    async def memories(self, user_id: str = ALICE) -> list[MemoryRecord]:
        """What the bot keeps about a Slack user, newest first, read from the store itself."""
        return await self.app.memory.records(f"slack:{self.fake.team_id}:{user_id}")

    async def place(self) -> Place:
        """The workspace's settings, read from the store itself."""
        return await self.app.choices.place("slack", self.fake.team_id)

    def exported(self) -> Json:
        """The JSON file of the latest export."""
        [document] = [json.loads(f.content) for f in self.fake.uploaded_files()[-2:]
                      if f.filename.endswith(".json")]
        assert isinstance(document, dict)
        return document


def text(answer: Recorded) -> str:
    return str(answer.body["text"])


def buttons(answer: Recorded) -> list[str]:
    """The labels of the buttons under a private answer, in order."""
    return [element["text"]["text"] for block in answer.body.get("blocks") or []
            if block["type"] == "actions" for element in block["elements"]]


def listed(answer: Recorded, memories: list[MemoryRecord]) -> list[str]:
    """The ids of ``memories`` whose short id (its first 8 characters) the answer shows."""
    return [m.id for m in memories if f"`{m.id[:8]}`" in text(answer)]


def ids(memories: list[MemoryRecord]) -> set[str]:
    return {m.id for m in memories}


@asynccontextmanager
async def slack_on_real_stack(make_settings: MakeSettings, fake: FakeSlack
                              ) -> AsyncIterator[Rig]:
    fake.add_user(FakeSlackUser(ADMIN, "root", is_admin=True))
    fake.add_user(FakeSlackUser(BOB, "bob"))
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
            told.event["channel"], told.event["ts"])

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


async def test_an_admin_of_another_workspace_cannot_change_this_ones_settings(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, slack_fake: FakeSlack
) -> None:
    # Slack Connect: an admin of another organisation in a shared channel. Enterprise Grid: an
    # admin of a sister workspace of the same organisation, a member here too.
    slack_fake.add_user(FakeSlackUser("U0GUEST", "guest", is_admin=True, is_owner=True,
                                      extra={"team_id": "T0OTHER"}))
    slack_fake.add_user(FakeSlackUser("U0SISTER", "sister", is_admin=True, extra={
        "team_id": "T0SISTER", "enterprise_user": {
            "id": "W0SISTER", "enterprise_id": "E0ORG", "enterprise_name": "Org",
            "is_admin": False, "is_owner": False, "teams": ["T0SISTER", slack_fake.team_id]}}))
    async with slack_on_real_stack(make_settings, slack_fake) as rig:
        for user in ("U0GUEST", "U0SISTER"):
            refused = await rig.command("settings channels add <#C0OTHER|other>", user_id=user)
            assert "admin" in refused.body["text"], refused.body["text"]
        await rig.command("settings channels add <#C0RANDOM|random>", user_id="U0ADMIN")
        shown = (await rig.command("settings show")).body["text"]
    assert "C0OTHER" not in shown and "<#C0RANDOM>" in shown


FACTS = ("my bike is blue", "my cat is called Miso", "my locker code is 4711",
         "I was born in Porto", "my favourite fruit is the fig", "I play the cello",
         "my sister lives in Oslo", "I drink my coffee black", "my car is a red Fiat",
         "I work as a night nurse", "my dentist is Dr Okafor")  # eleven: two pages


async def test_memory_list_search_forget_and_export_from_slack(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, slack_fake: FakeSlack
) -> None:
    async with slack_on_real_stack(make_settings, slack_fake) as rig:
        for fact in FACTS:
            await rig.tell(fact)
        mine = await rig.memories()  # newest first, as the list shows them
        assert len(mine) == len(FACTS)

        # list: the ten newest, and an Older button that swaps in page 2 with a Newer one.
        first = await rig.command("memory list")
        assert "11 memories, newest first (page 1 of 2)" in text(first)
        assert listed(first, mine) == [m.id for m in mine[:10]]
        assert buttons(first) == ["Older"]
        older = await rig.press(first, "Older")
        assert older.body["replace_original"] is True
        assert older.body["response_type"] == "ephemeral"
        assert "(page 2 of 2)" in text(older)
        assert listed(older, mine) == [mine[10].id]
        assert "my bike is blue" in text(older)  # the first thing told is the oldest
        assert buttons(older) == ["Newer"]
        typed = await rig.command("memory list 2")
        assert listed(typed, mine) == [mine[10].id]
        assert buttons(typed) == ["Newer"]

        # search: what matches, and nothing else.
        [cello] = [m for m in mine if "cello" in m.text]
        found = await rig.command("memory search cello")
        assert listed(found, mine) == [cello.id]

        # forget <id>: exactly that memory, by the first 8 characters of its id.
        [locker] = [m for m in mine if "4711" in m.text]
        forgotten = await rig.command(f"memory forget {locker.id[:8]}")
        assert "Forgotten" in text(forgotten) and "4711" in text(forgotten)
        before, mine = mine, await rig.memories()
        assert ids(mine) == ids(before) - {locker.id} and len(mine) == len(FACTS) - 1

        # Another person's id is answered as an id that does not exist, and deletes nothing.
        await rig.tell("my passport number is 99887766", user_id=BOB)
        [bobs] = await rig.memories(BOB)
        nowhere = "0123abcd"
        assert not any(m.id.startswith(nowhere) for m in [*mine, bobs])
        not_mine = await rig.command(f"memory forget {bobs.id[:8]}")
        missing = await rig.command(f"memory forget {nowhere}")
        assert (text(not_mine).replace(bobs.id[:8], "<id>")
                == text(missing).replace(nowhere, "<id>"))
        assert "None of your memories has the id" in text(missing)
        assert ids(await rig.memories(BOB)) == {bobs.id}
        assert ids(await rig.memories()) == ids(mine)

        # forget-all, then Cancel: everything stays.
        asked = await rig.command("memory forget-all")
        assert "10 memories" in text(asked)
        assert buttons(asked) == ["Forget everything", "Cancel"]
        cancelled = await rig.press(asked, "Cancel")
        assert cancelled.body["replace_original"] is True
        assert "Nothing was forgotten" in text(cancelled) and buttons(cancelled) == []
        assert ids(await rig.memories()) == ids(mine)

        # export: both files in alice's DM with the bot, each with every memory she has.
        exported = await rig.command("memory export")
        assert "to our direct messages" in text(exported)
        files = slack_fake.uploaded_files()
        assert sorted(f.filename.rsplit(".", 1)[1] for f in files) == ["json", "md"]
        assert {f.channel for f in files} == {slack_fake.dm_channel(ALICE)}
        assert {m["id"] for m in rig.exported()["memories"]} == ids(mine)
        [markdown] = [f.content.decode() for f in files if f.filename.endswith(".md")]
        assert all(m.id in markdown for m in mine) and bobs.id not in markdown


async def test_memory_pause_resume_and_receipts_from_slack(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, slack_fake: FakeSlack
) -> None:
    async with slack_on_real_stack(make_settings, slack_fake) as rig:
        bike = await rig.tell("my bike is blue")
        assert rig.brain_on(bike)
        [known] = await rig.memories()

        paused = await rig.command("memory pause")
        assert "Memory paused" in text(paused) and "/membot memory resume" in text(paused)
        first = await rig.tell("my umbrella is green")
        assert first.answer.count(PAUSED_NOTICE) == 1
        assert not first.recalled and not rig.brain_on(first)
        second = await rig.tell("my scarf is red")
        assert PAUSED_NOTICE not in second.answer  # said once, not on every message
        assert not second.recalled and not rig.brain_on(second)
        assert ids(await rig.memories()) == {known.id}  # nothing learned while paused

        resumed = await rig.command("memory resume")
        assert "Memory is back on" in text(resumed)
        again = await rig.tell("my hat is yellow")
        assert again.recalled and PAUSED_NOTICE not in again.answer
        assert rig.brain_on(again)
        assert sorted(m.text for m in await rig.memories()) == ["my bike is blue",
                                                                "my hat is yellow"]

        off = await rig.command("memory receipts off")
        assert "No more 🧠 reactions" in text(off)
        quiet = await rig.tell("my boat is white")
        assert not rig.brain_on(quiet)
        assert any("white" in m.text for m in await rig.memories())  # learned all the same
        on = await rig.command("memory receipts on")
        assert "I'll react with 🧠" in text(on)
        assert rig.brain_on(await rig.tell("my kite is orange"))


async def change_setting(rig: Rig, change: str, channel_id: str = GENERAL) -> Place:
    """``/membot settings <change>``: refused for alice, a plain member, with the settings left
    as they were; then made by a workspace admin. Returns the settings it made."""
    before = await rig.place()
    refused = await rig.command(f"settings {change}", channel_id=channel_id)
    assert "Only workspace admins and owners can change" in text(refused)
    assert await rig.place() == before
    saved = await rig.command(f"settings {change}", user_id=ADMIN, channel_id=channel_id)
    assert text(saved).startswith("Saved.")
    after = await rig.place()
    assert after != before
    return after


async def test_every_settings_subcommand_from_slack_by_an_admin_only(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, slack_fake: FakeSlack
) -> None:
    async with slack_on_real_stack(make_settings, slack_fake) as rig:
        await rig.tell("my bike is blue")
        assert (await rig.mention("what colour is my bike?")).recalled
        learned = len(await rig.memories())  # what alice said in the channel, too

        shown = text(await rig.command("settings show"))  # anyone may look
        for line in ("memory: on", "channels: every channel", "public: on", "receipts: on"):
            assert line in shown

        # memory off: in channels and in DMs (they are in the workspace), no memories used
        # and nothing learned.
        assert not (await change_setting(rig, "memory off")).memory
        assert "memory: off" in text(await rig.command("settings show"))
        assert not (await rig.mention("which bike do I ride?")).recalled
        assert not (await rig.tell("what about my bike?")).recalled
        assert len(await rig.memories()) == learned
        assert (await change_setting(rig, "memory on")).memory
        assert (await rig.mention("is my bike red?")).recalled

        # channels: only those named (as Slack sends a typed #channel) or `here`; DMs always.
        assert (await change_setting(rig, f"channels add <#{RANDOM}|random>")).channels == (
            RANDOM,)
        assert f"channels: <#{RANDOM}>" in text(await rig.command("settings show"))
        assert not (await rig.mention("my bike, in general?")).recalled
        assert (await rig.mention("my bike, in random?", channel=RANDOM)).recalled
        assert (await rig.tell("and my bike, here?")).recalled
        assert (await change_setting(rig, "channels here")).channels == (RANDOM, GENERAL)
        assert (await rig.mention("my bike, in general now?")).recalled
        assert (await change_setting(rig, f"channels remove <#{RANDOM}|random>")).channels == (
            GENERAL,)
        assert not (await rig.mention("my bike, in random now?", channel=RANDOM)).recalled
        assert (await change_setting(rig, "channels all")).channels == ()
        assert (await rig.mention("my bike, in random at last?", channel=RANDOM)).recalled

        # public off: memories only in DMs; learning goes on in channels.
        assert not (await change_setting(rig, "public off")).public_recall
        learned = len(await rig.memories())
        public = await rig.mention("my helmet is black")
        assert not public.recalled
        assert len(await rig.memories()) == learned + 1
        assert (await rig.tell("is my helmet black?")).recalled
        assert (await change_setting(rig, "public on")).public_recall
        assert (await rig.mention("is my helmet white?")).recalled

        # receipts off: learned, without a 🧠; and back on.
        assert not (await change_setting(rig, "receipts off")).receipts
        quiet = await rig.tell("my gloves are grey")
        assert any("gloves" in m.text for m in await rig.memories())
        assert not rig.brain_on(quiet)
        assert (await change_setting(rig, "receipts on")).receipts
        assert rig.brain_on(await rig.tell("my boots are brown"))


async def test_memory_why_links_each_source_message_and_history_shows_what_was_replaced(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, slack_fake: FakeSlack
) -> None:
    def moves(body: dict[str, Any]) -> list[str | dict[str, Any]]:
        notes = kept_notes(body)
        return [{"fact": text, "from": [n], "replaces": [
            i for i, note in enumerate(notes, 1) if "lives" in text and "lives" in note]}
            for n, text in enumerate(new_messages(body), 1)]

    openai_server.extraction_reply = moves
    async with slack_on_real_stack(make_settings, slack_fake) as rig:
        told = await rig.tell("my sister lives in Oslo")
        thread = await rig.mention("my sister lives in Bergen now", channel=GENERAL)
        [bergen, oslo] = await rig.memories()
        assert oslo.superseded is not None and oslo.superseded.by == bergen.id

        why = text(await rig.command(f"memory why {oslo.id[:8]}"))
        dm_link = (f"https://fake-team.slack.com/archives/{told.event['channel']}"
                   f"/p{told.event['ts'].replace('.', '')}")
        assert dm_link in why and "my sister lives in Oslo" in why and "on Slack" in why
        assert "No longer current: replaced on" in why
        why_new = text(await rig.command(f"memory why {bergen.id[:8]}"))
        assert (f"https://fake-team.slack.com/archives/{GENERAL}"
                f"/p{thread.event['ts'].replace('.', '')}") in why_new

        listed_now = await rig.command("memory list")
        assert listed(listed_now, [bergen, oslo]) == [bergen.id]
        history = await rig.command("memory history")
        assert listed(history, [bergen, oslo]) == [bergen.id, oslo.id]
        assert f"(replaced {oslo.superseded.at:%Y-%m-%d} by `{bergen.id[:8]}`)" in text(history)
