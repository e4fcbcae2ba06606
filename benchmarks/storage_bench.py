"""Storage and polling: what a no-change poll costs, how small a replayed history is, how
much CPU ingesting an unchanged catalogue takes, and whether five sources poll concurrently."""

from __future__ import annotations

import asyncio
import gzip
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.harness import Result, at_most, median, reported
from bot import config, pipeline
from bot.fetch import make_client
from bot.sources import SOURCES
from storage import open_db, polls
from tests.source_server import SourceServer

T0 = datetime(2025, 9, 1, tzinfo=UTC)
#: Latencies injected per source in the poll-cycle benchmark, seconds.
LATENCIES = {"openrouter": 0.2, "litellm": 2.0, "genai-prices": 1.0, "llm-prices": 0.5, "models-dev": 1.5}


def _poll(at: datetime, payload: bytes, source: str = "litellm") -> polls.Poll:
    return polls.Poll(source=source, started_at=at, finished_at=at, observed_at=at, payload=payload)


def _file_size(db) -> int:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(db.conn.execute("PRAGMA database_list").fetchone()[2]).stat().st_size


def no_change_poll(catalogue: bytes, repeats: int) -> list[Result]:
    """Bytes a poll that changes nothing adds, averaged over `repeats` polls after checkpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.db")
        source = SOURCES["litellm"]
        first = pipeline.ingest(db, source, _poll(T0, catalogue))
        before = _file_size(db)
        for i in range(1, repeats + 1):
            pipeline.ingest(db, source, _poll(T0 + timedelta(hours=6 * i), catalogue))
        added = (_file_size(db) - before) / repeats
        db.close()
    return [at_most("bytes added by a poll with no change", added, "bytes", 2048, models=first.models_seen, polls=repeats)]


def ingest_cpu(catalogue: bytes, repeats: int) -> list[Result]:
    """CPU seconds to ingest an unchanged catalogue, against json.loads of the same bytes."""
    import json

    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.db")
        source = SOURCES["litellm"]
        pipeline.ingest(db, source, _poll(T0, catalogue))
        ingest_times, load_times = [], []
        for i in range(1, repeats + 1):
            began = time.process_time()
            pipeline.ingest(db, source, _poll(T0 + timedelta(hours=i), catalogue))
            ingest_times.append(time.process_time() - began)
            began = time.process_time()
            json.loads(catalogue)
            load_times.append(time.process_time() - began)
        db.close()
    ingest, load = median(ingest_times), median(load_times)
    return [
        reported("ingest CPU of an unchanged catalogue", ingest * 1000, "ms", repeats=repeats),
        reported("ingest CPU / json.loads CPU", ingest / load, "ratio", json_loads_ms=round(load * 1000, 3)),
    ]


def replay_history(directory: Path) -> list[Result]:
    """Replay a real snapshot series; compare the database with one row per model per snapshot."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replay.db"
        db = open_db(path)
        began = time.perf_counter()
        reports = pipeline.replay(db, directory, directory.name)
        wall = time.perf_counter() - began
        size = _file_size(db)
        db.close()
        naive = _naive_size(directory, Path(tmp) / "naive.db")
    params = {"source": directory.name, "snapshots": len(reports)}
    return [
        at_most("replay wall time", wall, "s", 10, **params),
        at_most("database size after replay", size / 1e6, "MB", 3, **params),
        reported("naive storage / change intervals", naive / size, "ratio", naive_mb=round(naive / 1e6, 2), **params),
    ]


def _naive_size(directory: Path, path: Path) -> int:
    """The same history stored as peer bots do: every model of every snapshot as a row."""
    source = SOURCES[directory.name]
    conn = sqlite3.connect(path)
    conn.execute(
        """CREATE TABLE observations (source TEXT, provider TEXT, model TEXT, observed_at TEXT,
           input_mtok REAL, output_mtok REAL, cache_read_mtok REAL)"""
    )
    conn.execute("CREATE INDEX observations_model ON observations(model, observed_at)")
    for file in pipeline.snapshots(directory):
        at = pipeline.snapshot_time(file)
        catalog = source.parse(gzip.decompress(file.read_bytes()), at)
        conn.executemany(
            "INSERT INTO observations VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(q.source, q.provider, q.model, at.isoformat(), *(None if p is None else float(p) for p in q.prices())) for q in catalog.quotes],
        )
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    return path.stat().st_size


def poll_cycle(payloads: dict[str, bytes], latencies: dict[str, float]) -> list[Result]:
    """Five sources behind a loopback server with injected latencies: the cycle should take
    about as long as the slowest source, not the sum."""
    server = SourceServer().start()
    try:
        for name, body in payloads.items():
            server.serve(f"/{name}.json", body, delay=latencies[name], etag=False)
        settings = config.load(environ={})
        sources = {name: config.SourceSettings(url=server.url(f"/{name}.json")) for name in payloads}
        settings = config.Settings(db=settings.db, sources=sources, backfill=False)
        with tempfile.TemporaryDirectory() as tmp:
            db = open_db(Path(tmp) / "cycle.db")

            async def cycle() -> float:
                async with make_client(settings.http) as client:
                    began = time.perf_counter()
                    await pipeline.poll_once(db, client, settings, list(payloads))
                    return time.perf_counter() - began

            wall = asyncio.run(cycle())
            db.close()
    finally:
        server.stop()
    slowest = max(latencies[name] for name in payloads)
    return [
        reported("poll cycle wall time", wall, "s", sources=len(payloads)),
        at_most("poll cycle / slowest source", wall / slowest, "ratio", 1.2, latencies_s=latencies),
    ]
