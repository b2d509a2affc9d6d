"""``/metrics`` over HTTP while real turns happen: the composition root's services on the
embedded PostgreSQL, mem0 and the scripted model server, scraped and parsed as Prometheus
would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from adapters.console import to_event
from adapters.web import build_web_app
from bot.app import services
from bot.config import Settings
from bot.metrics import Metrics
from bot.ports import TurnReport
from tests.conftest import serve_web
from tests.fakes.openai_server import ScriptedOpenAI

MakeSettings = Callable[..., Settings]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled series not created yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: aiohttp.ClientSession, port: int) -> Samples:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return parse(await response.text())


async def scrape_until(http: aiohttp.ClientSession, port: int, *, depth: int) -> Samples:
    """Scrape until the queue-depth gauge shows ``depth`` (it is counted every few seconds)."""
    scraped = await scrape(http, port)
    while value(scraped, "membot_memory_write_queue_depth") != depth:
        await asyncio.sleep(0.2)
        scraped = await scrape(http, port)
    return scraped


async def test_metrics_move_as_turns_happen(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI
) -> None:
    # One attempt per write, so a failing one is counted once.
    async with services(make_settings(model_max_retries=0, memory_write_attempts=1)) as app:
        runner, port = await serve_web(build_web_app(metrics=app.metrics))
        try:
            async with aiohttp.ClientSession() as http:
                before = await scrape(http, port)
                assert value(before, "membot_inbound_events_total", platform="console") == 0
                assert value(before, "membot_memory_writes_total", result="done") == 0
                assert value(before, "membot_memory_write_queue_depth") == 0

                answered = to_event("alice", "I keep bees on my roof", session="s")
                await app.core.handle(answered)
                await app.core.handle(answered)  # redelivered: a duplicate
                await app.core.handle(to_event("alice", "   ", session="s"))  # a hint
                openai_server.fail_always("chat", 500)
                await app.core.handle(to_event("alice", "and honey?", session="s"))  # an error
                openai_server.clear_failures()
                await app.jobs.wait_idle()
                after = await scrape_until(http, port, depth=0)

                # A write held at the model is counted in the queue until it ends.
                openai_server.hold("extraction")
                await app.core.handle(to_event("bob", "I play the oboe", session="t"))
                assert await asyncio.to_thread(openai_server.wait_for, "extraction", 2)
                held = await scrape_until(http, port, depth=1)  # counted every few seconds
                openai_server.release("extraction")
                await app.jobs.wait_idle()

                # A write the model fails is counted as failed.
                openai_server.fail_always("embedding", 500)
                await app.core.handle(to_event("carol", "I like chess", session="u"))
                await app.jobs.wait_idle()
                openai_server.clear_failures()
                last = await scrape_until(http, port, depth=0)
        finally:
            await runner.cleanup()

    def turns(outcome: str) -> float:
        return value(after, "membot_turns_total", platform="console", outcome=outcome)

    assert value(after, "membot_inbound_events_total", platform="console") == 4
    assert (turns("answered"), turns("duplicate"), turns("hint"), turns("error")) == (1, 1, 1, 1)
    # A reply for each turn but the duplicate; a search and a model call in the answered
    # and the failed turn.
    assert value(after, "membot_reply_seconds_count", platform="console") == 3
    assert value(after, "membot_memory_search_seconds_count") == 2
    assert value(after, "membot_chat_model_seconds_count") == 2
    assert value(after, "membot_chat_model_seconds_sum") > 0
    assert value(after, "membot_reply_seconds_bucket", platform="console", le="+Inf") == 3
    # Only the answered turn queued a write (an error learns nothing).
    assert value(after, "membot_memory_writes_total", result="done") == 1
    assert value(after, "membot_memory_writes_total", result="failed") == 0
    assert value(after, "membot_memory_write_queue_depth") == 0

    assert value(held, "membot_memory_write_queue_depth") == 1
    assert value(last, "membot_memory_writes_total", result="done") == 2
    assert value(last, "membot_memory_writes_total", result="failed") == 1
    assert value(last, "membot_memory_write_queue_depth") == 0
    assert value(last, "membot_inbound_events_total", platform="console") == 6
    assert value(last, "process_cpu_seconds_total") > 0  # the process's own metrics come along


def test_each_metrics_object_counts_only_its_own() -> None:
    first, second = Metrics(), Metrics()
    report = TurnReport(event_id="e", platform="discord", outcome="answered", owner="o",
                        memories=0, search_seconds=None, model_seconds=0.2, total_seconds=0.3)
    first.event_received("discord")
    first.turn_finished(report)
    one = parse(first.exposition()[0].decode())
    other = parse(second.exposition()[0].decode())
    assert value(one, "membot_turns_total", platform="discord", outcome="answered") == 1
    assert value(other, "membot_turns_total", platform="discord", outcome="answered") == 0
    assert value(one, "membot_memory_search_seconds_count") == 0  # no search, none observed
