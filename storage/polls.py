"""One row per poll of a source: when, how it went, what it saw. A poll that changes nothing
writes only this row, which is what keeps years of polling small."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from storage.times import iso, parse_iso

#: Statuses of a poll that delivered a usable catalog (or confirmed the last one).
GOOD = ("ok", "not_modified")
#: HTTP statuses whose failed poll may say when the upstream wants to be asked again.
RETRY_STATUSES = (429, 503)


@dataclass(slots=True)
class Poll:
    """What happened when one source was asked once; `payload` is the raw body, if any."""

    source: str
    started_at: datetime
    finished_at: datetime
    observed_at: datetime
    status: str = "ok"
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    payload: bytes | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)
    retry_at: datetime | None = None  # a 429/503 said: no request before this (see `refused`)


def insert(db: sqlite_utils.Database, poll: Poll, *, models_seen: int | None, changes: int, payload_hash: str | None) -> int:
    cursor = db.execute(
        """INSERT INTO polls (source, started_at, finished_at, observed_at, status, http_status,
               etag, last_modified, models_seen, changes, skipped, skipped_detail, error, payload_hash, retry_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            poll.source,
            iso(poll.started_at),
            iso(poll.finished_at),
            iso(poll.observed_at),
            poll.status,
            poll.http_status,
            poll.etag,
            poll.last_modified,
            models_seen,
            changes,
            sum(poll.skipped.values()),
            json.dumps(dict(sorted(poll.skipped.items()))) if poll.skipped else None,
            poll.error,
            payload_hash,
            iso(poll.retry_at) if poll.retry_at else None,
        ],
    )
    return cursor.lastrowid


def refused(poll: Poll, at: datetime) -> None:
    """Record on a failed poll that its upstream asked not to be asked again before `at`, in
    its `retry_at` and, for people reading it, at the end of its error."""
    poll.retry_at = at
    poll.error = f"{poll.error}; retry after {iso(at)}"


def retry_at(db: sqlite_utils.Database, source: str) -> datetime | None:
    """When the source's latest poll, if it failed with a 429 or 503 that said when to come
    back (`refused`), allows the next one; None when nothing asks for a wait."""
    row = db.execute("SELECT status, http_status, retry_at FROM polls WHERE source = ? ORDER BY id DESC LIMIT 1", [source]).fetchone()
    if row is None or row[0] != "failed" or row[1] not in RETRY_STATUSES or not row[2]:
        return None
    return parse_iso(row[2])


def last_good(db: sqlite_utils.Database, source: str) -> dict | None:
    """The source's latest poll that yielded or confirmed a catalog: models seen, validators."""
    rows = db.query(
        f"""SELECT * FROM polls WHERE source = ? AND status IN ({",".join("?" * len(GOOD))})
            ORDER BY id DESC LIMIT 1""",
        [source, *GOOD],
    )
    return next(rows, None)


def last_catalog(db: sqlite_utils.Database, source: str) -> dict | None:
    """The latest poll that carried a parsed catalog (for its payload and validators)."""
    rows = db.query(
        "SELECT * FROM polls WHERE source = ? AND payload_hash IS NOT NULL AND status NOT IN ('failed', 'backfill') ORDER BY id DESC LIMIT 1",
        [source],
    )
    return next(rows, None)


def summary(db: sqlite_utils.Database) -> list[dict]:
    """Per source: polls, last good poll, last error, models currently listed."""
    return list(
        db.query(
            """SELECT s.source,
                      COUNT(*) AS polls,
                      MAX(CASE WHEN s.status IN ('ok', 'not_modified') THEN s.finished_at END) AS last_good_at,
                      (SELECT error FROM polls e WHERE e.source = s.source AND e.status = 'failed'
                        ORDER BY e.id DESC LIMIT 1) AS last_error,
                      (SELECT COUNT(*) FROM models m WHERE m.source = s.source AND m.removed_at IS NULL) AS models
               FROM polls s GROUP BY s.source ORDER BY s.source"""
        )
    )


def find(db: sqlite_utils.Database, source: str, statuses: tuple[str, ...], *, before: int | None = None, earliest: bool = False) -> dict | None:
    """The source's latest poll (or with `earliest`, its first) with one of `statuses`,
    optionally only among polls older than the poll with id `before`."""
    where = f"source = ? AND status IN ({','.join('?' * len(statuses))})"
    params: list = [source, *statuses]
    if before is not None:
        where += " AND id < ?"
        params.append(before)
    rows = db.query(f"SELECT * FROM polls WHERE {where} ORDER BY id {'ASC' if earliest else 'DESC'} LIMIT 1", params)
    return next(rows, None)


def recent_statuses(db: sqlite_utils.Database, source: str, *, upto: int, limit: int) -> list[str]:
    """Statuses of the source's last `limit` polls up to and including poll `upto`, newest first."""
    rows = db.execute("SELECT status FROM polls WHERE source = ? AND id <= ? ORDER BY id DESC LIMIT ?", [source, upto, limit])
    return [row[0] for row in rows]


def first_after(db: sqlite_utils.Database, source: str, after: int | None) -> dict | None:
    """The source's first poll after poll id `after` (its very first when `after` is None)."""
    rows = db.query("SELECT * FROM polls WHERE source = ? AND id > ? ORDER BY id LIMIT 1", [source, after or 0])
    return next(rows, None)
