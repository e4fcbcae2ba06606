"""A smoke run of the benchmark harness on small inputs, so `make bench` cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_run_writes_every_metric(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    names = {row["name"] for row in document["results"]}
    assert {"bytes added by a poll with no change", "ingest CPU / json.loads CPU", "poll cycle / slowest source"} <= names
    assert {f"{command}: reply p99" for command in ("price", "history", "cheapest", "trend")} <= names
    assert {"weekly digest with chart, cold", "bot RSS after polls and commands", "bot RSS growth after warm-up"} <= names
    for row in document["results"]:
        assert set(row) == {"name", "value", "unit", "goal", "met", "params"}
        assert (row["goal"] is None) == (row["met"] is None)
        assert row["value"] >= 0 or row["unit"] == "MB/1000 ops"  # memory may shrink as well as grow
    assert "Deflation Watch benchmarks" in result.stdout
