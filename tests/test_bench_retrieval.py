"""The LoCoMo retrieval benchmark runs end to end on a tiny LoCoMo-shaped file written here (never
the real data): real local embeddings, both searches, the table, no result from another owner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.locomo import evidence_ids, load, parse_session_date

ROOT = Path(__file__).resolve().parent.parent

PEOPLE = [("Ana", "Ben", "Lisbon", "pottery", "Pixel"),
          ("Cleo", "Dan", "Oslo", "climbing", "Mochi"),
          ("Eve", "Finn", "Porto", "sailing", "Otto")]


def sample(n: int, a: str, b: str, city: str, hobby: str, pet: str) -> dict[str, Any]:
    """One conversation: two sessions of small talk around three facts about ``a``. Every
    conversation says the same kind of things, so a search leaking across owners would find
    look-alike turns elsewhere."""
    first = [
        (a, f"Hi {b}! I just moved to {city} last week."),
        (b, f"Welcome to {city}! How is the new flat?"),
        (a, "Small but bright. The kitchen is tiny though."),
        (b, "Tiny kitchens are the worst. Do you cook a lot?"),
        (a, f"Not much. I spend my evenings on {hobby} now."),
        (b, f"{hobby.capitalize()} sounds fun, where do you go?"),
        (a, "A club near the harbour, twice a week."),
        (b, "Nice, I should join you some day."),
    ]
    second = [
        (b, "Long time! How have you been?"),
        (a, f"Busy! We adopted a kitten and named her {pet}."),
        (b, f"{pet} is a lovely name. Is she calm?"),
        (a, "Not at all, she climbs the curtains.", "a photo of a kitten on a curtain rail"),
        (b, "Ha, kittens do that. Mine did too."),
        (a, "The neighbours keep asking about the noise."),
        (b, "Maybe a scratching post would help."),
        (a, "Good idea, I will buy one this weekend."),
    ]
    conversation: dict[str, Any] = {
        "speaker_a": a, "speaker_b": b,
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_2_date_time": "10:37 am on 27 June, 2023",
    }
    for number, turns in ((1, first), (2, second)):
        conversation[f"session_{number}"] = [
            {"speaker": t[0], "dia_id": f"D{number}:{i}", "text": t[1],
             **({"blip_caption": t[2], "img_url": ["x"]} if len(t) > 2 else {})}
            for i, t in enumerate(turns, 1)
        ]
    qa = [
        {"question": f"Which city did {a} move to?", "answer": city, "evidence": ["D1:1"],
         "category": 4},
        {"question": f"When did {a} adopt a kitten?", "answer": "June 2023",
         "evidence": ["D2:2"], "category": 2},
        {"question": f"What is {a}'s hobby and what is her pet called?", "answer": "",
         "evidence": ["D1:5; D2:2"], "category": 1},  # two ids in one string, as in LoCoMo
        {"question": f"Would {a} enjoy a cat café?", "answer": "Yes",
         "evidence": ["D:2:4"], "category": 3},  # malformed, as in LoCoMo
        {"question": f"What did {a} sell?", "answer": "", "evidence": ["D9:9"],
         "category": 4},  # names no turn: left out
        {"question": f"What is {a}'s favourite opera?", "answer": "", "evidence": [],
         "category": 5},  # adversarial: not scored
    ]
    return {"sample_id": f"conv-{n}", "conversation": conversation, "qa": qa}


def table(stdout: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the printed table whose first column is ``first_header``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("|") and line.split("|")[1].strip() == first_header)
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")),
                             strict=True)))
    return rows


def test_loader_repairs_evidence_ids_and_reads_session_dates(tmp_path: Path) -> None:
    assert evidence_ids(["D8:6; D9:17", "D:11:26", "D"]) == ("D8:6", "D9:17", "D11:26")
    assert parse_session_date("10:37 am on 27 June, 2023").isoformat() == (
        "2023-06-27T10:37:00+00:00")
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([sample(1, *PEOPLE[0])]))
    [conversation] = load(path)
    assert len(conversation.turns) == 16
    photo = next(t for t in conversation.turns if t.dia_id == "D2:4")
    assert photo.text == ("Ana: Not at all, she climbs the curtains. "
                          "(shared a photo of a kitten on a curtain rail)")
    assert photo.at.date().isoformat() == "2023-06-27"


def test_retrieval_benchmark_runs_on_a_tiny_locomo_file(tmp_path: Path) -> None:
    data = tmp_path / "locomo.json"
    data.write_text(json.dumps([sample(n, *people) for n, people in enumerate(PEOPLE)]))
    plot = tmp_path / "retrieval.png"
    result = subprocess.run(
        [sys.executable, "-m", "bench.retrieval", "--data", str(data), "--plot", str(plot)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "logical cores" in out and "command: `python -m bench.retrieval --data" in out
    assert "multilingual-e5-small" in out and '"query: "' in out and '"passage: "' in out
    assert "12 questions of categories 1-4" in out and "3 left out" in out

    metrics = table(out, "category")
    systems = {"mem0 default", "exact vector top-k", "membot"}
    assert {row["search"] for row in metrics} == systems
    counted = {(row["category"], row["search"]): row for row in metrics}
    for system in systems:
        assert counted["overall", system]["questions"] == "12"
        for category in ("1 multi-hop", "2 temporal", "3 open-domain", "4 single-hop"):
            assert counted[category, system]["questions"] == "3"
        for row in (r for r in metrics if r["search"] == system):
            r5, r10, mrr = (float(row[k]) for k in ("recall@5", "recall@10", "MRR"))
            assert 0 <= r5 <= r10 <= 1 and 0 <= mrr <= 1
    # 16 turns per owner: a top-10 that keeps to its owner finds the one evidence turn of the
    # plainest question in all three conversations.
    assert float(counted["4 single-hop", "membot"]["recall@10"]) == 1.0

    usage = {row["search"]: row for row in table(out, "search")}
    assert set(usage) == systems
    for row in usage.values():
        assert row["searches"] == "12"
        assert row["from another owner"] == "0"
        assert float(row["mean results"]) == 10.0
    assert plot.stat().st_size > 10_000
