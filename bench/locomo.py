"""Reading LoCoMo conversations (Maharana et al., ACL 2024) for the retrieval benchmark.

The data is CC BY-NC and is never part of this repository: the caller passes the path of a
LoCoMo JSON file (a list of samples, each ``{"sample_id", "conversation", "qa", ...}``).
A conversation holds ``session_<n>`` lists of turns (``{"speaker", "dia_id", "text"}``, and
``blip_caption`` when the speaker shared a photo) and a ``session_<n>_date_time`` per session
("1:56 pm on 8 May, 2023"). QA items name their evidence by ``dia_id``; a few ids in the
published files are malformed ("D8:6; D9:17", "D:11:26"), which :func:`evidence_ids` repairs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["CATEGORIES", "Conversation", "Question", "Turn", "evidence_ids", "load",
           "parse_session_date"]

# LoCoMo's QA categories; 5 (adversarial: questions with no answer in the conversation) has no
# evidence to retrieve and is left out.
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}

_SESSION = re.compile(r"session_(\d+)")
_DIA_ID = re.compile(r"D:?(\d+):(\d+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One turn, as a memory: ``text`` is the speaker's name, what they said and the caption
    of the photo they shared, if any."""

    dia_id: str
    speaker: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    question: str
    category: int
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversation:
    sample_id: str
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]


def parse_session_date(raw: str) -> datetime:
    """LoCoMo's session date ("1:56 pm on 8 May, 2023") as an aware datetime (UTC: the data
    gives no time zone)."""
    return datetime.strptime(" ".join(raw.split()), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def evidence_ids(raw: list[str]) -> tuple[str, ...]:
    """The ``D<session>:<turn>`` ids named in a QA item's evidence list, in order, repaired
    where the published data joined two ids in one string or wrote ``D:11:26``."""
    found: list[str] = []
    for entry in raw:
        for session, turn in _DIA_ID.findall(str(entry)):
            dia_id = f"D{int(session)}:{int(turn)}"
            if dia_id not in found:
                found.append(dia_id)
    return tuple(found)


def _turn_text(turn: dict[str, Any]) -> str:
    text = f"{turn['speaker']}: {turn['text']}"
    caption = turn.get("blip_caption")
    return f"{text} (shared {caption})" if caption else text


def _conversation(sample: dict[str, Any]) -> Conversation:
    conv = sample["conversation"]
    sessions = sorted(int(m[1]) for key in conv if (m := _SESSION.fullmatch(key)))
    turns = []
    for number in sessions:
        at = parse_session_date(conv[f"session_{number}_date_time"])
        for turn in conv[f"session_{number}"]:
            session, index = _DIA_ID.fullmatch(turn["dia_id"]).groups()  # type: ignore[union-attr]
            turns.append(Turn(dia_id=f"D{int(session)}:{int(index)}", speaker=turn["speaker"],
                              text=_turn_text(turn), at=at))
    questions = tuple(
        Question(question=str(qa["question"]), category=int(qa["category"]),
                 evidence=evidence_ids(qa.get("evidence") or []))
        for qa in sample["qa"]
    )
    return Conversation(sample_id=str(sample["sample_id"]), turns=tuple(turns),
                        questions=questions)


def load(path: Path) -> list[Conversation]:
    """Every conversation in a LoCoMo JSON file."""
    samples = json.loads(path.read_text("utf-8"))
    return [_conversation(sample) for sample in samples]
