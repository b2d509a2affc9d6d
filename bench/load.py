"""Time to reply under load: many people chatting with membot at once.

The scripted model server takes realistic times (chat 0.3 s, memory extraction 0.8 s,
embeddings 0.03 s by default). C people chat at once; each sends M messages one after another,
the next as soon as the previous reply arrives. Measured per message: the time from calling
``Core.handle()`` to getting the ``Reply``. Then the run waits until every background memory
write has finished and reports when that was (from the start), and how many writes succeeded
or failed. The floor for one reply is one embedding plus one chat call (0.33 s by default).

Run from the repository root: ``python -m bench.load [--people 1,10,100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
import time
from pathlib import Path

from adapters.console import to_event
from bench.common import (
    CITIES,
    FOODS,
    HOBBIES,
    PET_NAMES,
    PETS,
    LogCounter,
    add_batching_flags,
    bench_parser,
    command_line,
    fake_server,
    machine_lines,
    make_settings,
    memory_texts,
    percentile,
    print_table,
    temp_data_dir,
    with_batching,
)
from bot import eventloop
from bot.app import Services, services
from bot.events import ReplyKind

_QUESTIONS = [
    "What do you remember about my {pet}?",
    "Can you suggest something to do in {city} this weekend?",
    "Do you think I should keep doing {hobby}?",
    "What did I tell you about my favourite food, was it {food}?",
    "Where did I say I moved to?",
    "Is {pet_name} a good name for a {pet}?",
    "thanks, that helps!",
]


def messages_for(rng: random.Random, count: int) -> list[str]:
    """One person's messages: mostly facts about themselves, some questions."""
    facts = iter(memory_texts(count, rng))
    return [
        next(facts) if rng.random() < 0.6 else rng.choice(_QUESTIONS).format(
            pet=rng.choice(PETS), city=rng.choice(CITIES), hobby=rng.choice(HOBBIES),
            food=rng.choice(FOODS), pet_name=rng.choice(PET_NAMES))
        for _ in range(count)
    ]


async def person(svc: Services, name: str, session: str, texts: list[str],
                 times: list[float], not_answers: list[int],
                 firsts: list[float] | None = None) -> None:
    """Send ``texts`` one after another, each as soon as the previous reply arrived; the time
    of the first goes to ``firsts`` too."""
    for n, text in enumerate(texts):
        started = time.perf_counter()
        reply = await svc.core.handle(to_event(name, text, session=session))
        times.append(time.perf_counter() - started)
        if n == 0 and firsts is not None:
            firsts.append(times[-1])
        if reply is None or reply.kind is not ReplyKind.ANSWER:
            not_answers.append(1)


async def run_level(args: argparse.Namespace, base_url: str, data_dir: Path, people: int,
                    token: str, log_counter: LogCounter, header: list[str]) -> list[str]:
    """``people`` chatting at once on a fresh memory table; returns a table row."""
    table = f"bench_load_{people}_{token}"
    settings = with_batching(make_settings(base_url, args.dims, data_dir, table,
                                           args.database_url, args.write_threads, args.db_pool),
                             args)
    rng = random.Random(args.seed + people)
    scripts = [messages_for(rng, args.messages) for _ in range(people)]
    async with services(settings) as svc:
        if not header:
            header.extend(await machine_lines(svc.database.pool))
            header.append(f"memory write threads {settings.memory_write_threads}, "
                          f"database pool {settings.db_pool_size}")
        log_counter.reset()
        times: list[float] = []
        not_answers: list[int] = []
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for i, texts in enumerate(scripts):
                group.create_task(person(svc, f"p{people}-{i}", token, texts, times, not_answers))
        chatting = time.perf_counter() - started
        await svc.jobs.wait_idle()
        written = time.perf_counter() - started
        done, failed = svc.jobs.done, svc.jobs.failed
        if args.database_url:  # leave a server we were given as we found it
            await svc.database.pool.execute(f'drop table "{settings.memory_table}"')
            await svc.database.pool.execute(
                "delete from conversation_turns where conversation_id like $1", f"%:{token}")
    return [
        str(people), str(args.messages), f"{percentile(times, 50):.2f}",
        f"{percentile(times, 95):.2f}", f"{max(times):.2f}", f"{len(times) / chatting:.1f}",
        f"{chatting:.1f}", f"{written:.1f}", f"{done}/{failed}", str(len(not_answers)),
        str(log_counter.count),
    ]


async def main_async(args: argparse.Namespace) -> None:
    # One embedded server in one temporary data dir for the whole run; each level gets a fresh
    # memory table (MEMORY_TABLE), fresh people and a fresh Services (pools, threads, jobs).
    data_dir = temp_data_dir("membot-bench-load-")
    token = secrets.token_hex(3)
    log_counter = LogCounter()
    logging.getLogger().addHandler(log_counter)
    header: list[str] = []
    rows = []
    with fake_server(args.dims, args.chat_delay, args.extraction_delay,
                     args.embedding_delay) as base_url:
        for people in args.people:
            rows.append(await run_level(args, base_url, data_dir, people, token, log_counter,
                                        header))
            print(f"# {people} people done", flush=True)
    print()
    print("## membot time to reply under load (scripted model server)")
    for line in header:
        print(f"- {line}")
    print(f"- command: `{command_line('bench.load')}`")
    print(f"- model server delays: chat {args.chat_delay} s, extraction {args.extraction_delay}"
          f" s, embeddings {args.embedding_delay} s; {args.dims}-dim vectors; floor per reply "
          f"{args.embedding_delay + args.chat_delay:.2f} s (one embedding + one chat call)")
    print("- each write is one mem0 add: one extraction call and two embedding calls "
          "(the scripted server runs in its own process; its request counts are not collected)")
    print()
    print_table(["people", "messages each", "reply p50 s", "p95 s", "max s", "replies/s",
                 "chatting s", "all writes done at s", "writes done/failed", "non-answers",
                 "warnings"], rows)
    if log_counter.first:
        print(f"\nfirst warning: {log_counter.first}")


def main() -> None:
    parser = bench_parser(__doc__)
    add_batching_flags(parser)
    parser.add_argument("--people", default="1,10,100",
                        help="comma list of how many people chat at once (default 1,10,100)")
    parser.add_argument("--messages", type=int, default=5, help="messages per person")
    parser.add_argument("--chat-delay", type=float, default=0.3)
    parser.add_argument("--extraction-delay", type=float, default=0.8)
    parser.add_argument("--embedding-delay", type=float, default=0.03)
    args = parser.parse_args()
    args.people = [int(p) for p in args.people.split(",") if p.strip()]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    eventloop.run(main_async(args))


if __name__ == "__main__":
    main()
