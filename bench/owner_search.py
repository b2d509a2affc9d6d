"""Per-owner search at scale: latency and recall of membot's search and of mem0's default.

For each size, memories are bulk-loaded (``bench.common.bulk_load``: templated, deliberately
similar texts with the scripted server's embeddings) for ``--owners`` owners into two tables of
one Postgres: membot's, as ``Mem0Memory.open`` makes it (with its owner index), and one made by
mem0's ``Memory`` with its default ``pgvector`` settings (HNSW and full-text indexes, no owner
index, its own psycopg pool with default connection settings). Then random (owner, question)
pairs are searched one after another, with top-k 5 and 10, by

- membot: ``Mem0Memory.search`` (its SQL on its asyncpg pool);
- mem0: ``Memory.search(query, filters={"user_id": owner}, top_k=k)`` as shipped (it over-fetches
  60, mixes in a keyword score and drops scores under its 0.1 threshold);
- mem0's vector store alone: ``PGVector.search`` with the same filter and ``top_k=k``, the SQL
  mem0's search starts from, to tell the plan apart from mem0's scoring.

The query vectors are computed beforehand and handed to both through their embedder, so times
are the search path without the embedding call: SQL, driver and the library's own Python. All
searches reuse long-lived pools, as a running bot does; psycopg prepares mem0's repeated query
after 5 runs, and Postgres may then switch it to a generic plan. Warm-up pairs are not counted.

Each pair is searched at one k (5 or 10), twice by every system. Latency comes from the first
search, with the question's text (the first search of that owner by that system). Recall comes
from the second, with the same vector but a text that shares no word with any memory and names
no date, so that each system ranks by vector alone (membot's keyword and date ranks, if it has
them, and mem0's keyword score add nothing): recall then measures whether the search saw all of
the owner's memories, not how a ranking weighs words. Recall@k is the share of the owner's exact
top-k by cosine distance (brute force in numpy over all the owner's rows, read with index scans
switched off) found among the first k results; a result tied with the k-th exact distance
counts. Results belonging to another owner are counted, by looking every result up, over both
searches.

Run from the repository root: ``python -m bench.owner_search [--sizes 10000,100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import secrets
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from bench.common import (
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
from bench.overhead import question
from bot import eventloop
from bot.clients import ModelClients
from bot.config import Settings
from bot.database import Database
from bot.embedder import Embedding, OpenAIEmbedder
from bot.memory.mem0 import import_mem0
from bot.memory.store import Mem0Memory
from tests.fakes.openai_server import embed

ROOT = Path(__file__).resolve().parent.parent
KS = (5, 10)
SYSTEMS = ("membot", "mem0 Memory.search", "mem0 vector store")
TIE = 1e-6  # distances this close to the k-th exact one count as ties (float32 in pgvector)
MEM0_THRESHOLD = 0.1  # Memory.search's default score threshold

# The query mem0 2.2.1's PGVector.search sends (psycopg turns %s into $n), for EXPLAIN only.
_MEM0_SQL = ("select id, vector <=> $1::vector as distance, payload from {table}"
             " where payload->>$2 = $3 order by distance limit $4")

Search = Callable[[str, str, int], Awaitable[list[str]]]


class KnownVectors(OpenAIEmbedder):
    """membot's query embedder, answering from vectors computed beforehand (no HTTP call)."""

    def __init__(self, clients: ModelClients, settings: Settings,
                 vectors: Mapping[str, list[float]]) -> None:
        super().__init__(clients, settings)
        self._vectors = vectors

    async def embed(self, text: str) -> Embedding:
        return np.asarray(self._vectors[text], dtype=np.float32)


class Mem0KnownVectors:
    """The same for mem0's embedder seam (``embedding_model.embed(text, action)``)."""

    def __init__(self, vectors: Mapping[str, list[float]], config: Any) -> None:
        self._vectors = vectors
        self.config = config

    def embed(self, text: str, memory_action: str | None = None) -> list[float]:
        return self._vectors[text]


@dataclass(frozen=True, slots=True)
class Exact:
    """One search's exact answer: each of the owner's memories' distance, and all sorted."""

    distance: dict[str, float]
    ordered: list[float]

    def recall(self, found: Sequence[str], k: int) -> float:
        need = min(k, len(self.ordered))
        cutoff = self.ordered[need - 1] + TIE
        good = {i for i in found[:k] if self.distance.get(i, math.inf) <= cutoff}
        return len(good) / need

    def below_threshold(self, k: int) -> int:
        """How many of the exact top-k score under mem0's default threshold."""
        return sum(1 - d < MEM0_THRESHOLD for d in self.ordered[:k])


@dataclass(slots=True)
class Tally:
    """What one system returned at one k, over the counted searches."""

    size: int
    system: str
    k: int
    seconds: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)
    empty: int = 0
    foreign: int = 0
    returned: list[tuple[str, list[str]]] = field(default_factory=list)


def build_mem0_default(settings: Settings, dsn: str, table: str,
                       vectors: Mapping[str, list[float]]) -> Any:
    """mem0's ``Memory`` on the ``pgvector`` provider with its defaults (HNSW on, its own pool
    from the connection string) and the table it creates."""
    mem0 = import_mem0(settings)
    models = {"api_key": "bench", "openai_base_url": settings.openai_base_url}
    memory = mem0.Memory.from_config({
        "vector_store": {"provider": "pgvector", "config": {
            "collection_name": table, "embedding_model_dims": settings.embedding_dims,
            "connection_string": dsn}},
        "llm": {"provider": "openai", "config": models},
        "embedder": {"provider": "openai",
                     "config": {**models, "embedding_dims": settings.embedding_dims}},
        "history_db_path": ":memory:",
    })
    memory.embedding_model = Mem0KnownVectors(vectors, memory.embedding_model.config)
    memory.vector_store.create_col()
    return memory


def wordless(n: int) -> str:
    """The text of pair ``n``'s recall search: one made-up word, in no memory, naming no date
    (its vector is the question's)."""
    return f"zqx{n:05d}q"


async def exact_answers(pool: asyncpg.Pool[Any], table: str, pairs: Sequence[tuple[str, str]],
                        vectors: Mapping[str, list[float]]) -> list[Exact]:
    """Brute force: every row of the queried owners (no index used to find them), ranked in
    numpy by cosine distance in float64."""
    owners = sorted({owner for owner, _ in pairs})
    async with pool.acquire() as conn, conn.transaction():
        for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
            await conn.execute(f"set local {setting} = off")
        rows = await conn.fetch(
            f'select id::text as id, payload->>\'user_id\' as owner, vector from "{table}"'
            " where payload->>'user_id' = any($1::text[])", owners)
    grouped: dict[str, tuple[list[str], list[Any]]] = {}
    for row in rows:
        ids, vecs = grouped.setdefault(row["owner"], ([], []))
        ids.append(row["id"])
        vecs.append(row["vector"].to_numpy())
    unit = {}
    for owner, (ids, vecs) in grouped.items():
        matrix = np.asarray(vecs, dtype=np.float64)
        unit[owner] = (ids, matrix / np.linalg.norm(matrix, axis=1, keepdims=True))
    answers = []
    for owner, text in pairs:
        ids, matrix = unit[owner]
        query = np.asarray(vectors[text], dtype=np.float64)
        distances = 1.0 - matrix @ (query / np.linalg.norm(query))
        answers.append(Exact(dict(zip(ids, distances.tolist(), strict=True)),
                             sorted(distances.tolist())))
    return answers


async def count_foreign(pool: asyncpg.Pool[Any], table: str, tally: Tally) -> int:
    """How many returned results belong to another owner than the one searched for."""
    ids = sorted({i for _, found in tally.returned for i in found})
    rows = await pool.fetch(f'select id::text as id, payload->>\'user_id\' as owner'
                            f' from "{table}" where id = any($1::uuid[])', ids)
    owner_of = {row["id"]: row["owner"] for row in rows}
    return sum(owner_of.get(i) != owner for owner, found in tally.returned for i in found)


async def mem0_plans(pool: asyncpg.Pool[Any], table: str, owner: str,
                     vector: list[float]) -> dict[str, str]:
    """mem0's vector query planned with the real values (custom) and without (generic), as
    Postgres chooses once a prepared statement has run a few times."""
    literal = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
    plans = {}
    async with pool.acquire() as conn:
        await conn.execute(f"prepare owner_search_mem0 (vector, text, text, int) as "
                           f"{_MEM0_SQL.format(table=table)}")
        try:
            for mode in ("custom", "generic"):
                await conn.execute(f"set plan_cache_mode = force_{mode}_plan")
                lines = await conn.fetch(f"explain (costs off) execute owner_search_mem0("
                                         f"'{literal}', 'user_id', '{owner}', 60)")
                plans[mode] = plan_summary([row[0] for row in lines])
        finally:
            await conn.execute("deallocate owner_search_mem0")
            await conn.execute("reset plan_cache_mode")
    return plans


def plan_summary(lines: Sequence[str]) -> str:
    """An EXPLAIN on one line: its nodes, and their filters."""
    parts = []
    for raw in lines:
        line = raw.strip().removeprefix("->").strip()
        if line.startswith(("Filter:", "Index Cond:")):
            parts.append(f"[{line[:60]}]")
        elif ":" not in line:
            parts.append(line)
    return " > ".join(parts)


async def run_size(args: argparse.Namespace, base_url: str, data_dir: Path, size: int,
                   token: str, header: list[str]) -> list[Tally]:
    """Load ``size`` memories into both tables, search, and tally each system at each k."""
    settings = make_settings(base_url, args.dims, data_dir, f"bench_os_membot_{size}_{token}",
                             args.database_url, None, args.db_pool)
    mem0_table = f"bench_os_mem0_{size}_{token}"
    rng = random.Random(args.seed + size)
    with_memories = min(args.owners, size)
    # Pair n is searched at top-k KS[n % len(KS)]: pairs of their own for each k, so that every
    # timed search is the first search of its owner (which reads the owner's rows through the
    # OS cache or the disk, not from shared buffers a search of the same owner just filled).
    pairs = [(f"bench:{rng.randrange(with_memories)}", question(rng))
             for _ in range((args.warmup + args.queries) * len(KS))]
    warmup = args.warmup * len(KS)
    vectors = {text: embed(text, args.dims) for _, text in pairs}
    vectors.update({wordless(n): vectors[text] for n, (_, text) in enumerate(pairs)})
    clients = ModelClients(settings)
    database = await Database.open(settings)
    membot = mem0 = None
    try:
        pool = database.pool
        if not header:
            header.extend(await machine_lines(pool))
        membot = await Mem0Memory.open(settings, database, clients,
                                       KnownVectors(clients, settings, vectors))
        mem0 = await asyncio.to_thread(build_mem0_default, settings, database.dsn, mem0_table,
                                       vectors)
        tables = {"membot": settings.memory_table, "mem0": mem0_table}
        for name, table in tables.items():
            # The same seed for both: the same texts, owners and vectors (ids differ).
            took = await bulk_load(pool, table, size, args.owners, args.dims,
                                   random.Random(args.seed))
            print(f"# {size:,} memories loaded into {name}'s table in {took:.1f} s "
                  f"({size / took:,.0f} rows/s, index builds included)", flush=True)
        exact = {name: await exact_answers(pool, table, pairs, vectors)
                 for name, table in tables.items()}

        async def membot_search(owner: str, text: str, k: int) -> list[str]:
            assert membot is not None
            return [hit.id for hit in await membot.search(owner, text, k)]

        async def mem0_search(owner: str, text: str, k: int) -> list[str]:
            found = mem0.search(text, filters={"user_id": owner}, top_k=k)
            return [str(result["id"]) for result in found["results"]]

        async def store_search(owner: str, text: str, k: int) -> list[str]:
            found = mem0.vector_store.search(query=text, vectors=vectors[text], top_k=k,
                                             filters={"user_id": owner})
            return [str(result.id) for result in found]

        searches: dict[str, tuple[Search, str]] = {
            "membot": (membot_search, "membot"), "mem0 Memory.search": (mem0_search, "mem0"),
            "mem0 vector store": (store_search, "mem0")}
        tallies = {(system, k): Tally(size, system, k) for system in SYSTEMS for k in KS}
        for n, (owner, text) in enumerate(pairs):
            k = KS[n % len(KS)]
            # The two mem0 searches share a table: each goes first in half of the pairs of a k.
            order = SYSTEMS if n // len(KS) % 2 else SYSTEMS[::-1]
            for system in order:
                search, table_of = searches[system]
                started = time.perf_counter()
                found = await search(owner, text, k)
                took = time.perf_counter() - started
                wordless_found = await search(owner, wordless(n), k)
                if n < warmup:
                    continue
                tally = tallies[system, k]
                tally.seconds.append(took)
                tally.recalls.append(exact[table_of][n].recall(wordless_found, k))
                tally.empty += not wordless_found
                tally.returned += [(owner, found), (owner, wordless_found)]
        for (system, _), tally in tallies.items():
            tally.foreign = await count_foreign(pool, tables[searches[system][1]], tally)
        for i, k in enumerate(KS):
            counted = exact["mem0"][warmup + i::len(KS)]
            below = sum(e.below_threshold(k) for e in counted)
            total = sum(min(k, len(e.ordered)) for e in counted)
            print(f"# exact top-{k} results scoring under mem0's {MEM0_THRESHOLD} threshold: "
                  f"{below} of {total}")
        owner, text = pairs[0]
        for mode, plan in (await mem0_plans(pool, mem0_table, owner, vectors[text])).items():
            print(f"# mem0's vector query, {mode} plan: {plan}")
        return list(tallies.values())
    finally:
        if mem0 is not None:
            mem0.vector_store.connection_pool.close()
            mem0.db.close()
        if membot is not None:
            membot.close()
        for table in (settings.memory_table, mem0_table):
            await database.pool.execute(f'drop table if exists "{table}"')
        await database.close()
        await clients.close()


def git_line() -> str:
    """Which membot search was measured: the commit, and whether bot/memory/ differs."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = " (with uncommitted changes)" if git("status", "--porcelain", "--",
                                                    "bot/memory/") else ""
    last = git("log", "-1", "--format=%h", "--", "bot/memory/") or "unknown"
    return f"membot at commit {head}; bot/memory/ last changed in {last}{changed}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def plot(path: Path, tallies: Sequence[Tally], owners: int, subtitle: str) -> None:
    """Latency (k=10) and recall@5/@10 against the number of memories, per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, (latency, recall) = plt.subplots(1, 2, figsize=(11, 4.5))
    looks = (("tab:green", 2.0), ("tab:red", 4.0), ("tab:orange", 1.5))  # mem0's lines overlap
    sizes: list[int] = []
    for (color, width), system in zip(looks, SYSTEMS, strict=True):
        mine = {(t.size, t.k): t for t in tallies if t.system == system}
        sizes = sorted({size for size, _ in mine})
        at10 = [mine[s, 10] for s in sizes]
        latency.plot(sizes, [percentile(t.seconds, 50) * 1000 for t in at10], "o-", color=color,
                     linewidth=width, label=f"{system} p50")
        latency.plot(sizes, [percentile(t.seconds, 95) * 1000 for t in at10], "x--",
                     color=color, linewidth=width, label=f"{system} p95")
        for k, style in ((5, "s:"), (10, "o-")):
            recall.plot(sizes, [sum(mine[s, k].recalls) / len(mine[s, k].recalls)
                                for s in sizes], style, color=color, linewidth=width,
                        label=f"{system} recall@{k}")
    latency.set(xscale="log", yscale="log", xlabel=f"memories ({owners:,} owners)",
                ylabel="search latency, ms (top-10, no embedding)",
                title="Per-owner search latency")
    recall.set(xscale="log", ylim=(-0.05, 1.05), xlabel=f"memories ({owners:,} owners)",
               ylabel="recall against exact per-owner top-k", title="Recall")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for axes in (latency, recall):
        axes.set_xticks(sizes, [f"{s:,}" for s in sizes])
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)
    latency.yaxis.set_major_formatter(plain)
    latency.yaxis.set_minor_formatter(plain)
    fig.suptitle(subtitle, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


async def main_async(args: argparse.Namespace) -> None:
    # One Postgres for the run; each size gets tables of its own, dropped after.
    load_before = os.getloadavg()
    measured = git_line()  # before the run: bot/memory/ may change while it goes on
    started = time.perf_counter()
    data_dir = temp_data_dir("membot-bench-owner-search-")
    token = secrets.token_hex(3)
    header: list[str] = []
    tallies: list[Tally] = []
    with fake_server(args.dims) as base_url:
        for size in args.sizes:
            tallies.extend(await run_size(args, base_url, data_dir, size, token, header))
    load_after = os.getloadavg()
    loads = (f"load average (1/5/15 min) {'/'.join(f'{x:.2f}' for x in load_before)} at the "
             f"start, {'/'.join(f'{x:.2f}' for x in load_after)} at the end")
    print()
    print("## Per-owner search: membot against mem0's default pgvector search")
    for line in header:
        print(f"- {line}")
    print(f"- {loads}; run took {time.perf_counter() - started:.0f} s")
    print(f"- command: `{command_line('bench.owner_search')}`")
    print(f"- {measured}")
    print(f"- {args.owners:,} owners, {args.dims}-dim vectors; for each size and k (5, 10), "
          f"{args.queries} random (owner, question) pairs after {args.warmup} warm-up pairs, "
          "each searched by every system in turn, one search at a time")
    print("- latency: the search call with the question's text, without the embedding call "
          "(query vectors precomputed); the first search of that owner by that system")
    print("- recall@k and empty results: the same search with a text sharing no word with any "
          "memory (so every system ranks by vector alone), against the exact top-k of the same "
          "owner (numpy brute force); 'other owner': results, of both searches, that belong to "
          "another owner")
    print()
    print_table(
        ["memories", "system", "k", "searches", "p50 ms", "p95 ms", "recall@k",
         "empty results", "other owner"],
        [[f"{t.size:,}", t.system, str(t.k), str(len(t.seconds)), ms(percentile(t.seconds, 50)),
          ms(percentile(t.seconds, 95)), f"{sum(t.recalls) / len(t.recalls):.3f}", str(t.empty),
          str(t.foreign)] for t in tallies])
    if args.plot:
        plot(Path(args.plot), tallies, args.owners, f"{header[0]}; {loads}")
        print(f"\nplot: {args.plot}")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--sizes", default="10000,100000",
                        help="comma list of memory counts (default 10000,100000)")
    parser.add_argument("--owners", type=int, default=10_000,
                        help="owners the memories are spread over (default 10000)")
    parser.add_argument("--queries", type=int, default=300,
                        help="counted (owner, question) pairs per size (default 300)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="pairs searched first and not counted (default 20)")
    parser.add_argument("--plot", default="docs/owner_search.png",
                        help="where to write the plot ('' for none)")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    eventloop.run(main_async(args))


if __name__ == "__main__":
    main()
