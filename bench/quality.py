"""Memory quality: what a system remembers about each person, judged against scenarios, with
membot and the plain Mem0 loop side by side on the same model.

Each scenario (``bench/scenarios/quality.json``, judged by :mod:`bench.judge`, whose docstring
gives every rule) is sent to each system session by session, the sessions dated ``day`` days
before the run; then each person's current memories are listed and judged, and then each
person asks the scenario's probes, each in a new conversation, and the replies are judged.

- **membot** is driven as the adapters drive it: a :class:`bot.events.ChatEvent` per message
  (with the session's date as its time, a direct conversation or a shared channel) to
  ``Core.handle``; its writes go through the inbox, the Postgres job queue and a worker in this
  process, batched as in production (``MEMORY_BATCH_SIZE`` messages, or what is waiting when
  the conversation pauses for ``--batch-idle`` seconds); the run waits until everything is
  learned at the end of each session. The worker is stopped before the probes: their own
  writes stay queued and unlearned, so one probe never becomes a memory seen by the next.
- **the plain Mem0 loop** is :mod:`bench.plainloop` (Mem0's README example: ``search`` top 3,
  chat, ``add`` of the exchange, in every turn), on Mem0's default extraction; its messages
  carry no date, as in the tutorial. Its probes are its turn up to the ``add`` (the same search
  and chat; the ``add`` would come after the reply and only cost time).

Scores per category and overall (definitions in :mod:`bench.judge`): **fact recall** (expected
facts held by the person's stored memories), **junk** (stored memories that nothing the person
said supports, or made from a message with no fact), **stale** (replaced or retracted values
still stored as current), **misattributed** (another person's fact stored as the speaker's),
**answer accuracy** (probes answered with the expected value, or declined when never told).
**Cost** comes from a metering pass-through in front of the endpoint (:mod:`bench.usage`):
extraction calls, their prompt tokens from the server's ``usage``, and their seconds, per
learned message (the messages sent before the probes).

Scenarios of the same session round run at once (``--concurrency``), as several people
chatting at the same time; within a scenario everything is in order. A local server that keeps
the previous prompt's prefix (llama.cpp does) takes less time for an extraction that follows
another one: seconds depend on that order, prompt tokens do not.

**LoCoMo's gold facts** (with ``--data``): each LoCoMo conversation's ``observation`` lists the
facts each speaker revealed per session, with the turns they came from. The first
``--locomo-sessions`` sessions of the first ``--locomo-conversations`` conversations are sent
(each speaker one person, both in one shared channel, at most ``--locomo-lines`` lines of each
speaker per session); a gold fact counts when every turn it cites was sent. Matching rule: a
gold fact's content words are its normalised words of three letters or more, less stop words
and the speaker's name, each cut to its first five letters; the fact is recalled when one
stored memory of that speaker holds at least half of them. The data is CC BY-NC and never part
of this repository.

Any OpenAI-compatible endpoint: ``--base-url`` (default: the scripted server of the tests, in
this process), ``--api-key``, ``--chat-model``, ``--embedding-model``, ``--dims``. Run from the
repository root: ``python -m bench.quality [--data <locomo json>]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

from bench.common import (
    LogCounter,
    bench_parser,
    command_line,
    machine_lines,
    make_settings,
    print_table,
    temp_data_dir,
)
from bench.compare import database_dsn
from bench.judge import (
    CATEGORIES,
    Entry,
    Judged,
    Message,
    Scenario,
    Session,
    System,
    Tally,
    judge,
    load_scenarios,
    normalise,
)
from bench.locomo import parse_session_date
from bench.plainloop import PlainLoop, plain_loop
from bench.usage import Call, UsageMeter
from bot import eventloop
from bot.app import Services, services
from bot.config import Settings
from bot.events import ChatEvent, ReplyKind
from tests.fakes.openai_server import ScriptedOpenAI

__all__ = ["MembotSystem", "PlainSystem", "gold_recall", "locomo_people"]

log = logging.getLogger(__name__)

PLATFORM = "bench"
SYSTEMS = ("membot", "plain")


# --- the systems under test -------------------------------------------------------------------


class MembotSystem:
    """membot through its core and its memory writer, as an adapter and a worker run it."""

    name = "membot"
    label = "membot"

    def __init__(self, svc: Services, token: str) -> None:
        self.svc = svc
        self.token = token
        self.non_answers = 0
        self.learned = 0

    def _event(self, person: str, text: str, conversation: str, at: datetime, *,
               direct: bool) -> ChatEvent:
        speaker = person.rsplit("-", 1)[-1]
        return ChatEvent(
            event_id=f"{PLATFORM}:{uuid.uuid4()}", platform=PLATFORM, author_id=person,
            author_name="" if speaker == "me" else speaker.title(), text=text,
            conversation_id=conversation,
            workspace_id=None if direct else f"guild-{self.token}",
            channel_id=None if direct else conversation, is_direct=direct, mentions_bot=True,
            at=at)

    async def learn(self, scenario: Scenario, session: Session, people: Mapping[str, str],
                    at: datetime) -> None:
        number = scenario.sessions.index(session) + 1
        for i, message in enumerate(session.messages):
            person = people[message.speaker]
            if session.where == "group":
                conversation = f"{PLATFORM}:channel:{scenario.id}:{self.token}:{number}"
            else:
                conversation = f"{PLATFORM}:dm:{person}:{number}"
            event = self._event(person, message.text, conversation, at + timedelta(minutes=i),
                                direct=session.where == "dm")
            reply = await self.svc.core.handle(event)
            if reply is None or reply.kind is not ReplyKind.ANSWER:
                self.non_answers += 1
        self.learned += len(session.messages)
        await self.svc.jobs.wait_idle()  # the conversation paused: everything is learned

    async def memories(self, person: str) -> list[str]:
        owner = await self.svc.links.owner_of(f"{PLATFORM}:{person}")
        return [r.text for r in await self.svc.memory.records(owner, superseded=False)]

    async def answer(self, person: str, question: str, at: datetime) -> str:
        event = self._event(person, question, f"{PLATFORM}:probe:{uuid.uuid4()}", at,
                            direct=True)
        reply = await self.svc.core.handle(event)
        if reply is None or reply.kind is not ReplyKind.ANSWER:
            self.non_answers += 1
        return reply.text if reply is not None else ""


class PlainSystem:
    """The plain Mem0 loop of Mem0's README."""

    name = "plain Mem0 loop"
    label = "plain"

    def __init__(self, loop: PlainLoop) -> None:
        self.loop = loop
        self.non_answers = 0
        self.learned = 0

    async def learn(self, scenario: Scenario, session: Session, people: Mapping[str, str],
                    at: datetime) -> None:
        for message in session.messages:
            try:
                await self.loop.chat_with_memories(message.text, user_id=people[message.speaker])
            except Exception:
                log.exception("a plain-loop turn failed")
                self.non_answers += 1
        self.learned += len(session.messages)

    async def memories(self, person: str) -> list[str]:
        found = await self.loop.memory.get_all(filters={"user_id": person}, top_k=1000)
        return [str(entry["memory"]) for entry in found["results"]]

    async def answer(self, person: str, question: str, at: datetime) -> str:
        try:
            messages = await self.loop.answer(question, user_id=person)
        except Exception:
            log.exception("a plain-loop probe failed")
            self.non_answers += 1
            return ""
        return messages[-1]["content"]


# --- running scenarios ------------------------------------------------------------------------


def people_of(scenario: Scenario, token: str) -> dict[str, str]:
    """A person name per speaker, unique to this scenario and run."""
    return {speaker: f"q{token}-{scenario.id}-{speaker}" for speaker in scenario.speakers}


@dataclass(slots=True)
class Outcome:
    """What one system did: its judged scenarios, LoCoMo figures, the seconds of each stage."""

    system: str
    label: str
    judged: list[Judged] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    learned: int = 0
    non_answers: int = 0
    locomo: dict[str, int] = field(default_factory=dict)
    memories: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)


async def _in_rounds(system: System, scenarios: Sequence[Scenario], people: dict[str, dict[str,
                     str]], run_day: datetime, concurrency: int) -> None:
    """Session 1 of every scenario, then session 2 of those that have one, and so on; up to
    ``concurrency`` scenarios at once within a round."""
    gate = asyncio.Semaphore(concurrency)

    async def one(scenario: Scenario, session: Session) -> None:
        async with gate:
            at = run_day + timedelta(days=session.day)
            await system.learn(scenario, session, people[scenario.id], at)

    rounds = max((len(s.sessions) for s in scenarios), default=0)
    for number in range(rounds):
        await asyncio.gather(*(one(s, s.sessions[number]) for s in scenarios
                               if len(s.sessions) > number))


async def run_scenarios(system: System, label: str, scenarios: Sequence[Scenario], token: str,
                        meter: UsageMeter, outcome: Outcome, concurrency: int,
                        stop_learning: Any = None) -> None:
    """Learn, list, stop learning (membot's worker), probe; judge each scenario."""
    now = datetime.now(UTC)
    run_day = now - timedelta(hours=1)  # day 0: earlier today, its messages a minute apart
    people = {s.id: people_of(s, token) for s in scenarios}
    meter.stages[label] = "learn"
    started = time.perf_counter()
    await _in_rounds(system, scenarios, people, run_day, concurrency)
    outcome.seconds["learn"] = time.perf_counter() - started
    memories = {s.id: {speaker: await system.memories(person)
                       for speaker, person in people[s.id].items()} for s in scenarios}
    if stop_learning is not None:
        await stop_learning()
    meter.stages[label] = "probe"
    started = time.perf_counter()
    for scenario in scenarios:
        replies = [await system.answer(people[scenario.id][probe.of], probe.ask, now)
                   for probe in scenario.probes]
        outcome.judged.append(judge(scenario, memories[scenario.id], replies, now.date()))
        outcome.memories[scenario.id] = memories[scenario.id]
        outcome.answers[scenario.id] = replies
    outcome.seconds["probe"] = time.perf_counter() - started


# --- LoCoMo's gold facts ----------------------------------------------------------------------

_STOP_WORDS = (
    "the and for with that this was were has have had her his she him they them their there "
    "from about after before into over also just very really some more most been being who "
    "what when where which while will would could should can not but are its it's our your "
    "you out all any one two new now then than too feel feels felt make made like likes "
    "recently currently")
_STOP = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True, slots=True, kw_only=True)
class GoldFact:
    speaker: str
    text: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LocomoRun:
    """LoCoMo conversations as scenarios (category ``locomo``, judged only by gold recall)."""

    scenarios: list[Scenario]
    gold: dict[str, list[GoldFact]]  # scenario id -> the gold facts of what was sent
    speakers: dict[str, dict[str, str]]  # scenario id -> LoCoMo name -> speaker


def _content(text: str, drop: set[str]) -> set[str]:
    return {w[:5] for w in normalise(text) if len(w) >= 3 and w not in _STOP and w not in drop}


def gold_recall(fact: GoldFact, memories: Sequence[str]) -> bool:
    """The LoCoMo matching rule (module docstring): one memory holds half of the fact's
    content words or more."""
    drop = set(normalise(fact.speaker))
    wanted = _content(fact.text, drop)
    if not wanted:
        return False
    return any(len(wanted & _content(m, drop)) * 2 >= len(wanted) for m in memories)


def locomo_people(data: Any, conversations: int, sessions: int,
                  lines: int | None) -> LocomoRun:
    """The first ``sessions`` sessions of the first ``conversations`` conversations, at most
    ``lines`` lines per speaker per session, and the gold facts whose evidence was all sent."""
    scenarios: list[Scenario] = []
    gold: dict[str, list[GoldFact]] = {}
    speaker_of: dict[str, dict[str, str]] = {}
    for index, sample in enumerate(data[:conversations]):
        conversation = sample["conversation"]
        names = [conversation["speaker_a"], conversation["speaker_b"]]
        speakers = {name: normalise(name)[0] if normalise(name) else f"s{i}"
                    for i, name in enumerate(names)}
        sid = f"locomo-{index + 1}"
        sent: set[str] = set()
        chosen: list[Session] = []
        dates: list[datetime] = []
        for number in range(1, sessions + 1):
            turns = conversation.get(f"session_{number}")
            if not isinstance(turns, list):
                break
            count = dict.fromkeys(names, 0)
            messages = []
            for turn in turns:
                name, text = turn.get("speaker"), str(turn.get("text", "")).strip()
                if name not in speakers or not text:
                    continue
                if lines is not None and count[name] >= lines:
                    continue
                count[name] += 1
                sent.add(str(turn["dia_id"]))
                messages.append(Message(speaker=speakers[name], text=text))
            dates.append(parse_session_date(conversation[f"session_{number}_date_time"]))
            chosen.append(Session(day=0, where="group", messages=tuple(messages)))
        facts: list[GoldFact] = []
        for number in range(1, len(chosen) + 1):
            observed = sample.get("observation", {}).get(f"session_{number}_observation", {})
            for name, items in observed.items():
                if name not in speakers:
                    continue
                for item in items:
                    text, evidence = item[0], item[1]
                    cited = tuple(evidence if isinstance(evidence, list) else [evidence])
                    if cited and all(str(c).strip() in sent for c in cited):
                        facts.append(GoldFact(speaker=name, text=str(text), evidence=cited))
        # The scenario's days place its sessions on LoCoMo's own dates, relative to the last.
        last = dates[-1] if dates else datetime.now(UTC)
        chosen = [Session(day=(d.date() - last.date()).days, where=s.where, messages=s.messages)
                  for s, d in zip(chosen, dates, strict=True)]
        scenarios.append(Scenario(
            id=sid, category="locomo", speakers=tuple(speakers.values()), sessions=tuple(chosen),
            facts=tuple(Entry(of=speakers[f.speaker], kw=()) for f in facts)))
        gold[sid] = facts
        speaker_of[sid] = speakers
    return LocomoRun(scenarios=scenarios, gold=gold, speakers=speaker_of)


async def run_locomo(system: System, label: str, run: LocomoRun, token: str,
                     meter: UsageMeter, outcome: Outcome, concurrency: int) -> None:
    people = {s.id: people_of(s, f"{token}l") for s in run.scenarios}
    meter.stages[label] = "locomo"
    started = time.perf_counter()
    await _in_rounds(system, run.scenarios, people,
                     datetime.now(UTC).replace(microsecond=0), concurrency)
    outcome.seconds["locomo"] = time.perf_counter() - started
    tally = {"messages": 0, "gold facts": 0, "recalled": 0, "memories": 0}
    for scenario in run.scenarios:
        tally["messages"] += scenario.messages
        by_name = {s: await system.memories(p) for s, p in people[scenario.id].items()}
        for memories in by_name.values():
            tally["memories"] += len(memories)
        for fact in run.gold[scenario.id]:
            tally["gold facts"] += 1
            if gold_recall(fact, by_name[run.speakers[scenario.id][fact.speaker]]):
                tally["recalled"] += 1
        outcome.memories[scenario.id] = by_name
    outcome.locomo = tally


# --- the run ----------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, base_url: str, data_dir: Path, token: str) -> Settings:
    settings = make_settings(base_url, args.dims, data_dir, f"bench_quality_{token}",
                             args.database_url, args.write_threads, args.db_pool)
    update: dict[str, Any] = {
        "openai_api_key": SecretStr(args.api_key),
        "memory_batch_size": args.batch_size, "memory_batch_idle": args.batch_idle,
        # A due job is otherwise found at the worker's next poll (5 s): only time, not quality.
        "worker_poll_interval": 0.2, "model_timeout": args.model_timeout,
        # Calls wait their turn at the meter, behind the other system's too.
        "extraction_timeout": args.model_timeout,
        "memory_search_timeout": args.search_timeout,
        "send_embedding_dims": args.send_dims,
    }
    if args.chat_model:
        update["chat_model"] = args.chat_model
    if args.embedding_model:
        update["embedding_model"] = args.embedding_model
    return settings.model_copy(update=update)


async def run_membot(args: argparse.Namespace, meter: UsageMeter, data_dir: Path, token: str,
                     scenarios: Sequence[Scenario], locomo: LocomoRun | None,
                     header: list[str]) -> Outcome:
    settings = _settings(args, meter.url(MembotSystem.label), data_dir, token)
    outcome = Outcome(system=MembotSystem.name, label=MembotSystem.label)
    async with services(settings, start_worker=False) as svc:
        header.extend(await machine_lines(svc.database.pool))
        system = MembotSystem(svc, token)
        # The worker as `membot worker` runs it; stopped before the probes (module docstring).
        worker = asyncio.create_task(svc.jobs.work(settings.memory_write_threads))

        async def stop_learning() -> None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

        try:
            if locomo is not None:
                await run_locomo(system, system.label, locomo, token, meter, outcome,
                                 args.concurrency)
            await run_scenarios(system, system.label, scenarios, token, meter, outcome,
                                args.concurrency, stop_learning)
        finally:
            await stop_learning()
        outcome.learned, outcome.non_answers = system.learned, system.non_answers
        outcome.locomo["writes failed"] = svc.jobs.failed
        if args.database_url:  # leave a server we were given as we found it
            await svc.database.pool.execute(f'drop table "{settings.memory_table}"')
    return outcome


async def run_plain(args: argparse.Namespace, meter: UsageMeter, dsn: str, data_dir: Path,
                    token: str, scenarios: Sequence[Scenario],
                    locomo: LocomoRun | None) -> Outcome:
    table = f"plain_quality_{token}"
    outcome = Outcome(system=PlainSystem.name, label=PlainSystem.label)
    async with plain_loop(dsn=dsn, table=table, base_url=meter.url(PlainSystem.label),
                          dims=args.dims,
                          data_dir=data_dir, api_key=args.api_key, chat_model=args.chat_model,
                          embedding_model=args.embedding_model,
                          call_timeout=args.model_timeout) as loop:
        system = PlainSystem(loop)
        if locomo is not None:
            await run_locomo(system, system.label, locomo, token, meter, outcome,
                             args.concurrency)
        await run_scenarios(system, system.label, scenarios, token, meter, outcome,
                            args.concurrency)
        outcome.learned, outcome.non_answers = system.learned, system.non_answers
    if args.database_url:
        conn = await asyncpg.connect(dsn)
        try:
            for name in (table, f"{table}_entities"):
                await conn.execute(f'drop table if exists "{name}"')
        finally:
            await conn.close()
    return outcome


# --- reporting --------------------------------------------------------------------------------

QUALITY_HEADERS = ["category", "system", "scenarios", "fact recall", "junk", "stale",
                   "misattributed", "answer accuracy", "memories"]
COST_HEADERS = ["system", "stage", "messages", "extraction calls/msg",
                "extraction prompt tokens/msg", "extraction s/msg", "chat calls",
                "chat prompt tokens/call", "chat s/call", "embedding calls", "stage s"]


def _quality_row(category: str, system: str, tally: Tally) -> list[str]:
    r = Tally.ratio
    return [category, system, str(tally.scenarios), r(tally.recalled, tally.facts),
            r(tally.junk, tally.memories), r(tally.stale_found, tally.stale),
            r(tally.misattributed, tally.others), r(tally.correct, tally.probes),
            str(tally.memories)]


def quality_rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    rows = []
    for category in [*CATEGORIES, "overall"]:
        for outcome in outcomes:
            tally = Tally()
            for judged in outcome.judged:
                if category in ("overall", judged.scenario.category):
                    tally.add(judged.tally)
            if tally.scenarios:
                rows.append(_quality_row(category, outcome.system, tally))
    return rows


def _cost_row(system: str, stage: str, messages: int, calls: Sequence[Call],
              seconds: float) -> list[str]:
    extraction = [c for c in calls if c.kind == "extraction"]
    chat = [c for c in calls if c.kind == "chat"]
    per = max(messages, 1)
    return [
        system, stage, str(messages), f"{len(extraction) / per:.2f}",
        f"{sum(c.prompt_tokens for c in extraction) / per:,.0f}",
        f"{sum(c.seconds for c in extraction) / per:.1f}", str(len(chat)),
        f"{sum(c.prompt_tokens for c in chat) / max(len(chat), 1):,.0f}",
        f"{sum(c.seconds for c in chat) / max(len(chat), 1):.1f}",
        str(sum(c.kind == "embedding" for c in calls)), f"{seconds:.0f}",
    ]


def cost_rows(outcomes: Sequence[Outcome], calls: Sequence[Call],
              scenarios: Sequence[Scenario], locomo: LocomoRun | None) -> list[list[str]]:
    rows = []
    for outcome in outcomes:
        for stage in ("locomo", "learn", "probe"):
            if stage not in outcome.seconds:
                continue
            mine = [c for c in calls if c.phase == f"{outcome.label}:{stage}"]
            if stage == "learn":
                messages = sum(s.messages for s in scenarios)
            elif stage == "locomo" and locomo is not None:
                messages = sum(s.messages for s in locomo.scenarios)
            else:
                messages = sum(len(s.probes) for s in scenarios)
            label = {"learn": "scenarios: learning", "probe": "scenarios: probes",
                     "locomo": "LoCoMo: learning"}[stage]
            rows.append(_cost_row(outcome.system, label, messages, mine,
                                  outcome.seconds[stage]))
    return rows


def category_cost_rows(outcomes: Sequence[Outcome], calls: Sequence[Call],
                       scenarios: Sequence[Scenario]) -> list[list[str]]:
    """Extraction calls and prompt tokens per learned message, by category: each extraction is
    put down to the category of a scenario whose messages its prompt holds."""
    rows = []
    for outcome in outcomes:
        mine = [c for c in calls if c.phase == f"{outcome.label}:learn"
                and c.kind == "extraction"]
        for category in CATEGORIES:
            chosen = [s for s in scenarios if s.category == category]
            if not chosen:
                continue
            texts = [m.text for s in chosen for session in s.sessions for m in session.messages]
            found = [c for c in mine if any(t in c.prompt for t in texts)]
            messages = sum(s.messages for s in chosen)
            rows.append([category, outcome.system, str(messages),
                         f"{len(found) / messages:.2f}",
                         f"{sum(c.prompt_tokens for c in found) / messages:,.0f}",
                         f"{sum(c.seconds for c in found) / messages:.1f}"])
    return rows


def select(scenarios: list[Scenario], ids: str | None, per_category: int | None
           ) -> list[Scenario]:
    if ids:
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        unknown = set(wanted) - {s.id for s in scenarios}
        if unknown:
            raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
        return [s for s in scenarios if s.id in wanted]
    if per_category is not None:
        kept: list[Scenario] = []
        for category in CATEGORIES:
            kept += [s for s in scenarios if s.category == category][:per_category]
        return kept
    return scenarios


async def main_async(args: argparse.Namespace, scenarios: list[Scenario],
                     locomo: LocomoRun | None) -> None:
    data_dir = temp_data_dir("membot-bench-quality-")
    token = secrets.token_hex(3)
    log_counter = LogCounter()
    logging.getLogger().addHandler(log_counter)
    header: list[str] = []
    started = time.perf_counter()
    began = datetime.now(UTC)
    dsn = await database_dsn(args, data_dir)
    scripted: AbstractContextManager[Any] = (
        nullcontext() if args.base_url else ScriptedOpenAI(args.dims))
    outcomes: list[Outcome] = []
    with scripted as server:
        upstream = args.base_url or server.base_url
        with UsageMeter(upstream, timeout=args.model_timeout,
                        max_answer_tokens=args.max_answer_tokens) as meter:

            async def membot() -> Outcome:
                done = await run_membot(args, meter, data_dir, token, scenarios, locomo,
                                        header)
                print(f"# membot done at {time.perf_counter() - started:.0f} s", flush=True)
                return done

            async def plain() -> Outcome:
                done = await run_plain(args, meter, dsn, data_dir, token, scenarios, locomo)
                print(f"# plain loop done at {time.perf_counter() - started:.0f} s",
                      flush=True)
                return done

            runs = {"membot": membot, "plain": plain}
            chosen = [runs[name] for name in SYSTEMS if name in args.systems]
            if args.together:
                outcomes = list(await asyncio.gather(*(run() for run in chosen)))
            else:
                outcomes = [await run() for run in chosen]
            calls = meter.calls
    seconds = time.perf_counter() - started
    model = args.chat_model or Settings.model_fields["chat_model"].default
    print()
    print("## Memory quality: membot against the plain Mem0 loop")
    for line in header:
        print(f"- {line}")
    print(f"- command: `{command_line('bench.quality')}`")
    print(f"- endpoint: {'scripted test server' if not args.base_url else args.base_url}; "
          f"chat and extraction model {model!r}, embedding model "
          f"{args.embedding_model or Settings.model_fields['embedding_model'].default!r}, "
          f"{args.dims} dims")
    cap = (f"capped at {args.max_answer_tokens} tokens" if args.max_answer_tokens
           else "not capped")
    print(f"- scenarios: {len(scenarios)} ({', '.join(s.id for s in scenarios)}), "
          f"{sum(s.messages for s in scenarios)} messages, "
          f"{sum(len(s.probes) for s in scenarios)} probes; membot batch size "
          f"{args.batch_size}, batch idle {args.batch_idle:g} s, search timeout "
          f"{args.search_timeout:g} s; up to {args.concurrency} scenarios at once; "
          f"systems {'at the same time' if args.together else 'one after the other'}; chat "
          f"answers {cap}")
    print(f"- started {began:%Y-%m-%d %H:%M} UTC; took {seconds / 60:.1f} minutes")
    print()
    print("### Quality per category")
    print()
    print_table(QUALITY_HEADERS, quality_rows(outcomes))
    print()
    print("### Cost (extraction and chat calls as the server's usage reported them)")
    print()
    print_table(COST_HEADERS, cost_rows(outcomes, calls, scenarios, locomo))
    print()
    print("### Extraction cost per learned message, by category")
    print()
    print_table(["category", "system", "messages", "extraction calls/msg",
                 "extraction prompt tokens/msg", "extraction s/msg"],
                category_cost_rows(outcomes, calls, scenarios))
    if locomo is not None:
        print()
        print("### LoCoMo gold facts (observation), extraction fact recall")
        print()
        print_table(
            ["system", "conversations", "sessions", "messages", "gold facts", "recalled",
             "fact recall", "memories"],
            [[o.system, str(len(locomo.scenarios)),
              str(sum(len(s.sessions) for s in locomo.scenarios)),
              str(o.locomo.get("messages", 0)), str(o.locomo.get("gold facts", 0)),
              str(o.locomo.get("recalled", 0)),
              Tally.ratio(o.locomo.get("recalled", 0), o.locomo.get("gold facts", 0)),
              str(o.locomo.get("memories", 0))] for o in outcomes])
    print()
    for outcome in outcomes:
        print(f"{outcome.system}: {outcome.learned} messages sent to learn from "
              f"(scenarios{' and LoCoMo' if locomo else ''}), {outcome.non_answers} turns "
              "without an answer")
    print(f"{log_counter.count} warnings" + (f"; the first: {log_counter.first}"
                                             if log_counter.first else ""))
    if args.details:
        print()
        print("### Details: what each system got wrong")
        for outcome in outcomes:
            for judged in outcome.judged:
                for note in judged.notes:
                    print(f"- {outcome.system} {judged.scenario.id}: {note}")
    if args.json:
        text = json.dumps({
            "command": command_line("bench.quality"), "started": began.isoformat(),
            "seconds": seconds,
            "outcomes": [{"system": o.system, "seconds": o.seconds, "locomo": o.locomo,
                          "memories": o.memories, "answers": o.answers,
                          "notes": {j.scenario.id: j.notes for j in o.judged}}
                         for o in outcomes],
            "calls": [{"phase": c.phase, "kind": c.kind, "status": c.status,
                       "seconds": round(c.seconds, 3), "prompt_tokens": c.prompt_tokens,
                       "completion_tokens": c.completion_tokens} for c in calls],
        }, indent=1, ensure_ascii=False)
        await asyncio.to_thread(Path(args.json).write_text, text, "utf-8")
        print(f"\nresults: {args.json}")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--base-url", default=None,
                        help="an OpenAI-compatible endpoint (default: the scripted test server)")
    parser.add_argument("--api-key", default="bench", help="its API key")
    parser.add_argument("--chat-model", default=None,
                        help="chat model, also used for extraction by both systems "
                             "(default: each system's default)")
    parser.add_argument("--embedding-model", default=None,
                        help="embedding model (default: each system's default)")
    parser.add_argument("--send-dims", action=argparse.BooleanOptionalAction, default=True,
                        help="send the embedding size with embedding requests (membot's "
                             "EMBEDDING_SEND_DIMS)")
    parser.add_argument("--model-timeout", type=float, default=3600.0,
                        help="seconds per model call, queueing included (default 3600)")
    parser.add_argument("--search-timeout", type=float,
                        default=Settings.model_fields["memory_search_timeout"].default,
                        help="membot's MEMORY_SEARCH_TIMEOUT, seconds (default: the Settings "
                             "default; a busy local server may need more, or membot answers "
                             "without memories)")
    parser.add_argument("--max-answer-tokens", type=int, default=None,
                        help="cap the chat answers of both systems at N tokens (default: no "
                             "cap; extractions are never capped)")
    parser.add_argument("--together", action=argparse.BooleanOptionalAction, default=False,
                        help="run both systems at the same time (the meter still serves one "
                             "model call at a time; stage seconds then overlap)")
    parser.add_argument("--systems", default="membot,plain",
                        help="comma-separated: membot, plain (default both)")
    parser.add_argument("--scenarios", default=None, help="comma-separated scenario ids")
    parser.add_argument("--per-category", type=int, default=None,
                        help="only the first N scenarios of each category")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="scenarios sent at once within a session round (default 50)")
    parser.add_argument("--batch-size", type=int,
                        default=Settings.model_fields["memory_batch_size"].default,
                        help="membot's MEMORY_BATCH_SIZE (default: the Settings default)")
    parser.add_argument("--batch-idle", type=float,
                        default=Settings.model_fields["memory_batch_idle"].default,
                        help="membot's MEMORY_BATCH_IDLE in seconds (default: the Settings "
                             "default; shorter than a reply takes, each message is learned "
                             "alone)")
    parser.add_argument("--data", type=Path, default=None,
                        help="LoCoMo's JSON file, for gold-fact recall (not in this "
                             "repository); without it that part is skipped")
    parser.add_argument("--locomo-conversations", type=int, default=2)
    parser.add_argument("--locomo-sessions", type=int, default=2)
    parser.add_argument("--locomo-lines", type=int, default=None,
                        help="at most N lines of each speaker per LoCoMo session")
    parser.add_argument("--details", action=argparse.BooleanOptionalAction, default=True,
                        help="print what each system got wrong, per scenario")
    parser.add_argument("--json", default=None, help="also write every memory, answer and "
                        "model call to this JSON file")
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not set(args.systems) <= set(SYSTEMS) or not args.systems:
        parser.error(f"--systems takes {', '.join(SYSTEMS)}")
    scenarios = select(load_scenarios(), args.scenarios, args.per_category)
    locomo = None
    if args.data is not None:
        locomo = locomo_people(json.loads(args.data.read_text("utf-8")),
                               args.locomo_conversations, args.locomo_sessions,
                               args.locomo_lines)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    eventloop.run(main_async(args, scenarios, locomo))


if __name__ == "__main__":
    main()
