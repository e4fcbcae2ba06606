"""Backtest the detectors on an exported price history (the one shipped with the package).

A history document holds each model's price intervals, not the polls that found them, so the
polls are rebuilt: for each source, one catalog at every moment any of its intervals starts or
ends, listing the models whose interval covers that moment. Each rebuilt catalog then goes
through the same storage, detectors and outbox as a live poll, with the clock set to its time,
into a database of its own. What lands in the outbox is what would have been posted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

import sqlite_utils

from bot import pipeline
from bot.config import AlertSettings
from bot.quotes import Quote, mtok
from storage import outbox, polls, subscriptions, transaction
from storage.times import parse_iso


def history_polls(document: dict) -> Iterator[tuple[str, datetime, list[Quote]]]:
    """(source, time, catalog) for every change time of every source, all in time order."""
    by_source: dict[str, list[dict]] = defaultdict(list)
    for item in document["models"]:
        by_source[item["source"]].append(item)
    moments = sorted(
        {(moment, source) for source, items in by_source.items() for item in items for interval in item["intervals"] for moment in interval[:2] if moment}
    )
    for moment, source in moments:
        at = parse_iso(moment)
        quotes = []
        for item in by_source[source]:
            interval = next((i for i in item["intervals"] if i[0] <= moment and (i[1] is None or moment < i[1])), None)
            if interval is not None:
                quotes.append(
                    Quote(
                        source=source,
                        provider=item["provider"],
                        model=item["model"],
                        observed_at=at,
                        input_mtok=mtok(interval[2]),
                        output_mtok=mtok(interval[3]),
                        cache_read_mtok=mtok(interval[4]),
                        display_name=item["display_name"],
                        context_window=item["context_window"],
                        open_weight=item["open_weight"],
                        flag=interval[5],
                    )
                )
        yield source, at, quotes


def run(db: sqlite_utils.Database, document: dict, settings: AlertSettings, channel: str = "console:") -> list[outbox.Batch]:
    """Replay `document` into `db` (a fresh database) with `channel` subscribed to everything;
    return the outbox batches: one per message that would have been posted."""
    first = next(iter(document["models"]), None)
    if first is None:
        return []
    with transaction(db):
        subscriptions.subscribe(db, channel, parse_iso(first["intervals"][0][0]), created_by="backtest")
    for source, at, quotes in history_polls(document):
        poll = polls.Poll(source=source, started_at=at, finished_at=at, observed_at=at)
        pipeline.store(db, poll, quotes, alerts=settings, clock=lambda at=at: at)
    return outbox.batches(db)
