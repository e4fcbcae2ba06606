"""From a stored poll to queued messages: run the detectors, store what they find, group the
same move seen by several sources, apply silences and inhibitions, and queue one outbox row per
subscribed channel. `run` is called inside the poll's own transaction (`prices.record(within=)`),
so a poll, its alerts and their deliveries land together or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import sqlite_utils

from bot.config import AlertSettings
from bot.detectors import DETECTORS, Context, Finding, Resolution
from storage import alerts, outbox, polls, subscriptions
from storage.prices import Outcome

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AlertReport:
    """What one poll's detection did: alerts stored, pending ones settled, deliveries queued."""

    created: list[int] = field(default_factory=list)
    confirmed: int = 0
    dropped: int = 0
    queued: int = 0


def run(
    db: sqlite_utils.Database,
    source: str,
    observed_at: datetime,
    outcome: Outcome,
    *,
    settings: AlertSettings,
    now: datetime,
    notify: bool = True,
) -> AlertReport:
    """Detect, store and route the alerts of one stored poll. `notify=False` (a replay, a
    backtest) stores alerts but queues nothing for chat."""
    subs = subscriptions.subscriptions(db) if notify else []
    threshold = Decimal(repr(settings.threshold_pct))
    lowest = min([threshold, *(sub.min_pct for sub in subs if sub.min_pct is not None)])
    ctx = Context(
        db,
        source=source,
        poll_id=outcome.poll_id,
        observed_at=observed_at,
        status=outcome.status,
        changes=outcome.changes,
        settings=settings,
        threshold_pct=lowest,
        health=_health(db, source, outcome.poll_id),
    )
    publisher = _Publisher(db, ctx, now, subs if notify else None, threshold)
    for detector in DETECTORS:
        for item in detector.detect(ctx):
            publisher.apply(item)
    return publisher.report


def _health(db: sqlite_utils.Database, source: str, poll_id: int) -> str:
    episode = alerts.latest_episode(db, source)
    if episode is not None and episode["kind"] == "source_stale":
        return "stale"
    last = polls.find(db, source, ("ok", "not_modified", "suspect"), before=poll_id)
    return "suspect" if last is not None and last["status"] == "suspect" else "ok"


class _Publisher:
    def __init__(self, db: sqlite_utils.Database, ctx: Context, now: datetime, subs: list | None, threshold: Decimal):
        self.db, self.ctx, self.now = db, ctx, now
        self.subs = subs  # None: store only, queue nothing
        self.threshold = threshold
        self.report = AlertReport()

    def apply(self, item: Finding | Resolution) -> None:
        if isinstance(item, Resolution):
            alerts.resolve(self.db, item.alert_id, item.status, item.reason, self.now)
            if item.status == "dropped":
                self.report.dropped += 1
                return
            self.report.confirmed += 1
            self._route(alerts.get(self.db, item.alert_id))
            return
        alert_id = alerts.insert(self.db, item, self.now)
        if alert_id is None:  # this event is stored already: a re-run or a replay
            return
        self.report.created.append(alert_id)
        log.info(
            "alert %s: %s %s %s%s (%s)", alert_id, item.kind, item.source, item.model or "", f" {item.field}" if item.field else "", item.status,
            extra={"alert_id": alert_id, "poll_id": self.ctx.poll_id, "source": item.source, "kind": item.kind, "status": item.status},
        )  # fmt: skip
        row = self._group(alerts.get(self.db, alert_id))
        if row["status"] == "confirmed":
            self._route(row)

    def _group(self, row: dict) -> dict:
        """Join the alert to the same event already stored from any source within the window;
        a second source showing a pending move confirms every pending alert of the group."""
        peers = alerts.peers(self.db, row, self.ctx.settings.group_window)
        if not peers:
            return row
        head = min(peer["group_id"] or peer["id"] for peer in peers)
        alerts.set_group(self.db, row["id"], head)
        group = [row, *peers]
        if len({member["source"] for member in group}) > 1:
            for member in group:
                if member["status"] == "pending":
                    alerts.resolve(self.db, member["id"], "confirmed", "other_source", self.now)
                    self.report.confirmed += 1
                    if member["id"] == head:
                        self._route(alerts.get(self.db, head))
        return alerts.get(self.db, row["id"])

    def _route(self, row: dict) -> None:
        """Queue a confirmed alert for every matching channel, unless it is part of another
        alert's group, inhibited or silenced (silenced alerts are marked, never dropped)."""
        if row["group_id"] is not None or row["inhibited_by"] or row["status"] != "confirmed":
            return
        self.report.queued += route(self.db, row, self.subs or [], self.threshold, self.ctx.settings.group_wait, self.now)


def route(db: sqlite_utils.Database, row: dict, subs: list, threshold: Decimal, group_wait: timedelta, now: datetime) -> int:
    """Queue a stored alert for every subscribed channel it matches and no silence holds it
    back in; return the outbox rows queued. An alert that silences kept from every channel it
    would have gone to is marked with the (first) silence, never dropped."""
    silences = subscriptions.silencing(db, row, now)
    everywhere = next((s for s in silences if s.channel is None), None)
    if everywhere is not None:
        return _silenced(db, row, everywhere, "every channel")
    muted: dict[str, subscriptions.Silence] = {}
    for silence in silences:
        muted.setdefault(silence.channel, silence)
    channels = dict.fromkeys(sub.channel for sub in subs if sub.matches(row, threshold))
    kept = [channel for channel in channels if channel not in muted]
    held = [muted[channel] for channel in channels if channel in muted]
    if held and not kept:
        return _silenced(db, row, held[0], ", ".join(s.channel for s in held))
    for silence in held:
        log.info("alert %s held back in %s by mute #%s (%s)", row["id"], silence.channel, silence.id, silence.reason, extra={"alert_id": row["id"]})
    return sum(outbox.enqueue(db, row["id"], channel, now, group_wait) is not None for channel in kept)


def _silenced(db: sqlite_utils.Database, row: dict, silence: subscriptions.Silence, where: str) -> int:
    alerts.mark_silenced(db, row["id"], silence.id)
    log.info("alert %s silenced in %s by #%s (%s)", row["id"], where, silence.id, silence.reason, extra={"alert_id": row["id"]})
    return 0


#: The keys every line of `replay --alerts-jsonl` has, in this order (then a few extras).
JSONL_KEYS = ("kind", "observed_at", "source", "provider", "model", "field", "old_mtok", "new_mtok", "pct_change", "status")


def as_json(row: dict) -> dict:
    """An alert row (from `storage.alerts.query`) as a JSON-ready dict: prices as numbers in
    USD per million tokens, `pct_change` negative for cuts, times as ISO 8601 UTC."""
    number = lambda text: None if text is None else float(Decimal(text))  # noqa: E731
    return {
        "kind": row["kind"],
        "observed_at": row["observed_at"],
        "source": row["source"],
        "provider": row["provider"] or None,
        "model": row["model"] or None,
        "field": row["field"] or None,
        "old_mtok": number(row["old_mtok"]),
        "new_mtok": number(row["new_mtok"]),
        "pct_change": row["pct_change"],
        "status": row["status"],
        "reason": row["reason"],
        "sources": row["sources"],
        "group_id": row["group_id"],
        "silenced": row["silence_id"] is not None,
        "inhibited_by": row["inhibited_by"],
        "id": row["id"],
    }
