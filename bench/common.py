"""Helpers shared by the benchmarks: the machine, the scripted model server, a temporary data
folder, bulk loading of memories, percentiles and plain-text tables."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import logging
import os
import platform
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

from bot.config import Settings
from tests.fakes.openai_server import embed

__all__ = [
    "LogCounter",
    "bench_parser",
    "bulk_load",
    "command_line",
    "fake_server",
    "machine_lines",
    "make_settings",
    "memory_texts",
    "percentile",
    "print_table",
    "temp_data_dir",
]

# Words that vary the deliberately similar memory texts (and the questions asked about them).
HOBBIES = ["hiking", "climbing", "cycling", "running", "swimming", "chess", "painting",
           "gardening", "baking", "surfing", "sailing", "skiing", "photography", "knitting"]
DATABASES = ["postgres", "sqlite", "mysql", "redis", "duckdb", "mongodb", "cassandra",
             "clickhouse", "oracle", "mariadb"]
CITIES = ["Lisbon", "Berlin", "Porto", "Madrid", "Oslo", "Vienna", "Prague", "Dublin",
          "Warsaw", "Zurich", "Munich", "Lyon", "Milan", "Ghent", "Krakow", "Tallinn"]
PETS = ["dog", "cat", "rabbit", "parrot", "hamster", "turtle"]
PET_NAMES = ["Pixel", "Luna", "Biscuit", "Nemo", "Pepper", "Mochi", "Otto", "Ziggy"]
FOODS = ["ramen", "pizza", "tacos", "curry", "sushi", "falafel", "paella", "dumplings"]
LANGUAGES = ["python", "rust", "go", "typescript", "kotlin", "haskell", "elixir", "java"]
JOBS = ["nurse", "teacher", "data engineer", "designer", "pilot", "chef", "lawyer", "architect"]
DRINKS = ["coffee", "green tea", "espresso", "mate", "black tea", "cocoa"]
WHEN = ["last spring", "in 2019", "two years ago", "last winter", "this summer", "in march"]

_TEMPLATES = [
    "I like {hobby} and my favourite database is {db}",
    "My favourite database is {db} but I also use {db2} at work",
    "I like {hobby} on weekends and {hobby2} when it rains",
    "I moved to {city} {when} and I like {hobby} there",
    "My {pet} is called {pet_name} and loves {hobby}",
    "My favourite food is {food} and I drink {drink} every morning",
    "I work as a {job} in {city} and use {db} every day",
    "I am learning {lang} because my team uses {db}",
    "My sister lives in {city} and her {pet} is called {pet_name}",
    "I prefer {drink} to {drink2} and I like {food} on fridays",
    "I started {hobby} {when} with my friend from {city}",
    "My favourite programming language is {lang} and my favourite database is {db}",
]


def _fill(template: str, rng: random.Random) -> str:
    h1, h2 = rng.sample(HOBBIES, 2)
    d1, d2 = rng.sample(DATABASES, 2)
    k1, k2 = rng.sample(DRINKS, 2)
    return template.format(
        hobby=h1, hobby2=h2, db=d1, db2=d2, drink=k1, drink2=k2, city=rng.choice(CITIES),
        when=rng.choice(WHEN), pet=rng.choice(PETS), pet_name=rng.choice(PET_NAMES),
        food=rng.choice(FOODS), lang=rng.choice(LANGUAGES), job=rng.choice(JOBS),
    )


def memory_texts(count: int, rng: random.Random) -> list[str]:
    """``count`` realistic, deliberately similar memory texts."""
    return [_fill(rng.choice(_TEMPLATES), rng) for _ in range(count)]


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the flags every benchmark takes."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--dims", type=int, default=384, help="embedding size (default 384)")
    parser.add_argument("--write-threads", type=int, default=None,
                        help="memory write threads (default: the Settings default)")
    parser.add_argument("--db-pool", type=int, default=None,
                        help="database pool size (default: the Settings default)")
    parser.add_argument("--database-url", default=None,
                        help="use this Postgres instead of an embedded one")
    parser.add_argument("--seed", type=int, default=1)
    return parser


def add_batching_flags(parser: argparse.ArgumentParser) -> None:
    """``--batch-size`` and ``--batch-idle``: how membot batches memory writes."""
    parser.add_argument("--batch-size", type=int, default=None,
                        help="MEMORY_BATCH_SIZE (default: the Settings default)")
    parser.add_argument("--batch-idle", type=float, default=None,
                        help="MEMORY_BATCH_IDLE, seconds (default: the Settings default)")


def with_batching(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with the batching flags given on the command line."""
    update: dict[str, Any] = {}
    if args.batch_size is not None:
        update["memory_batch_size"] = args.batch_size
    if args.batch_idle is not None:
        update["memory_batch_idle"] = args.batch_idle
    return settings.model_copy(update=update)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A markdown table with aligned columns."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")


def command_line(module: str) -> str:
    """How this benchmark was started, as a command to paste."""
    return " ".join(["python", "-m", module, *(shlex.quote(a) for a in sys.argv[1:])])


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


async def machine_lines(pool: asyncpg.Pool[Any]) -> list[str]:
    """The machine and the database versions, one fact per line."""
    server = await pool.fetchval("show server_version")
    vector = await pool.fetchval("select extversion from pg_extension where extname = 'vector'")
    return [
        f"CPU: {_cpu_model()}, {os.cpu_count()} logical cores, RAM {_ram_gib()}",
        f"Python {platform.python_version()} ({platform.system()} {platform.release()})",
        f"PostgreSQL {server}, pgvector {vector}",
    ]


def make_settings(base_url: str, dims: int, data_dir: Path, table: str,
                  database_url: str | None, write_threads: int | None,
                  db_pool: int | None) -> Settings:
    """Settings as production builds them, pointed at the scripted server; capacity flags left
    unset keep the Settings defaults."""
    capacity: dict[str, Any] = {}
    if write_threads is not None:
        capacity["memory_write_threads"] = write_threads
    if db_pool is not None:
        capacity["db_pool_size"] = db_pool
    return Settings(
        openai_api_key=SecretStr("bench"), openai_base_url=base_url, embedding_dims=dims,
        data_dir=data_dir, memory_table=table,
        database_url=SecretStr(database_url) if database_url else None, **capacity,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def fake_server(dims: int, chat: float = 0.0, extraction: float = 0.0,
                embedding: float = 0.0) -> Iterator[str]:
    """Run the scripted OpenAI-compatible server in its own process (so its CPU work does not
    share the bot's GIL); yields its base URL and stops it on exit."""
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(_free_port()),
               "--dims", str(dims), "--chat-delay", str(chat),
               "--extraction-delay", str(extraction), "--embedding-delay", str(embedding)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Scripted OpenAI server at http://127.0.0.1:P/v1"
        if "http" not in line:
            raise RuntimeError(f"the scripted server did not start (said {line!r})")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def temp_data_dir(prefix: str) -> Path:
    """A fresh data folder, removed at exit *after* the embedded Postgres in it has stopped
    (atexit runs handlers in reverse order, and the server registers its stop later)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class LogCounter(logging.Handler):
    """Counts warnings and errors logged by the bot, so a run can say whether any turn lost its
    memories (search timeout) or any write failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.first is None:
            self.first = f"{record.name}: {record.getMessage()}"[:200]

    def reset(self) -> None:
        self.count, self.first = 0, None


async def bulk_load(pool: asyncpg.Pool[Any], table: str, count: int, owners: int, dims: int,
                    rng: random.Random) -> float:
    """Load ``count`` memories spread evenly over owners ``bench:0`` .. ``bench:<owners-1>``
    into the memory table, as mem0 would have stored them, with the scripted server's
    embeddings. Secondary indexes are dropped during the copy and rebuilt after (faster than
    growing the HNSW graph row by row), then the table is analysed. Returns seconds taken."""
    started = time.perf_counter()
    texts = memory_texts(count, rng)
    vectors: dict[str, list[float]] = {}
    now = datetime.now(UTC)
    records = []
    for i, text in enumerate(texts):
        if text not in vectors:
            vectors[text] = embed(text, dims)
        at = (now - timedelta(minutes=rng.randrange(60 * 24 * 365))).isoformat()
        payload = {
            "user_id": f"bench:{i % owners}", "data": text, "text_lemmatized": text.lower(),
            "hash": hashlib.md5(text.encode()).hexdigest(), "created_at": at, "updated_at": at,
            "platform": "bench", "event_id": f"bench:{uuid.uuid4()}",
        }
        records.append((uuid.uuid4(), vectors[text], json.dumps(payload)))
    async with pool.acquire() as conn:
        indexes = await conn.fetch(
            "select indexname, indexdef from pg_indexes where schemaname = 'public'"
            " and tablename = $1 and indexname <> $2", table, f"{table}_pkey")
        for index in indexes:
            await conn.execute(f'drop index "{index["indexname"]}"')
        await conn.copy_records_to_table(table, records=records,
                                         columns=["id", "vector", "payload"])
        await conn.execute("set maintenance_work_mem = '1GB'")
        for index in indexes:
            await conn.execute(index["indexdef"])
        await conn.execute("reset maintenance_work_mem")
        await conn.execute(f'analyze "{table}"')
    return time.perf_counter() - started
