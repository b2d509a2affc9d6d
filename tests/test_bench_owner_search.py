"""The per-owner search benchmark still runs, at a tiny size (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_owner_search_benchmark_runs(tmp_path: Path) -> None:
    plotting = importlib.util.find_spec("matplotlib") is not None  # the optional 'bench' extra
    plot = tmp_path / "owner_search.png"
    result = subprocess.run(
        [sys.executable, "-m", "bench.owner_search", "--sizes", "2000", "--owners", "200",
         "--queries", "20", "--warmup", "5", "--dims", "64",
         "--plot", str(plot) if plotting else ""],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "logical cores" in result.stdout and "command:" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in lines[2:]]
    assert {(row["system"], row["k"]) for row in rows} == {
        (system, k) for system in ("membot", "mem0 Memory.search", "mem0 vector store")
        for k in ("5", "10")}
    for row in rows:
        assert row["memories"] == "2,000" and row["searches"] == "20"
        assert row["other owner"] == "0"
        if row["system"] == "membot":
            assert row["recall@k"] == "1.000"
            assert row["empty results"] == "0"
    assert plot.exists() == plotting
