"""The lifecycle every fake server shares: its own asyncio loop on a daemon thread.

Sync code on other threads, the test's own event loop and other processes can all talk to a
server run this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

__all__ = ["ThreadedServer"]

# Connections waiting to be accepted: uvicorn's and gunicorn's default (vLLM serves its
# OpenAI-compatible API on uvicorn), not aiohttp's 128, which dropped connection attempts (each
# retried a second later) when 500 people's first messages opened their connections at once.
BACKLOG = 2048


class ThreadedServer:
    """An aiohttp server on 127.0.0.1 (``port`` 0: any free one, kept across restarts).

    Subclasses build their routes in :meth:`_build_app` and close their own long-lived
    connections (websockets) in :meth:`_close_connections`.
    """

    _thread_name = "fake-server"

    def __init__(self, port: int = 0) -> None:
        self._port = port
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

    def _build_app(self) -> web.Application:
        raise NotImplementedError

    async def _close_connections(self) -> None:
        """Close long-lived connections before the server stops (on the server's loop)."""

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._port))
            self._port = sock.getsockname()[1]
            await web.SockSite(runner, sock, backlog=BACKLOG).start()
            self._ready.set()
            await self._stop.wait()
        finally:
            await self._close_connections()
            await runner.cleanup()
            sock.close()
