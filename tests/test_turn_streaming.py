"""Streamed turns on the real stack: the official OpenAI SDK reading `stream: true` server-sent
events from the scripted server, the composition root, PostgreSQL and mem0."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters.console import to_event
from bot.app import services
from bot.config import Settings
from bot.core import BROKE_OFF, MODEL_DOWN
from bot.events import ReplyKind
from bot.transcript import PostgresTranscript
from tests.fakes.openai_server import ScriptedOpenAI

MakeSettings = Callable[..., Settings]


class Shown:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def show(self, text: str) -> None:
        self.texts.append(text)


async def test_a_streamed_answer_arrives_in_pieces_and_is_recorded_whole(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    async with services(make_settings()) as app:
        shown = Shown()
        reply = await app.core.handle(to_event("alice", "I keep bees", session="s"), shown)
        assert reply is not None and reply.kind is ReplyKind.ANSWER
        assert reply.text == "(scripted) You said: I keep bees"
        assert shown.texts[0] == "(scripted) " and shown.texts[-1] == reply.text
        assert openai_server.calls("chat")[-1].body["stream"] is True
        await app.jobs.flush()
        turns = [turn for _, turn in
                 await PostgresTranscript(app.database.pool).of_owner("console:alice")]
        assert [(t.role, t.text) for t in turns] == [("user", "I keep bees"),
                                                    ("assistant", reply.text)]
        await app.jobs.wait_idle()
    # What is learned comes from the person's words only, as without streaming.
    extraction = openai_server.calls("extraction")[-1].body
    assert "I keep bees" in str(extraction) and "(scripted)" not in str(extraction)


@pytest.mark.parametrize("mode", ["drop", "end"])
async def test_a_stream_that_breaks_midway_keeps_what_was_said(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, mode: str
) -> None:
    openai_server.break_stream_after = 3
    openai_server.break_stream_mode = mode  # type: ignore[assignment]
    async with services(make_settings(model_max_retries=0)) as app:
        shown = Shown()
        reply = await app.core.handle(to_event("alice", "tell me a story", session="s"), shown)
        assert reply is not None and reply.kind is ReplyKind.ANSWER
        assert reply.notice == BROKE_OFF and reply.text.endswith("…")
        if mode == "end":  # a clean end delivers every word written
            assert reply.text == "(scripted) You said:…"
        # A cut connection may lose the last words in flight: what was shown is what is kept.
        assert "(scripted) You said: tell me a story".startswith(reply.text[:-1])
        assert shown.texts[-1].rstrip() == reply.text[:-1]
        await app.jobs.flush()
        turns = [turn for _, turn in
                 await PostgresTranscript(app.database.pool).of_owner("console:alice")]
        assert turns[-1].text == reply.text


async def test_a_stream_that_breaks_before_its_first_word_is_an_error(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    openai_server.break_stream_after = 0
    async with services(make_settings(model_max_retries=0)) as app:
        shown = Shown()
        reply = await app.core.handle(to_event("alice", "hello", session="s"), shown)
        assert reply is not None and reply.kind is ReplyKind.ERROR and reply.text == MODEL_DOWN
        assert shown.texts == []
