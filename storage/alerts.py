"""Alerts: what the detectors concluded from a poll, one row per event, deduplicated.

The dedupe key is (kind, source, provider, model, field, new value), held by a UNIQUE constraint
and written with INSERT OR IGNORE, so a re-run, a replay over an existing database or a restart
never stores an alert twice. Prices are exact decimal text in USD per million tokens. Nothing
here decides what is an alert; it stores and finds them (the rules live in `bot.detectors`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlite_utils

from storage.times import iso

#: Alert kinds about one model's price, which carry a field and old/new prices.
PRICE_KINDS = ("price_cut", "price_hike")
#: Alert kinds about one model; the same event in several sources is grouped into one.
MODEL_KINDS = (*PRICE_KINDS, "new_model", "model_removed")
#: Alert kinds about a source as a whole.
SOURCE_KINDS = ("source_suspect", "source_stale", "source_recovered")
#: Alert kinds about a watch indicator (`bot.indicators`): a threshold crossed, or fallen back from.
INDICATOR_KINDS = ("indicator_threshold",)
#: Alert kinds about a capability tier as a whole (`bot.tier_floor`); `field` names the tier.
TIER_KINDS = ("tier_floor",)
KINDS = (*MODEL_KINDS, *SOURCE_KINDS, *INDICATOR_KINDS, *TIER_KINDS)
STATUSES = ("pending", "confirmed", "dropped")


def decimal_text(value: Decimal | None) -> str | None:
    """A price as stored: plain notation, no trailing zeros, so equal prices are equal text."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert as a detector proposes it; `new_value` completes the dedupe key."""

    kind: str
    source: str
    observed_at: datetime
    poll_id: int | None
    provider: str = ""
    model: str = ""
    field: str = ""
    new_value: str = ""
    old_mtok: Decimal | None = None
    new_mtok: Decimal | None = None
    pct_change: Decimal | None = None
    status: str = "confirmed"
    reason: str | None = None
    match_key: str | None = None
    inhibited_by: str | None = None
    detail: dict = dataclasses.field(default_factory=dict)


def insert(db: sqlite_utils.Database, alert: NewAlert, now: datetime) -> int | None:
    """Store `alert` unless its dedupe key is stored already; return its id, or None if it was."""
    if alert.kind not in KINDS or alert.status not in STATUSES:
        raise ValueError(f"unknown alert kind or status: {alert.kind!r}, {alert.status!r}")
    cursor = db.execute(
        """INSERT OR IGNORE INTO alerts (kind, source, provider, model, field, new_value, old_mtok, new_mtok,
               pct_change, status, reason, observed_at, poll_id, match_key, inhibited_by, detail, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            alert.kind,
            alert.source,
            alert.provider,
            alert.model,
            alert.field,
            alert.new_value,
            decimal_text(alert.old_mtok),
            decimal_text(alert.new_mtok),
            None if alert.pct_change is None else float(alert.pct_change),
            alert.status,
            alert.reason,
            iso(alert.observed_at),
            alert.poll_id,
            alert.match_key,
            alert.inhibited_by,
            json.dumps(alert.detail, sort_keys=True, default=str) if alert.detail else None,
            iso(now),
        ],
    )
    return cursor.lastrowid if cursor.rowcount == 1 else None


def get(db: sqlite_utils.Database, alert_id: int) -> dict:
    row = next(db.query("SELECT * FROM alerts WHERE id = ?", [alert_id]), None)
    if row is None:
        raise KeyError(f"no alert with id {alert_id}")
    return row


def pending(db: sqlite_utils.Database, source: str, *, before_poll: int | None = None) -> list[dict]:
    """The source's alerts held until confirmed, oldest first (optionally only from earlier polls)."""
    where, params = "source = ? AND status = 'pending'", [source]
    if before_poll is not None:
        where += " AND poll_id < ?"
        params.append(before_poll)
    return list(db.query(f"SELECT * FROM alerts WHERE {where} ORDER BY id", params))


def resolve(db: sqlite_utils.Database, alert_id: int, status: str, reason: str, at: datetime) -> None:
    """Confirm or drop a pending alert; an alert already resolved is left as it is."""
    if status not in ("confirmed", "dropped"):
        raise ValueError(f"a pending alert is confirmed or dropped, not {status!r}")
    db.execute(
        "UPDATE alerts SET status = ?, reason = ?, resolved_at = ? WHERE id = ? AND status = 'pending'",
        [status, reason, iso(at), alert_id],
    )


def peers(db: sqlite_utils.Database, alert: dict, window: timedelta) -> list[dict]:
    """Other live alerts of the same event for the same model (by match key) within `window`:
    the same kind, and for a price move the same field and new price."""
    if not alert["match_key"] or alert["kind"] not in MODEL_KINDS:
        return []
    moment = datetime.fromisoformat(alert["observed_at"].replace("Z", "+00:00"))
    where = ["match_key = ?", "kind = ?", "id != ?", "status != 'dropped'", "observed_at BETWEEN ? AND ?"]
    params: list = [alert["match_key"], alert["kind"], alert["id"], iso(moment - window), iso(moment + window)]
    if alert["kind"] in PRICE_KINDS:
        where += ["field = ?", "new_mtok = ?"]
        params += [alert["field"], alert["new_mtok"]]
    return list(db.query(f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY id", params))


def set_group(db: sqlite_utils.Database, alert_id: int, group_id: int) -> None:
    db.execute("UPDATE alerts SET group_id = ? WHERE id = ?", [group_id, alert_id])


def mark_silenced(db: sqlite_utils.Database, alert_id: int, silence_id: int) -> None:
    db.execute("UPDATE alerts SET silence_id = ? WHERE id = ?", [silence_id, alert_id])


def sources_of(db: sqlite_utils.Database, alert_ids: Sequence[int]) -> dict[int, list[str]]:
    """For each alert, every source that showed the same event: its group's, first seen first."""
    heads = {}
    for chunk in _chunks(list(alert_ids)):
        rows = db.execute(f"SELECT id, COALESCE(group_id, id) FROM alerts WHERE id IN ({_marks(chunk)})", chunk)
        heads.update(dict(rows.fetchall()))
    members: dict[int, list[str]] = {head: [] for head in heads.values()}
    for chunk in _chunks(list(members)):
        rows = db.execute(
            f"""SELECT COALESCE(group_id, id), source FROM alerts WHERE status != 'dropped'
                AND (id IN ({_marks(chunk)}) OR group_id IN ({_marks(chunk)})) ORDER BY id""",
            chunk + chunk,
        )
        for head, source in rows.fetchall():
            if source not in members[head]:
                members[head].append(source)
    return {alert_id: members[heads[alert_id]] for alert_id in alert_ids if alert_id in heads}


def _chunks(values: list, size: int = 400) -> Iterable[list]:
    return (values[start : start + size] for start in range(0, len(values), size))


def _marks(values: Sequence) -> str:
    return ",".join("?" * len(values))


def latest_episode(db: sqlite_utils.Database, source: str) -> dict | None:
    """The source's last `source_stale` or `source_recovered` alert: stale while it is the former."""
    rows = db.query(
        """SELECT * FROM alerts WHERE source = ? AND kind IN ('source_stale', 'source_recovered')
           ORDER BY id DESC LIMIT 1""",
        [source],
    )
    return next(rows, None)


def query(
    db: sqlite_utils.Database,
    *,
    since: datetime | None = None,
    kinds: Iterable[str] | None = None,
    source: str | None = None,
    poll_ids: Iterable[int] | None = None,
    statuses: Iterable[str] | None = None,
    ids: Iterable[int] | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Stored alerts, oldest observation first, with the sources that confirm each."""
    where, params = ["1 = 1"], []
    if since is not None:
        where.append("observed_at >= ?")
        params.append(iso(since))
    for column, values in (("kind", kinds), ("status", statuses), ("poll_id", poll_ids), ("id", ids)):
        if values is not None:
            values = list(values)
            where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
            params += values
    if source is not None:
        where.append("source = ?")
        params.append(source)
    sql = f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY observed_at, id"
    if limit is not None:
        sql = f"SELECT * FROM ({sql.replace('ORDER BY observed_at, id', 'ORDER BY observed_at DESC, id DESC')} LIMIT {int(limit)}) ORDER BY observed_at, id"
    rows = list(db.query(sql, params))
    confirming = sources_of(db, [row["id"] for row in rows])
    for row in rows:
        row["sources"] = confirming.get(row["id"]) or [row["source"]]
        row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
    return rows
