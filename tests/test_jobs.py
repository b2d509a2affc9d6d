"""The in-process job runner: per-owner order, failure isolation, bounded shutdown."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bot.jobs import InProcessJobs
from bot.ports import MemoryWrite


def write(owner: str, n: int) -> MemoryWrite:
    return MemoryWrite(owner_id=owner, account=owner, event_id=f"{owner}-{n}", text=f"fact {n}",
                       at=datetime.now(UTC))


async def test_one_owners_writes_run_one_at_a_time_in_order() -> None:
    log: list[str] = []
    running: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}

    async def handler(w: MemoryWrite) -> None:
        running[w.owner_id] += 1
        most[w.owner_id] = max(most[w.owner_id], running[w.owner_id])
        await asyncio.sleep(0.01 if w.event_id.endswith("0") else 0.001)
        log.append(w.event_id)
        running[w.owner_id] -= 1

    jobs = InProcessJobs(handler)
    for n in range(5):
        await jobs.enqueue(write("a", n))
        await jobs.enqueue(write("b", n))
    await jobs.wait_idle()
    assert [e for e in log if e.startswith("a")] == [f"a-{n}" for n in range(5)]
    assert [e for e in log if e.startswith("b")] == [f"b-{n}" for n in range(5)]
    assert most == {"a": 1, "b": 1}
    assert jobs.done == 10


async def test_different_owners_run_concurrently() -> None:
    gate = asyncio.Event()
    started: list[str] = []

    async def handler(w: MemoryWrite) -> None:
        started.append(w.owner_id)
        await gate.wait()

    jobs = InProcessJobs(handler)
    await jobs.enqueue(write("a", 0))
    await jobs.enqueue(write("b", 0))
    await asyncio.sleep(0.01)
    assert sorted(started) == ["a", "b"]
    gate.set()
    await jobs.wait_idle()


async def test_a_failing_write_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []

    async def handler(w: MemoryWrite) -> None:
        if w.event_id == "a-0":
            raise RuntimeError("extraction failed")
        done.append(w.event_id)

    jobs = InProcessJobs(handler)
    with caplog.at_level(logging.ERROR):
        await jobs.enqueue(write("a", 0))
        await jobs.enqueue(write("a", 1))
        await jobs.wait_idle()
    assert done == ["a-1"]
    assert (jobs.done, jobs.failed) == (1, 1)
    assert "memory write of event a-0 failed" in caplog.text


async def test_drain_finishes_pending_writes_within_the_grace_time() -> None:
    async def handler(w: MemoryWrite) -> None:
        await asyncio.sleep(0.05)

    jobs = InProcessJobs(handler)
    for n in range(3):
        await jobs.enqueue(write("a", n))
    assert await jobs.drain(grace=5) == 0
    assert jobs.done == 3


async def test_drain_counts_and_logs_writes_that_do_not_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(w: MemoryWrite) -> None:
        await asyncio.sleep(3600)

    jobs = InProcessJobs(handler)
    await jobs.enqueue(write("a", 0))
    await jobs.enqueue(write("b", 0))
    with caplog.at_level(logging.ERROR):
        lost = await jobs.drain(grace=0.05)
        await jobs.enqueue(write("c", 0))
    assert lost == 2
    assert "2 memory writes did not finish" in caplog.text
    assert "arrived after shutdown began" in caplog.text
    assert jobs.pending == 0
