"""Time to reply and throughput: membot's core against the plain Mem0 loop, in one run.

C people chat at once with each system in turn (levels 1, 10, 100 and 500 by default); each sends
M messages one after another, the next as soon as the previous reply arrived, and both systems
get the same messages. The scripted model server runs in its own process and takes realistic
times (chat 0.3 s, memory extraction 0.8 s, embeddings 0.03 s by default). Measured per message:
the time from handing the message over to getting the answer; "first replies" are those to each
person's first message, which all arrive together at a process just started. membot writes
memories in the background, so its level ends when every write has finished, and the table says
when that was; the plain loop (:mod:`bench.plainloop`) writes inside the turn, so its writes are
done when the last reply is. CPU is measured over the chatting phase: the event loop's own
thread (100% means the one loop is saturated), the whole bot process, and the machine (every
core, the model server and Postgres included).

Run from the repository root: ``python -m bench.compare [--people 1,10]``; it writes
``docs/load.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    LogCounter,
    add_batching_flags,
    bench_parser,
    command_line,
    fake_server,
    machine_lines,
    make_settings,
    percentile,
    print_table,
    temp_data_dir,
    with_batching,
)
from bench.load import messages_for, person
from bench.meters import Cpu, CpuMeter, lag_probe, load_average
from bench.plainloop import PlainLoop, plain_loop
from bot import eventloop
from bot.app import services
from bot.config import Settings
from bot.database import start_embedded

__all__ = ["Level", "calls_between", "database_dsn", "main", "server_counts"]

log = logging.getLogger(__name__)

SYSTEMS = ("membot", "plain")
LABELS = {"membot": "membot", "plain": "plain Mem0 loop"}


def server_counts(base_url: str) -> dict[str, dict[str, int]]:
    """The scripted server's running totals per kind of call (``GET /v1/_counts``)."""
    with urllib.request.urlopen(f"{base_url}/_counts", timeout=30) as response:
        counts: dict[str, dict[str, int]] = json.load(response)
    return counts


def calls_between(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]],
                  kind: str, field: str = "calls") -> int:
    return after.get(kind, {}).get(field, 0) - before.get(kind, {}).get(field, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """One system at one level of concurrency."""

    system: str
    people: int
    messages: int
    times: list[float]
    firsts: list[float]
    chatting: float
    written: float
    writes_done: int
    writes_failed: int
    non_answers: int
    warnings: int
    first_warning: str | None
    cpu: Cpu
    lags: list[float]
    calls: dict[str, int]

    @property
    def replies_per_second(self) -> float:
        return len(self.times) / self.chatting

    def row(self) -> list[str]:
        def percent(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.0f}"

        return [
            str(self.people), LABELS[self.system], str(self.messages),
            f"{percentile(self.times, 50):.2f}", f"{percentile(self.times, 95):.2f}",
            f"{max(self.times, default=float('nan')):.2f}",
            f"{percentile(self.firsts, 50):.2f}", f"{percentile(self.firsts, 95):.2f}",
            f"{self.replies_per_second:.1f}",
            f"{self.chatting:.1f}", f"{self.written:.1f}",
            f"{self.writes_done}/{self.writes_failed}", str(self.non_answers), str(self.warnings),
            f"{self.calls['chat']}/{self.calls['extraction']}/{self.calls['embedding']}",
            percent(self.cpu.loop), percent(self.cpu.process), percent(self.cpu.server),
            percent(self.cpu.postgres), percent(self.cpu.machine),
            f"{percentile(self.lags, 95) * 1000:.1f}",
        ]


HEADERS = ["people", "system", "messages each", "reply p50 s", "p95 s", "max s",
           "first replies p50 s", "p95 s", "replies/s",
           "chatting s", "all writes done at s", "writes done/failed", "non-answers", "warnings",
           "calls chat/extraction/embedding", "loop CPU %", "process CPU %", "model server CPU %",
           "Postgres CPU %", "machine CPU %",
           "loop lag p95 ms"]


@contextlib.contextmanager
def default_executor(workers: int | None) -> Iterator[None]:
    """A fresh default executor for the running loop (``workers`` threads, or Python's default
    size), shut down on exit and replaced by another fresh one, so each plain-loop level starts
    from the same, empty pool."""
    loop = asyncio.get_running_loop()
    size = workers or min(32, (os.cpu_count() or 1) + 4)
    executor = ThreadPoolExecutor(size, thread_name_prefix="asyncio-default")
    loop.set_default_executor(executor)
    try:
        yield
    finally:
        executor.shutdown(wait=True)
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio-default"))


async def run_membot(args: argparse.Namespace, base_url: str, data_dir: Path, people: int,
                     scripts: Sequence[list[str]], token: str, log_counter: LogCounter) -> Level:
    """``people`` chatting at once with membot's core on a fresh memory table."""
    table = f"bench_cmp_{people}_{token}"
    settings = with_batching(make_settings(base_url, args.dims, data_dir, table,
                                           args.database_url, args.write_threads, args.db_pool),
                             args)
    async with services(settings) as svc:
        log_counter.reset()
        times: list[float] = []
        firsts: list[float] = []
        not_answers: list[int] = []
        before = await asyncio.to_thread(server_counts, base_url)
        meter = CpuMeter(data_dir)
        started = time.perf_counter()
        async with lag_probe() as lags, asyncio.TaskGroup() as group:
            for i, texts in enumerate(scripts):
                group.create_task(person(svc, f"p{people}-{i}", token, list(texts), times,
                                         not_answers, firsts))
        chatting = time.perf_counter() - started
        cpu = meter.stop()
        await svc.jobs.wait_idle()
        written = time.perf_counter() - started
        after = await asyncio.to_thread(server_counts, base_url)
        done, failed = svc.jobs.done, svc.jobs.failed
        if args.database_url:  # leave a server we were given as we found it
            await svc.database.pool.execute(f'drop table "{settings.memory_table}"')
            await svc.database.pool.execute(
                "delete from conversation_turns where conversation_id like $1", f"%:{token}")
    return Level(system="membot", people=people, messages=args.messages, times=times,
                 firsts=firsts, chatting=chatting, written=written, writes_done=done,
                 writes_failed=failed,
                 non_answers=len(not_answers), warnings=log_counter.count,
                 first_warning=log_counter.first, cpu=cpu, lags=lags,
                 calls={k: calls_between(before, after, k)
                        for k in ("chat", "extraction", "embedding")})


async def plain_person(loop: PlainLoop, user_id: str, texts: Sequence[str], times: list[float],
                       failures: list[str], firsts: list[float]) -> None:
    """Send ``texts`` one after another through the plain loop (the first one's time goes to
    ``firsts`` too). A turn that raises (the tutorial lets errors through) is counted as a
    failed turn and its write as failed."""
    for n, text in enumerate(texts):
        started = time.perf_counter()
        try:
            await loop.chat_with_memories(text, user_id=user_id)
        except Exception as exc:
            failures.append(f"{exc.__class__.__name__}: {exc}"[:200])
        else:
            times.append(time.perf_counter() - started)
            if n == 0:
                firsts.append(times[-1])


async def run_plain(args: argparse.Namespace, base_url: str, dsn: str, data_dir: Path,
                    people: int, scripts: Sequence[list[str]], token: str,
                    log_counter: LogCounter) -> Level:
    """``people`` chatting at once through the plain loop on a fresh Mem0 table."""
    table = f"plain_cmp_{people}_{token}"
    with default_executor(args.plain_threads):
        async with plain_loop(dsn=dsn, table=table, base_url=base_url, dims=args.dims,
                              data_dir=data_dir) as loop:
            log_counter.reset()
            times: list[float] = []
            firsts: list[float] = []
            failures: list[str] = []
            before = await asyncio.to_thread(server_counts, base_url)
            meter = CpuMeter(data_dir)
            started = time.perf_counter()
            async with lag_probe() as lags, asyncio.TaskGroup() as group:
                for i, texts in enumerate(scripts):
                    group.create_task(plain_person(loop, f"p{people}-{i}", texts, times,
                                                   failures, firsts))
            chatting = time.perf_counter() - started
            cpu = meter.stop()
            after = await asyncio.to_thread(server_counts, base_url)
    if failures:
        log.warning("%d plain-loop turns failed; the first: %s", len(failures), failures[0])
    if args.database_url:
        conn = await asyncpg.connect(dsn)
        try:
            for name in (table, f"{table}_entities"):
                await conn.execute(f'drop table if exists "{name}"')
        finally:
            await conn.close()
    return Level(system="plain", people=people, messages=args.messages, times=times,
                 firsts=firsts, chatting=chatting, written=chatting, writes_done=len(times),
                 writes_failed=len(failures), non_answers=len(failures),
                 warnings=log_counter.count,
                 first_warning=log_counter.first, cpu=cpu, lags=lags,
                 calls={k: calls_between(before, after, k)
                        for k in ("chat", "extraction", "embedding")})


def _minor_labels(axis: Any) -> Any:
    """Labels for a log axis's minor ticks: only 2 and 5 of each decade (or they collide),
    all of them when the axis spans less than a decade (or there would be none)."""
    from matplotlib.ticker import FuncFormatter

    def label(value: float, _: int) -> str:
        low, high = axis.get_ylim()
        return f"{value:g}" if high < 10 * low or f"{value:.0e}"[0] in "25" else ""

    return FuncFormatter(label)


def plot(levels: Sequence[Level], path: Path, args: argparse.Namespace) -> None:
    """p95 time to reply, replies per second and when the last write landed, against people,
    one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    p95, rate, written = axes
    for system, marker in (("membot", "o"), ("plain", "s")):
        mine = sorted((lv for lv in levels if lv.system == system), key=lambda lv: lv.people)
        if not mine:
            continue
        people = [lv.people for lv in mine]
        p95.plot(people, [percentile(lv.times, 95) for lv in mine], marker=marker,
                 label=LABELS[system])
        rate.plot(people, [lv.replies_per_second for lv in mine], marker=marker,
                  label=LABELS[system])
        written.plot(people, [lv.written for lv in mine], marker=marker, label=LABELS[system])
    floor = args.embedding_delay + args.chat_delay
    p95.axhline(floor, color="grey", linestyle="--", linewidth=1, label="floor (model time)")
    levels_run = sorted({lv.people for lv in levels})
    targets = [(people, limit) for people, limit in ((100, 0.5), (500, 1.0))
               if people in levels_run]
    if targets:
        p95.plot(*zip(*targets, strict=True), "k+", markersize=12, label="target")
    if 500 in levels_run:
        rate.plot([500], [200], "k+", markersize=12, label="target")
    plain_number = FuncFormatter(lambda value, _: f"{value:g}")
    messages = levels[0].messages if levels else 0
    for axis, title, unit in ((p95, "time to reply, p95", "seconds"),
                              (rate, "throughput", "replies per second"),
                              (written, "all memory writes done at", "seconds from the start")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(levels_run, [str(n) for n in levels_run])
        axis.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        axis.yaxis.set_major_formatter(plain_number)
        axis.yaxis.set_minor_formatter(_minor_labels(axis))
        axis.tick_params(axis="y", which="minor", labelsize=7)
        axis.set_xlabel(f"people chatting at once ({messages} messages each)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(f"membot vs the plain Mem0 loop; scripted model: chat {args.chat_delay:g} s, "
                 f"extraction {args.extraction_delay:g} s, embeddings {args.embedding_delay:g} s",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def database_dsn(args: argparse.Namespace, data_dir: Path) -> str:
    """The Postgres both systems use: ``--database-url``, else the embedded one in ``data_dir``
    (membot's services join the same server)."""
    if args.database_url:
        return str(args.database_url)
    return await asyncio.to_thread(start_embedded, data_dir)


async def main_async(args: argparse.Namespace) -> None:
    data_dir = temp_data_dir("membot-bench-compare-")
    token = secrets.token_hex(3)
    log_counter = LogCounter()
    logging.getLogger().addHandler(log_counter)
    load_before = load_average()
    dsn = await database_dsn(args, data_dir)
    levels: list[Level] = []
    with fake_server(args.dims, args.chat_delay, args.extraction_delay,
                     args.embedding_delay) as base_url:
        for people in args.people:
            rng = random.Random(args.seed + people)
            scripts = [messages_for(rng, args.messages) for _ in range(people)]
            if "membot" in args.systems:
                levels.append(await run_membot(args, base_url, data_dir, people, scripts, token,
                                               log_counter))
                print(f"# {people} people: membot done", flush=True)
            if "plain" in args.systems:
                levels.append(await run_plain(args, base_url, dsn, data_dir, people, scripts,
                                              token, log_counter))
                print(f"# {people} people: plain loop done", flush=True)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:  # after the runs: the vector extension exists once membot or Mem0 has started
        header = await machine_lines(pool)
    finally:
        await pool.close()
    report(args, header, levels, load_before)
    if args.plot:
        plot(levels, Path(args.plot), args)
        print(f"\nplot: {args.plot}")


def report(args: argparse.Namespace, header: list[str], levels: Sequence[Level],
           load_before: str) -> None:
    write_threads = (args.write_threads
                     or Settings.model_fields["memory_write_threads"].default)
    plain_threads = args.plain_threads or min(32, (os.cpu_count() or 1) + 4)
    print()
    print("## Time to reply under load: membot against the plain Mem0 loop")
    for line in header:
        print(f"- {line}")
    print(f"- load average (1, 5, 15 min) before the run: {load_before}; after: "
          f"{load_average()}")
    print(f"- command: `{command_line('bench.compare')}`")
    print(f"- model server (its own process) delays: chat {args.chat_delay} s, extraction "
          f"{args.extraction_delay} s, embeddings {args.embedding_delay} s; {args.dims}-dim "
          f"vectors; floor per reply {args.embedding_delay + args.chat_delay:.2f} s (one "
          "embedding + one chat call)")
    print(f"- membot: `Core.handle()` as in bench.load, memory writes in the background on "
          f"{write_threads} write threads; a level ends when every write has finished")
    print(f"- plain Mem0 loop: bench/plainloop.py (the mem0 README's `chat_with_memories` on "
          f"`AsyncMemory`, `add` awaited before the answer is returned), default executor of "
          f"{plain_threads} threads")
    print("- over the chatting phase: loop CPU = the event loop's thread, process CPU = the bot "
          "process (all its threads), model server CPU = the scripted server's process, Postgres "
          "CPU = the embedded server's processes, each in % of one core; machine CPU = all "
          "cores busy, %; loop lag = how late a 10 ms timer fires on the event loop, p95")
    print()
    print_table(HEADERS, [lv.row() for lv in levels])
    for lv in levels:
        if lv.first_warning:
            print(f"\nfirst warning, {LABELS[lv.system]} at {lv.people}: {lv.first_warning}")


def main() -> None:
    parser = bench_parser(__doc__)
    add_batching_flags(parser)
    parser.add_argument("--people", default="1,10,100,500",
                        help="comma list of how many people chat at once (default 1,10,100,500)")
    parser.add_argument("--messages", type=int, default=5, help="messages per person")
    parser.add_argument("--systems", default="membot,plain",
                        help="comma list of systems to run: membot, plain (default both)")
    parser.add_argument("--plain-threads", type=int, default=None,
                        help="the plain loop's default executor size (default: Python's, "
                             "min(32, cores + 4))")
    parser.add_argument("--chat-delay", type=float, default=0.3)
    parser.add_argument("--extraction-delay", type=float, default=0.8)
    parser.add_argument("--embedding-delay", type=float, default=0.03)
    parser.add_argument("--plot", default="docs/load.png",
                        help="where to write the plot ('' for none)")
    args = parser.parse_args()
    args.people = [int(p) for p in args.people.split(",") if p.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    eventloop.run(main_async(args))


if __name__ == "__main__":
    main()
