"""What people enter for the watch indicators: readings (`indicator set`), guide-down events
(`indicator event`), deletions (`indicator delete`) and CSV files (`indicator import`).

Everything typed is checked whole before anything is stored (a bad row of a file stores none of
it), then stored with its indicator's signals settled in the same transaction, so a reading that
crosses a threshold raises its signal at once and a deleted one lets it fall back.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import sqlite_utils

from bot.config import Settings
from bot.errors import ImportRowsError, InputError
from bot.indicators import INDICATORS, Indicator, SignalReport, evaluate_one, get, quarter_end, reconcile
from storage import indicators as store
from storage import transaction

#: Readings older than this are refused as typos; so is any day after today.
EARLIEST = date(2000, 1, 1)
MAX_NOTE = 300
MAX_COMPANY = 40
#: An import file longer than this is refused before any row is read.
MAX_IMPORT_ROWS = 10_000
IMPORT_COLUMNS = ("indicator", "as_of", "value", "company", "old", "new", "note")


_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_UNIT_WORDS = {"%": ("%", "pct", "percent"), "USD bn": ("bn", "b", "billion")}


def parse_value(indicator: Indicator, text: str) -> Decimal:
    """`48`, `48.5`, `48.5%` for a percentage; anything in another unit, or out of range, is refused."""
    cleaned = text.strip().replace(",", "")
    number = re.match(r"^[+-]?(\d+(\.\d*)?|\.\d+)", cleaned.removeprefix("$"))
    if number is None:
        raise InputError(f"{indicator.name} takes a number in {indicator.unit}, like 48.5; got `{text}`.")
    suffix = cleaned.removeprefix("$")[number.end():].strip().lower()
    dollars = cleaned.startswith("$")
    allowed = _UNIT_WORDS.get(indicator.unit, ())
    if (suffix and suffix not in allowed) or (dollars and indicator.unit != "USD bn"):
        raise InputError(f"{indicator.name} is measured in {indicator.unit}; `{text}` is in another unit. Give the number alone, like 48.5.")
    value = Decimal(number.group(0))
    if indicator.lowest is not None and value < indicator.lowest or indicator.highest is not None and value > indicator.highest:
        bounds = f"from {indicator.lowest} to {indicator.highest}" if indicator.highest is not None else f"at least {indicator.lowest}"
        raise InputError(f"{indicator.name} must be {bounds} {indicator.unit}; got `{text}`.")
    return value


def looks_like_a_day(text: str) -> bool:
    """Whether an argument was meant as AS_OF (a date or a quarter) rather than the note's first word."""
    return bool(re.match(r"^\d{4}[-/]|^\d{4}q", text.strip(), re.IGNORECASE))


def parse_day(text: str, today: date) -> tuple[date, str | None]:
    """`2026-06-30` -> that day; `2026Q2` -> its last day and the period label. Refuses days
    after today (a figure cannot be true for the future) and before 2000 (a typo)."""
    cleaned = text.strip()
    quarter = _QUARTER.match(cleaned)
    try:
        if quarter:
            period = f"{quarter.group(1)}Q{quarter.group(2)}"
            day = quarter_end(period)
        else:
            period, day = None, date.fromisoformat(cleaned)
    except ValueError:
        raise InputError(f"`{text}` is not a date; write it like 2026-06-30, or a calendar quarter like 2026Q2.") from None
    if day > today:
        what = f"{period} ends on {day}, which is" if period else f"{day} is"
        raise InputError(f"{what} after today ({today}); a reading is for a day that has passed.")
    if day < EARLIEST:
        raise InputError(f"{day} is before {EARLIEST}; check the year.")
    return day, period


def parse_guide(text: str, what: str) -> tuple[Decimal, Decimal]:
    """A gross-margin guide in percent: `72`, `72%`, `70-75`, `70–75 %`."""
    cleaned = text.strip().replace("–", "-").replace("—", "-").replace(" ", "").removesuffix("%")
    parts = cleaned.split("-")
    try:
        if len(parts) not in (1, 2) or not all(parts):
            raise InvalidOperation
        low, high = Decimal(parts[0].removesuffix("%")), Decimal(parts[-1])
    except InvalidOperation:
        raise InputError(f"The {what} guide must be a percentage or a range, like 72 or 70-75; got `{text}`.") from None
    if not (low.is_finite() and high.is_finite()) or not 0 <= low <= high <= 100:
        raise InputError(f"The {what} guide must run low to high within 0–100 %; got `{text}`.")
    return low, high


def parse_company(text: str) -> str:
    name = " ".join(text.split())
    if not name or len(name) > MAX_COMPANY or not re.match(r"^[\w][\w .&'-]*$", name):
        raise InputError(f"A company is a ticker or a short name (letters, digits, spaces, . & ' -, at most {MAX_COMPANY}); got `{text}`.")
    return name


def parse_note(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    if len(text) > MAX_NOTE:
        raise InputError(f"A note is at most {MAX_NOTE} characters; this one is {len(text)}.")
    return " ".join(text.split())


def _writable(indicator: Indicator, feed: str) -> None:
    if indicator.feed == feed:
        return
    if indicator.feed == "events":
        raise InputError(f"{indicator.name} is a count of events; add one with `{indicator.how_to_feed}`.")
    if indicator.feed == "manual":
        raise InputError(f"{indicator.name} takes readings, not events; use `{indicator.how_to_feed}`.")
    raise InputError(f"{indicator.name} is not entered by hand: {indicator.how_to_feed}.")


@dataclass(frozen=True, slots=True)
class Written:
    """What a write stored, and the signals it raised or resolved."""

    record: store.Reading | store.Event
    new: bool  # False: it replaced a reading for the same day (or event for the same company and day)
    signals: SignalReport


def reading_from(indicator: Indicator, args: Sequence[str], today: date, *, source: str, entered_by: str, now: datetime) -> store.Reading:
    """`VALUE [AS_OF] [NOTE...]` as typed, checked; AS_OF defaults to today."""
    _writable(indicator, "manual")
    if not args:
        raise InputError(f"Give a value, like `{indicator.how_to_feed}`.")
    value = parse_value(indicator, args[0])
    rest = list(args[1:])
    day, period = parse_day(rest.pop(0), today) if rest and looks_like_a_day(rest[0]) else (today, None)
    note = parse_note(" ".join(rest) if rest else None)
    return store.Reading(indicator.name, value, day, period, source, note, entered_by, now)


def event_from(indicator: Indicator, args: Sequence[str], today: date, *, source: str, entered_by: str, now: datetime) -> store.Event:
    """`COMPANY OLD NEW [DATE] [NOTE...]` as typed, checked: the new guide must be lower."""
    _writable(indicator, "events")
    if len(args) < 3:
        raise InputError(f"Give the company, the old guide and the new one, like `{indicator.how_to_feed}`.")
    company = parse_company(args[0])
    old, new = parse_guide(args[1], "old"), parse_guide(args[2], "new")
    if sum(new) >= sum(old):
        raise InputError(f"{company}'s new guide {args[2]} is not below the old one {args[1]}: that is not a guide-down.")
    rest = list(args[3:])
    day, _ = parse_day(rest.pop(0), today) if rest and looks_like_a_day(rest[0]) else (today, None)
    note = parse_note(" ".join(rest) if rest else None)
    return store.Event(indicator.name, company, day, *old, *new, source, note, entered_by, now)


def record(db: sqlite_utils.Database, item: store.Reading | store.Event, settings: Settings, now: datetime) -> Written:
    """Store one checked reading or event and settle its indicator's signals, in one transaction."""
    indicator = get(item.indicator)
    with transaction(db):
        new = store.put_reading(db, item) if isinstance(item, store.Reading) else store.put_event(db, item)
        signals = reconcile(db, [evaluate_one(db, indicator, settings, now)], settings.alerts, now)
    return Written(item, new, signals)


@dataclass(frozen=True, slots=True)
class Deleted:
    """What `indicator delete` removed, and the signals that came on or fell back without it."""

    records: list[store.Reading | store.Event]
    signals: SignalReport


def delete(db: sqlite_utils.Database, indicator: Indicator, args: Sequence[str], settings: Settings, now: datetime) -> Deleted:
    """`AS_OF` (a reading's day) or `AS_OF COMPANY` (a guide-down's), as typed: remove what was
    entered for it and settle the indicator's signals, in one transaction. When nothing matches,
    refused with what is stored, and nothing changes."""
    if indicator.feed not in ("manual", "events"):
        raise InputError(f"{indicator.name} is not entered by hand ({indicator.how_to_feed}), so there is nothing to delete.")
    by_company = indicator.feed == "events"
    example = f"indicator delete {indicator.name} 2026-11-05" + (" ACME" if by_company else "")
    if not args or (len(args) < 2 if by_company else len(args) != 1):
        raise InputError(f"Give the day{' and the company' if by_company else ''} to delete, like `{example}`.")
    day, _ = parse_day(args[0], now.date())
    company = parse_company(" ".join(args[1:])) if by_company else None
    with transaction(db):
        if company is not None:
            gone = store.delete_event(db, indicator.name, company, day)
            removed: list[store.Reading | store.Event] = [gone] if gone else []
        else:
            removed = list(store.delete_readings(db, indicator.name, day))
        if not removed:
            raise InputError(_nothing_stored(db, indicator, day, company))
        signals = reconcile(db, [evaluate_one(db, indicator, settings, now)], settings.alerts, now)
    return Deleted(removed, signals)


def _nothing_stored(db: sqlite_utils.Database, indicator: Indicator, day: date, company: str | None) -> str:
    if company is not None:
        what = f"No guide-down by {company} on {day} is stored"
        stored = [f"{e.happened_on} {e.company}" for e in store.events(db, indicator.name)]
    else:
        what = f"No reading of {indicator.name} for {day} is stored"
        stored = sorted({r.as_of.isoformat() for r in store.readings(db, indicator.name)})
    if not stored:
        return f"{what}; it has none at all."
    return f"{what}. The latest: {', '.join(stored[-5:])}."


def import_csv(db: sqlite_utils.Database, path: Path, settings: Settings, *, entered_by: str, now: datetime) -> list[Written]:
    """Readings and events from a CSV file, all or nothing.

    Columns (a header line names them, in any order): `indicator` and `as_of` always; `value`
    for a reading; `company`, `old` and `new` for a guide-down event; `note` optionally. Every
    row is checked first; any bad row (or a day given twice) raises `ImportRowsError` naming
    each line, and nothing is stored. Otherwise every row lands in one transaction.
    """
    today = now.date()
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(_csv_rows(handle))
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; save it as CSV (UTF-8).") from None
    except csv.Error as exc:
        raise InputError(f"{path} is not a readable CSV file: {exc}.") from None
    if not rows:
        raise InputError(f"{path} is empty; its first line names the columns: {', '.join(IMPORT_COLUMNS)}.")
    header = rows[0][1]
    unknown = [c for c in header if c not in IMPORT_COLUMNS]
    missing = [c for c in ("indicator", "as_of") if c not in header]
    if unknown or missing:
        parts = [f"unknown column(s) {', '.join(map(repr, unknown))}"] if unknown else []
        parts += [f"missing column(s) {', '.join(missing)}"] if missing else []
        raise ImportRowsError(str(path), [(1, f"{'; '.join(parts)}; the columns are {', '.join(IMPORT_COLUMNS)}")])
    if len(rows) == 1:
        raise InputError(f"{path} has no rows under its header.")
    if len(rows) - 1 > MAX_IMPORT_ROWS:
        raise InputError(f"{path} has {len(rows) - 1} rows; import at most {MAX_IMPORT_ROWS} at a time.")
    items: list[store.Reading | store.Event] = []
    problems: list[tuple[int, str]] = []
    seen: dict[tuple, int] = {}
    for line, values in rows[1:]:
        if len(values) != len(header):
            problems.append((line, f"{len(values)} fields where the header has {len(header)}"))
            continue
        row = dict(zip(header, (v.strip() for v in values)))
        try:
            item = _csv_item(row, today, entered_by, now)
        except InputError as exc:
            problems.append((line, str(exc).rstrip(".")))
            continue
        key = (item.indicator, item.company, item.happened_on) if isinstance(item, store.Event) else (item.indicator, item.as_of)
        if key in seen:
            problems.append((line, f"the same {' '.join(map(str, key))} as line {seen[key]}"))
            continue
        seen[key] = line
        items.append(item)
    if problems:
        raise ImportRowsError(str(path), problems)
    written = []
    with transaction(db):
        for item in items:
            new = store.put_reading(db, item) if isinstance(item, store.Reading) else store.put_event(db, item)
            written.append((item, new))
        names = dict.fromkeys(item.indicator for item in items)
        signals = reconcile(db, [evaluate_one(db, INDICATORS[name], settings, now) for name in names], settings.alerts, now)
    return [Written(item, new, signals) for item, new in written]


def _csv_rows(handle) -> Iterable[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank record; the header's names lower-cased."""
    reader = csv.reader(handle)
    first = True
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        if first:
            values, first = [v.strip().lower() for v in values], False
        yield reader.line_num, values


def _csv_item(row: dict[str, str], today: date, entered_by: str, now: datetime) -> store.Reading | store.Event:
    indicator = get(row["indicator"])
    if not row["as_of"]:
        raise InputError("as_of is empty; give the day or quarter the figure is for")
    day, period = parse_day(row["as_of"], today)
    note = parse_note(row.get("note"))
    if indicator.feed == "events":
        event = event_from(indicator, [row.get("company", ""), row.get("old", ""), row.get("new", "")], today, source="csv", entered_by=entered_by, now=now)
        return replace(event, happened_on=day, note=note)
    _writable(indicator, "manual")
    return store.Reading(indicator.name, parse_value(indicator, row.get("value", "")), day, period, "csv", note, entered_by, now)
