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

ALERTS = """
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,             -- price_cut | price_hike | new_model | model_removed | source_suspect | source_stale | source_recovered
    source TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '', -- the source's own key; '' for source alerts
    field TEXT NOT NULL DEFAULT '', -- input_mtok | output_mtok | cache_read_mtok; '' when not a price
    new_value TEXT NOT NULL DEFAULT '', -- the dedupe value: the new price, or the episode of a source alert
    old_mtok TEXT,                  -- exact decimal text, USD per million tokens
    new_mtok TEXT,
    pct_change REAL,                -- percent, negative for cuts
    status TEXT NOT NULL,           -- pending | confirmed | dropped
    reason TEXT,                    -- why held, confirmed or dropped (unit_jump, next_poll, reverted, ...)
    observed_at TEXT NOT NULL,      -- when the poll that showed it was taken
    poll_id INTEGER REFERENCES polls(id),
    match_key TEXT,                 -- provider + normalised model: the same move in other sources
    group_id INTEGER REFERENCES alerts(id), -- the first alert of the same move; NULL for that one
    silence_id INTEGER REFERENCES silences(id),
    inhibited_by TEXT,              -- source_stale | source_suspect: its own source's state hid it
    detail TEXT,                    -- JSON object
    created_at TEXT NOT NULL,
    resolved_at TEXT,               -- when a pending alert was confirmed or dropped
    UNIQUE (kind, source, provider, model, field, new_value)
);
CREATE INDEX alerts_time ON alerts(observed_at);
CREATE INDEX alerts_match ON alerts(match_key, kind, field);
CREATE INDEX alerts_open ON alerts(source, status);
CREATE INDEX alerts_group ON alerts(group_id);
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,          -- platform:address, e.g. slack:C123, discord:456, console:
    providers TEXT,                 -- JSON list; NULL = every provider
    models TEXT,                    -- JSON list of globs; NULL = every model
    kinds TEXT,                     -- JSON list; NULL = every kind
    min_pct REAL,                   -- smallest price move in percent; NULL = the global threshold
    created_by TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX subscriptions_channel ON subscriptions(channel);
CREATE TABLE silences (
    id INTEGER PRIMARY KEY,
    pattern TEXT NOT NULL,          -- glob over provider/model, model key, source and kind
    starts_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    channel TEXT NOT NULL,
    batch INTEGER NOT NULL,         -- id of the batch's first row: one batch is one message
    state TEXT NOT NULL DEFAULT 'pending', -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    message_id TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (alert_id, channel)
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
CREATE INDEX outbox_batch ON outbox(batch);
"""

DIGESTS = """
CREATE TABLE digest_channels (
    channel TEXT PRIMARY KEY,       -- platform:address that takes the weekly digest
    created_by TEXT,
    created_at TEXT NOT NULL        -- a channel gets digests of slots from this time on
);
CREATE TABLE digest_posts (
    slot TEXT NOT NULL,             -- the scheduled time (UTC) the digest is for
    channel TEXT NOT NULL,
    state TEXT NOT NULL,            -- sent | retry | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    message_id TEXT,
    last_error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (slot, channel)
);
"""

INDICATORS = """
CREATE TABLE indicator_readings (
    id INTEGER PRIMARY KEY,
    indicator TEXT NOT NULL,        -- a name from bot.indicators, e.g. hyperscaler-inference-mix
    value TEXT NOT NULL,            -- exact decimal text in the indicator's unit (%, USD bn, ...)
    as_of TEXT NOT NULL,            -- YYYY-MM-DD: the day the value is true for (a period's last day)
    period TEXT,                    -- the calendar quarter it covers, when it covers one: 2026Q3
    source TEXT NOT NULL,           -- the path it came by: chat | terminal | csv | sec-edgar
    note TEXT,                      -- where the number comes from, in the enterer's words
    detail TEXT,                    -- JSON object: per-company values of a summed reading
    entered_by TEXT NOT NULL,       -- slack:U123, os:alice, sec-edgar poll
    entered_at TEXT NOT NULL,
    UNIQUE (indicator, as_of, source) -- entering the same day by the same path again corrects it
);
CREATE TABLE indicator_events (
    id INTEGER PRIMARY KEY,
    indicator TEXT NOT NULL,        -- saas-gm-guide-downs
    company TEXT NOT NULL,
    happened_on TEXT NOT NULL,      -- YYYY-MM-DD, the day it was announced
    old_low TEXT NOT NULL,          -- the long-term gross-margin guide before and after, percent,
    old_high TEXT NOT NULL,         -- as exact decimal text; low = high for a single number
    new_low TEXT NOT NULL,
    new_high TEXT NOT NULL,
    source TEXT NOT NULL,
    note TEXT,
    entered_by TEXT NOT NULL,
    entered_at TEXT NOT NULL,
    UNIQUE (indicator, company, happened_on)
);
CREATE TABLE sec_quarters (
    company TEXT NOT NULL,          -- the ticker as configured
    cik INTEGER NOT NULL,
    measure TEXT NOT NULL,          -- capex | gross_profit | revenue
    fiscal_year INTEGER NOT NULL,
    fiscal_quarter INTEGER NOT NULL,
    calendar_quarter TEXT NOT NULL, -- where the period ends: 2021Q4
    start TEXT NOT NULL,            -- YYYY-MM-DD
    end TEXT NOT NULL,
    value_usd TEXT NOT NULL,        -- whole US dollars, exact decimal text
    tag TEXT NOT NULL,              -- the us-gaap concept
    basis TEXT NOT NULL,            -- reported | derived (from year-to-date values) | '' when not known
    polled_at TEXT NOT NULL,
    PRIMARY KEY (company, measure, fiscal_year, fiscal_quarter)
);
"""

#: Each entry is one SQL script; entry N brings the database to user_version N + 1.
TIER_FLOORS = """
CREATE TABLE tier_floors (          -- the floor of each tier a `tier_floor` alert is measured from
    tier TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,            -- the source's own key of the listing at the floor
    usd_per_mtok TEXT NOT NULL,     -- blended, exact decimal text
    alert_id INTEGER REFERENCES alerts(id), -- NULL for the silent baseline
    updated_at TEXT NOT NULL
);
"""

IN_FLIGHT = """
ALTER TABLE outbox ADD COLUMN attempted_at TEXT;  -- when the latest attempt to post the batch began
"""

CHANNEL_SILENCES = """
ALTER TABLE silences ADD COLUMN channel TEXT;  -- platform:address it holds alerts back in; NULL: every channel
"""

POLL_RETRY_AT = """
ALTER TABLE polls ADD COLUMN retry_at TEXT;  -- a failed poll's upstream (429, 503) asked for no request before this
UPDATE polls SET retry_at = substr(error, -20)  -- it used to be noted only at the end of the error text
WHERE status = 'failed' AND http_status IN (429, 503)
  AND error GLOB '*; retry after [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z';
"""

MIGRATIONS: tuple[str, ...] = (INITIAL, ALERTS, DIGESTS, INDICATORS, TIER_FLOORS, IN_FLIGHT, CHANNEL_SILENCES, POLL_RETRY_AT)


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
