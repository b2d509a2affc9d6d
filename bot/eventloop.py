"""The event loop every membot process runs on: uvloop's, where it is built (not on Windows).

One loop answers everyone, so its cost per turn bounds how many people a process serves.
uvloop (an asyncio loop on libuv, from asyncpg's authors) runs the same asyncio programs with
less CPU spent in the loop's own machinery: the callbacks, timers and sockets of the two model
calls (handed to pyreqwest's thread since) and the Postgres statements of every turn
(docs/performance.md, "uvloop, and the job's wake in the record"). Everything membot uses on
the loop (aiohttp, asyncpg, psycopg's async connections, discord.py, signal handlers, threads
handing results back) runs on it unchanged, and the tests run on it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is not built for Windows
    uvloop = None  # type: ignore[assignment]

__all__ = ["new_event_loop", "run"]

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new loop of the kind :func:`run` runs on."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end on a new loop (see the module) and close it, as
    :func:`asyncio.run` does: the tasks left are cancelled, async generators and the default
    executor shut down."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
