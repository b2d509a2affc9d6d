"""Answers streamed on Discord: the real discord.py client against the fake Discord, which
keeps every version of every message and enforces an edit rate limit, with the real core and
the scripted model server streaming its answer."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import SecretStr

from adapters.discord.streaming import EDIT_INTERVAL
from bot.app import services
from bot.config import Settings
from bot.core import BROKE_OFF
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.harness import running
from tests.fakes.discord.payloads import Json
from tests.fakes.openai_server import ScriptedOpenAI
from tests.test_discord import QuickClient, Rig, shown_now


@pytest.fixture
async def rig(make_settings: Callable[..., Settings], openai_server: ScriptedOpenAI,
              discord_fake: FakeDiscord) -> AsyncIterator[Rig]:
    async with services(make_settings(discord_token=SecretStr(discord_fake.token))) as app:
        client = QuickClient(handle=app.core.handle, commands=app.commands)
        async with running(client, discord_fake.token):
            yield Rig(app, client, discord_fake, openai_server)


NO_PINGS = {"parse": [], "replied_user": False}
STORY = ("Once upon a time a small robot learned to grow basil on a windowsill, and every "
         "morning it counted the new leaves before anyone else woke up.")


def versions(rig: Rig, message: Json) -> list[str]:
    return [v["content"] for v in rig.fake.channel_message_versions(int(message["id"]))]


async def test_the_answer_is_posted_with_its_first_words_then_edited_at_a_paced_rate(
        rig: Rig) -> None:
    rig.model.chat_reply = lambda body: STORY
    rig.model.stream_delay = 0.15  # 27 words: about 4 s of writing
    dm = rig.send(rig.fake.message_create("tell me a story", dm=True))
    [sent] = await rig.reply_to(dm)
    assert sent.body["content"] == STORY  # as Discord shows it at the end
    first = rig.fake.sent_messages()[0].body["content"]
    assert first and STORY.startswith(first) and len(first) < len(STORY) / 2
    shown = versions(rig, {"id": sent.message_id})
    assert all(later.startswith(earlier.rstrip("…")) for earlier, later
               in itertools.pairwise(shown))
    edits = rig.fake.edits(sent.message_id)
    assert len(edits) >= 2 and all(e.status == 200 for e in edits)  # never rate-limited
    # Paced: one edit per EDIT_INTERVAL while it streams; the last one, with the whole answer,
    # goes at once.
    paced = [rig.fake.sent_messages()[0].at] + [e.at for e in edits[:-1]]
    assert all(b - a >= EDIT_INTERVAL for a, b in itertools.pairwise(paced))


async def test_no_version_of_a_streamed_answer_can_ping(rig: Rig) -> None:
    rig.model.chat_reply = lambda body: ("Hey @everyone and @here, look: <@&123456> <@654321> "
                                         + "and more words " * 20)
    rig.model.stream_delay = 0.02
    mention = rig.send(rig.mention("say something loud"))
    await rig.reply_to(mention)
    requests = [*rig.fake.sent_messages(), *rig.fake.edits()]
    assert len(requests) >= 2
    assert all(r.body["allowed_mentions"]["parse"] == [] for r in requests)
    assert all(r.body["allowed_mentions"] == NO_PINGS for r in rig.fake.sent_messages())


async def test_a_long_streamed_answer_continues_in_further_messages_with_code_intact(
        rig: Rig) -> None:
    code = "\n".join(f"    value_{n:03d} = compute({n:03d}) * 2" for n in range(120))
    answer = f"Here you go:\n\n```python\n{code}\n```\n\nDone."
    answer += "\n\n" + "More words to read. " * ((4500 - len(answer)) // 20)
    rig.model.chat_reply = lambda body: answer
    rig.model.stream_chunk_words = 12
    dm = rig.send(rig.fake.message_create("show me code", dm=True))
    await rig.reply_to(dm)
    await rig.settle()
    sent = rig.fake.sent_messages()
    pieces = [shown_now(rig.fake, m).body["content"] for m in sent]
    assert len(pieces) == 3 and pieces[1].startswith("```python\n")
    assert all(p.count("```") % 2 == 0 for p in pieces)
    assert "value_119 = compute(119) * 2" in "".join(pieces)
    every = [v for m in sent for v in versions(rig, {"id": m.message_id})]
    assert all(len(v) <= 2000 for v in every)  # at every point, under Discord's limit
    assert str(sent[0].body["message_reference"]["message_id"]) == dm["id"]
    assert all(r.body["allowed_mentions"]["parse"] == [] for r in [*sent, *rig.fake.edits()])


async def test_a_stream_that_breaks_midway_ends_with_what_was_said_and_a_note(rig: Rig) -> None:
    rig.model.chat_reply = lambda body: STORY
    rig.model.break_stream_after = 6
    rig.model.break_stream_mode = "end"  # all written arrives; a cut connection may lose some
    dm = rig.send(rig.fake.message_create("tell me a story", dm=True))
    [sent] = await rig.reply_to(dm)
    said = " ".join(STORY.split()[:6])
    assert sent.body["content"] == f"-# {BROKE_OFF}\n{said}…"
    await rig.settle()  # what is learned is the person's words only
    assert rig.model.calls("extraction")
    assert all("Once upon" not in str(c.body) for c in rig.model.calls("extraction"))
