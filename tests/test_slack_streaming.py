"""Answers streamed on Slack: the real bolt app and slack-sdk client against the fake Slack
(signed requests in HTTP mode), with the real core and the scripted model server streaming."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from adapters.slack.messages import safe_markdown
from adapters.slack.streaming import APPEND_INTERVAL, UPDATE_INTERVAL
from bot.config import Settings
from bot.core import BROKE_OFF
from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.slack import FakeSlack
from tests.fakes.slack.payloads import Recorded
from tests.test_slack import HttpRig, http_rig

STORY = ("Once upon a time a small robot learned to grow basil on a windowsill, and every "
         "morning it counted the new leaves before anyone else woke up.")
TRAPS = ("Careful: <!channel> and <!here> and <@U0BOSS> and <!subteam^S0ADMINS|admins>, "
         "[look](!everyone) and ![x](@U0BOSS) and [docs](https://example.com) end.")
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")
MARKUP = ("<!channel", "<!here", "<!everyone", "<@U0BOSS", "<!subteam", "](!", "](@")


@pytest.fixture
async def http(make_settings: Callable[..., Settings], openai_server: ScriptedOpenAI,
               slack_fake: FakeSlack) -> AsyncIterator[HttpRig]:
    async with http_rig(make_settings(), openai_server, slack_fake) as rig:
        yield rig


def calls(fake: FakeSlack, *kinds: str) -> list[Recorded]:
    return [r for r in fake.requests if r.kind in kinds]


async def test_a_mention_streams_in_its_thread_start_append_stop(http: HttpRig) -> None:
    http.model.chat_reply = lambda body: STORY
    http.model.stream_delay = 0.1  # 27 words: about 3 s of writing
    mention = http.fake.app_mention("tell me a story")
    await http.event(mention)
    [answer] = await http.answered(mention, timeout=30)
    assert answer["text"] == STORY and answer["thread_ts"] == mention["event"]["ts"]
    start, *appends, stop = calls(http.fake, *STREAM_METHODS)
    assert start.kind == "chat.startStream" and stop.kind == "chat.stopStream"
    assert start.body["recipient_user_id"] == http.fake.user.id  # needed outside a DM
    assert start.body["recipient_team_id"] == http.fake.team_id
    assert len(start.body["markdown_text"].split()) < 10  # the first words, not the whole
    assert appends and all(a.kind == "chat.appendStream" and a.ok for a in appends)
    assert "".join(str(r.body.get("markdown_text") or "") for r in (start, *appends, stop)) \
        == STORY
    times = [r.at for r in (start, *appends)]  # one append a second, at most
    assert all(b - a >= APPEND_INTERVAL for a, b in itertools.pairwise(times))
    assert http.fake.posted_messages() == []


async def test_no_piece_of_a_stream_can_mention_even_when_a_mention_is_cut_in_two(
        http: HttpRig) -> None:
    http.model.chat_reply = lambda body: TRAPS
    http.model.stream_chunk_chars = 3  # "<!c" "han" "nel>": mentions arrive in pieces
    http.model.stream_delay = 0.02
    mention = http.fake.app_mention("repeat after me")
    await http.event(mention)
    [answer] = await http.answered(mention)
    assert answer["text"] == safe_markdown(TRAPS)
    pieces = [str(r.body.get("markdown_text") or "") for r in calls(http.fake, *STREAM_METHODS)]
    assert len(pieces) >= 2
    for markup in MARKUP:
        assert markup not in answer["text"] and all(markup not in p for p in pieces)
    # Every prefix Slack rendered along the way was safe too, not only each piece.
    assert all(m not in "".join(pieces[:n]) for n in range(1, len(pieces) + 1) for m in MARKUP)


async def test_where_streaming_is_refused_answers_are_posted_then_updated_safely(
        http: HttpRig) -> None:
    http.fake.stream_refusal = "not_allowed"
    http.model.chat_reply = lambda body: TRAPS + " " + STORY
    http.model.stream_delay = 0.15
    http.model.stream_chunk_chars = 10  # about 4.5 s of writing
    first = http.fake.app_mention("repeat after me")
    await http.event(first)
    [answer] = await http.answered(first, timeout=30)
    assert "&lt;!channel&gt;" in answer["text"] and "once upon a time" in answer["text"].lower()
    versions = calls(http.fake, "chat.postMessage", "chat.update")
    assert versions[0].kind == "chat.postMessage" and len(versions) >= 3
    for version in versions:
        assert not any(m in version.body["text"] for m in ("<!channel", "<!here", "<@U0BOSS",
                                                           "<!subteam", "<!everyone"))
    paced = [v.at for v in versions[:-1]]  # the last update, with the whole answer, at once
    assert all(b - a >= UPDATE_INTERVAL for a, b in itertools.pairwise(paced))
    assert len(calls(http.fake, "chat.startStream")) == 1  # refused once…
    http.model.stream_delay = 0.0
    second = http.fake.app_mention("and again")
    await http.event(second)
    await http.answered(second)
    assert len(calls(http.fake, "chat.startStream")) == 1  # …and not asked again


async def test_a_direct_message_outside_a_thread_is_posted_then_updated(http: HttpRig) -> None:
    http.model.chat_reply = lambda body: STORY
    dm = http.fake.message_im("tell me a story")
    await http.event(dm)
    [answer] = await http.answered(dm)
    assert answer["text"] == STORY and "thread_ts" not in answer
    assert calls(http.fake, *STREAM_METHODS) == []


async def test_a_stream_that_breaks_midway_ends_with_what_was_said_and_a_note(
        http: HttpRig) -> None:
    http.model.chat_reply = lambda body: STORY
    http.model.break_stream_after = 6
    http.model.break_stream_mode = "end"  # all written arrives; a cut connection may lose some
    mention = http.fake.app_mention("tell me a story")
    await http.event(mention)
    [answer] = await http.answered(mention)
    said = " ".join(STORY.split()[:6])
    assert answer["text"] == f"{said}…\n\n_{BROKE_OFF}_"
    assert answer["streaming"] is False  # the stream was stopped, not left open
