"""The alert outbox: one row per alert and subscribed channel, with its delivery state.

Rows are written in the same transaction as the alert, so an alert is never stored without its
deliveries, nor delivered without being stored. Rows for one channel that arrive while a batch
is still waiting (`group_wait`) join that batch; a batch is one message, and the id of its first
row names it. `state` is pending, sent or failed; a pending row is due at `next_attempt_at`.

`attempted_at` is when the latest attempt began, written before its request goes out. A batch is
not due again until `in_flight` after it, whatever became of that attempt (a failure, a timeout
whose post the platform still makes, a process that died mid-send): by then a late post has
landed and the adapter's duplicate check can see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from storage.times import iso, parse_iso

STATES = ("pending", "sent", "failed")


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows of one channel that go out as one message."""

    id: int
    channel: str
    alert_ids: tuple[int, ...]
    attempts: int
    opened_at: datetime

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and restarts; unique per batch even across databases."""
        return f"dw-{self.id}-{self.opened_at:%Y%m%dT%H%M%SZ}-{self.channel}"


def enqueue(db: sqlite_utils.Database, alert_id: int, channel: str, now: datetime, group_wait: timedelta) -> int | None:
    """Queue `alert_id` for `channel`, in the channel's open batch if one is still waiting;
    return the row id, or None when the alert was queued for that channel already."""
    waiting = db.execute(
        """SELECT batch, next_attempt_at FROM outbox
           WHERE channel = ? AND state = 'pending' AND attempts = 0 AND next_attempt_at > ?
           ORDER BY id LIMIT 1""",
        [channel, iso(now)],
    ).fetchone()
    batch, due = waiting if waiting else (0, iso(now + group_wait))
    cursor = db.execute(
        """INSERT OR IGNORE INTO outbox (alert_id, channel, batch, next_attempt_at, created_at)
           VALUES (?, ?, ?, ?, ?)""",
        [alert_id, channel, batch, due, iso(now)],
    )
    if cursor.rowcount != 1:
        return None
    row_id = cursor.lastrowid
    if not waiting:
        db.execute("UPDATE outbox SET batch = id WHERE id = ?", [row_id])
    return row_id


def due(db: sqlite_utils.Database, now: datetime, in_flight: timedelta = timedelta(0)) -> list[Batch]:
    """Batches with pending rows due by `now` and no attempt begun within `in_flight` before it,
    in creation order. A channel's messages go out in the order they were made: a batch waits
    while an older one of its channel is still pending and not due (backing off after a failure,
    or possibly still on its way), so a retry is never overtaken."""
    begun = iso(now - in_flight)
    return _batches(
        db,
        """WHERE state = 'pending' AND next_attempt_at <= ? AND (attempted_at IS NULL OR attempted_at <= ?)
           AND NOT EXISTS (
               SELECT 1 FROM outbox older WHERE older.channel = o.channel AND older.state = 'pending'
               AND older.batch < o.batch AND (older.next_attempt_at > ? OR older.attempted_at > ?))""",
        "batch",
        [iso(now), begun, iso(now), begun],
    )


def batches(db: sqlite_utils.Database) -> list[Batch]:
    """Every batch, whatever its state, oldest first: what was or would be posted."""
    return _batches(db, "", "batch", [])


def _batches(db: sqlite_utils.Database, where: str, order: str, params: list) -> list[Batch]:
    found = db.execute(
        f"""SELECT batch, channel, group_concat(alert_id), MAX(attempts),
                   (SELECT created_at FROM outbox f WHERE f.id = o.batch)
            FROM outbox o {where} GROUP BY batch, channel ORDER BY {order}""",
        params,
    ).fetchall()
    return [
        Batch(batch, channel, tuple(sorted(int(i) for i in ids.split(","))), attempts, parse_iso(opened))
        for batch, channel, ids, attempts, opened in found
    ]


def mark_attempt(db: sqlite_utils.Database, batch: int, now: datetime) -> None:
    """An attempt to post `batch` begins now (committed before the request goes out)."""
    db.execute("UPDATE outbox SET attempted_at = ? WHERE batch = ? AND state = 'pending'", [iso(now), batch])


def mark_sent(db: sqlite_utils.Database, batch: int, now: datetime, message_id: str | None) -> None:
    db.execute(
        """UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_at = ?, message_id = ?, last_error = NULL
           WHERE batch = ? AND state = 'pending'""",
        [iso(now), message_id, batch],
    )


def mark_retry(db: sqlite_utils.Database, batch: int, next_attempt_at: datetime, error: str) -> None:
    db.execute(
        """UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?
           WHERE batch = ? AND state = 'pending'""",
        [iso(next_attempt_at), error, batch],
    )


def mark_failed(db: sqlite_utils.Database, batch: int, error: str) -> None:
    db.execute(
        "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE batch = ? AND state = 'pending'",
        [error, batch],
    )


def rows(db: sqlite_utils.Database, *, state: str | None = None) -> list[dict]:
    """Outbox rows, oldest first (for the CLI and tests)."""
    if state is None:
        return list(db.query("SELECT * FROM outbox ORDER BY id"))
    return list(db.query("SELECT * FROM outbox WHERE state = ? ORDER BY id", [state]))
