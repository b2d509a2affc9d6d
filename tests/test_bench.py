"""The benchmark scripts still run (tiny sizes; no timing is asserted: figures are for people)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def last_row(args: list[str]) -> dict[str, str]:
    """Run a benchmark; its last table row, by column name."""
    result = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "logical cores" in result.stdout and "command:" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    header, last = ([cell.strip() for cell in row.strip("|").split("|")] for row in (rows[0],
                                                                                      rows[-1]))
    return dict(zip(header, last, strict=True))


def test_overhead_benchmark_runs() -> None:
    row = last_row(["bench.overhead", "--sizes", "2000", "--turns", "10", "--dims", "32"])
    assert row["memories"] == "2,000"
    assert row["non-answers"] == "0"
    assert float(row["mean hits"]) > 1


def test_overhead_benchmark_runs_turns_back_to_back_and_after_pauses() -> None:
    row = last_row(["bench.overhead", "--sizes", "2000", "--turns", "10", "--dims", "32",
                    "--no-worker", "--pause", "0.01"])
    assert row["non-answers"] == "0"
    assert row["warnings"] == "0"


def test_load_benchmark_runs_and_finishes_every_write() -> None:
    row = last_row(["bench.load", "--people", "2", "--messages", "2", "--extraction-delay",
                    "0.01", "--chat-delay", "0.01", "--dims", "32", "--batch-size", "1",
                    "--batch-idle", "0"])
    assert row["writes done/failed"] == "4/0"
    assert row["non-answers"] == "0"
