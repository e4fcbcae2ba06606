"""`deflation-watch backup` and `restore`: a consistent copy while another connection keeps
polling, and a restore that checks before it replaces and keeps what it replaced."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bot.cli_backup  # noqa: F401  (registers backup and restore on the app)
from bot import pipeline
from bot.cli import app
from bot.sources import SOURCES
from storage import backup as backups
from storage import open_db, polls, prices, subscriptions, transaction
from storage.migrations import INITIAL, MIGRATIONS
from tests.reliability.catalogs import render, rows

runner = CliRunner()
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def ingest(db, n: int) -> pipeline.PollReport:
    """Poll n of a writer: litellm with model-00 cut by 20 % and back in turn (one change a poll)."""
    catalog = rows()
    catalog[0] = catalog[0].scaled("0.8" if n % 2 else "1")
    at = T0 + timedelta(minutes=n)
    poll = polls.Poll(source="litellm", started_at=at, finished_at=at, observed_at=at, payload=render("litellm", catalog))
    return pipeline.ingest(db, SOURCES["litellm"], poll, clock=lambda: at)


def assert_consistent(path: Path) -> int:
    """A backup holds whole polls only: every poll's payload, price intervals and alerts are
    there, and nothing refers to a poll that is not. Returns the polls it holds."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        ids = [row[0] for row in conn.execute("SELECT id FROM polls ORDER BY id")]
        assert ids == list(range(1, len(ids) + 1))  # no poll missing in the middle
        for poll_id, changes, digest in conn.execute("SELECT id, changes, payload_hash FROM polls"):
            assert conn.execute("SELECT COUNT(*) FROM payloads WHERE hash = ?", [digest]).fetchone()[0] == 1
            # Each change opened one interval tagged with its poll (the first poll's 20 new models, then one move each).
            assert conn.execute("SELECT COUNT(*) FROM prices WHERE poll_id = ?", [poll_id]).fetchone()[0] == changes
        assert conn.execute("SELECT COUNT(*) FROM prices WHERE poll_id NOT IN (SELECT id FROM polls)").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM alerts WHERE poll_id NOT IN (SELECT id FROM polls)").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE alert_id NOT IN (SELECT id FROM alerts)").fetchone()[0] == 0
        open_intervals = conn.execute("SELECT COUNT(*) FROM prices WHERE valid_to IS NULL").fetchone()[0]
        assert open_intervals == conn.execute("SELECT COUNT(*) FROM models").fetchone()[0]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
        return len(ids)
    finally:
        conn.close()


def test_backups_taken_while_another_connection_polls_are_consistent(tmp_path):
    live = tmp_path / "dw.db"
    db = open_db(live)
    with transaction(db):
        subscriptions.subscribe(db, "console:", T0)
    ingest(db, 0)
    stop, polled = threading.Event(), []

    def writer() -> None:
        conn = open_db(live)
        n = 1
        while not stop.is_set():
            ingest(conn, n)
            polled.append(n)
            n += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    held = []
    try:
        for i in range(6):
            while len(polled) < 5 * (i + 1):  # let the writer get ahead between copies
                stop.wait(0.005)
            before = len(polled)
            summary = backups.backup(live, tmp_path / f"copy-{i}.db")
            held.append(assert_consistent(summary.path))
            assert summary.polls == held[-1] and summary.schema_version == len(MIGRATIONS)
            assert held[-1] >= before  # at least every poll that had landed when it began
    finally:
        stop.set()
        thread.join()
    assert held == sorted(held) and held[-1] > held[0]
    assert db["alerts"].count > 0  # the writer's moves raised alerts, which the copies hold whole


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def populated(path: Path, polls_count: int = 3) -> None:
    db = open_db(path)
    for n in range(polls_count):
        ingest(db, n)
    db.close()


def snapshot(path: Path) -> tuple:
    db = open_db(path)
    try:
        return db["polls"].count, prices.intervals(db)
    finally:
        db.close()


def test_backup_then_restore_through_the_command_line(tmp_path):
    live, copy = tmp_path / "dw.db", tmp_path / "backups" / "dw-copy.db"
    populated(live, 3)
    result = cli("backup", copy, "--db", live, "--json")
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert (described["polls"], described["schema_version"], described["path"]) == (3, len(MIGRATIONS), str(copy))
    saved = snapshot(live)

    db = open_db(live)  # the database moves on after the backup ...
    ingest(db, 3)
    ingest(db, 4)
    db.close()
    assert snapshot(live) != saved

    result = cli("restore", copy, "--db", live)  # ... and is put back as it was
    assert result.exit_code == 0, result.output
    assert snapshot(live) == saved
    [kept] = tmp_path.glob("dw.before-restore-*.db")
    assert f"kept as {kept}" in " ".join(result.stdout.split())
    assert snapshot(kept)[0] == 5  # what it replaced, whole
    assert backups.summary(live).schema_version == len(MIGRATIONS)


def test_restore_refuses_a_database_in_use_unless_forced(tmp_path):
    live, copy = tmp_path / "dw.db", tmp_path / "copy.db"
    populated(live, 2)
    backups.backup(live, copy)
    bot = open_db(live)  # the running bot's connection
    ingest(bot, 2)

    result = cli("restore", copy, "--db", live)
    assert result.exit_code == 1
    assert "is open in another process (is the bot running?): stop it first, or pass --force" in " ".join(result.stderr.split())
    assert bot["polls"].count == 3 and not list(tmp_path.glob("*.before-restore-*"))

    result = cli("restore", copy, "--db", live, "--force")
    assert result.exit_code == 0, result.output
    assert bot["polls"].count == 2  # the open connection sees the restored database, whole
    assert bot.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ingest(bot, 5)  # and goes on writing to it
    bot.close()
    assert snapshot(live)[0] == 3


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 3 * page] = b"\xa5" * page  # a b-tree page overwritten
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (corrupt, r"(fails its integrity check|is not a readable SQLite database)"),
        (lambda p: p.write_bytes(b"this is not a database" * 400), r"is not a readable SQLite database"),
        (lambda p: sqlite3.connect(p).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}").connection.close(), r"has schema version \d+, newer than this Deflation Watch knows"),
        (lambda p: sqlite3.connect(p).executescript("DROP TABLE prices;").close(), r"is not a Deflation Watch database: it has no prices table"),
    ],
    ids=["corrupt", "not-sqlite", "newer-schema", "not-ours"],
)
def test_restore_checks_the_backup_before_replacing_anything(tmp_path, spoil, message):
    live, copy = tmp_path / "dw.db", tmp_path / "copy.db"
    populated(live, 2)
    backups.backup(live, copy)
    with sqlite3.connect(copy) as conn:  # enough rows that the b-tree spans pages
        conn.executemany("INSERT INTO payloads (hash, size, body, first_seen) VALUES (?, 1, ?, 'x')", [(str(i), b"x" * 500) for i in range(100)])
    spoil(copy)
    before = snapshot(live)
    result = cli("restore", copy, "--db", live, "--force")
    assert result.exit_code == 1
    assert __import__("re").search(message, " ".join(result.stderr.split())), result.stderr
    assert snapshot(live) == before and not list(tmp_path.glob("*.before-restore-*"))


def test_a_backup_from_an_older_schema_restores_and_is_upgraded(tmp_path):
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.executescript(f"{INITIAL}\nPRAGMA user_version = 1;")
    conn.close()
    summary, kept = backups.restore(old, tmp_path / "new.db")
    assert kept is None and summary.schema_version == len(MIGRATIONS)


def test_backup_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(backups.BackupError, match="does not exist: nothing to back up"):
        backups.backup(tmp_path / "none.db", tmp_path / "copy.db")
    populated(tmp_path / "dw.db", 1)
    with pytest.raises(backups.BackupError, match="is the database itself"):
        backups.backup(tmp_path / "dw.db", tmp_path / "dw.db")
    assert not list(tmp_path.glob(".*partial*"))
