"""The weekly digest end to end: `build_digest` (every tier's floor now, a week and a month ago,
the trailing-year and all-time fits, the week's cuts, hikes and new models, source health, the
watch indicators) and its 1600×900 PNG chart, on the ten-year database (`synth`).

Each run starts cold, as the weekly job does: the in-memory analytics are dropped first, so the
price history is read from SQLite again. Module imports are paid before timing (a running bot
has pandas and matplotlib loaded by its first chart).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import synth
from benchmarks.harness import Result, at_most, reported
from bot import analytics
from bot.config import load
from storage import open_db

GOAL_S = 1.5


def weekly_digest(db_path: Path, repeats: int) -> list[Result]:
    from bot.digest import build_digest

    with tempfile.TemporaryDirectory() as tmp:
        path = synth.copy(db_path, Path(tmp) / "digest.db")
        settings = load(environ={"DEFLATION_WATCH_DB": str(path)})
        db = open_db(path)
        try:
            walls, size = [], 0
            for _ in range(repeats):
                forget()
                began = time.perf_counter()
                digest = build_digest(db, datetime.now(UTC), settings)
                walls.append(time.perf_counter() - began)
                size = len(digest.chart)
        finally:
            db.close()
    params = {"database": db_path.name, "repeats": repeats, "chart_bytes": size}
    return [
        at_most("weekly digest with chart, cold", statistics.median(walls), "s", GOAL_S, **params),
        reported("weekly digest with chart, slowest run", max(walls), "s", repeats=repeats),
    ]


def forget() -> None:
    """Drop every in-memory analytics result, so the next digest reads the database again."""
    forgotten = getattr(analytics, "forget", None)
    if forgotten is not None:
        forgotten()
    else:
        analytics._LOADED.clear()
