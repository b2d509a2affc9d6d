"""``bench.quality`` and its judge: the matching rules, the scenario file, and a run of every
scenario through both systems against the scripted server (plumbing only: the scripted
extraction stores each of the person's lines as it was said, so only what that makes certain is
asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from bench.judge import (
    CATEGORIES,
    Entry,
    Message,
    Probe,
    Scenario,
    Session,
    holds,
    judge,
    load_scenarios,
    normalise,
)
from bench.quality import gold_recall, locomo_people
from tests.test_bench_compare import ROOT, table

TODAY = date(2026, 3, 10)


def test_normalising_drops_case_punctuation_apostrophes_and_leading_zeros() -> None:
    assert normalise("I don't LIVE in Lyon, it's 05 km!") == [
        "i", "dont", "live", "in", "lyon", "its", "5", "km"]


def test_a_fact_needs_every_group_and_any_alternative() -> None:
    assert holds("User is allergic to peanuts", ["peanut*", "allerg*"], TODAY)
    assert not holds("User likes peanuts", ["peanut*", "allerg*"], TODAY)
    assert holds("Lives in Le Guin street", ["le guin|ursula"], TODAY)
    assert not holds("League games", ["le guin"], TODAY)
    assert not holds("Bassoon player", ["bass"], TODAY)  # whole words unless starred
    assert holds("Started pottery on 2026-03-03", ["pottery", "{d-7:%Y-%m}"], TODAY)
    assert holds("Started pottery in March", ["pottery", "{d-7:%B}"], TODAY)
    assert not holds("anything", [], TODAY)


def _scenario() -> Scenario:
    return Scenario(
        id="t", category="updates", speakers=("me", "ana"),
        sessions=(Session(day=0, where="group", messages=(
            Message(speaker="me", text="I moved to Berlin"),
            Message(speaker="ana", text="My brother is a pilot"))),),
        facts=(Entry(of="me", kw=("berlin",)),),
        stale=(Entry(of="me", kw=("lyon",)),),
        others=(Entry(of="me", kw=("pilot",)), Entry(of="ana", kw=("berlin",))),
        allowed=(Entry(of="ana", kw=("pilot", "brother")),),
        junk=(Entry(of="me", kw=("weather",)),),
        probes=(Probe(of="me", ask="Where do I live?", expect=("berlin",)),
                Probe(of="me", ask="Wife?", declines=True, forbid=("anna",)),
                Probe(of="ana", ask="Job?", declines=True)),
    )


def test_judging_counts_each_score_from_texts_alone() -> None:
    memories = {
        "me": ["User lives in Berlin", "User moved from Lyon", "User lives in Lyon",
               "User is a pilot", "Asked about the weather in Berlin", "Likes tea"],
        "ana": ["Ana's brother is a pilot"],
    }
    replies = ["You live in Berlin.", "Your wife is Anna, I don't know more.",
               "I don't know your job."]
    judged = judge(_scenario(), memories, replies, TODAY)
    tally = judged.tally
    assert (tally.facts, tally.recalled) == (1, 1)
    assert (tally.stale, tally.stale_found) == (1, 1)  # "moved from Lyon" is past, not stale
    assert (tally.others, tally.misattributed) == (2, 1)
    # The weather memory matches a junk pattern; "Likes tea" matches nothing the scenario knows.
    assert (tally.memories, tally.junk) == (7, 2)
    assert (tally.probes, tally.correct) == (3, 2)  # the invented wife is forbidden
    assert any("wrong answer (me) to 'Wife?'" in note for note in judged.notes)


def test_the_scenario_file_covers_every_category_with_facts_its_own_messages_hold() -> None:
    scenarios = load_scenarios()
    assert len(scenarios) >= 40
    assert {s.category for s in scenarios} == set(CATEGORIES)
    for scenario in scenarios:
        for fact in scenario.facts:
            if any("{d-" in group for group in fact.kw):
                continue  # a resolved date: no message says it
            said = " ".join(m.text for session in scenario.sessions
                            for m in session.messages if m.speaker == fact.of)
            assert holds(said, fact.kw, TODAY), (scenario.id, fact.kw)
        for probe in scenario.probes:
            assert probe.of in scenario.speakers
            assert probe.expect or probe.declines, (scenario.id, probe.ask)


def locomo_like() -> list[dict[str, object]]:
    """One conversation in LoCoMo's shape, with observations citing their turns."""
    return [{
        "sample_id": "conv-1", "qa": [],
        "conversation": {
            "speaker_a": "Ana", "speaker_b": "Ben",
            "session_1_date_time": "1:00 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a cat called Pixel"},
                {"speaker": "Ben", "dia_id": "D1:2", "text": "I work as a nurse in Lisbon"},
                {"speaker": "Ana", "dia_id": "D1:3", "text": "I started climbing this summer"},
            ],
            "session_2_date_time": "2:00 pm on 9 May, 2023",
            "session_2": [
                {"speaker": "Ben", "dia_id": "D2:1", "text": "My favourite food is ramen"},
            ],
        },
        "observation": {
            "session_1_observation": {
                "Ana": [["Ana adopted a cat named Pixel.", "D1:1"],
                        ["Ana started climbing this summer.", "D1:3"]],
                "Ben": [["Ben works as a nurse in Lisbon.", "D1:2"]],
            },
            "session_2_observation": {"Ben": [["Ben's favourite food is ramen.", "D2:1"]]},
        },
    }]


def test_locomo_gold_facts_count_only_when_their_turns_were_sent() -> None:
    run = locomo_people(locomo_like(), conversations=1, sessions=2, lines=1)
    (scenario,) = run.scenarios
    assert scenario.speakers == ("ana", "ben")
    assert [m.text for s in scenario.sessions for m in s.messages] == [
        "I adopted a cat called Pixel", "I work as a nurse in Lisbon",
        "My favourite food is ramen"]
    assert [f.text for f in run.gold[scenario.id]] == [
        "Ana adopted a cat named Pixel.", "Ben works as a nurse in Lisbon.",
        "Ben's favourite food is ramen."]
    assert [s.day for s in scenario.sessions] == [-1, 0]
    fact = run.gold[scenario.id][0]
    assert gold_recall(fact, ["User adopted a cat, Pixel"])
    assert not gold_recall(fact, ["User likes dogs"])


def test_quality_runs_every_scenario_through_both_systems(tmp_path: Path) -> None:
    data = tmp_path / "locomo-like.json"
    data.write_text(json.dumps(locomo_like()), "utf-8")
    out = tmp_path / "quality.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.quality", "--dims", "32", "--data", str(data),
         "--locomo-conversations", "1", "--batch-idle", "0.5", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "logical cores" in result.stdout and "command: `python -m bench.quality" in result.stdout
    quality, cost, by_category, locomo = _tables(result.stdout)
    scenarios = load_scenarios()
    messages = sum(s.messages for s in scenarios)
    rows = {(r["category"], r["system"]): r for r in quality}
    for system in ("membot", "plain Mem0 loop"):
        assert {c for c, s in rows if s == system} == {*CATEGORIES, "overall"}
        assert rows[("overall", system)]["scenarios"] == str(len(scenarios))
        # Every line is stored as said: every fact that a message states is recalled...
        facts = sum(len(s.facts) for s in scenarios)
        dated = sum(any("{d-" in g for g in f.kw) for s in scenarios for f in s.facts)
        assert rows[("overall", system)]["fact recall"].endswith(f"({facts - dated}/{facts})")
        # ...and a question stored as said is junk.
        assert rows[("no-fact", system)]["junk"].startswith("1.00")
        assert (f"{system}: {messages + 4} messages sent to learn from (scenarios and LoCoMo), "
                "0 turns without an answer") in result.stdout
    learning = {r["system"]: r for r in cost if r["stage"] == "scenarios: learning"}
    assert learning["plain Mem0 loop"]["extraction calls/msg"] == "1.00"
    # membot learns a session's messages in one extraction and skips small talk.
    assert float(learning["membot"]["extraction calls/msg"]) < 1.0
    assert {r["category"] for r in by_category} == set(CATEGORIES)
    assert {r["system"]: r["gold facts"] for r in locomo} == {
        "membot": "4", "plain Mem0 loop": "4"}
    assert {r["system"]: r["recalled"] for r in locomo} == {
        "membot": "4", "plain Mem0 loop": "4"}
    saved = json.loads(out.read_text("utf-8"))
    assert [o["system"] for o in saved["outcomes"]] == ["membot", "plain Mem0 loop"]
    assert all(c["status"] == 200 for c in saved["calls"])


def _tables(stdout: str) -> list[list[dict[str, str]]]:
    """The printed tables, in order, each as its rows by column name."""
    tables: list[list[dict[str, str]]] = []
    block: list[str] = []
    for line in [*stdout.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            tables.append(table("\n".join(block)))
            block = []
    return tables


def test_the_meter_labels_calls_per_system_caps_answers_and_keeps_usage() -> None:
    import openai

    from bench.usage import UsageMeter
    from tests.fakes.openai_server import ScriptedOpenAI

    with ScriptedOpenAI(dims=8) as server, UsageMeter(server.base_url,
                                                      max_answer_tokens=7) as meter:
        meter.stages["a"] = "learn"
        client = openai.OpenAI(api_key="k", base_url=meter.url("a"))
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="m", response_format={"type": "json_object"},
                                       messages=[{"role": "user", "content": "x y z"}])
        client.embeddings.create(model="e", input="words here")
        client.close()
        chat, extraction = server.calls("chat")[0].body, server.calls("extraction")[0].body
    assert chat["max_tokens"] == 7 and "max_tokens" not in extraction
    calls = meter.calls
    assert [(c.phase, c.kind) for c in calls] == [
        ("a:learn", "chat"), ("a:learn", "extraction"), ("a:learn", "embedding")]
    assert [c.prompt_tokens for c in calls] == [1, 3, 2]  # the scripted server's word counts
    assert calls[1].prompt == "x y z"
