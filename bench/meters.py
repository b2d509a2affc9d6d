"""What a benchmark level cost the machine: CPU of the event loop, the bot process, the scripted
model server and Postgres, the machine's load, and how late the event loop runs a timer (Linux:
read from /proc)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cpu", "CpuMeter", "helper_cpu", "lag_probe", "load_average"]


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "unknown"


def _cpu_ticks() -> tuple[int, int] | None:
    """Busy and total CPU ticks of the machine so far, from /proc/stat (Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _processes() -> dict[int, tuple[int, float, str]]:
    """Every process's parent, CPU seconds so far and command line, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            # After the command name in parentheses: state, ppid, ... utime (14th), stime (15th).
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks,
                                      command)
    return found


def helper_cpu(data_dir: Path) -> dict[str, float]:
    """CPU seconds used so far by the scripted model server (a child of this process) and by the
    embedded Postgres in ``data_dir`` (its postmaster and every backend). Empty off Linux."""
    processes = _processes()
    if not processes:
        return {}
    server = sum(cpu for ppid, cpu, command in processes.values()
                 if ppid == os.getpid() and "tests.fakes.openai_server" in command)
    postgres = {pid for pid, (_, _, command) in processes.items()
                if f"-D {data_dir / 'postgres'}" in command}
    while more := {pid for pid, (ppid, _, _) in processes.items() if ppid in postgres} - postgres:
        postgres |= more  # the postmaster's descendants
    return {"server": server, "postgres": sum(processes[pid][1] for pid in postgres)}


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU used over a span, as a percentage of one core (loop, process, model server,
    Postgres) or of all cores (machine); None where it could not be read."""

    loop: float
    process: float
    server: float | None
    postgres: float | None
    machine: float | None


class CpuMeter:
    """Start it on the event loop's thread; :meth:`stop` there too. ``data_dir`` holds the
    embedded Postgres whose CPU is counted."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._helpers = helper_cpu(data_dir)
        self._ticks = _cpu_ticks()
        self._wall = time.perf_counter()
        self._thread = time.thread_time()
        self._process = time.process_time()

    def stop(self) -> Cpu:
        wall = time.perf_counter() - self._wall
        loop = 100 * (time.thread_time() - self._thread) / wall
        process = 100 * (time.process_time() - self._process) / wall
        ticks, start = _cpu_ticks(), self._ticks
        machine = None
        if ticks is not None and start is not None and ticks[1] > start[1]:
            machine = 100 * (ticks[0] - start[0]) / (ticks[1] - start[1])
        helpers, before = helper_cpu(self._data_dir), self._helpers

        def share(name: str) -> float | None:
            if name not in helpers or name not in before:
                return None
            return 100 * (helpers[name] - before[name]) / wall

        return Cpu(loop=loop, process=process, server=share("server"),
                   postgres=share("postgres"), machine=machine)


@contextlib.asynccontextmanager
async def lag_probe(interval: float = 0.01) -> AsyncIterator[list[float]]:
    """How late the event loop runs a timer: a task sleeps ``interval`` over and over and notes
    each oversleep (seconds). A loop with spare time is late by well under a millisecond."""
    lags: list[float] = []

    async def probe() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(interval)
            lags.append(time.perf_counter() - started - interval)

    task = asyncio.create_task(probe(), name="loop-lag-probe")
    try:
        yield lags
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
