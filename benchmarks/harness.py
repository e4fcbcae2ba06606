"""A small benchmark harness: each metric is a function that returns `Result`s; the runner
prints them as a Rich table and writes them to JSON with their goals and parameters."""

from __future__ import annotations

import json
import platform
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(slots=True)
class Result:
    """One measured number. `goal` is text such as "<= 50 ms"; `met` is None for a row that
    only reports (a ratio with nothing to meet)."""

    name: str
    value: float
    unit: str
    goal: str | None = None
    met: bool | None = None
    params: dict[str, Any] = field(default_factory=dict)


def at_most(name: str, value: float, unit: str, limit: float, **params: Any) -> Result:
    return Result(name, round(value, 4), unit, f"<= {limit:g} {unit}", value <= limit, params)


def reported(name: str, value: float, unit: str, **params: Any) -> Result:
    return Result(name, round(value, 4), unit, None, None, params)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the value below which `pct` % of the samples fall."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def run(metrics: list[Callable[[], list[Result]]], out: Path, console: Console) -> list[Result]:
    results: list[Result] = []
    for metric in metrics:
        console.print(f"[dim]running {metric.__name__}…[/]")
        results.extend(metric())
    table = Table(title="Deflation Watch benchmarks", title_justify="left")
    for column in ("metric", "value", "unit", "goal", "met"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for result in results:
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "—"}[result.met]
        table.add_row(result.name, f"{result.value:,.4g}", result.unit, result.goal or "report", met)
    console.print(table)
    out.write_text(json.dumps({"machine": machine(), "results": [asdict(r) for r in results]}, indent=2) + "\n")
    console.print(f"written to {out}")
    return results
