"""Prometheus metrics of one membot process, on a registry of its own.

The composition root builds one :class:`Metrics` and hands it to what records: the core (as a
``TurnObserver``) and the memory-write runner (as a ``WriteObserver``). The web server serves
:meth:`Metrics.exposition` at ``/metrics``. Nothing here uses prometheus-client's global default
registry, so several ``Metrics`` (one per test) never see each other's numbers.

Every metric is named ``membot_*``:

===================================  =========  ==============================================
name                                 type       meaning
===================================  =========  ==============================================
``membot_inbound_events_total``      counter    messages that reached the core (``Core.handle``;
                                                not commands), by ``platform``
``membot_turns_total``               counter    turns ended, by ``platform`` and ``outcome``
                                                (answered, error, hint, duplicate)
``membot_reply_seconds``             histogram  from an event's arrival to its reply, by
                                                ``platform`` (duplicates, which get none, are
                                                left out)
``membot_memory_search_seconds``     histogram  one turn's memory search (timeouts included)
``membot_chat_model_seconds``        histogram  one turn's chat model call, retries included
``membot_memory_writes_total``       counter    memory writes ended, by ``result`` (done,
                                                failed)
``membot_memory_write_queue_depth``  gauge      memory writes accepted and not yet finished
===================================  =========  ==============================================

Plus the client's standard ``process_*`` and ``python_*`` metrics of this process.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from bot.ports import TurnReport

__all__ = ["Metrics"]

_REPLY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
_SEARCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_MODEL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class Metrics:
    """The metrics above, recorded as turns and memory writes end.

    Satisfies ``TurnObserver`` and ``WriteObserver``. Recording never blocks and never raises
    for a new label value. ``queue_depth`` is read at each scrape; until :meth:`watch_queue`
    gives it a source it reads 0.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._inbound = Counter(
            "membot_inbound_events", "Events that reached the core.", ["platform"],
            registry=registry,
        )
        self._turns = Counter(
            "membot_turns", "Turns ended, by outcome.", ["platform", "outcome"],
            registry=registry,
        )
        self._reply = Histogram(
            "membot_reply_seconds", "Seconds from an event's arrival to its reply.",
            ["platform"], buckets=_REPLY_BUCKETS, registry=registry,
        )
        self._search = Histogram(
            "membot_memory_search_seconds", "Seconds one turn's memory search took.",
            buckets=_SEARCH_BUCKETS, registry=registry,
        )
        self._model = Histogram(
            "membot_chat_model_seconds", "Seconds one turn's chat model call took.",
            buckets=_MODEL_BUCKETS, registry=registry,
        )
        self._writes = Counter(
            "membot_memory_writes", "Memory writes ended, by result.", ["result"],
            registry=registry,
        )
        for result in ("done", "failed"):
            self._writes.labels(result=result)
        self._depth_source: Callable[[], int] = lambda: 0
        self._depth = Gauge(
            "membot_memory_write_queue_depth", "Memory writes accepted and not yet finished.",
            registry=registry,
        )
        self._depth.set_function(lambda: float(self._depth_source()))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth from ``depth`` at each scrape (for example the in-process
        runner's ``pending``, or a count of a durable queue's waiting jobs). It must be quick
        and must not block: it runs on the event loop, inside ``/metrics``."""
        self._depth_source = depth

    # TurnObserver

    def event_received(self, platform: str) -> None:
        self._inbound.labels(platform=platform).inc()

    def turn_finished(self, report: TurnReport) -> None:
        self._turns.labels(platform=report.platform, outcome=report.outcome).inc()
        if report.outcome != "duplicate":
            self._reply.labels(platform=report.platform).observe(report.total_seconds)
        if report.search_seconds is not None:
            self._search.observe(report.search_seconds)
        if report.model_seconds is not None:
            self._model.observe(report.model_seconds)

    # WriteObserver

    def write_finished(self, *, ok: bool) -> None:
        self._writes.labels(result="done" if ok else "failed").inc()

    def exposition(self) -> tuple[bytes, str]:
        """Every metric in Prometheus' text format, and the content type to serve it with."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
