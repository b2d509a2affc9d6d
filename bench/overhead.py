"""Per-turn overhead of membot, without model or embedding time.

The scripted model server answers at once, so what is measured is the bot's own work per turn:
``Core.handle()`` wall time (query embedding round trip, the per-owner memory search in SQL, the
recent-turns read, prompt building, the chat call round trip, recording the exchange and queueing
the memory write), and separately ``memory.search()`` alone (embedding round trip + SQL).
Both include the HTTP round trips to the local scripted server, i.e. the HTTP client's own
cost. Memories are bulk-loaded for 1,000 owners before the turns; the background memory writes
the turns cause run while later turns are measured, as in production (``--settle-writes`` waits
for them after every turn, outside the timing, to take them out of the picture). "Loop CPU" is
the CPU time the event loop's thread spent on the turn (``time.thread_time``), from handing the
message over until its exchange is recorded (after the reply): what one turn costs the one loop
that answers everyone, whatever the waiting. ``--pause`` waits that long between turns
(untimed); ``--no-worker`` learns the turns' messages only after the last turn, so nothing
runs between turns: with neither, turns follow each other at once, the caches they use stay
warm, and the loop CPU per turn is far less than after a pause or a memory write.

Run from the repository root: ``python -m bench.overhead [--sizes 10000,100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import random
import secrets
import time
from pathlib import Path

from adapters.console import to_event
from bench.common import (
    CITIES,
    DATABASES,
    FOODS,
    HOBBIES,
    LANGUAGES,
    PETS,
    LogCounter,
    bench_parser,
    bulk_load,
    command_line,
    fake_server,
    machine_lines,
    make_settings,
    percentile,
    print_table,
    temp_data_dir,
)
from bot import eventloop
from bot.app import services
from bot.events import ReplyKind

OWNERS = 1000
WARMUP = 50

_QUESTIONS = [
    "Which database do I like, and do I still go {hobby}?",
    "Do you remember my favourite database? I think it was {db}",
    "What was the name of my {pet} again?",
    "Where did I move to, was it {city}?",
    "Should I try {hobby} this weekend or is {db} work more my thing?",
    "What programming language am I learning, {lang} or something else?",
    "What food do I like, {food}?",
]


def question(rng: random.Random) -> str:
    """A question that shares words with the loaded memories."""
    return rng.choice(_QUESTIONS).format(
        hobby=rng.choice(HOBBIES), db=rng.choice(DATABASES), pet=rng.choice(PETS),
        city=rng.choice(CITIES), lang=rng.choice(LANGUAGES), food=rng.choice(FOODS))


def writes(args: argparse.Namespace) -> str:
    """How the turns' memory writes ran, for the printed summary."""
    if args.no_worker:
        return "background memory writes learned after the last turn"
    if args.settle_writes:
        return "background memory writes awaited after each turn (not timed)"
    return "background memory writes run concurrently"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def run_size(args: argparse.Namespace, base_url: str, data_dir: Path, size: int,
                   token: str, log_counter: LogCounter, header: list[str]) -> list[str]:
    """Load ``size`` memories into a table of their own, run the turns, return a table row."""
    # Each turn's write on its own, at once: --settle-writes waits for it after every turn.
    settings = make_settings(base_url, args.dims, data_dir, f"bench_ovh_{size}_{token}",
                             args.database_url, args.write_threads, args.db_pool).model_copy(
        update={"memory_batch_size": 1, "memory_batch_idle": 0.0})
    rng = random.Random(args.seed + size)
    async with services(settings, start_worker=not args.no_worker) as svc:
        if not header:
            header.extend(await machine_lines(svc.database.pool))
        table = settings.memory_table
        load_s = await bulk_load(svc.database.pool, table, size, OWNERS, args.dims, rng)
        print(f"# {size:,} memories loaded into {table} in {load_s:.1f} s", flush=True)
        log_counter.reset()
        handle_s: list[float] = []
        cpu_s: list[float] = []
        search_s: list[float] = []
        hits: list[int] = []
        not_answers = 0
        for turn in range(WARMUP + args.turns):
            n = rng.randrange(OWNERS)
            text = question(rng)
            event = dataclasses.replace(to_event(str(n), text, session=token), platform="bench")
            started, cpu = time.perf_counter(), time.thread_time()
            reply = await svc.core.handle(event)
            took = time.perf_counter() - started
            await svc.jobs.flush()  # the exchange is recorded after the reply: count it too
            cpu = time.thread_time() - cpu
            started = time.perf_counter()
            found = await svc.memory.search(f"bench:{n}", text, settings.memory_top_k)
            searched = time.perf_counter() - started
            if args.settle_writes and not args.no_worker:
                await svc.jobs.wait_idle()
            if args.pause:
                await asyncio.sleep(args.pause)
            if turn < WARMUP:
                continue
            handle_s.append(took)
            cpu_s.append(cpu)
            search_s.append(searched)
            hits.append(len(found))
            not_answers += reply is None or reply.kind is not ReplyKind.ANSWER
        if args.no_worker:
            await svc.jobs.start_worker(settings.memory_write_threads)
        await svc.jobs.wait_idle()
        if args.database_url:  # leave a server we were given as we found it
            await svc.database.pool.execute(f'drop table "{table}"')
            await svc.database.pool.execute(
                "delete from conversation_turns where conversation_id like $1", f"%:{token}")
    return [
        f"{size:,}", str(args.turns), ms(percentile(handle_s, 50)), ms(percentile(handle_s, 95)),
        ms(percentile(handle_s, 99)), ms(max(handle_s)), ms(percentile(cpu_s, 50)),
        ms(sum(cpu_s) / len(cpu_s)), ms(percentile(search_s, 50)),
        ms(percentile(search_s, 95)), f"{sum(hits) / len(hits):.2f}",
        str(not_answers), str(log_counter.count),
    ]


async def main_async(args: argparse.Namespace) -> None:
    # One embedded server in one temporary data dir for the whole run; each size gets a table
    # of its own (MEMORY_TABLE), so sizes do not see each other's rows.
    data_dir = temp_data_dir("membot-bench-overhead-")
    token = secrets.token_hex(3)
    log_counter = LogCounter()
    logging.getLogger().addHandler(log_counter)
    header: list[str] = []
    rows = []
    with fake_server(args.dims) as base_url:
        for size in args.sizes:
            rows.append(await run_size(args, base_url, data_dir, size, token, log_counter,
                                       header))
    print()
    print("## membot per-turn overhead (scripted model server answering instantly)")
    for line in header:
        print(f"- {line}")
    print(f"- command: `{command_line('bench.overhead')}`")
    print(f"- {OWNERS:,} owners, {args.dims}-dim vectors, top-k 5, {WARMUP} warm-up turns not "
          f"counted; sequential turns; {writes(args)}; {args.pause:g} s pause between turns")
    print("- times include the HTTP round trips to the local scripted server (the HTTP "
          "client's own cost), since that server answers instantly")
    print()
    print_table(["memories", "turns", "handle p50 ms", "p95 ms", "p99 ms", "max ms",
                 "loop CPU p50 ms", "loop CPU mean ms", "search p50 ms", "search p95 ms",
                 "mean hits", "non-answers", "warnings"], rows)
    if log_counter.first:
        print(f"\nfirst warning: {log_counter.first}")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--sizes", default="10000,100000",
                        help="comma list of memory counts (default 10000,100000)")
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--settle-writes", action="store_true",
                        help="wait for the background memory write after each turn (untimed)")
    parser.add_argument("--no-worker", action="store_true",
                        help="learn the turns' messages only after the last turn")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to wait between turns (untimed)")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    eventloop.run(main_async(args))


if __name__ == "__main__":
    main()
