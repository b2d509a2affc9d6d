"""The core answering as the model writes: what the person sees while it streams, and that the
recorded turn and the memory write are what they would be without streaming."""

from __future__ import annotations

import logging

import pytest

from adapters.console import to_event
from bot.core import BROKE_OFF, MODEL_DOWN
from bot.errors import ModelUnavailable
from bot.events import ReplyKind
from tests.test_core import Rig

ANSWER = "Lisbon in March sounds lovely; practise Portuguese with podcasts and a tutor."


class Shown:
    """A ``ReplyStream`` that keeps every text it was shown."""

    def __init__(self, fail: bool = False) -> None:
        self.texts: list[str] = []
        self.fail = fail

    async def show(self, text: str) -> None:
        self.texts.append(text)
        if self.fail:
            raise RuntimeError("the platform refused the edit")


@pytest.fixture
def rig() -> Rig:
    made = Rig()
    made.chat.answer = ANSWER
    return made


async def test_the_answer_is_shown_as_it_grows_and_the_reply_is_the_whole_answer(
        rig: Rig) -> None:
    shown = Shown()
    reply = await rig.core.handle(to_event("alice", "I move to Lisbon", session="s"), shown)
    assert reply is not None and reply.text == ANSWER and reply.notice is None
    assert len(shown.texts) == len(ANSWER.split())
    assert shown.texts[0] == "Lisbon "
    assert all(later.startswith(earlier) for earlier, later in zip(shown.texts, shown.texts[1:],
                                                                   strict=False))
    assert shown.texts[-1] == ANSWER


async def test_streaming_records_and_learns_exactly_what_a_plain_turn_does(rig: Rig) -> None:
    plain = await rig.core.handle(to_event("alice", "I move to Lisbon", session="a"))
    streamed = await rig.core.handle(to_event("alice", "I move to Lisbon", session="b"), Shown())
    assert plain is not None and streamed is not None and plain.text == streamed.text
    turns = {cid: [(t.role, t.text) for t in ts] for cid, ts in rig.start.turns.items()}
    assert turns["console:alice:a"] == turns["console:alice:b"] == [
        ("user", "I move to Lisbon"), ("assistant", ANSWER)]
    first, second = rig.jobs.writes
    assert (first.text, first.owner_id, first.metadata["platform"]) == (
        second.text, second.owner_id, second.metadata["platform"])


async def test_an_answer_that_breaks_off_keeps_what_was_said_and_says_so(rig: Rig) -> None:
    rig.chat.break_after = 4
    shown = Shown()
    reply = await rig.core.handle(to_event("alice", "I move to Lisbon", session="s"), shown)
    said = "Lisbon in March sounds"
    assert reply is not None and reply.kind is ReplyKind.ANSWER
    assert reply.text == said + "…" and reply.notice == BROKE_OFF
    assert shown.texts[-1].rstrip() == said
    assert [(t.role, t.text) for t in rig.start.turns["console:alice:s"]] == [
        ("user", "I move to Lisbon"), ("assistant", said + "…")]
    assert [w.text for w in rig.jobs.writes] == ["I move to Lisbon"]


async def test_a_stream_that_fails_before_its_first_word_is_the_usual_error(rig: Rig) -> None:
    rig.chat.failure = ModelUnavailable("connection refused")
    shown = Shown()
    reply = await rig.core.handle(to_event("alice", "hello", session="s"), shown)
    assert reply is not None and reply.kind is ReplyKind.ERROR and reply.text == MODEL_DOWN
    assert shown.texts == []
    assert rig.start.turns["console:alice:s"] == []


async def test_a_long_answer_stops_streaming_at_the_limit_and_is_cut_with_a_note() -> None:
    rig = Rig(max_answer_chars=40)
    rig.chat.answer = " ".join(f"word{n:02d}" for n in range(60))
    shown = Shown()
    reply = await rig.core.handle(to_event("alice", "talk", session="s"), shown)
    assert reply is not None and len(reply.text) <= 40 and reply.text.endswith("…")
    assert reply.notice is not None and "40 characters" in reply.notice
    assert all(len(text) <= 40 for text in shown.texts)
    assert rig.chat.pieces_read < 10  # it stopped reading: the rest would be cut anyway


async def test_a_failing_stream_is_logged_and_the_answer_still_comes_whole(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    shown = Shown(fail=True)
    with caplog.at_level(logging.ERROR):
        reply = await rig.core.handle(to_event("alice", "hello", session="s"), shown)
    assert reply is not None and reply.text == ANSWER
    assert len(shown.texts) == 1  # not called again after it failed
    assert "sent whole at the end" in caplog.text
