"""What a process just started would make its first messages pay, and what it pays instead.

Against the scripted model server and an embedded Postgres, after ``services()`` is built as a
process that answers builds it:

- a full garbage collection of the objects built at startup: how many there are and how long
  one collection of them holds the event loop (what ``services`` saves by freezing them);
- the opening statement and the search on a connection opened fresh (as the pool opened them
  during the first burst before ``Database.warm``): the first run against the next ones.

Run from the repository root: ``python -m bench.startup``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import time

import asyncpg
from pgvector.asyncpg import register_vector

from bench.common import (
    bench_parser,
    command_line,
    fake_server,
    machine_lines,
    make_settings,
    print_table,
    temp_data_dir,
)
from bot import eventloop
from bot.app import services
from bot.memory.ranking import plan_search
from bot.opening import PostgresTurnStart

RUNS = 5


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def main_async(args: argparse.Namespace) -> None:
    data_dir = temp_data_dir("membot-bench-startup-")
    with fake_server(args.dims) as base_url:
        settings = make_settings(base_url, args.dims, data_dir, "bench_startup", None, None,
                                 None)
        async with services(settings) as svc:
            header = await machine_lines(svc.database.pool)
            gc.unfreeze()  # as it was before the freeze: the startup objects in sight
            tracked = len(gc.get_objects())
            collections = []
            for _ in range(3):
                started = time.perf_counter()
                gc.collect()
                collections.append(time.perf_counter() - started)
            gc.freeze()
            start = PostgresTurnStart(svc.database.pool)
            rows = []
            for trial in range(args.connections):
                conn = await asyncpg.connect(svc.database.dsn)
                try:
                    await register_vector(conn)
                    for name, statement in (
                        ("opening", start.warm),
                        ("search", lambda c: plan_search(c, table=settings.memory_table,
                                                         dims=args.dims)),
                    ):
                        times = []
                        for _ in range(RUNS):
                            started = time.perf_counter()
                            await statement(conn)
                            times.append(time.perf_counter() - started)
                        rows.append([str(trial + 1), name, ms(times[0]),
                                     ", ".join(ms(t) for t in times[1:])])
                finally:
                    await conn.close()
    print("\n## What a process just started pays (bench.startup)")
    for line in header:
        print(f"- {line}")
    print(f"- command: `{command_line('bench.startup')}`")
    print(f"- objects the collector tracks after start-up: {tracked:,}; one full collection "
          f"of them: {', '.join(ms(t) for t in collections)} ms (3 runs)")
    print("- a statement on a fresh connection, its first run and the next ones (ms; the "
          "opening in a transaction rolled back, the search for no one):")
    print()
    print_table(["connection", "statement", "first run ms", "next runs ms"], rows)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--connections", type=int, default=3,
                        help="fresh connections to time the statements on (default 3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    eventloop.run(main_async(args))


if __name__ == "__main__":
    main()
