"""Watch indicators as stored: readings, guide-down events, SEC quarterly values, and the state of
indicator signals (which are rows of the `alerts` table, kind `indicator_threshold`).

A reading is one value of one indicator, true for one day (`as_of`, a period's last day), with
where it came from and who entered it. The same indicator, day and path (chat, terminal, csv,
sec-edgar) is one reading: entering it again corrects it, so a re-run or a re-import changes
nothing. Values are exact decimal text in the indicator's unit. Nothing here knows what the
indicators mean; `bot.indicators` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import sqlite_utils

from storage.alerts import decimal_text
from storage.times import iso, parse_iso

#: The alert kind of an indicator signal (see `storage.alerts.KINDS`).
SIGNAL_KIND = "indicator_threshold"
#: `alerts.reason` of a signal that is on, and of the notice that it went off again.
CROSSED = "crossed"
FELL_BACK = "fell_back"


@dataclass(frozen=True, slots=True)
class Reading:
    indicator: str
    value: Decimal
    as_of: date
    period: str | None
    source: str
    note: str | None
    entered_by: str
    entered_at: datetime
    detail: dict = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A company lowering its long-term gross-margin guide: percent, low = high for one number."""

    indicator: str
    company: str
    happened_on: date
    old_low: Decimal
    old_high: Decimal
    new_low: Decimal
    new_high: Decimal
    source: str
    note: str | None
    entered_by: str
    entered_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True)
class SecQuarter:
    """One company's value of one measure for one fiscal quarter, in whole US dollars."""

    company: str
    cik: int
    measure: str  # capex | gross_profit | revenue
    fiscal_year: int
    fiscal_quarter: int
    calendar_quarter: str
    start: date
    end: date
    value_usd: Decimal
    tag: str
    basis: str


def put_reading(db: sqlite_utils.Database, reading: Reading) -> bool:
    """Store a reading; True if it is new, False if it replaced the one for the same day and path
    (which keeps its entry time when nothing about it changed)."""
    known = db.execute(
        "SELECT 1 FROM indicator_readings WHERE indicator = ? AND as_of = ? AND source = ?",
        [reading.indicator, reading.as_of.isoformat(), reading.source],
    ).fetchone()
    db.execute(
        """INSERT INTO indicator_readings (indicator, value, as_of, period, source, note, detail, entered_by, entered_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (indicator, as_of, source) DO UPDATE SET value = excluded.value, period = excluded.period,
               note = excluded.note, detail = excluded.detail,
               -- the same reading again (a daily poll) keeps when and by whom it was first entered
               entered_by = CASE WHEN {same} THEN entered_by ELSE excluded.entered_by END,
               entered_at = CASE WHEN {same} THEN entered_at ELSE excluded.entered_at END""".format(
            same="value IS excluded.value AND period IS excluded.period AND note IS excluded.note AND detail IS excluded.detail"
        ),
        [
            reading.indicator,
            decimal_text(reading.value),
            reading.as_of.isoformat(),
            reading.period,
            reading.source,
            reading.note,
            json.dumps(reading.detail, sort_keys=True) if reading.detail else None,
            reading.entered_by,
            iso(reading.entered_at),
        ],
    )
    return known is None


def readings(db: sqlite_utils.Database, indicator: str) -> list[Reading]:
    """An indicator's readings, oldest first (by the day they are true for, then entry)."""
    rows = db.query(
        "SELECT * FROM indicator_readings WHERE indicator = ? ORDER BY as_of, entered_at, id", [indicator]
    )
    return [
        Reading(
            row["indicator"],
            Decimal(row["value"]),
            date.fromisoformat(row["as_of"]),
            row["period"],
            row["source"],
            row["note"],
            row["entered_by"],
            parse_iso(row["entered_at"]),
            json.loads(row["detail"]) if row["detail"] else {},
            row["id"],
        )
        for row in rows
    ]


def drop_readings(db: sqlite_utils.Database, indicator: str, source: str, keep: Iterable[date]) -> int:
    """Delete the indicator's readings from `source` for days not in `keep`; return how many."""
    kept = [day.isoformat() for day in keep]
    marks = ",".join("?" * len(kept)) or "NULL"
    return db.execute(
        f"DELETE FROM indicator_readings WHERE indicator = ? AND source = ? AND as_of NOT IN ({marks})", [indicator, source, *kept]
    ).rowcount


def delete_readings(db: sqlite_utils.Database, indicator: str, as_of: date) -> list[Reading]:
    """Delete the indicator's readings for one day, whatever path entered them; return them."""
    gone = [reading for reading in readings(db, indicator) if reading.as_of == as_of]
    db.execute("DELETE FROM indicator_readings WHERE indicator = ? AND as_of = ?", [indicator, as_of.isoformat()])
    return gone


def put_event(db: sqlite_utils.Database, event: Event) -> bool:
    """Store a guide-down; True if new, False if it replaced the same company's on the same day."""
    known = db.execute(
        "SELECT 1 FROM indicator_events WHERE indicator = ? AND company = ? AND happened_on = ?",
        [event.indicator, event.company, event.happened_on.isoformat()],
    ).fetchone()
    db.execute(
        """INSERT INTO indicator_events (indicator, company, happened_on, old_low, old_high, new_low, new_high,
               source, note, entered_by, entered_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (indicator, company, happened_on) DO UPDATE SET old_low = excluded.old_low,
               old_high = excluded.old_high, new_low = excluded.new_low, new_high = excluded.new_high,
               source = excluded.source, note = excluded.note, entered_by = excluded.entered_by,
               entered_at = excluded.entered_at""",
        [
            event.indicator,
            event.company,
            event.happened_on.isoformat(),
            *(decimal_text(v) for v in (event.old_low, event.old_high, event.new_low, event.new_high)),
            event.source,
            event.note,
            event.entered_by,
            iso(event.entered_at),
        ],
    )
    return known is None


def events(db: sqlite_utils.Database, indicator: str) -> list[Event]:
    """An indicator's events, oldest first."""
    rows = db.query("SELECT * FROM indicator_events WHERE indicator = ? ORDER BY happened_on, company, id", [indicator])
    return [
        Event(
            row["indicator"],
            row["company"],
            date.fromisoformat(row["happened_on"]),
            *(Decimal(row[k]) for k in ("old_low", "old_high", "new_low", "new_high")),
            row["source"],
            row["note"],
            row["entered_by"],
            parse_iso(row["entered_at"]),
            row["id"],
        )
        for row in rows
    ]


def delete_event(db: sqlite_utils.Database, indicator: str, company: str, happened_on: date) -> Event | None:
    """Delete one company's event of one day (the company as stored, in any letter case); return it."""
    gone = next((e for e in events(db, indicator) if e.happened_on == happened_on and e.company.casefold() == company.casefold()), None)
    if gone is not None:
        db.execute("DELETE FROM indicator_events WHERE id = ?", [gone.id])
    return gone


def put_sec_quarters(db: sqlite_utils.Database, quarters: Iterable[SecQuarter], now: datetime) -> None:
    """Store quarterly values, each replacing what an earlier poll stored for the same quarter
    (a restatement, or a quarter now derived from a later filing)."""
    db.conn.executemany(
        """INSERT OR REPLACE INTO sec_quarters (company, cik, measure, fiscal_year, fiscal_quarter, calendar_quarter,
               start, end, value_usd, tag, basis, polled_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (q.company, q.cik, q.measure, q.fiscal_year, q.fiscal_quarter, q.calendar_quarter, q.start.isoformat(),
             q.end.isoformat(), decimal_text(q.value_usd), q.tag, q.basis, iso(now))
            for q in quarters
        ],
    )


def sec_quarters(db: sqlite_utils.Database, measure: str, companies: Iterable[str] | None = None) -> list[SecQuarter]:
    """Stored quarterly values of one measure, by company then oldest first."""
    rows = db.query("SELECT * FROM sec_quarters WHERE measure = ? ORDER BY company, end", [measure])
    wanted = None if companies is None else set(companies)
    return [
        SecQuarter(
            row["company"], row["cik"], row["measure"], row["fiscal_year"], row["fiscal_quarter"],
            row["calendar_quarter"], date.fromisoformat(row["start"]), date.fromisoformat(row["end"]),
            Decimal(row["value_usd"]), row["tag"], row["basis"],
        )
        for row in rows
        if wanted is None or row["company"] in wanted
    ]


def open_signals(db: sqlite_utils.Database, indicator: str) -> list[dict]:
    """The indicator's signals that are on: crossed and not yet fallen back, oldest first."""
    return list(
        db.query(
            "SELECT * FROM alerts WHERE kind = ? AND model = ? AND reason = ? AND resolved_at IS NULL ORDER BY id",
            [SIGNAL_KIND, indicator, CROSSED],
        )
    )


def close_signal(db: sqlite_utils.Database, alert_id: int, at: datetime) -> None:
    """Mark a signal resolved: its value fell back."""
    db.execute("UPDATE alerts SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL", [iso(at), alert_id])
