"""Time to first token and to last token, per platform, with answers streamed as written.

The scripted model server streams a fixed answer of ``--words`` words, one word per chunk,
``--delay`` seconds apart; membot runs whole (the composition root, embedded PostgreSQL, mem0)
and each platform's real client talks to its local fake: the terminal adapter writing to a
clock-stamped stream, discord.py against the fake Discord, the bolt app in HTTP mode against
the fake Slack (a mention, answered in its thread with chat.startStream and the rest; and a
DM, answered by posting then updating). For each turn: from the moment the message reaches the
platform (the line is typed, the gateway event or the signed request is sent) to the first
words the person can see (first write, first message, chat.startStream), and to the whole
answer (the last write, edit, update or chat.stopStream). Without streaming the person saw
nothing before the last figure.

Run from the repository root: ``python -m bench.streaming [--turns 5 --words 60 --delay 0.05]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import aiohttp
import discord
import yarl
from pydantic import SecretStr

from adapters.console import ConsoleAdapter
from adapters.discord import MembotDiscordClient
from adapters.slack import build_app, web_client
from adapters.web import build_web_app
from bench.common import (
    bench_parser,
    command_line,
    machine_lines,
    make_settings,
    print_table,
    temp_data_dir,
)
from bot import eventloop
from bot.app import Services, services
from bot.config import Settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.slack import FakeSlack

WORDS = ("membot", "remembers", "what", "you", "tell", "it", "across", "conversations,",
         "restarts", "and", "platforms;", "here", "is", "a", "longer", "answer", "to", "time.")


@dataclass
class Timings:
    """Seconds from a message reaching the platform to the first and to the last words seen."""

    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)

    def row(self, platform: str, how: str) -> list[str]:
        def ms(values: list[float]) -> str:
            return f"{statistics.median(values) * 1000:,.0f}"

        return [platform, how, str(len(self.first)), ms(self.first), ms(self.last),
                f"{statistics.median(self.first) / statistics.median(self.last):.2f}"]


def answer_text(words: int) -> str:
    return " ".join(WORDS[n % len(WORDS)] for n in range(words))


class _Stamped(io.StringIO):
    """Standard output that notes when each write came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def write(self, text: str) -> int:
        self.times.append(time.monotonic())
        return super().write(text)


async def console(app: Services, turns: int) -> Timings:
    timings = Timings()
    for n in range(turns):
        out = _Stamped()
        adapter = ConsoleAdapter(app.core.handle, app.commands, user=f"bench{n}",
                                 stdin=io.StringIO(), stdout=out)
        started = time.monotonic()
        await adapter.line(f"console turn {n}")
        timings.first.append(out.times[0] - started)  # "membot> " and the first words
        timings.last.append(out.times[-1] - started)
    return timings


class _QuickClient(MembotDiscordClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """The fake has no identify rate limit."""


@contextlib.contextmanager
def _discord_at(fake: FakeDiscord) -> Iterator[None]:
    """discord.py pointed at the fake Discord, and back afterwards."""
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.rest_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


async def _until(done: Callable[[], bool], timeout: float = 120.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def on_discord(app: Services, turns: int) -> Timings:
    timings = Timings()
    with FakeDiscord() as fake, _discord_at(fake):
        client = _QuickClient(handle=app.core.handle, commands=app.commands)
        client._connection.guild_ready_timeout = 0.1
        runner = asyncio.create_task(client.start(fake.token))
        try:
            await _until(client.is_ready, 10)
            for n in range(turns):
                dm = fake.message_create(f"discord turn {n}", dm=True)
                sent = len(fake.sent_messages())
                started = time.monotonic()
                fake.dispatch("MESSAGE_CREATE", dm)
                await _until(lambda s=sent: len(fake.sent_messages()) > s)  # type: ignore[misc]
                await _until(lambda: client.replies_in_flight == 0)
                ids = {r.message_id for r in fake.sent_messages()[sent:]}
                seen = [r.at for r in fake.requests
                        if r.kind in ("message", "edit") and r.message_id in ids]
                timings.first.append(seen[0] - started)
                timings.last.append(seen[-1] - started)
        finally:
            await client.close()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    return timings


@contextlib.asynccontextmanager
async def _slack_app(app: Services, fake: FakeSlack) -> AsyncIterator[
        Callable[[dict[str, object]], Awaitable[None]]]:
    """The bolt app in HTTP mode on a free port; yields ``post(payload)``, a signed request."""
    slack = build_app(client=web_client(fake.bot_token, fake.api_url), handle=app.core.handle,
                      commands=app.commands, signing_secret=fake.signing_secret)
    runner = aiohttp.web.AppRunner(build_web_app(slack=slack))
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        async with aiohttp.ClientSession() as session:
            async def post(payload: dict[str, object]) -> None:
                body = json.dumps(payload).encode()
                async with session.post(url, data=body,
                                        headers=fake.signed_headers(body)) as response:
                    response.raise_for_status()

            yield post
    finally:
        await runner.cleanup()


async def on_slack(app: Services, turns: int, *, in_thread: bool) -> Timings:
    timings = Timings()
    shown = ("chat.startStream", "chat.appendStream", "chat.stopStream", "chat.postMessage",
             "chat.update")
    with FakeSlack() as fake:
        async with _slack_app(app, fake) as post:
            for n in range(turns):
                payload = (fake.app_mention(f"slack thread turn {n}") if in_thread
                           else fake.message_im(f"slack dm turn {n}"))
                ts = payload["event"]["ts"]
                before = len(fake.requests)
                started = time.monotonic()
                await post(payload)
                await _until(lambda ts=ts: any(  # type: ignore[misc]
                    r.kind == "reactions.remove" and r.body.get("timestamp") == ts
                    for r in fake.requests))
                seen = [r.at for r in fake.requests[before:] if r.kind in shown and r.ok]
                timings.first.append(seen[0] - started)
                timings.last.append(seen[-1] - started)
    return timings


async def main_async(args: argparse.Namespace) -> None:
    data_dir = temp_data_dir("membot-bench-streaming-")
    with ScriptedOpenAI(dims=args.dims) as model:
        model.chat_reply = lambda body: answer_text(args.words)
        model.stream_delay = args.delay
        settings: Settings = make_settings(model.base_url, args.dims, data_dir, "bench_stream",
                                           args.database_url, args.write_threads, args.db_pool)
        settings = settings.model_copy(update={"discord_token": SecretStr(FakeDiscord().token)})
        async with services(settings) as app:
            header = await machine_lines(app.database.pool)
            await console(app, 1)  # warm-up: connections, the first embedding, Mem0's tables
            rows = [
                (await console(app, args.turns)).row("terminal", "printed as written"),
                (await on_discord(app, args.turns)).row("Discord", "posted, then edited"),
                (await on_slack(app, args.turns, in_thread=True)).row(
                    "Slack", "thread: chat.startStream…"),
                (await on_slack(app, args.turns, in_thread=False)).row(
                    "Slack", "DM: posted, then updated"),
            ]
            await app.jobs.wait_idle()
    print()
    print("## Streamed answers: time to first words and to the whole answer")
    for line in header:
        print(f"- {line}")
    print(f"- command: `{command_line('bench.streaming')}`")
    print(f"- the scripted model streams {args.words} words, one per chunk, {args.delay:g} s "
          f"apart ({args.words * args.delay:.1f} s of writing); median of {args.turns} turns "
          "per platform; each platform's real client against its local fake")
    print()
    print_table(["platform", "how", "turns", "first words ms", "whole answer ms",
                 "first/whole"], rows)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.set_defaults(dims=64)
    parser.add_argument("--turns", type=int, default=5, help="turns per platform (default 5)")
    parser.add_argument("--words", type=int, default=60, help="words in the answer (default 60)")
    parser.add_argument("--delay", type=float, default=0.05,
                        help="seconds between the model's chunks (default 0.05)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    eventloop.run(main_async(args))


if __name__ == "__main__":
    main()
