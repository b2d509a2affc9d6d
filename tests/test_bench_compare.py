"""``bench.compare`` runs both systems end to end (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai

from bench.compare import calls_between, server_counts
from tests.fakes.openai_server import ScriptedOpenAI

ROOT = Path(__file__).resolve().parent.parent


def table(stdout: str) -> list[dict[str, str]]:
    """The rows of the printed table, by column name."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    header, *rows = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)
    return [dict(zip(header, row, strict=True)) for row in rows if not row[0].startswith("-")]


def test_the_scripted_server_counts_calls_inputs_and_characters() -> None:
    with ScriptedOpenAI(dims=8) as server:
        client = openai.OpenAI(api_key="k", base_url=server.base_url)
        before = server_counts(server.base_url)
        client.embeddings.create(model="e", input=["abcd", "ef"])
        client.chat.completions.create(model="c", messages=[
            {"role": "system", "content": "12345"}, {"role": "user", "content": "678"}])
        after = server_counts(server.base_url)
        client.close()
        assert after == {kind: {"calls": t.calls, "inputs": t.inputs, "chars": t.chars}
                         for kind, t in server.counts().items()}
    assert before == {}
    assert after == {"embedding": {"calls": 1, "inputs": 2, "chars": 6},
                     "chat": {"calls": 1, "inputs": 2, "chars": 8}}
    assert calls_between(before, after, "chat", "chars") == 8
    assert calls_between(before, after, "extraction") == 0


def test_compare_runs_both_systems_and_finishes_every_write(tmp_path: Path) -> None:
    plot = tmp_path / "load.png"
    result = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--people", "1,2", "--messages", "2",
         "--chat-delay", "0.01", "--extraction-delay", "0.01", "--embedding-delay", "0",
         "--dims", "32", "--batch-size", "1", "--batch-idle", "0", "--plot", str(plot)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "logical cores" in result.stdout and "command: `python -m bench.compare" in result.stdout
    assert "load average" in result.stdout
    rows = {(row["people"], row["system"]): row for row in table(result.stdout)}
    assert set(rows) == {(people, system) for people in ("1", "2")
                         for system in ("membot", "plain Mem0 loop")}
    for (people, system), row in rows.items():
        messages = 2 * int(people)
        assert row["writes done/failed"] == f"{messages}/0"
        assert row["non-answers"] == "0"
        chat, extraction, _ = (int(n) for n in row["calls chat/extraction/embedding"].split("/"))
        assert chat == messages
        # The plain loop extracts in every turn. membot learns every write (above), a person's
        # messages that are waiting when the learning job runs in one extraction.
        assert (1 <= extraction <= messages) if system == "membot" else extraction == messages
    assert plot.stat().st_size > 10_000
