"""The streaming benchmark runs on every platform (tiny sizes; no timing is asserted: figures
are for people)."""

from __future__ import annotations

import subprocess
import sys

from tests.test_bench import ROOT


def test_streaming_benchmark_runs_on_every_platform() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.streaming", "--turns", "1", "--words", "6",
         "--delay", "0.01"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "logical cores" in result.stdout and "command:" in result.stdout
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in result.stdout.splitlines() if line.startswith("|")][2:]
    assert [(row[0], row[2]) for row in rows] == [
        ("terminal", "1"), ("Discord", "1"), ("Slack", "1"), ("Slack", "1")]
    for row in rows:  # the first words come no later than the whole answer
        assert float(row[3].replace(",", "")) <= float(row[4].replace(",", ""))
