"""Small payload sequences for the detector tests: a `Feed` polls one source through the real
storage, detectors and outbox, one catalog at a time, with the clock at the poll's time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot import pipeline
from bot.config import AlertSettings
from bot.quotes import Quote
from bot.sources._common import price_flag
from storage import alerts, outbox, polls, subscriptions, transaction

T0 = datetime(2025, 6, 1, tzinfo=UTC)
STEP = timedelta(hours=6)


def q(model: str, inp: str | None, out: str | None, cache: str | None = None, *, provider: str = "openai", **extra) -> Quote:
    """A quote as a parser makes it: prices in USD per Mtok, flagged like the parsers flag them."""
    prices = tuple(None if v is None else Decimal(v) for v in (inp, out, cache))
    return Quote(
        source="?", provider=provider, model=model, observed_at=T0,
        input_mtok=prices[0], output_mtok=prices[1], cache_read_mtok=prices[2],
        flag=extra.pop("flag", price_flag(prices, free_variant=model.endswith(":free"))), **extra,
    )


def catalog(n: int = 10, *, without: tuple[str, ...] = ()) -> list[Quote]:
    return [q(f"m{i}", "1", "2") for i in range(n) if f"m{i}" not in without]


class Feed:
    """One source polled every six hours from T0 (or at `at=`)."""

    def __init__(self, db, source: str = "test", settings: AlertSettings | None = None, *, notify: bool = True, start: datetime = T0):
        self.db, self.source, self.notify = db, source, notify
        self.settings = settings or AlertSettings()
        self.at = start - STEP

    def poll(self, quotes: list[Quote] | None, *, status: str = "ok", at: datetime | None = None, error: str | None = None) -> pipeline.PollReport:
        self.at = at or self.at + STEP
        moment = self.at
        poll = polls.Poll(source=self.source, started_at=moment, finished_at=moment, observed_at=moment, status=status, error=error)
        if quotes is not None:
            quotes = [dataclasses.replace(quote, source=self.source, observed_at=moment) for quote in quotes]
        return pipeline.store(self.db, poll, quotes, alerts=self.settings, clock=lambda: moment, notify=self.notify)

    def fail(self, **options) -> pipeline.PollReport:
        return self.poll(None, status="failed", error="HTTP 503 from upstream", **options)

    def not_modified(self, **options) -> pipeline.PollReport:
        return self.poll(None, status="not_modified", **options)


def found(db, **filters) -> list[tuple]:
    """Stored alerts as (kind, model, field, status) tuples, oldest first."""
    return [(a["kind"], a["model"], a["field"], a["status"]) for a in alerts.query(db, **filters)]


def subscribe(db, channel: str = "console:", **filters) -> int:
    with transaction(db):
        return subscriptions.subscribe(db, channel, T0, **filters)


def queued(db) -> list[tuple[int, str]]:
    """(alert id, channel) of every outbox row."""
    return [(row["alert_id"], row["channel"]) for row in outbox.rows(db)]
