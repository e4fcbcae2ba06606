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
