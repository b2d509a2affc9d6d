"""Memory-quality scenarios and how they are judged, apart from any system under test.

A scenario (``bench/scenarios/quality.json``) is a few sessions of messages, each session on
its own day and in a direct conversation with the bot (``"where": "dm"``) or a channel shared
by several speakers (``"group"``); then what should be remembered and what should not, and
probes: questions each person asks afterwards, in a new conversation. A system under test is
anything with the three methods of :class:`System`; judging sees only the texts it returns
(the person's current memories and the replies), never how they were made, so any memory
system can be scored the same way.

The matching rule (deterministic, no model). Text is normalised: lower case, apostrophes
dropped ("don't" is "dont"), every other character that is not a letter or a digit is a space,
and numbers lose leading zeros ("05" is "5"). A keyword is a word or a phrase, matched as whole
words in that order; a trailing ``*`` lets its last word have any ending ("allerg*" matches
"allergic", "allergy"). ``{d-N:FORMAT}`` in a keyword is the run's date minus N days, written
with ``strftime`` (``{d-7:%B}`` is last week's month name). A fact is a list of keyword groups:
a text holds the fact when every group has at least one of its alternatives (``a|b``) in it.

Per scenario and person (the scenario's ``of``, by default its only speaker):

- **fact recall**: a fact in ``facts`` is recalled when at least one of the person's stored
  memories holds it.
- **stale**: an entry of ``stale`` (a replaced or retracted value) is still current when a
  memory holds it and has none of the words that mark it as past or negated (:data:`PAST`,
  plus the entry's own ``unless``): "lives in Lyon" is stale, "moved from Lyon to Berlin" is not.
- **misattributed**: an entry of ``others`` (what somebody else said or is) is misattributed
  when a memory of the person holds it and names none of its ``who`` (the brother, his name)
  and none of its ``unless``. In a group channel ``who`` is empty: another speaker's fact in
  this person's memories is misattributed however it is worded.
- **junk**: a stored memory is junk when it holds an entry of ``junk`` (what only a question,
  request or small talk could have produced), or when it holds nothing of ``facts``,
  ``allowed`` (true things the person said that no probe asks about), ``stale`` or ``others``
  (those are counted above instead). A message with no fact about the person has empty
  ``facts``, so every memory made from it is junk.
- **answer accuracy**: a probe's reply is right when it holds every group of ``expect``, or,
  for a ``declines`` probe (the person never said it), when it holds one of the phrases of
  :data:`DECLINES`; in both cases it must hold no alternative of ``forbid`` (an invented or
  borrowed value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = [
    "CATEGORIES",
    "DECLINES",
    "PAST",
    "Entry",
    "Judged",
    "Message",
    "Probe",
    "Scenario",
    "Session",
    "System",
    "Tally",
    "holds",
    "judge",
    "load_scenarios",
    "normalise",
]

SCENARIOS = Path(__file__).resolve().parent / "scenarios" / "quality.json"

CATEGORIES = ("across-sessions", "multi-fact", "updates", "retractions", "other-people",
              "no-fact", "group", "time", "never-told")

# Words that mark a memory's value as no longer current, or as not so.
PAST = ("used to|previous*|former*|no longer|not|no|never|dont|doesnt|didnt|isnt|arent|wont|"
        "anymore|any more|from|before|stopped|quit*|left|gave up|ex|retired|past|until|was|"
        "were|cancel*|replaced|switched|instead|earlier|forget|forgot")

# What a reply that declines to answer says (after normalising).
DECLINES = ("dont know|do not know|not sure|no idea|havent told|have not told|didnt tell|"
            "did not tell|didnt mention|did not mention|havent mentioned|have not mentioned|"
            "not mentioned|never mentioned|never told|dont have|do not have|no information|"
            "no record|dont remember|do not remember|cant recall|cannot recall|dont recall|"
            "do not recall|not aware|unknown|no memory|no memories|not in my|couldnt find|"
            "could not find|cant find|cannot find|not provided|havent shared|have not shared|"
            "didnt share|did not share|not shared|unable to|i cant tell|i cannot tell|"
            "cant say|cannot say|not specified|doesnt say|does not say|no details|"
            "not something|let me know|could you tell|can you tell|would you like to share")

_TEMPLATE = re.compile(r"\{d-(\d+):([^}]*)\}")


def normalise(text: str) -> list[str]:
    """``text`` as the words the matching rule compares (see the module docstring)."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    words = re.sub(r"[^0-9a-z\u00c0-\u024f]+", " ", text).split()
    return [w.lstrip("0") or "0" if w.isdigit() else w for w in words]


def _expand(keyword: str, today: date) -> str:
    return _TEMPLATE.sub(
        lambda m: (today - timedelta(days=int(m[1]))).strftime(m[2]), keyword)


def _has(words: Sequence[str], alternative: str, today: date) -> bool:
    """Whether ``words`` (normalised) hold one keyword alternative."""
    alternative = _expand(alternative.strip(), today)
    star = alternative.endswith("*")
    wanted = normalise(alternative.rstrip("*"))
    if not wanted:
        return False
    n = len(wanted)
    for start in range(len(words) - n + 1):
        window = words[start:start + n]
        if window[:-1] != wanted[:-1]:
            continue
        last = window[-1]
        if last == wanted[-1] or (star and last.startswith(wanted[-1])):
            return True
    return False


def any_of(words: Sequence[str], group: str, today: date) -> bool:
    """Whether ``words`` hold at least one alternative of ``group`` ("a|b|c")."""
    return any(_has(words, alternative, today) for alternative in group.split("|"))


def holds(text: str, groups: Sequence[str], today: date) -> bool:
    """Whether ``text`` holds every keyword group (the fact-matching rule)."""
    words = normalise(text)
    return bool(groups) and all(any_of(words, group, today) for group in groups)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """A fact, an allowed fact, a stale value, another person's fact or a junk pattern, about
    (or in the memories of) speaker ``of``."""

    of: str
    kw: tuple[str, ...]
    who: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    of: str
    ask: str
    expect: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    declines: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    speaker: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """What was said in one conversation on one day (``day`` days before the run; 0 is the day
    of the run). ``where`` is a direct conversation with the bot or a channel of several
    speakers."""

    day: int
    where: Literal["dm", "group"]
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    id: str
    category: str
    speakers: tuple[str, ...]
    sessions: tuple[Session, ...]
    facts: tuple[Entry, ...] = ()
    allowed: tuple[Entry, ...] = ()
    stale: tuple[Entry, ...] = ()
    others: tuple[Entry, ...] = ()
    junk: tuple[Entry, ...] = ()
    probes: tuple[Probe, ...] = ()

    @property
    def messages(self) -> int:
        return sum(len(s.messages) for s in self.sessions)


class System(Protocol):
    """A memory system under test. Each person is named by a string the runner makes unique
    per scenario (``person``); the same name in two scenarios is two different people."""

    name: str

    async def learn(self, scenario: Scenario, session: Session, people: Mapping[str, str],
                    at: datetime) -> None:
        """Take one session's messages in order, from their speakers (``people`` maps a
        scenario's speaker to the person), said at ``at`` and the minutes after; return when
        everything the system will learn from them is stored."""
        ...

    async def memories(self, person: str) -> list[str]:
        """The person's current stored memories, as texts."""
        ...

    async def answer(self, person: str, question: str, at: datetime) -> str:
        """The person asks ``question`` in a new conversation; the reply."""
        ...


def _entries(raw: Iterable[dict[str, Any]], default: str) -> tuple[Entry, ...]:
    return tuple(Entry(of=str(e.get("of", default)), kw=tuple(e["kw"]),
                       who=tuple(e.get("who", ())), unless=tuple(e.get("unless", ())))
                 for e in raw)


def _scenario(raw: dict[str, Any]) -> Scenario:
    speakers = tuple(raw.get("speakers", ("me",)))
    sessions = []
    for session in raw["sessions"]:
        messages = tuple(
            Message(speaker=speakers[0], text=said) if isinstance(said, str)
            else Message(speaker=said[0], text=said[1]) for said in session["say"])
        unknown = {m.speaker for m in messages} - set(speakers)
        if unknown:
            raise ValueError(f"{raw['id']}: unknown speakers {sorted(unknown)}")
        sessions.append(Session(day=int(session["day"]), where=session.get("where", "dm"),
                                messages=messages))
    if raw["category"] not in CATEGORIES:
        raise ValueError(f"{raw['id']}: unknown category {raw['category']!r}")
    first = speakers[0]
    return Scenario(
        id=raw["id"], category=raw["category"], speakers=speakers, sessions=tuple(sessions),
        facts=_entries(raw.get("facts", ()), first),
        allowed=_entries(raw.get("allowed", ()), first),
        stale=_entries(raw.get("stale", ()), first),
        others=_entries(raw.get("others", ()), first),
        junk=_entries(raw.get("junk", ()), first),
        probes=tuple(Probe(of=str(p.get("of", first)), ask=p["ask"],
                           expect=tuple(p.get("expect", ())), forbid=tuple(p.get("forbid", ())),
                           declines=bool(p.get("declines", False)))
                     for p in raw.get("probes", ())),
    )


def load_scenarios(path: Path = SCENARIOS) -> list[Scenario]:
    """Every scenario in the file, in its order; ids are unique."""
    scenarios = [_scenario(raw) for raw in json.loads(path.read_text("utf-8"))["scenarios"]]
    ids = [s.id for s in scenarios]
    if len(set(ids)) != len(ids):
        raise ValueError("scenario ids are not unique")
    return scenarios


@dataclass(slots=True)
class Tally:
    """Counts that add up over scenarios; the scores are their ratios."""

    scenarios: int = 0
    facts: int = 0
    recalled: int = 0
    memories: int = 0
    junk: int = 0
    stale: int = 0
    stale_found: int = 0
    others: int = 0
    misattributed: int = 0
    probes: int = 0
    correct: int = 0

    def add(self, other: Tally) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @staticmethod
    def ratio(part: int, whole: int) -> str:
        return f"{part / whole:.2f} ({part}/{whole})" if whole else "-"


@dataclass(slots=True)
class Judged:
    """One scenario's counts, and what was wrong, for the run's details."""

    scenario: Scenario
    tally: Tally
    notes: list[str] = field(default_factory=list)


def _past(words: Sequence[str], entry: Entry, today: date) -> bool:
    return any_of(words, PAST, today) or any(any_of(words, u, today) for u in entry.unless)


def _matches(text: str, entry: Entry, today: date) -> bool:
    return holds(text, entry.kw, today)


def judge(scenario: Scenario, memories: Mapping[str, Sequence[str]],
          answers: Sequence[str], today: date) -> Judged:
    """Score one scenario: ``memories`` by speaker (the scenario's names), ``answers`` in the
    order of its probes. ``today`` is the run's date (for ``{d-N:...}`` keywords)."""
    tally = Tally(scenarios=1)
    notes: list[str] = []
    for fact in scenario.facts:
        tally.facts += 1
        if any(_matches(m, fact, today) for m in memories.get(fact.of, ())):
            tally.recalled += 1
        else:
            notes.append(f"missing ({fact.of}): {' & '.join(fact.kw)}")
    for entry in scenario.stale:
        tally.stale += 1
        found = [m for m in memories.get(entry.of, ())
                 if _matches(m, entry, today) and not _past(normalise(m), entry, today)]
        if found:
            tally.stale_found += 1
            notes.append(f"stale ({entry.of}): {found[0]!r}")
    for entry in scenario.others:
        tally.others += 1
        found = [m for m in memories.get(entry.of, ())
                 if _matches(m, entry, today)
                 and not any(any_of(normalise(m), w, today) for w in entry.who + entry.unless)]
        if found:
            tally.misattributed += 1
            notes.append(f"misattributed ({entry.of}): {found[0]!r}")
    for speaker in scenario.speakers:
        mine = memories.get(speaker, ())
        known = [e for e in scenario.facts + scenario.allowed + scenario.stale + scenario.others
                 if e.of == speaker]
        junk = [e for e in scenario.junk if e.of == speaker]
        tally.memories += len(mine)
        for memory in mine:
            if (any(_matches(memory, e, today) for e in junk)
                    or not any(_matches(memory, e, today) for e in known)):
                tally.junk += 1
                notes.append(f"junk ({speaker}): {memory!r}")
    for probe, reply in zip(scenario.probes, answers, strict=True):
        tally.probes += 1
        words = normalise(reply)
        forbidden = any(any_of(words, f, today) for f in probe.forbid)
        if probe.declines:
            right = not forbidden and any_of(words, DECLINES, today)
        else:
            right = not forbidden and all(any_of(words, g, today) for g in probe.expect)
        if right:
            tally.correct += 1
        else:
            notes.append(f"wrong answer ({probe.of}) to {probe.ask!r}: {reply[:160]!r}")
    return Judged(scenario=scenario, tally=tally, notes=notes)
