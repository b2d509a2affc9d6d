"""Cost per message: model calls, prompt tokens and embedding calls, membot against the plain
Mem0 loop, on LoCoMo conversations.

Each LoCoMo conversation becomes one person: the lines of one speaker (``--speaker a`` or ``b``)
are sent in order, session after session; the other speaker's lines are ignored. Every line goes
through membot's core and, separately, through the plain Mem0 loop (:mod:`bench.plainloop`),
against the scripted model server with no delays. The plain loop writes inside every turn.
membot learns as it does in production: a session's lines are sent one after another, and when
the session ends (a pause in the conversation) the run waits until membot has learned
everything, so its batching (``MEMORY_BATCH_SIZE`` messages, or whatever is waiting at a pause)
and its skipping of small talk are counted. The scripted server counts the calls of
each kind and the characters of text they carry. Its chat answer is the same for both systems:
"(scripted) You said: " and the message (its default answer would also quote membot's memories,
which would make membot's answers, and the recent turns it sends, longer than the plain loop's).

Prompt tokens are estimated as characters / 4 (OpenAI's rule of thumb for English text):
``tiktoken`` cannot download its encodings here and no tokenizer with an OpenAI vocabulary is
installed. The count covers the text of every message in a request; the few tokens of framing
per message are not counted. The scripted answers are short, so what grows with real answers
(the plain loop extracts memories from the answer too; membot puts recent turns in the prompt)
is undercounted for both.

The LoCoMo data (CC BY-NC 4.0) is not part of this repository: give its path with ``--data``.
Run from the repository root: ``python -m bench.cost --data <locomo json>``; it writes
``docs/cost.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from adapters.console import to_event
from bench.common import (
    LogCounter,
    bench_parser,
    command_line,
    machine_lines,
    make_settings,
    print_table,
    temp_data_dir,
)
from bench.compare import calls_between, database_dsn
from bench.meters import load_average
from bench.plainloop import plain_loop
from bot import eventloop
from bot.app import services
from bot.config import Settings
from bot.events import ReplyKind
from tests.fakes.openai_server import ScriptedOpenAI

__all__ = ["Person", "Tally", "echo", "people_of"]

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
KINDS = ("chat", "extraction", "embedding")
_SESSION = re.compile(r"session_(\d+)")


@dataclass(frozen=True, slots=True)
class Person:
    """One LoCoMo conversation seen from one speaker: who, and what they said in each session,
    in order."""

    name: str
    sessions: list[list[str]]

    @property
    def lines(self) -> list[str]:
        return [line for session in self.sessions for line in session]


def people_of(data: Any, speaker: str, conversations: int | None,
              messages: int | None) -> list[Person]:
    """The people to replay from LoCoMo's JSON (a list of samples, each with a
    ``conversation`` of ``speaker_a``, ``speaker_b`` and numbered ``session_N`` turn lists)."""
    found = []
    for index, sample in enumerate(data[:conversations]):
        conversation = sample["conversation"]
        name = conversation[f"speaker_{speaker}"]
        sessions = sorted(
            (int(match[1]), turns) for key, turns in conversation.items()
            if (match := _SESSION.fullmatch(key)) and isinstance(turns, list)
        )
        said = [[str(turn["text"]).strip() for turn in turns
                 if turn.get("speaker") == name and str(turn.get("text", "")).strip()]
                for _, turns in sessions]
        kept: list[list[str]] = []
        left = messages if messages is not None else sum(len(lines) for lines in said)
        for lines in said:
            if left <= 0:
                break
            if lines:
                kept.append(lines[:left])
                left -= len(kept[-1])
        sample_id = re.sub(r"[^a-z0-9-]+", "-", str(sample.get("sample_id", index)).lower())
        found.append(Person(name=f"{sample_id}-{name.lower()}", sessions=kept))
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Tally:
    """What one system cost over the replay."""

    system: str
    messages: int
    counts: dict[str, dict[str, int]]  # per kind: calls, inputs, chars
    writes_done: int
    writes_failed: int
    non_answers: int
    seconds: float

    def per_message(self, kind: str, field: str = "calls") -> float:
        return self.counts[kind][field] / max(self.messages, 1)

    def tokens(self, kind: str) -> float:
        return self.per_message(kind, "chars") / CHARS_PER_TOKEN

    def row(self) -> list[str]:
        prompt = self.tokens("chat") + self.tokens("extraction")
        return [
            self.system, f"{self.messages:,}", f"{self.per_message('chat'):.2f}",
            f"{self.per_message('extraction'):.2f}", f"{self.per_message('embedding'):.2f}",
            f"{self.tokens('chat'):,.0f}", f"{self.tokens('extraction'):,.0f}",
            f"{prompt:,.0f}", f"{self.tokens('embedding'):,.0f}",
            f"{self.writes_done}/{self.writes_failed}", str(self.non_answers),
            f"{self.seconds:.1f}",
        ]


HEADERS = ["system", "person-messages", "chat calls/msg", "extraction calls/msg",
           "embedding calls/msg", "chat prompt tokens/msg", "extraction prompt tokens/msg",
           "prompt tokens/msg", "embedded tokens/msg", "writes done/failed", "non-answers",
           "replay s"]


def echo(body: dict[str, Any]) -> str:
    """The scripted chat answer for both systems: the person's message, quoted."""
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    last = users[-1].get("content") if users else ""
    return f"(scripted) You said: {last if isinstance(last, str) else ''}"


def counts_of(server: ScriptedOpenAI) -> dict[str, dict[str, int]]:
    return {kind: asdict(tally) for kind, tally in server.counts().items()}


def _difference(before: dict[str, dict[str, int]],
                after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {kind: {field: calls_between(before, after, kind, field)
                   for field in ("calls", "inputs", "chars")} for kind in KINDS}


async def run_membot(args: argparse.Namespace, server: ScriptedOpenAI, data_dir: Path,
                     people: Sequence[Person], token: str, header: list[str]) -> Tally:
    settings = make_settings(server.base_url, args.dims, data_dir, f"bench_cost_{token}",
                             args.database_url, args.write_threads, args.db_pool).model_copy(
        # A due job is otherwise found at the worker's next poll (5 s): only time, not cost.
        update={"memory_batch_size": args.batch_size, "memory_batch_idle": args.batch_idle,
                "worker_poll_interval": 0.2})
    async with services(settings) as svc:
        header.extend(await machine_lines(svc.database.pool))
        non_answers = 0
        before = counts_of(server)
        started = time.perf_counter()
        for one in people:
            for session in one.sessions:
                for line in session:
                    reply = await svc.core.handle(to_event(one.name, line, session=token))
                    if reply is None or reply.kind is not ReplyKind.ANSWER:
                        non_answers += 1
                await svc.jobs.wait_idle()  # the session is over: a pause
        seconds = time.perf_counter() - started
        after = counts_of(server)
        done, failed = svc.jobs.done, svc.jobs.failed
        if args.database_url:  # leave a server we were given as we found it
            await svc.database.pool.execute(f'drop table "{settings.memory_table}"')
            await svc.database.pool.execute(
                "delete from conversation_turns where conversation_id like $1", f"%:{token}")
    return Tally(system="membot", messages=sum(len(p.lines) for p in people),
                 counts=_difference(before, after), writes_done=done, writes_failed=failed,
                 non_answers=non_answers, seconds=seconds)


async def run_plain(args: argparse.Namespace, server: ScriptedOpenAI, dsn: str, data_dir: Path,
                    people: Sequence[Person], token: str) -> Tally:
    table = f"plain_cost_{token}"
    done = failed = 0
    async with plain_loop(dsn=dsn, table=table, base_url=server.base_url, dims=args.dims,
                          data_dir=data_dir) as loop:
        before = counts_of(server)
        started = time.perf_counter()
        for one in people:
            for line in one.lines:
                try:
                    await loop.chat_with_memories(line, user_id=one.name)
                except Exception:
                    log.exception("a plain-loop turn failed")
                    failed += 1
                else:
                    done += 1
        seconds = time.perf_counter() - started
        after = counts_of(server)
    if args.database_url:
        conn = await asyncpg.connect(dsn)
        try:
            for name in (table, f"{table}_entities"):
                await conn.execute(f'drop table if exists "{name}"')
        finally:
            await conn.close()
    return Tally(system="plain Mem0 loop", messages=sum(len(p.lines) for p in people),
                 counts=_difference(before, after), writes_done=done, writes_failed=failed,
                 non_answers=failed, seconds=seconds)


def ratios(membot: Tally, plain: Tally) -> str:
    """How many times membot's cost the plain loop's is, per kind."""
    def ratio(mine: float, theirs: float) -> str:
        return f"{theirs / mine:.2f}x" if mine else "n/a"

    prompt = (ratio(membot.tokens("chat") + membot.tokens("extraction"),
                    plain.tokens("chat") + plain.tokens("extraction")))
    return ", ".join([
        f"prompt tokens {prompt}",
        f"chat prompt tokens {ratio(membot.tokens('chat'), plain.tokens('chat'))}",
        f"extraction prompt tokens "
        f"{ratio(membot.tokens('extraction'), plain.tokens('extraction'))}",
        f"embedding calls "
        f"{ratio(membot.per_message('embedding'), plain.per_message('embedding'))}",
    ])


def plot(tallies: Sequence[Tally], path: Path) -> None:
    """Calls per message and prompt tokens per message, side by side for each system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / max(len(tallies), 1)
    for i, tally in enumerate(tallies):
        xs = [k + i * width for k in range(3)]
        bars = left.bar(xs, [tally.per_message(k) for k in KINDS], width, label=tally.system)
        left.bar_label(bars, fmt="%.2f", fontsize=8)
        bars = right.bar([k + i * width for k in range(2)],
                         [tally.tokens("chat"), tally.tokens("extraction")], width,
                         label=tally.system)
        right.bar_label(bars, fmt="%.0f", fontsize=8)
    offset = width * (len(tallies) - 1) / 2
    left.set_xticks([k + offset for k in range(3)], ["chat", "extraction", "embedding"])
    left.set_title("model calls per person-message")
    right.set_xticks([k + offset for k in range(2)], ["chat", "extraction"])
    right.set_title("prompt tokens per person-message (characters / 4)")
    for axis in (left, right):
        axis.legend()
        axis.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Cost per message on LoCoMo conversations (scripted model)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main_async(args: argparse.Namespace, people: list[Person]) -> None:
    data_dir = temp_data_dir("membot-bench-cost-")
    token = secrets.token_hex(3)
    log_counter = LogCounter()
    logging.getLogger().addHandler(log_counter)
    load_before = load_average()
    header: list[str] = []
    dsn = await database_dsn(args, data_dir)
    # In this process (its thread shares the GIL, which does not matter here: nothing is timed).
    with ScriptedOpenAI(args.dims, chat_reply=echo) as server:
        tallies = [await run_membot(args, server, data_dir, people, token, header)]
        print("# membot done", flush=True)
        tallies.append(await run_plain(args, server, dsn, data_dir, people, token))
        print("# plain loop done", flush=True)
    print()
    print("## Cost per person-message on LoCoMo: membot against the plain Mem0 loop")
    for line in header:
        print(f"- {line}")
    print(f"- load average (1, 5, 15 min) before the run: {load_before}; after: "
          f"{load_average()}")
    print(f"- command: `{command_line('bench.cost')}`")
    print(f"- data: {len(people)} LoCoMo conversations, speaker {args.speaker}'s lines only "
          f"({sum(len(p.lines) for p in people):,} person-messages); each sent after the "
          "previous one's memory write finished")
    print("- scripted model server, no delays, the same echo answer for both; prompt tokens = "
          f"characters of the messages' text / {CHARS_PER_TOKEN} (OpenAI's rule of thumb; "
          "tiktoken cannot fetch its encodings here), per-message framing not counted; embedded "
          "tokens the same "
          "proxy over the texts sent for embedding")
    print()
    print_table(HEADERS, [t.row() for t in tallies])
    print(f"\nplain loop / membot: {ratios(*tallies)}")
    if log_counter.first:
        print(f"\n{log_counter.count} warnings; the first: {log_counter.first}")
    if args.plot:
        plot(tallies, Path(args.plot))
        print(f"\nplot: {args.plot}")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path,
                        help="LoCoMo's JSON file (not in this repository)")
    parser.add_argument("--speaker", choices=["a", "b"], default="a",
                        help="which speaker is the person (default a)")
    parser.add_argument("--conversations", type=int, default=None,
                        help="replay only the first N conversations")
    parser.add_argument("--messages", type=int, default=None,
                        help="replay only the first N lines of the person in each conversation")
    parser.add_argument("--batch-size", type=int,
                        default=Settings.model_fields["memory_batch_size"].default,
                        help="membot's MEMORY_BATCH_SIZE (default: the Settings default)")
    parser.add_argument("--batch-idle", type=float, default=1.0,
                        help="membot's MEMORY_BATCH_IDLE in seconds (default 1: the replay "
                             "pauses only between sessions, so any idle time gives the same "
                             "batches)")
    parser.add_argument("--plot", default="docs/cost.png",
                        help="where to write the plot ('' for none)")
    args = parser.parse_args()
    people = people_of(json.loads(args.data.read_text("utf-8")), args.speaker,
                       args.conversations, args.messages)
    if not any(p.lines for p in people):
        parser.error(f"no lines of speaker {args.speaker} in {args.data}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    eventloop.run(main_async(args, people))


if __name__ == "__main__":
    main()
