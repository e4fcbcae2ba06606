"""The database under pressure: a second process writing while another holds the write lock,
a lock held past the busy timeout, and a full disk (played by `PRAGMA max_page_count`, which
makes SQLite answer SQLITE_FULL exactly as a full filesystem does)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import storage
from bot import commands, pipeline
from bot.config import HttpSettings, Settings, SourceSettings
from bot.fetch import make_client
from storage import open_db, prices
from tests.reliability.catalogs import LIVE, render, rows

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def settings_for(server, path: Path) -> Settings:
    return Settings(
        db=path,
        backfill=False,
        http=HttpSettings(timeout=5.0, user_agent="dw-test/1"),
        sources={name: SourceSettings(url=server.url(f"/{name}.json")) for name in LIVE},
    )


def poll(db, settings: Settings, source: str, at: datetime) -> pipeline.PollReport:
    async def run() -> pipeline.PollReport:
        async with make_client(settings.http) as client:
            return await pipeline.poll_source(db, client, settings, source, lambda: at)

    return asyncio.run(run())


def hold_write_lock(path: Path, seconds: float, started: threading.Event) -> threading.Thread:
    """Another connection takes the write lock, writes a row, and commits after `seconds`."""

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO silences (pattern, starts_at, expires_at, created_by, reason, created_at) VALUES ('x', 'a', 'b', 'holder', 'lock test', 'c')")
        started.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    started.wait(5)
    return thread


def test_a_second_process_polling_while_the_lock_is_held_waits_and_both_land(tmp_path, source_server):
    """`deflation-watch poll` in another process finds the write lock taken (by a long write of
    this one): it waits, within the busy timeout, and both writes land."""
    source_server.serve("/litellm.json", render("litellm", rows()))
    db_path = tmp_path / "dw.db"
    cfg = tmp_path / "dw.toml"
    disabled = "".join(f"[sources.{name}]\nenabled = false\n" for name in ("openrouter", "genai-prices", "llm-prices", "models-dev", "bundled"))
    cfg.write_text(f'db = "{db_path}"\nbackfill = false\n{disabled}[sources.litellm]\nurl = "{source_server.url("/litellm.json")}"\n')
    open_db(db_path).close()

    started = threading.Event()
    began = time.monotonic()
    holder = hold_write_lock(db_path, 2.0, started)
    result = subprocess.run([sys.executable, "-m", "bot", "poll", "--config", str(cfg), "--json"], capture_output=True, text=True, timeout=120)
    waited = time.monotonic() - began
    holder.join()

    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)
    assert (report["source"], report["status"], report["models_seen"]) == ("litellm", "ok", 20)
    assert waited >= 2.0  # it could not write before the holder committed
    db = open_db(db_path)
    assert db.execute("SELECT status FROM polls").fetchall() == [("ok",)]
    assert db.execute("SELECT created_by FROM silences").fetchall() == [("holder",)]
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_lock_held_past_the_busy_timeout_is_a_clear_failure_and_the_next_poll_lands(tmp_path, source_server, monkeypatch):
    monkeypatch.setattr(storage, "BUSY_TIMEOUT_MS", 300)
    source_server.serve("/llm-prices.json", render("llm-prices", rows()))
    db = open_db(tmp_path / "dw.db")
    settings = settings_for(source_server, tmp_path / "dw.db")

    started = threading.Event()
    holder = hold_write_lock(tmp_path / "dw.db", 1.5, started)
    report = poll(db, settings, "llm-prices", T0)
    holder.join()

    assert (report.status, report.ok) == ("failed", False)
    assert report.error.startswith("the database is busy: another process held its write lock too long (database is locked)")
    assert db["polls"].count == 0 and db["models"].count == 0  # nothing half-written
    assert poll(db, settings, "llm-prices", T0 + timedelta(hours=1)).status == "ok"
    assert db["models"].count == 20


def test_a_full_disk_fails_the_poll_clearly_keeps_answering_and_resumes(tmp_path, source_server):
    source_server.serve("/models-dev.json", render("models-dev", rows(20)))
    db = open_db(tmp_path / "dw.db")
    settings = settings_for(source_server, tmp_path / "dw.db")
    assert poll(db, settings, "models-dev", T0).status == "ok"
    history_before = prices.intervals(db)
    polls_before = db["polls"].count

    # No page to spare: the next write that needs one gets SQLITE_FULL, as on a full disk.
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    assert db.execute(f"PRAGMA max_page_count = {pages}").fetchone()[0] == pages
    source_server.serve("/models-dev.json", render("models-dev", [row.scaled("0.8") for row in rows(200)]))
    report = poll(db, settings, "models-dev", T0 + timedelta(hours=6))

    assert (report.status, report.ok) == ("failed", False)
    assert report.error.startswith("the database is full (database or disk is full): no room left on its disk, or its size limit reached")
    assert (prices.intervals(db), db["polls"].count) == (history_before, polls_before)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # Reads go on: the command layer still answers from what is stored.
    context = commands.Context(db, settings, user="slack:U1", channel="slack:C1")
    for text in ("price model-01", "history model-01", "sources"):
        card = commands.answer(text, context)
        assert not commands.is_error(card), (text, card)

    # Room again: the same poll now lands whole.
    db.execute("PRAGMA max_page_count = 1073741823")
    report = poll(db, settings, "models-dev", T0 + timedelta(hours=12))
    assert (report.status, report.models_seen) == ("ok", 200)
    assert db["polls"].count == polls_before + 1
    assert db.execute("SELECT COUNT(*) FROM models WHERE source = 'models-dev' AND removed_at IS NULL").fetchone()[0] == 200


@pytest.mark.parametrize(
    ("code", "kind", "start"),
    [
        (sqlite3.SQLITE_BUSY, "DatabaseBusyError", "the database is busy"),
        (sqlite3.SQLITE_LOCKED, "DatabaseBusyError", "the database is busy"),
        (sqlite3.SQLITE_FULL, "DatabaseFullError", "the database is full"),
        (sqlite3.SQLITE_READONLY, "StorageError", "the database cannot be written"),
        (sqlite3.SQLITE_IOERR, "StorageError", "database error"),
    ],
)
def test_sqlite_failures_map_to_one_clear_line(code, kind, start):
    from bot.errors import storage_error

    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    error = storage_error(exc)
    assert type(error).__name__ == kind and str(error).startswith(start) and "\n" not in str(error)
