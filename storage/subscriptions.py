"""Who gets which alerts: subscriptions (a channel and its filters) and silences.

A channel address is `platform:address` (`slack:C123`, `discord:456`, `console:`). A channel may
hold several subscriptions; an alert goes to the channel once if any of them matches. A silence
(a glob, an expiry, who set it and why) stops delivery of the alerts it matches while it lasts,
in one channel (a `mute` typed there) or in every channel (`channel` NULL, set by the operator);
those alerts are still stored, and marked with the silence when no channel got them because of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase

import sqlite_utils

from storage.times import iso, parse_iso


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    channel: str
    providers: tuple[str, ...] | None  # None: every provider
    models: tuple[str, ...] | None  # globs; None: every model
    kinds: tuple[str, ...] | None  # None: every kind
    min_pct: Decimal | None  # None: the global threshold
    created_by: str | None
    created_at: datetime

    def matches(self, alert: dict, default_pct: Decimal) -> bool:
        """Whether a stored alert row passes this subscription's filters.

        Provider and model filters apply to model alerts; a source alert (`source_stale`, ...)
        passes them only when the subscription names no provider and no model."""
        if self.kinds is not None and alert["kind"] not in self.kinds:
            return False
        if self.providers is not None and alert["provider"].lower() not in self.providers:
            return False
        if self.models is not None and not any(_glob(name, pattern) for pattern in self.models for name in labels(alert)):
            return False
        if alert["pct_change"] is not None:
            return abs(Decimal(repr(alert["pct_change"]))) >= (default_pct if self.min_pct is None else self.min_pct)
        return True


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    pattern: str
    starts_at: datetime
    expires_at: datetime
    created_by: str
    reason: str
    created_at: datetime
    channel: str | None = None  # None: every channel

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.expires_at

    def matches(self, alert: dict) -> bool:
        return any(_glob(name, self.pattern) for name in (*labels(alert), alert["source"], alert["kind"]))


def labels(alert: dict) -> tuple[str, ...]:
    """The names a model glob is tried against: the source's key, `provider/key`, and
    `provider/normalised-name` (the match key), so `openai/o3*` finds LiteLLM's `o3`."""
    if not alert["model"]:
        return ()
    names = (alert["model"], f"{alert['provider']}/{alert['model']}")
    return names + ((alert["match_key"],) if alert.get("match_key") else ())


def _glob(name: str, pattern: str) -> bool:
    return fnmatchcase(name.lower(), pattern.lower())


def _list(values: Iterable[str] | None, *, lower: bool = False) -> str | None:
    if values is None:
        return None
    items = [value.lower() if lower else value for value in values]
    return json.dumps(items) if items else None


def subscribe(
    db: sqlite_utils.Database,
    channel: str,
    now: datetime,
    *,
    providers: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    min_pct: Decimal | None = None,
    created_by: str | None = None,
) -> int:
    """Add a subscription; empty filter lists mean no filter. Returns its id."""
    if ":" not in channel:
        raise ValueError(f"channel {channel!r} is not an address like slack:C123, discord:456 or console:")
    cursor = db.execute(
        """INSERT INTO subscriptions (channel, providers, models, kinds, min_pct, created_by, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [channel, _list(providers, lower=True), _list(models), _list(kinds), None if min_pct is None else float(min_pct), created_by, iso(now)],
    )
    return cursor.lastrowid


def unsubscribe(db: sqlite_utils.Database, subscription_id: int) -> bool:
    return db.execute("DELETE FROM subscriptions WHERE id = ?", [subscription_id]).rowcount == 1


def subscriptions(db: sqlite_utils.Database) -> list[Subscription]:
    return [
        Subscription(
            row["id"],
            row["channel"],
            *(tuple(json.loads(row[key])) if row[key] else None for key in ("providers", "models", "kinds")),
            None if row["min_pct"] is None else Decimal(repr(row["min_pct"])),
            row["created_by"],
            parse_iso(row["created_at"]),
        )
        for row in db.query("SELECT * FROM subscriptions ORDER BY id")
    ]


def silence(
    db: sqlite_utils.Database, pattern: str, now: datetime, *, until: datetime, created_by: str, reason: str, channel: str | None = None
) -> int:
    """Silence alerts matching `pattern` from now until `until`, in `channel` or (None) in every
    channel; who and why are required."""
    if until <= now:
        raise ValueError(f"a silence must end in the future, not at {iso(until)}")
    if not created_by.strip() or not reason.strip():
        raise ValueError("a silence needs who set it and why")
    cursor = db.execute(
        """INSERT INTO silences (pattern, starts_at, expires_at, created_by, reason, created_at, channel)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [pattern, iso(now), iso(until), created_by, reason, iso(now), channel],
    )
    return cursor.lastrowid


def expire(db: sqlite_utils.Database, silence_id: int, now: datetime) -> bool:
    """End a silence now; its record stays, so marked alerts keep their explanation."""
    return db.execute(
        "UPDATE silences SET expires_at = ? WHERE id = ? AND expires_at > ?", [iso(now), silence_id, iso(now)]
    ).rowcount == 1


def silences(db: sqlite_utils.Database, *, active_at: datetime | None = None, channel: str | None = None) -> list[Silence]:
    """Silences, oldest first: those in force at `active_at` (or all), and those that hold
    alerts back in `channel` (its own and every channel's) when it is given."""
    found = [
        Silence(row["id"], row["pattern"], parse_iso(row["starts_at"]), parse_iso(row["expires_at"]), row["created_by"], row["reason"],
                parse_iso(row["created_at"]), row["channel"])
        for row in db.query("SELECT * FROM silences ORDER BY id")
    ]
    return [
        s for s in found
        if (active_at is None or s.active(active_at)) and (channel is None or s.channel in (None, channel))
    ]


def silencing(db: sqlite_utils.Database, alert: dict, at: datetime) -> list[Silence]:
    """The silences active at `at` that match the alert, oldest first."""
    return [s for s in silences(db, active_at=at) if s.matches(alert)]
