"""A scripted stand-in for an OpenAI-compatible API, used by the test suite and benchmarks.

`ScriptedOpenAI` is a real HTTP server (aiohttp) on 127.0.0.1 that speaks the small part of the
OpenAI REST API the bot and mem0 use: embeddings, chat completions and the model list. Production
code never knows it is talking to it; it is only pointed at `server.base_url`.

Answers are deterministic. Embeddings come from feature hashing, so texts that share words are
close. A memory extraction (a chat call asking for a JSON object: membot's, or Mem0's own in
the plain loop benchmarks compare with) gets one fact per new message, its text word for
word. Any other chat call gets a reply that quotes the last user message and the lines of a
`<memories>` block in the system prompt, so tests can see what the model was given.

A chat request with `stream: true` is answered as OpenAI streams: server-sent events, one
`chat.completion.chunk` per word of the answer (`stream_chunk_words` words each, or
`stream_chunk_chars` characters, which can cut a word or a mention in two), `stream_delay`
seconds apart, then the chunk with `finish_reason` and `data: [DONE]`. `break_stream_after`
scripts a stream that breaks midway: after that many text chunks the connection is dropped
(`"drop"`) or the body ends cleanly with no finish (`"end"`), as `break_stream_mode` says.

Tests can script failures (`fail_next`, `fail_always`), hold requests of one kind until released
(`hold`, `release`), and inspect every request that arrived (`requests`, `calls`, `wait_for`).
Benchmarks read running totals per kind of call (`counts`, or `GET /v1/_counts` from another
process): how many calls, how many inputs and how many characters of input they carried.
The server runs its own event loop in a background thread, so sync clients, async clients and
other processes can all use it. Run it alone with `python -m tests.fakes.openai_server --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import re
import signal
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Literal

import platformdirs
from aiohttp import web

from tests.fakes.threaded import ThreadedServer

Kind = Literal["chat", "extraction", "embedding"]

# Deliberately small: only words so common they would make unrelated texts look alike.
_STOP_WORDS = frozenset({
    "the", "a", "an", "i", "my", "do", "what", "is", "are", "to", "of", "and", "with", "in",
    "on", "for", "you", "me", "use", "it", "that", "be", "am", "was", "did", "does", "how",
})
_WORD = re.compile(r"[a-z0-9]+")
_ERROR_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived; `status` is what it was (or will be) answered with."""

    kind: Kind
    body: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class Tally:
    """Running totals for one kind of call: `inputs` are the messages of a chat request or the
    texts of an embedding request, `chars` the characters of their text (a prompt-size proxy)."""

    calls: int = 0
    inputs: int = 0
    chars: int = 0


@dataclass
class _Failure:
    status: int
    remaining: int | None  # None: fail every request of the kind
    retry_after_ms: float


def _feature(feature: str, dims: int) -> tuple[int, float]:
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return (value >> 1) % dims, 1.0 if value & 1 else -1.0


def embed(text: str, dims: int) -> list[float]:
    """Deterministic feature-hashing embedding: words weigh 1, their character trigrams 0.5."""
    vector = [0.0] * dims
    for token in _WORD.findall(text.lower()):
        if token in _STOP_WORDS:
            continue
        index, sign = _feature("w:" + token, dims)
        vector[index] += sign
        for start in range(len(token) - 2):
            index, sign = _feature("t:" + token[start : start + 3], dims)
            vector[index] += 0.5 * sign
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        return [1.0] + [0.0] * (dims - 1)
    return [x / norm for x in vector]


def _text(content: Any) -> str:
    """The text of a message's content, which is a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _messages(body: dict[str, Any], role: str) -> list[str]:
    messages = body.get("messages") or []
    return [_text(m.get("content")) for m in messages if m.get("role") == role]


def _section_lines(text: str, start: str, end: Callable[[str], bool]) -> list[str]:
    """The lines after the line `start` up to the first line for which `end` is true."""
    lines = text.splitlines()
    stripped = [line.strip() for line in lines]
    if start not in stripped:
        return []
    found: list[str] = []
    for line in lines[stripped.index(start) + 1 :]:
        if end(line):
            break
        found.append(line)
    return found


_NUMBERED = re.compile(r"^[<\[](\d+)[>\]] (?:\([^)]*\) )?(.*)$")


def _numbered(body: dict[str, Any], header: str) -> list[str]:
    """The numbered lines of a section of membot's extraction prompt, without their numbers
    and dates; message texts come unquoted."""
    lines = _section_lines("\n".join(_messages(body, "user")), header,
                           lambda line: not line.strip())
    found = []
    for line in lines:
        match = _NUMBERED.match(line.strip())
        if match is None:
            continue
        text = match.group(2)
        if text.startswith('"'):
            text = json.loads(text)
        elif text.endswith(")") and " (noted " in text:
            text = text[: text.rindex(" (noted ")]
        found.append(text)
    return found


def new_messages(body: dict[str, Any]) -> list[str]:
    """The texts of the new messages an extraction request asks about, in order (1 first)."""
    return _numbered(body, "New messages:")


def kept_notes(body: dict[str, Any]) -> list[str]:
    """The kept notes an extraction request shows, in order (note 1 first)."""
    return _numbered(body, "Kept notes:")


def _fact(entry: str | dict[str, Any], said: int) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"fact": entry, "when": "", "from": list(range(1, said + 1)), "replaces": []}
    return {"when": "", "from": list(range(1, said + 1)), "replaces": [], **entry}


def _mem0_lines(body: dict[str, Any]) -> list[str]:
    """The `user:` lines under the `## New Messages` header of Mem0's own extraction prompt
    (the plain Mem0 loop's, in benchmarks)."""
    lines = _section_lines("\n".join(_messages(body, "user")), "## New Messages",
                           lambda line: line.startswith("## "))
    return [line[len("user:"):].strip() for line in lines if line.startswith("user:")]


def _extracted_memories(body: dict[str, Any]) -> str:
    """One fact per new message, word for word, from that message; in Mem0's shape for Mem0's
    own extraction prompt."""
    if mem0_said := _mem0_lines(body):
        return json.dumps({"memory": [{"text": t} for t in mem0_said if len(t) >= 3]})
    facts = [{"fact": t, "when": "", "from": [n], "replaces": []}
             for n, t in enumerate(new_messages(body), 1) if len(t) >= 3]
    return json.dumps({"facts": facts, "retracted": []})


def _chat_kind(body: dict[str, Any]) -> Kind:
    """membot's memory extraction asks for a JSON object; everything else is a chat turn."""
    answer_format = body.get("response_format")
    is_json = isinstance(answer_format, dict) and answer_format.get("type") in (
        "json_object", "json_schema")
    return "extraction" if is_json else "chat"


def _default_reply(body: dict[str, Any]) -> str:
    users = _messages(body, "user")
    reply = f"(scripted) You said: {users[-1] if users else ''}"
    block = _section_lines("\n".join(_messages(body, "system")), "<memories>",
                           lambda line: line.strip() == "</memories>")
    remembered = [line.strip() for line in block if line.strip()]
    if remembered:
        reply += " I remember: " + "; ".join(remembered)
    return reply


def _inputs(kind: Kind, body: dict[str, Any]) -> list[str]:
    """The texts a request gives the model: its messages' contents, or the texts to embed."""
    if kind == "embedding":
        texts = body.get("input")
        if isinstance(texts, str):
            return [texts]
        return [str(t) for t in texts] if isinstance(texts, list) else []
    return [_text(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]


def _words(text: str) -> int:
    return len(text.split())


def _error(status: int, message: str, code: str | None = None,
           headers: dict[str, str] | None = None, param: str | None = None) -> web.Response:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error = {"message": message, "type": kind, "param": param, "code": code}
    return web.json_response({"error": error}, status=status, headers=headers)


class ScriptedOpenAI(ThreadedServer):
    """An OpenAI-compatible HTTP server with scripted answers, in its own thread and loop."""

    def __init__(self, dims: int = 64, chat_delay: float = 0.0, extraction_delay: float = 0.0,
                 embedding_delay: float = 0.0, *, api_key: str | None = None, port: int = 0,
                 chat_reply: Callable[[dict[str, Any]], str] | None = None,
                 extraction_reply: Callable[[dict[str, Any]], list[str | dict[str, Any]]] | None
                 = None) -> None:
        ThreadedServer.__init__(self, port)
        self._thread_name = "scripted-openai"
        self.dims = dims
        self.chat_delay = chat_delay
        self.extraction_delay = extraction_delay
        self.embedding_delay = embedding_delay
        self.api_key = api_key
        self.chat_reply = chat_reply
        # The facts an extraction call returns: texts (from every message), or objects with
        # "fact" and any of "when", "from" and "replaces" (default: one fact per new message,
        # its text word for word).
        self.extraction_reply = extraction_reply
        # Kept notes (by text) that every extraction with a scripted reply says are retracted.
        self.retract_notes: set[str] = set()
        # Or the extraction answer's raw text, valid JSON or not (overrides extraction_reply).
        self.extraction_text: Callable[[dict[str, Any]], str] | None = None
        # A context window, in characters of all a request's messages: longer requests get
        # the 400 a real server gives. None: any length.
        self.context_chars: int | None = None
        # Body parameters refused with a 400 naming them, as OpenAI refuses max_tokens for its
        # reasoning models.
        self.refused_params: set[str] = set()
        # Refuse a json_schema response format with this HTTP status (json_object is still
        # taken), as some servers do: OpenAI-compatible ones with a 400, llama-cpp-python's
        # with a 500.
        self.refuses_schemas: int | None = None
        # Streaming (`stream: true`): seconds between chunks, words per chunk, and a stream
        # that breaks after that many text chunks ("drop": the connection is cut; "end": the
        # body ends with no finish_reason and no [DONE]).
        self.stream_delay = 0.0
        self.stream_chunk_words = 1
        self.stream_chunk_chars: int | None = None  # or cut into pieces of this many characters
        self.break_stream_after: int | None = None
        self.break_stream_mode: Literal["drop", "end"] = "drop"
        self._records: list[Recorded] = []
        self._failures: dict[Kind, _Failure] = {}
        self._gates: dict[Kind, threading.Event] = {}
        self._tallies: dict[Kind, Tally] = {}
        self._cond = threading.Condition()

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def _before_stop(self) -> None:
        self._release_all()

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/_counts", self._counts)
        return app

    # --- scripting and observation (any thread) ----------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of every request recorded so far, in arrival order."""
        with self._cond:
            return list(self._records)

    def calls(self, kind: Kind) -> list[Recorded]:
        with self._cond:
            return [r for r in self._records if r.kind == kind]

    def wait_for(self, kind: Kind, count: int, timeout: float = 10.0) -> bool:
        """Block until at least `count` requests of `kind` have arrived; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(r.kind == kind for r in self._records) >= count, timeout
            )

    def counts(self) -> dict[str, Tally]:
        """Totals per kind of call since the start (or the last `reset`), failed calls included."""
        with self._cond:
            return {kind: Tally(t.calls, t.inputs, t.chars) for kind, t in self._tallies.items()}

    def fail_next(self, kind: Kind, status: int, count: int = 1,
                  retry_after: float | None = None) -> None:
        """Answer the next `count` requests of `kind` with `status`.

        `retry_after` is in milliseconds (header `retry-after-ms`, default 10) so the official
        SDK's retries are fast.
        """
        with self._cond:
            self._failures[kind] = _Failure(status, count, 10.0 if retry_after is None
                                            else retry_after)

    def fail_always(self, kind: Kind, status: int) -> None:
        with self._cond:
            self._failures[kind] = _Failure(status, None, 10.0)

    def clear_failures(self) -> None:
        with self._cond:
            self._failures.clear()

    def hold(self, kind: Kind) -> threading.Event:
        """Make requests of `kind` wait until `release(kind)` (or the returned event is set)."""
        with self._cond:
            gate = self._gates.get(kind)
            if gate is None or gate.is_set():
                gate = self._gates[kind] = threading.Event()
            return gate

    def release(self, kind: Kind) -> None:
        with self._cond:
            gate = self._gates.pop(kind, None)
        if gate is not None:
            gate.set()

    def reset(self) -> None:
        """Forget recorded requests, counts, failures and holds (held requests are released)."""
        with self._cond:
            self._records.clear()
            self._tallies.clear()
            self._failures.clear()
        self._release_all()

    def _release_all(self) -> None:
        with self._cond:
            gates = list(self._gates.values())
            self._gates.clear()
        for gate in gates:
            gate.set()

    # --- HTTP handlers -----------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        return scheme == "Bearer" and bool(key) and self.api_key in (None, key)

    async def _admit(self, request: web.Request, kind: Kind | None = None
                     ) -> tuple[dict[str, Any], web.Response | None]:
        """Check auth and parse the body; record it, apply failures and holds, then delay."""
        if not self._authorised(request):
            return {}, _error(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return {}, _error(400, "The request body must be a JSON object.")
        kind = kind or _chat_kind(body)
        failure: web.Response | None = None
        with self._cond:
            script = self._failures.get(kind)
            if script is not None:
                if script.remaining is not None:
                    script.remaining -= 1
                    if script.remaining <= 0:
                        del self._failures[kind]
                headers = {"retry-after-ms": f"{script.retry_after_ms:g}"}
                failure = _error(script.status, f"Scripted failure ({script.status}).",
                                 headers=headers)
            self._records.append(Recorded(kind, body, time.monotonic(),
                                          script.status if script else 200))
            texts = _inputs(kind, body)
            tally = self._tallies.setdefault(kind, Tally())
            tally.calls += 1
            tally.inputs += len(texts)
            tally.chars += sum(len(t) for t in texts)
            self._cond.notify_all()
            gate = self._gates.get(kind)
        # The gate is a threading.Event set from a test's thread, so poll it without blocking.
        while gate is not None and not gate.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if failure is None:
            delays = {"chat": self.chat_delay, "extraction": self.extraction_delay,
                      "embedding": self.embedding_delay}
            await asyncio.sleep(delays[kind])
        return body, failure

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, failure = await self._admit(request, "embedding")
        if failure is not None:
            return failure
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts:
            return _error(400, "'input' must be a string or a non-empty list.")
        dims = body.get("dimensions") or self.dims
        if not isinstance(dims, int) or dims < 1:
            return _error(400, "'dimensions' must be a positive integer.")
        data: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            vector = embed(str(text), dims)
            encoded: Any = vector
            if body.get("encoding_format") == "base64":  # what the official SDK asks for
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_words(str(t)) for t in texts)
        return web.json_response({
            "object": "list", "data": data, "model": body.get("model", "scripted-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self._admit(request)
        if failure is not None:
            return failure
        answer_format = body.get("response_format")
        if (self.refuses_schemas is not None and isinstance(answer_format, dict)
                and answer_format.get("type") == "json_schema"):
            return _error(self.refuses_schemas, "'response_format' of type 'json_schema' is "
                          "not supported with this model.", param="response_format")
        for param in sorted(self.refused_params & set(body)):
            return _error(400, f"Unsupported parameter: '{param}' is not supported with this "
                          "model.", "unsupported_parameter", param=param)
        size = sum(len(_text(m.get("content"))) for m in body.get("messages") or [])
        if self.context_chars is not None and size > self.context_chars:
            return _error(400, f"This model's maximum context length is {self.context_chars}"
                          f" characters; the messages hold {size}.", "context_length_exceeded")
        if _chat_kind(body) == "extraction":
            if self.extraction_text is not None:
                content = self.extraction_text(body)
            elif self.extraction_reply is not None and _mem0_lines(body):
                content = json.dumps({"memory": [
                    {"text": e if isinstance(e, str) else e["fact"]}
                    for e in self.extraction_reply(body)]})
            elif self.extraction_reply is not None:
                said = len(new_messages(body))
                facts = [_fact(entry, said) for entry in self.extraction_reply(body)]
                content = json.dumps({"facts": facts, "retracted": [
                    n for n, note in enumerate(kept_notes(body), 1)
                    if note in self.retract_notes]})
            else:
                content = _extracted_memories(body)
        else:
            content = (self.chat_reply or _default_reply)(body)
        if body.get("stream"):
            return await self._stream(request, body, content)
        # Token counts are a crude proxy: whitespace-separated words, not real tokens.
        prompt = sum(_words(_text(m.get("content"))) for m in body.get("messages") or [])
        completion = _words(content)
        return web.json_response({
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "scripted-chat"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        })

    async def _stream(self, request: web.Request, body: dict[str, Any], content: str
                      ) -> web.StreamResponse:
        """The answer as OpenAI streams it: SSE chunks of `stream_chunk_words` words (each with
        the whitespace after it), `stream_delay` seconds apart."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        model = body.get("model", "scripted-chat")

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": [{"index": 0, "delta": delta,
                                                  "finish_reason": finish}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        if self.stream_chunk_chars:
            size = self.stream_chunk_chars
            pieces = [content[n:n + size] for n in range(0, len(content), size)] or [content]
        else:
            words = re.findall(r"\s*\S+\s*", content) or [content]
            size = max(1, self.stream_chunk_words)
            pieces = ["".join(words[n:n + size]) for n in range(0, len(words), size)]
        for n, piece in enumerate(pieces):
            if self.break_stream_after is not None and n >= self.break_stream_after:
                if self.break_stream_mode == "drop" and request.transport is not None:
                    # Hang up once what was written has had time to arrive: a client that
                    # meets the error while its read buffer still holds chunks drops them.
                    await asyncio.sleep(0.2)
                    request.transport.close()
                    return response
                await response.write_eof()  # ended cleanly, but before the model finished
                return response
            if self.stream_delay:
                await asyncio.sleep(self.stream_delay)
            await send({"content": piece})
        await send({}, "stop")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _counts(self, request: web.Request) -> web.Response:
        counts = {kind: asdict(tally) for kind, tally in self.counts().items()}
        return web.json_response(counts)

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        model = {"id": "scripted-chat", "object": "model", "created": 0, "owned_by": "test"}
        return web.json_response({"object": "list", "data": [model]})


def _run_beside(server: ScriptedOpenAI, command: list[str]) -> int:
    """Run ``command`` pointed at ``server`` (the model settings set, with its own data folder
    unless ``MEMBOT_DATA_DIR`` is set: the scripted vectors must not meet real ones), with the
    terminal its own; returns its exit code."""
    env = dict(os.environ, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="scripted",
               EMBEDDING_DIMS=str(server.dims), CHAT_MODEL="scripted",
               EMBEDDING_MODEL="scripted")
    for unused in ("EMBEDDING_BASE_URL", "EMBEDDING_API_KEY", "EMBEDDING_SEND_DIMS",
                   "EXTRACTION_MODEL"):
        env.pop(unused, None)
    if not env.get("MEMBOT_DATA_DIR"):
        env["MEMBOT_DATA_DIR"] = str(platformdirs.user_data_path("membot-scripted"))
    child = subprocess.Popen(command, env=env)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # the terminal's Ctrl-C reached both: let the child finish
            continue


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, e.g. for a benchmark against a running bot; or, given a
    command after ``--``, run that command against the server and stop with it (``python -m
    tests.fakes.openai_server -- .venv/bin/membot chat``: membot with no API key and no
    network)."""
    parser = argparse.ArgumentParser(
        description="Scripted OpenAI-compatible server.",
        epilog="With a command after --, the server runs on a free port for as long as the "
               "command runs, which gets OPENAI_BASE_URL, OPENAI_API_KEY, EMBEDDING_DIMS and a "
               "data folder of its own (MEMBOT_DATA_DIR, unless set) pointing at it.")
    parser.add_argument("--port", type=int, default=None, help="default: 8765, or with a "
                        "command, any free port")
    parser.add_argument("--dims", type=int, default=64)
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument("--chat-delay", type=float, default=0.0)
    parser.add_argument("--extraction-delay", type=float, default=0.0)
    parser.add_argument("--embedding-delay", type=float, default=0.0)
    parser.add_argument("--stream-delay", type=float, default=0.0,
                        help="seconds between the chunks of a streamed answer")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- and a command to run against the server")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    port = args.port if args.port is not None else (0 if command else 8765)
    server = ScriptedOpenAI(args.dims, args.chat_delay, args.extraction_delay,
                            args.embedding_delay, api_key=args.api_key, port=port)
    server.stream_delay = args.stream_delay
    if command:
        with server:
            raise SystemExit(_run_beside(server, command))
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    with server:
        print(f"Scripted OpenAI server at {server.base_url}", flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
