"""``bench.cost`` replays LoCoMo-shaped conversations through both systems (a tiny synthetic file
written here; the real LoCoMo data never enters the repository)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.cost import people_of
from tests.test_bench_compare import ROOT, table


def locomo_like() -> list[dict[str, object]]:
    """Two conversations in LoCoMo's shape: numbered sessions of turns by two speakers."""
    def turns(session: int, a: str, b: str, lines: list[str]) -> list[dict[str, str]]:
        return [{"speaker": a if i % 2 == 0 else b, "dia_id": f"D{session}:{i + 1}",
                 "text": text} for i, text in enumerate(lines)]

    return [
        {"sample_id": "conv-1", "qa": [], "conversation": {
            "speaker_a": "Ana", "speaker_b": "Ben",
            "session_2_date_time": "2:00 pm on 9 May, 2023",
            "session_2": turns(2, "Ana", "Ben", ["I adopted a cat called Pixel", "Nice!",
                                                "She likes the balcony", "Cute."]),
            "session_1_date_time": "1:00 pm on 8 May, 2023",
            "session_1": turns(1, "Ana", "Ben", ["I moved to Lisbon last spring", "Cool!",
                                                "I work as a nurse there", "Busy?"]),
        }},
        {"sample_id": "conv-2", "qa": [], "conversation": {
            "speaker_a": "Cy", "speaker_b": "Di",
            "session_1_date_time": "1:00 pm on 8 May, 2023",
            "session_1": turns(1, "Cy", "Di", ["I started climbing this summer", "Wow",
                                              "My favourite food is ramen", "Yum"]),
        }},
    ]


def test_people_are_one_speaker_in_session_order() -> None:
    people = people_of(locomo_like(), "a", None, None)
    assert [p.name for p in people] == ["conv-1-ana", "conv-2-cy"]
    assert people[0].lines == ["I moved to Lisbon last spring", "I work as a nurse there",
                               "I adopted a cat called Pixel", "She likes the balcony"]
    assert people_of(locomo_like(), "b", 1, 1)[0].lines == ["Cool!"]


def test_cost_replays_both_systems(tmp_path: Path) -> None:
    data = tmp_path / "locomo-like.json"
    data.write_text(json.dumps(locomo_like()), "utf-8")
    plot = tmp_path / "cost.png"
    result = subprocess.run(
        [sys.executable, "-m", "bench.cost", "--data", str(data), "--messages", "3",
         "--dims", "32", "--plot", str(plot)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "logical cores" in result.stdout and "command: `python -m bench.cost" in result.stdout
    assert "characters of the messages' text / 4" in result.stdout
    rows = {row["system"]: row for row in table(result.stdout)}
    assert set(rows) == {"membot", "plain Mem0 loop"}
    for row in rows.values():
        assert row["person-messages"] == "5"
        assert row["writes done/failed"] == "5/0"
        assert row["non-answers"] == "0"
        assert float(row["chat calls/msg"]) == 1.0
        assert float(row["prompt tokens/msg"].replace(",", "")) > 0
    # The plain loop extracts once a message; membot once a session (three sessions here).
    assert float(rows["plain Mem0 loop"]["extraction calls/msg"]) == 1.0
    assert float(rows["membot"]["extraction calls/msg"]) == 0.6
    assert plot.stat().st_size > 10_000
