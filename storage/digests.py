"""The weekly digest's channels and what was posted to each.

A channel (`slack:C123`, `discord:456`, `console:`) takes the digest or not; that is one row in
`digest_channels`, apart from its alert filters (a channel may want the digest and no alerts).
Each scheduled digest is named by its slot, the moment the schedule fired for (UTC); a row in
`digest_posts` per slot and channel records how its delivery went, so a restart never posts a
slot twice and a bot that was down at the slot posts it once when it is back. A post begins as
`sending`: found so after a crash, it is retried only once `in_flight` has passed since it
began, when a post still on its way has landed and the adapter's duplicate check sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from storage.times import iso, parse_iso

STATES = ("sent", "retry", "failed")


@dataclass(frozen=True, slots=True)
class DigestChannel:
    channel: str
    created_by: str | None
    created_at: datetime


def enable(db: sqlite_utils.Database, channel: str, now: datetime, created_by: str | None = None) -> bool:
    """Send the digest to `channel`; False when it had it already (its start date is kept)."""
    cursor = db.execute(
        "INSERT OR IGNORE INTO digest_channels (channel, created_by, created_at) VALUES (?, ?, ?)",
        [channel, created_by, iso(now)],
    )
    return cursor.rowcount == 1


def disable(db: sqlite_utils.Database, channel: str) -> bool:
    return db.execute("DELETE FROM digest_channels WHERE channel = ?", [channel]).rowcount == 1


def channels(db: sqlite_utils.Database) -> list[DigestChannel]:
    return [
        DigestChannel(row["channel"], row["created_by"], parse_iso(row["created_at"]))
        for row in db.query("SELECT * FROM digest_channels ORDER BY channel")
    ]


def get(db: sqlite_utils.Database, channel: str) -> DigestChannel | None:
    return next((c for c in channels(db) if c.channel == channel), None)


def due(
    db: sqlite_utils.Database, slot: datetime, max_attempts: int, now: datetime | None = None, in_flight: timedelta = timedelta(0)
) -> list[str]:
    """Channels that should have the digest of `slot` and do not: subscribed by then (a channel
    that joins later waits for the next one), not sent, not given up, and not begun within
    `in_flight` before `now`."""
    begun = iso((now or slot) - in_flight)
    rows = db.execute(
        """SELECT c.channel FROM digest_channels c
           LEFT JOIN digest_posts p ON p.channel = c.channel AND p.slot = ?
           WHERE c.created_at <= ? AND (
               p.state IS NULL OR (p.state = 'retry' AND p.attempts < ?) OR (p.state = 'sending' AND p.updated_at <= ?))
           ORDER BY c.channel""",
        [iso(slot), iso(slot), max_attempts, begun],
    )
    return [row[0] for row in rows]


def begin(db: sqlite_utils.Database, slot: datetime, channel: str, now: datetime) -> None:
    """An attempt to post the digest of `slot` to `channel` begins now (committed before it goes out)."""
    db.execute(
        """INSERT INTO digest_posts (slot, channel, state, attempts, updated_at) VALUES (?, ?, 'sending', 0, ?)
           ON CONFLICT (slot, channel) DO UPDATE SET state = 'sending', updated_at = excluded.updated_at""",
        [iso(slot), channel, iso(now)],
    )


def record(
    db: sqlite_utils.Database,
    slot: datetime,
    channel: str,
    state: str,
    now: datetime,
    *,
    message_id: str | None = None,
    error: str | None = None,
) -> None:
    """Record one attempt to post the digest of `slot` to `channel` (state sent, retry or failed)."""
    if state not in STATES:
        raise ValueError(f"digest post state {state!r} is not one of {', '.join(STATES)}")
    db.execute(
        """INSERT INTO digest_posts (slot, channel, state, attempts, message_id, last_error, updated_at)
           VALUES (?, ?, ?, 1, ?, ?, ?)
           ON CONFLICT (slot, channel) DO UPDATE SET state = excluded.state, attempts = attempts + 1,
               message_id = excluded.message_id, last_error = excluded.last_error, updated_at = excluded.updated_at""",
        [iso(slot), channel, state, message_id, error, iso(now)],
    )


def posts(db: sqlite_utils.Database) -> list[dict]:
    """Every digest post, oldest slot first (for tests and the CLI)."""
    return list(db.query("SELECT * FROM digest_posts ORDER BY slot, channel"))


def last_sent(db: sqlite_utils.Database) -> datetime | None:
    """The newest slot posted to any channel."""
    found = db.execute("SELECT MAX(slot) FROM digest_posts WHERE state = 'sent'").fetchone()[0]
    return parse_iso(found) if found else None
