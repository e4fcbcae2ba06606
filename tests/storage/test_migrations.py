"""Schema changes only through migrations; opening an older database upgrades it in place."""

from __future__ import annotations

import sqlite3

from storage import open_db
from storage.migrations import MIGRATIONS


def version(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def test_new_database_gets_every_migration(tmp_path):
    open_db(tmp_path / "new.db").close()
    assert version(tmp_path / "new.db") == len(MIGRATIONS)


def test_older_database_is_upgraded_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO polls (source, started_at, observed_at, status) VALUES ('litellm', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', 'ok')"
    )
    conn.commit()
    conn.close()
    db = open_db(path)
    assert version(path) == len(MIGRATIONS)
    assert db.execute("SELECT source FROM polls").fetchall() == [("litellm",)]
    db.close()


def test_reopening_is_harmless(tmp_path):
    path = tmp_path / "db.db"
    open_db(path).close()
    db = open_db(path)
    assert version(path) == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_retry_after_noted_in_an_old_error_moves_to_its_column(tmp_path):
    """Before `polls.retry_at` existed, a 429/503's wait was noted only at the end of the error."""
    from storage import polls
    from storage.migrations import POLL_RETRY_AT

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    before = MIGRATIONS.index(POLL_RETRY_AT)
    conn.executescript("\n".join(MIGRATIONS[:before]) + f"\nPRAGMA user_version = {before};")
    rows = [
        ("openrouter", 429, "HTTP 429 from upstream; retry after 2026-11-26T18:00:00Z"),
        ("litellm", 500, "HTTP 500 from upstream; retry after 2026-11-26T18:00:00Z"),  # no wait is asked with a 500
        ("models-dev", 503, "HTTP 503: body says retry after 2026-11-26T18:00:00Z later"),  # not the note
    ]
    for source, status, error in rows:
        conn.execute(
            "INSERT INTO polls (source, started_at, observed_at, status, http_status, error) VALUES (?, '2026-11-26T17:00:00Z', '2026-11-26T17:00:00Z', 'failed', ?, ?)",
            [source, status, error],
        )
    conn.commit()
    conn.close()
    db = open_db(path)
    assert db.execute("SELECT source, retry_at FROM polls ORDER BY id").fetchall() == [
        ("openrouter", "2026-11-26T18:00:00Z"), ("litellm", None), ("models-dev", None)]
    assert polls.retry_at(db, "openrouter").isoformat() == "2026-11-26T18:00:00+00:00"
    assert polls.retry_at(db, "litellm") is None
    db.close()
