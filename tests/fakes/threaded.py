"""The lifecycle every fake server shares: its own asyncio loop on a daemon thread.

Sync code on other threads, the test's own event loop and other processes can all talk to a
server run this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Self

__all__ = ["ThreadedServer"]


class ThreadedServer:
    """Subclasses implement :meth:`_serve`: set ``_loop`` and ``_stop``, start listening, call
    ``_ready.set()``, and return once ``_stop`` is set (closing their own connections)."""

    _thread_name = "fake-server"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    def start(self) -> Self:
        """Start serving; returns once the port is listening. Does nothing if already running."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop the loop (the server closes its connections) and join the thread."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        self._before_stop()
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10.0)
        self._thread = None

    def _before_stop(self) -> None:
        """Called on the caller's thread before the loop is told to stop."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to start() if it happened before listening
            self._startup_error = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        raise NotImplementedError
