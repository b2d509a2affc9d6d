"""membot's own memory extraction: what a person's new messages say about them, dated, with the
messages each fact came from and the kept memories it makes out of date.

Mem0's extraction (one fixed prompt of about 8,400 tokens) only ever adds, learns from questions
and from the assistant's text, and drops a batch whose JSON does not parse. This one sends short
instructions (:data:`INSTRUCTIONS`, under 1,000 tokens), the person's nearest current memories
and their new messages, each with the date it was said; it asks for a JSON object of a fixed
shape (:data:`SCHEMA`, as ``json_schema`` where the server takes it, so a server that constrains
its output cannot answer anything else) and checks the answer. The facts are then stored through
Mem0 as they are (``add(infer=False)``) by :class:`bot.memory.store.Mem0Memory`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bot.errors import ExtractionUnparseable
from bot.ports import JsonModel, Message, Source
from bot.smalltalk import only_small_talk
from bot.wording import one_line

__all__ = ["INSTRUCTIONS", "SCHEMA", "Extracted", "Extractor", "Fact", "Known",
           "extraction_prompt", "parse_extraction"]

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
You keep long-term notes about one person for a chat assistant. You are given the notes kept \
so far and the person's new messages, each with the date it was said. Answer with one JSON \
object: the new facts the messages tell about the person, and the kept notes that are no \
longer true.

What makes a fact: something about the person that still matters in a later conversation: \
who they are, where they live or work, family, friends and pets, health and diet, likes and \
dislikes, habits, plans, things they did or own, events in their life.

Rules:
1. Only what the person states about themselves. Questions, requests to the assistant, \
greetings, thanks, small talk, jokes and "what if" give no fact. "Can you suggest a film?" \
gives nothing; "Should I learn Rust?" gives nothing.
2. A fact about someone else goes in only as part of the person's life, naming who it is \
about: "Brother Tom is a pilot", never "Is a pilot". If it says nothing about the person's \
life, leave it out.
3. One fact per note: split a message that tells two things. Write each note short, without \
a subject, in the person's own terms: "Lives in Lisbon", "Is allergic to peanuts", \
"Daughter Ana started school".
4. Dates: turn "yesterday", "last week", "next month" into real dates counted from the date \
the message was said, and write them in the note ("Ran a half marathon on 2024-05-11"). Put \
the date the fact happened or began in "when" (YYYY-MM-DD), or "" when there is none.
5. "from": the numbers of the messages the fact comes from.
6. "replaces": the numbers of kept notes this fact makes untrue or out of date (a new city \
replaces the old city, a new job the old job, a changed plan the old plan). Not notes that \
are only related.
7. "retracted": the numbers of kept notes the person says are wrong or no longer true, or asks \
to forget ("forget that I...", "I don't ... any more"), when no new fact takes their place.
8. Leave out facts the kept notes already say. Nothing new: {"facts": [], "retracted": []}.

Example. Kept notes: [1] Works as a nurse. [2] Has a cat named Pip.
Messages: <1> (Fri 2024-03-08) "I quit the hospital last week, I'm a paramedic now! My wife \
Ana starts a new job on Monday." <2> (Fri 2024-03-08) "what should I cook tonight?" \
<3> (Fri 2024-03-08) "forget the cat thing, Pip was my sister's cat"
Answer: {"facts": [{"fact": "Works as a paramedic since about 2024-03-01, after quitting \
the hospital", "when": "2024-03-01", "from": [1], "replaces": [1]}, {"fact": "Wife Ana \
starts a new job on 2024-03-11", "when": "2024-03-11", "from": [1], "replaces": []}], \
"retracted": [2]}
(Message 2 is a question: no fact. Message 3 takes note 2 back: retracted, not replaced.)"""

# The answer's shape; as a ``json_schema`` response format it is also what a server that
# constrains its output (llama.cpp, vLLM, OpenAI's strict mode) lets the model write.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "fact": {"type": "string"},
                    "when": {"type": "string"},
                    "from": {"type": "array", "items": {"type": "integer"}},
                    "replaces": {"type": "array", "items": {"type": "integer"}},
                },
                "required": ["fact", "when", "from", "replaces"],
                "additionalProperties": False,
            },
        },
        "retracted": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["facts", "retracted"],
    "additionalProperties": False,
}

QUOTE_CHARS = 1_500  # of each message, in the prompt
_FENCED = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Known:
    """A current memory shown to the extraction, by its number in the prompt."""

    id: str
    text: str
    recorded: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """One fact to store: its note, the day it happened or began (if said), and indexes (from
    0) into the messages it came from and into the known memories it replaces."""

    text: str
    when: date | None
    sources: tuple[int, ...]
    replaces: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Extracted:
    """What one extraction found: new facts, and known memories retracted with no successor
    (indexes from 0). Empty is a valid answer: nothing to learn."""

    facts: tuple[Fact, ...] = ()
    retracted: tuple[int, ...] = ()


def extraction_prompt(known: Sequence[Known], said: Sequence[Source]) -> list[Message]:
    """The messages of one extraction call: the instructions, then the kept notes and the new
    messages, numbered from 1, each message with the day it was said. Message texts are quoted
    as JSON strings, so no message can pose as a part of the prompt."""
    notes = "\n".join(
        f"[{n}] {one_line(k.text, 300)}"
        + (f" (noted {k.recorded.date().isoformat()})" if k.recorded else "")
        for n, k in enumerate(known, 1)
    ) or "(none)"
    messages = "\n".join(
        f"<{n}> ({s.said_at.strftime('%a %Y-%m-%d')}) "
        + json.dumps(one_line(s.quote, QUOTE_CHARS), ensure_ascii=False)
        for n, s in enumerate(said, 1)
    )
    task = f"Kept notes:\n{notes}\n\nNew messages:\n{messages}"
    return [Message(role="system", content=INSTRUCTIONS), Message(role="user", content=task)]


def _object(answer: str) -> dict[str, Any]:
    text = answer.strip()
    fenced = _FENCED.search(text)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            found = json.loads(candidate, strict=False)
        except ValueError:
            continue
        if isinstance(found, dict) and isinstance(found.get("facts"), list):
            return found
    raise ExtractionUnparseable(
        "the extraction model's answer is not a JSON object with a 'facts' list")


def _indexes(raw: object, count: int) -> tuple[int, ...]:
    """The 1-based numbers in ``raw`` that name one of ``count`` items, as 0-based indexes, in
    order, each once; anything else is dropped."""
    if not isinstance(raw, list):
        return ()
    found: list[int] = []
    for value in raw:
        number = value if isinstance(value, int) and not isinstance(value, bool) else (
            int(value) if isinstance(value, str) and value.strip().isdigit() else 0)
        if 1 <= number <= count and number - 1 not in found:
            found.append(number - 1)
    return tuple(found)


_DAY = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")


def _day(raw: object) -> date | None:
    """The first ``YYYY-MM-DD`` in ``raw`` ("Thu 2026-12-03" included), if it is a real day."""
    found = _DAY.search(raw) if isinstance(raw, str) else None
    try:
        return date.fromisoformat(found.group(1)) if found else None
    except ValueError:
        return None


def _a_fact(text: str) -> bool:
    """Whether a note can be a fact at all: not a question, not small talk ("Thanks!")."""
    return len(text) >= 3 and not text.endswith("?") and not only_small_talk(text)


# Words that say nothing of what a text is about, left out when two texts are compared.
_FILLER = frozenset({
    "the", "and", "but", "for", "with", "that", "this", "these", "those", "from", "into",
    "onto", "about", "over", "under", "since", "after", "before", "then", "than", "was", "were",
    "are", "has", "have", "had", "having", "been", "being", "not", "any", "all", "its", "his",
    "her", "their", "they", "them", "she", "him", "you", "your", "yours", "our", "ours", "who",
    "whom", "what", "which", "when", "where", "why", "how", "just", "very", "really", "also",
    "too", "some", "more", "most", "much", "many", "one", "ones", "now", "still", "will",
    "would", "could", "should", "can", "may", "might", "did", "does", "doing", "done", "get",
    "got", "say", "said", "says", "like",
})
_WORD = re.compile(r"[^\W_]+")


def _topics(text: str) -> set[str]:
    """The words ``text`` is about: three letters or more, no filler, each cut to five letters
    (so "cats" and "cat", "hiking" and "hikes" meet)."""
    return {word[:5] for word in _WORD.findall(text.casefold())
            if len(word) >= 3 and word not in _FILLER}


def _plain(text: str) -> str:
    """``text``'s words, lower case, without punctuation."""
    return " ".join(_WORD.findall(text.casefold()))


def _related(one: str, other: str) -> bool:
    """Whether two texts share a word they are about."""
    return bool(_topics(one) & _topics(other))


def parse_extraction(answer: object, known: Sequence[str], said: Sequence[str]) -> Extracted:
    """The checked answer of an extraction that showed the notes ``known`` and the messages
    ``said`` (their texts, numbered from 1 in the prompt). Raises
    :class:`ExtractionUnparseable` when there is no JSON object with a ``facts`` list (read as
    it is, inside a code fence, or from its first ``{`` to its last ``}``).

    What a weak model gets wrong is checked against the texts, never trusted:
    - a note that is empty, a question or small talk is dropped ("Thanks!"), and so is a
      question of the messages written out as a note;
    - a note that shares no word with the messages is dropped: it did not come from them (a
      model copies its instructions' example at times);
    - a number naming no note or message is dropped; a fact naming no message comes from all;
    - a note is retracted only if it shares a word with the messages (a weak model "retracts"
      notes nothing was said about); a fact with a "retracted" list of its own is read as that
      retraction alone. Replacements are taken as given: the fact that replaces a note often
      shares no word with it ("Moved to Lisbon" replaces "Lives in Porto").
    """
    if not isinstance(answer, str) or not answer.strip():
        raise ExtractionUnparseable("the extraction model gave an empty answer")
    found = _object(answer)
    everything = " ".join(said)
    # A question copied out as a "fact" ("Can you give me a recipe for banana bread").
    asked = {_plain(m) for m in said if m.rstrip().endswith("?")}
    facts: list[Fact] = []
    taken_back = list(_indexes(found.get("retracted"), len(known)))
    for entry in found["facts"]:
        if isinstance(entry, str):
            entry = {"fact": entry}
        if not isinstance(entry, dict):
            continue
        if own := _indexes(entry.get("retracted"), len(known)):
            taken_back += [i for i in own if i not in taken_back]
            continue
        text = entry.get("fact")
        text = " ".join(text.split()) if isinstance(text, str) else ""
        if not _a_fact(text) or not _related(text, everything) or _plain(text) in asked:
            continue
        facts.append(Fact(
            text=text,
            when=_day(entry.get("when")),
            sources=_indexes(entry.get("from"), len(said)) or tuple(range(len(said))),
            replaces=_indexes(entry.get("replaces"), len(known)),
        ))
    retracted = tuple(i for i in taken_back if _related(known[i], everything))
    return Extracted(facts=tuple(facts), retracted=retracted)


class Extractor:
    """Asks the extraction model what messages say about their author.

    Guarantees: an answer that does not parse is asked for once more; if the second does not
    parse either, :class:`ExtractionUnparseable` is raised (a transient failure: the learner
    retries it later, then keeps the messages as failed), never taken as "nothing to learn".
    Model failures are raised as the model client raises them."""

    def __init__(self, model: JsonModel, *, attempts: int = 2) -> None:
        self._model = model
        self._attempts = attempts

    async def extract(self, known: Sequence[Known], said: Sequence[Source]) -> Extracted:
        prompt = extraction_prompt(known, said)
        for attempt in range(1, self._attempts + 1):
            answer = await self._model.complete_json(prompt, schema=SCHEMA,
                                                     name="membot_memories")
            try:
                return parse_extraction(answer, [k.text for k in known],
                                        [s.quote for s in said])
            except ExtractionUnparseable:
                if attempt == self._attempts:
                    raise
                log.warning("the extraction answer did not parse (%d characters); asking again",
                            len(answer))
        raise AssertionError("unreachable")
