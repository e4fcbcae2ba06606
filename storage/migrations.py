"""Every schema change, in order. The database's `user_version` is the number applied.

Append a new script to `MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite_utils

INITIAL = """
CREATE TABLE payloads (
    hash TEXT PRIMARY KEY,          -- sha256 of the raw bytes
    size INTEGER NOT NULL,          -- raw size in bytes
    body BLOB NOT NULL,             -- zstd frame or delta (see storage/payloads.py)
    first_seen TEXT NOT NULL
);
CREATE TABLE polls (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    observed_at TEXT NOT NULL,      -- the time the prices are true for
    status TEXT NOT NULL,           -- ok | not_modified | suspect | failed | backfill
    http_status INTEGER,
    etag TEXT,
    last_modified TEXT,
    models_seen INTEGER,
    changes INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    skipped_detail TEXT,            -- JSON object: reason -> count
    error TEXT,
    payload_hash TEXT REFERENCES payloads(hash)
);
CREATE INDEX polls_source ON polls(source, id);
CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,            -- the source's own key
    display_name TEXT,
    context_window INTEGER,
    open_weight INTEGER,            -- 1, 0 or NULL when the source does not say
    first_seen TEXT NOT NULL,
    missing_polls INTEGER NOT NULL DEFAULT 0,
    missing_since TEXT,
    removed_at TEXT,
    UNIQUE (source, provider, model)
);
CREATE INDEX models_model ON models(model);
CREATE TABLE prices (
    id INTEGER PRIMARY KEY,
    model_id INTEGER NOT NULL REFERENCES models(id),
    valid_from TEXT NOT NULL,
    valid_to TEXT,                  -- NULL while current
    input_mtok REAL,                -- USD per million tokens
    output_mtok REAL,
    cache_read_mtok REAL,
    flag TEXT,                      -- NULL, 'free' or 'sentinel'
    poll_id INTEGER REFERENCES polls(id)
);
CREATE UNIQUE INDEX prices_open ON prices(model_id) WHERE valid_to IS NULL;
CREATE INDEX prices_model_time ON prices(model_id, valid_from);
"""

#: Each entry is one SQL script; entry N brings the database to user_version N + 1.
MIGRATIONS: tuple[str, ...] = (INITIAL,)


def migrate(db: sqlite_utils.Database) -> int:
    """Apply every migration the database lacks, each in its own transaction; return the version."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        try:
            db.conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.rollback()
            raise
    return len(MIGRATIONS)
