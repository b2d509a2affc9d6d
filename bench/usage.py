"""A metering pass-through in front of any OpenAI-compatible endpoint: what each model call
cost, as the server itself reported it.

Each system under test gets its own base URL on the meter (:meth:`UsageMeter.url`), so their
calls are told apart even when they run at the same time. The meter forwards every request to
the real endpoint and records, per call, its kind (an embedding, a chat turn, or a memory
extraction: a chat call that asks for a JSON object, as Mem0's does), the ``usage`` numbers of
the server's answer, and the seconds the server took; ``stages`` labels the calls that follow,
per system. Chat calls (extractions included) are forwarded one at a time, so a call's seconds
are its own and not time spent queueing behind another (a local server runs one at a time
anyway); embeddings pass alongside. The meter keeps serving calls of the kind it served last
(chat turns or extractions) while any of that kind wait, and switches only when none do: a
server that keeps the previous prompt's prefix (llama.cpp does) then evaluates Mem0's long
fixed instructions once for a run of extractions instead of once for each.
``max_answer_tokens`` caps chat turns (never extractions) that set no limit of their own, to
bound a slow local model's long answers; otherwise requests are forwarded unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import ClientSession, ClientTimeout, web

from tests.fakes.threaded import ThreadedServer

__all__ = ["Call", "UsageMeter", "kind_of"]

Kind = Literal["chat", "extraction", "embedding"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One model call as the meter saw it. ``prompt`` is the text of the request's user
    messages (extractions only: what was learned from), ``prompt_tokens`` and
    ``completion_tokens`` the server's ``usage`` (0 when it gave none)."""

    phase: str
    kind: Kind
    status: int
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    prompt: str = ""


def kind_of(body: dict[str, Any]) -> Kind:
    """Mem0's extraction asks for a JSON object; every other chat call is a chat turn."""
    fmt = body.get("response_format")
    is_json = isinstance(fmt, dict) and fmt.get("type") in {"json_object", "json_schema"}
    return "extraction" if is_json else "chat"


def _user_text(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            parts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(parts)


_HTTP = web.AppKey("http", ClientSession)


class UsageMeter(ThreadedServer):
    """Forwards ``/v1/...`` to ``upstream`` (a base URL ending in ``/v1``) and records each
    call (:attr:`calls`)."""

    def __init__(self, upstream: str, timeout: float = 1800.0,
                 max_answer_tokens: int | None = None) -> None:
        ThreadedServer.__init__(self, 0)
        self._thread_name = "usage-meter"
        self.upstream = upstream.rstrip("/")
        self.timeout = timeout
        self.max_answer_tokens = max_answer_tokens
        self.stages: dict[str, str] = {}  # system label -> the stage its calls belong to
        self._calls: list[Call] = []
        self._lock = threading.Lock()

    def url(self, label: str) -> str:
        """The base URL for system ``label`` (letters, digits, dashes)."""
        return f"http://127.0.0.1:{self._port}/{label}/v1"

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.cleanup_ctx.append(self._session)
        app.router.add_route("*", "/{label}/v1/{tail:.*}", self._forward)
        return app

    async def _session(self, app: web.Application) -> Any:
        app[_HTTP] = ClientSession(timeout=ClientTimeout(total=self.timeout))
        app[_TURNS] = _Turns()
        yield
        await app[_HTTP].close()

    async def _forward(self, request: web.Request) -> web.Response:
        tail, label = request.match_info["tail"], request.match_info["label"]
        raw = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in {"authorization", "content-type", "accept"}}
        body: dict[str, Any] = {}
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else {}
        kind: Kind | None = None
        if tail.startswith("embeddings"):
            kind = "embedding"
        elif tail.startswith("chat/completions"):
            kind = kind_of(body)
            limits = ("max_tokens", "max_completion_tokens")
            if (kind == "chat" and self.max_answer_tokens is not None
                    and not any(body.get(k) for k in limits)):
                body["max_tokens"] = self.max_answer_tokens
                raw = json.dumps(body).encode()
        http = request.app[_HTTP]
        url = f"{self.upstream}/{tail}"
        if kind is None:
            async with http.request(request.method, url, data=raw or None, headers=headers,
                                    params=request.query) as response:
                data = await response.read()
                return web.Response(body=data, status=response.status,
                                    content_type=response.content_type)
        phase = f"{label}:{self.stages.get(label, '')}"
        turns = request.app[_TURNS]
        async with turns.take(kind) if kind != "embedding" else contextlib.nullcontext():
            started = time.perf_counter()
            async with http.post(url, data=raw, headers=headers) as response:
                data = await response.read()
                status, content_type = response.status, response.content_type
            seconds = time.perf_counter() - started
        usage: dict[str, Any] = {}
        try:
            answer = json.loads(data)
            if isinstance(answer, dict) and isinstance(answer.get("usage"), dict):
                usage = answer["usage"]
        except ValueError:
            pass
        call = Call(phase=phase, kind=kind, status=status, seconds=seconds,
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                    prompt=_user_text(body) if kind == "extraction" else "")
        with self._lock:
            self._calls.append(call)
        return web.Response(body=data, status=status, content_type=content_type)



class _Turns:
    """One model call at a time; calls of the kind served last go first."""

    def __init__(self) -> None:
        self._busy = False
        self._last: Kind = "chat"
        self._waiting: dict[Kind, int] = {"chat": 0, "extraction": 0}
        self._free = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def take(self, kind: Kind) -> AsyncIterator[None]:
        async with self._free:
            self._waiting[kind] += 1
            try:
                await self._free.wait_for(lambda: not self._busy and (
                    kind == self._last or not self._waiting[self._last]))
            finally:
                self._waiting[kind] -= 1
            self._busy, self._last = True, kind
        try:
            yield
        finally:
            async with self._free:
                self._busy = False
                self._free.notify_all()


_TURNS = web.AppKey("turns", _Turns)
