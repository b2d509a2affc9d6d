"""What the core tells its turn observers, on in-memory fakes of its ports."""

from __future__ import annotations

import logging

import pytest

from adapters.console import to_event
from bot.core import Core, TurnLimits
from bot.errors import ModelRejected
from bot.ports import TurnReport
from tests.fakes.ports import FakeChat, FakeMemory, FakeStart, ListJobs


class Recorder:
    def __init__(self) -> None:
        self.received: list[str] = []
        self.reports: list[TurnReport] = []

    def event_received(self, platform: str) -> None:
        self.received.append(platform)

    def turn_finished(self, report: TurnReport) -> None:
        self.reports.append(report)


class Broken:
    def event_received(self, platform: str) -> None:
        raise RuntimeError("observer down")

    def turn_finished(self, report: TurnReport) -> None:
        raise RuntimeError("observer down")


def build(memory: FakeMemory, chat: FakeChat, *observers: Recorder | Broken) -> Core:
    start = FakeStart()
    return Core(memory=memory, chat=chat, start=start, exchanges=ListJobs(start),
                limits=TurnLimits(memory_search_timeout=0.2), observers=observers)


async def test_each_turn_is_reported_once_with_its_outcome_and_timings() -> None:
    memory, chat, seen = FakeMemory(), FakeChat(), Recorder()
    memory.remember("console:alice", "Alice keeps bees")
    core = build(memory, chat, seen)
    told = to_event("alice", "what do I keep?", session="s")
    await core.handle(told)
    await core.handle(told)
    await core.handle(to_event("alice", "  ", session="s"))
    chat.failure = ModelRejected("400")
    await core.handle(to_event("bob", "hello", session="s"))

    assert seen.received == ["console"] * 4
    answered, duplicate, hint, error = seen.reports
    assert [r.outcome for r in seen.reports] == ["answered", "duplicate", "hint", "error"]
    assert answered.event_id == duplicate.event_id == told.event_id
    assert answered.owner == "console:alice" and answered.memories == 1
    assert answered.search_seconds is not None and answered.model_seconds is not None
    assert answered.total_seconds >= answered.model_seconds
    for skipped in (duplicate, hint):
        assert skipped.owner is None and skipped.memories == 0
        assert skipped.search_seconds is None and skipped.model_seconds is None
    assert error.owner == "console:bob" and error.model_seconds is not None


async def test_a_search_cut_off_by_its_budget_is_timed_and_finds_nothing() -> None:
    memory, seen = FakeMemory(), Recorder()
    memory.remember("console:alice", "Alice keeps bees")
    memory.delay = 5.0
    await build(memory, FakeChat(), seen).handle(to_event("alice", "bees?", session="s"))
    [report] = seen.reports
    assert report.outcome == "answered" and report.memories == 0
    assert report.search_seconds is not None and report.search_seconds >= 0.19  # the budget, not 0


async def test_a_failing_observer_costs_nothing_but_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = Recorder()
    core = build(FakeMemory(), FakeChat(), Broken(), seen)
    with caplog.at_level(logging.ERROR):
        reply = await core.handle(to_event("alice", "hello", session="s"))
    assert reply is not None and reply.text == "fine answer"
    assert [r.outcome for r in seen.reports] == ["answered"]
    assert "a turn observer failed" in caplog.text
