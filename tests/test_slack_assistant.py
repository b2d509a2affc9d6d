"""membot in Slack's assistant panel: the real bolt app (its Assistant middleware) against the
fake Slack, with the real core, memory on PostgreSQL and the scripted model server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

from adapters.slack.app import PROMPTS_TITLE, THINKING
from bot.config import Settings
from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.slack import FakeSlack
from tests.fakes.slack.payloads import Json, Recorded
from tests.test_slack import TIMEOUT, HttpRig, http_rig

MANIFEST = Path(__file__).resolve().parent.parent / "deploy" / "slack" / "manifest.yaml"


@pytest.fixture
async def http(make_settings: Callable[..., Settings], openai_server: ScriptedOpenAI,
               slack_fake: FakeSlack) -> AsyncIterator[HttpRig]:
    async with http_rig(make_settings(), openai_server, slack_fake) as rig:
        yield rig


async def open_panel(http: HttpRig) -> Json:
    """Alice opens the assistant panel; the new thread (its channel and ts)."""
    started = http.fake.assistant_thread_started()
    assert await http.event(started) == 200
    await http.fake.wait_for_async("assistant.threads.setSuggestedPrompts", TIMEOUT)
    thread: Json = started["event"]["assistant_thread"]
    return thread


async def ask(http: HttpRig, thread: Json, text: str) -> Json:
    """Alice's message in the panel's thread; once answered (its status cleared), the payload."""
    message = http.fake.message_im(text, thread_ts=thread["thread_ts"])
    cleared = len(statuses(http.fake, ""))
    await http.event(message)
    await http.fake.wait_for_async(
        lambda r: r.kind == "assistant.threads.setStatus" and r.body["status"] == "",
        TIMEOUT, count=cleared + 1)
    return message


def statuses(fake: FakeSlack, status: str) -> list[Recorded]:
    return [r for r in fake.calls("assistant.threads.setStatus") if r.body["status"] == status]


async def test_opening_the_panel_offers_suggested_prompts(http: HttpRig) -> None:
    thread = await open_panel(http)
    [prompts] = http.fake.calls("assistant.threads.setSuggestedPrompts")
    assert prompts.ok and prompts.body["channel_id"] == thread["channel_id"]
    assert prompts.body["thread_ts"] == thread["thread_ts"]
    assert prompts.body["title"] == PROMPTS_TITLE
    titles = [p["title"] for p in prompts.body["prompts"]]
    assert "What do you remember about me?" in titles


async def test_a_question_in_the_panel_thinks_is_titled_and_streams_its_answer(
        http: HttpRig) -> None:
    thread = await open_panel(http)
    first = await ask(http, thread, "I keep bees on my roof")
    [thinking] = statuses(http.fake, THINKING)
    [start] = http.fake.calls("chat.startStream")
    assert thinking.ok and thinking.body["thread_ts"] == thread["thread_ts"]
    assert thinking.at < start.at  # the status shows while it thinks
    assert start.body["thread_ts"] == thread["thread_ts"]
    [titled] = http.fake.calls("assistant.threads.setTitle")
    assert titled.ok and titled.body["title"] == "I keep bees on my roof"
    [answer] = http.fake.replies_to(first["event"])
    assert answer["text"] == "(scripted) You said: I keep bees on my roof"
    await ask(http, thread, "and I like honey")
    assert len(http.fake.calls("assistant.threads.setTitle")) == 1  # titled once
    assert [r for r in http.fake.requests if not r.ok] == []


async def test_memory_and_commands_work_in_the_panel_as_in_a_dm(http: HttpRig) -> None:
    thread = await open_panel(http)
    await ask(http, thread, "my locker code is 4711")
    await http.app.jobs.wait_idle()
    later = await open_panel(http)  # a new chat in the panel remembers
    await ask(http, later, "what is my locker code?")
    assert "4711" in http.model.calls("chat")[-1].body["messages"][0]["content"]
    chats = len(http.model.calls("chat"))
    listing = http.fake.message_im("/membot memory list", thread_ts=later["thread_ts"])
    await http.event(listing)
    posted = await http.fake.wait_for_async(
        lambda r: r.kind == "chat.postMessage" and r.body.get("thread_ts") == later["thread_ts"],
        TIMEOUT)
    assert "locker code is 4711" in posted.body["text"]
    assert len(http.model.calls("chat")) == chats  # a command, not a question to the model


async def test_the_manifest_declares_the_panel_and_every_scope_it_uses(
        make_settings: Callable[..., Settings], openai_server: ScriptedOpenAI) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["features"]["assistant_view"]["assistant_description"]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"assistant_thread_started", "message.im"} <= set(events)
    with FakeSlack(scopes=manifest["oauth_config"]["scopes"]["bot"]) as fake:
        async with http_rig(make_settings(), openai_server, fake) as rig:
            thread = await open_panel(rig)
            await ask(rig, thread, "hello from the panel")
            mention = fake.app_mention("and hello from a channel")
            await rig.event(mention)
            await rig.answered(mention)
        assert [r.kind for r in fake.requests if r.error == "missing_scope"] == []
        assert fake.calls("assistant.threads.setTitle")
        assert fake.calls("chat.stopStream")


async def test_a_dm_thread_outside_the_panel_is_answered_with_the_working_reaction(
        http: HttpRig) -> None:
    # Slack refuses a status for a thread that is not the panel's; the 👀 shows instead.
    http.fake.refuse_next("assistant.threads.setStatus", "invalid_thread_ts")
    message = http.fake.message_im("hello in a thread", thread_ts="1690000000.000100")
    await http.event(message)
    [answer] = await http.answered(message)
    assert answer["text"] == "(scripted) You said: hello in a thread"
    assert [r.kind for r in http.fake.reactions()] == ["reactions.add", "reactions.remove"]
    assert http.fake.calls("assistant.threads.setTitle") == []
