"""The fake's Socket Mode: apps.connections.open hands out a one-off ticket for `/socket`, where
the fake sends `hello`, relays the envelopes a test sends, answers the SDK's pings and records
every frame the client sends back (acks are the frames with an `envelope_id`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from aiohttp import WSMsgType, web

from tests.fakes.recorder import Recorder
from tests.fakes.slack import payloads as p
from tests.fakes.slack.payloads import Json, Recorded

__all__ = ["EnvelopeType", "SocketMode"]

EnvelopeType = Literal["events_api", "slash_commands", "interactive"]


class SocketMode(Recorder[Recorded]):
    """Socket Mode for `FakeSlack`, which serves `_socket` at `/socket` and calls
    `_init_socket_mode` when it is built and `_connected = asyncio.Event()` on its loop."""

    api_app_id: str
    _port: int
    _loop: asyncio.AbstractEventLoop | None
    _thread: threading.Thread | None

    def _init_socket_mode(self) -> None:
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._connected: asyncio.Event | None = None  # set while a socket is open

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/socket"

    @property
    def connections(self) -> int:
        """How many Socket Mode connections are open."""
        with self._cond:
            return len(self._sockets)

    def acks(self) -> list[Recorded]:
        """Frames the Socket Mode client sent with an `envelope_id` (`body` is the frame)."""
        return self.calls("socket.ack")

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Recorded:
        """Block until the client acks `envelope_id` (blocks the thread: see `wait_for`)."""
        return self.wait_for(self._ack_of(envelope_id), timeout)

    async def wait_for_ack_async(self, envelope_id: str,
                                 timeout: float = 5.0) -> Recorded:  # noqa: ASYNC109
        return await self.wait_for_async(self._ack_of(envelope_id), timeout)

    @staticmethod
    def _ack_of(envelope_id: str) -> Callable[[Recorded], bool]:
        return lambda r: r.kind == "socket.ack" and r.body.get("envelope_id") == envelope_id

    def send_envelope(self, payload_type: EnvelopeType, payload: Json, *,
                      accepts_response_payload: bool | None = None, retry_attempt: int = 0,
                      retry_reason: str = "", timeout: float = 2.0) -> str:
        """Send a Socket Mode envelope to every open connection; return its `envelope_id`.

        Waits up to `timeout` for a connection; raises LookupError if none. By default only
        slash commands and interactive payloads accept a response payload, as on Slack.
        """
        envelope_id = str(uuid.uuid4())
        accepts = (payload_type != "events_api" if accepts_response_payload is None
                   else accepts_response_payload)
        envelope = {"envelope_id": envelope_id, "type": payload_type, "payload": payload,
                    "accepts_response_payload": accepts, "retry_attempt": retry_attempt,
                    "retry_reason": retry_reason}
        if self._call(self._broadcast(envelope, timeout)) == 0:
            raise LookupError(f"no Socket Mode connection for {payload_type} envelope")
        return envelope_id

    def disconnect(self, reason: str = "refresh_requested") -> int:
        """Send `{"type": "disconnect"}` to every connection (the client should reconnect)."""
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
        return self._call(self._broadcast(frame, 0.0))

    async def _broadcast(self, frame: Json, timeout: float) -> int:  # noqa: ASYNC109
        if self._connected is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), timeout)
        sent = 0
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps(frame))
                sent += 1
        return sent

    def _call(self, coroutine: Coroutine[Any, Any, int]) -> int:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or threading.current_thread() is thread:
            coroutine.close()
            raise RuntimeError("FakeSlack is not running (or this is its own thread)")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=10.0)

    def _connections_open(self, args: Json) -> Json:
        ticket = secrets.token_hex(8)
        self._tickets.add(ticket)
        return {"url": f"{self.socket_url}?ticket={ticket}"}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)  # answers the SDK's pings with pongs
        await ws.prepare(request)
        ticket = request.query.get("ticket", "")
        with self._cond:
            known = ticket in self._tickets
            if known:  # a ticket is good for one connection, as on Slack
                self._tickets.discard(ticket)
                self._sockets.append(ws)
        if known and self._connected is not None:
            self._connected.set()
        self._record(Recorded("socket.connect", {"ticket": ticket}, time.monotonic(),
                              request.path_qs, error=None if known else "invalid_ticket"))
        if not known:
            await ws.close(code=4000, message=b"invalid ticket")
            return ws
        try:
            await ws.send_str(json.dumps(p.hello_frame(self.api_app_id, self.connections)))
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(message.data)
                except ValueError:
                    frame = {"raw": message.data}
                kind = "socket.ack" if isinstance(frame, dict) and "envelope_id" in frame \
                    else "socket.message"
                self._record(Recorded(kind, frame if isinstance(frame, dict) else {"raw": frame},
                                      time.monotonic(), request.path))
        finally:
            with self._cond:
                if ws in self._sockets:
                    self._sockets.remove(ws)
                if not self._sockets and self._connected is not None:
                    self._connected.clear()
        return ws

    async def _close_connections(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001)
