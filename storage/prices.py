"""Price history as change intervals: one row per (model, price) with `valid_from`/`valid_to`,
exactly one open interval per source + provider + model.

`record` is the single write path for a poll: payload, poll row and price changes in one
transaction. Prices are stored as REAL in USD per million tokens; every value that reaches
here has at most 15 significant digits, so the float round trip is exact and a price that
parses to the same number is never a change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import sqlite_utils

from storage import archive, payloads, polls, transaction
from storage.times import iso, parse_iso

#: A poll listing fewer than this share of the last good poll's models is a partial catalog.
SUSPECT_RATIO = 0.6
#: A model absent from this many consecutive good polls is removed.
ABSENT_POLLS_TO_REMOVE = 2


class PricedPoint(Protocol):
    since: datetime
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None


class QuoteLike(Protocol):
    provider: str
    model: str
    display_name: str | None
    context_window: int | None
    open_weight: bool | None
    flag: str | None
    since: datetime | None
    earlier: Sequence[PricedPoint]
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None


@dataclass(frozen=True, slots=True)
class Prices:
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None
    flag: str | None = None

    @classmethod
    def of(cls, quote: QuoteLike) -> Prices:
        return cls(quote.input_mtok, quote.output_mtok, quote.cache_read_mtok, quote.flag)

    @classmethod
    def from_row(cls, row: Sequence) -> Prices:
        return cls(_decimal(row[0]), _decimal(row[1]), _decimal(row[2]), row[3])

    def stored(self) -> tuple[float | None, float | None, float | None, str | None]:
        return (_real(self.input_mtok), _real(self.output_mtok), _real(self.cache_read_mtok), self.flag)


@dataclass(frozen=True, slots=True)
class Change:
    """One thing a poll changed: `new` model, `changed` price, `removed` or `returned` model."""

    kind: str
    source: str
    provider: str
    model: str
    at: datetime
    old: Prices | None
    new: Prices | None


@dataclass(slots=True)
class Outcome:
    poll_id: int
    status: str
    models_seen: int | None
    changes: list[Change] = field(default_factory=list)


def _real(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _decimal(value: float | None) -> Decimal | None:
    if value is None:
        return None
    number = Decimal(repr(value))
    return number.quantize(1) if number == number.to_integral_value() else number


@dataclass(slots=True)
class _Current:
    model_id: int
    display_name: str | None
    context_window: int | None
    open_weight: int | None
    missing_polls: int
    removed: bool
    prices: tuple | None  # stored (input, output, cache_read, flag) of the open interval


def _current(db: sqlite_utils.Database, source: str) -> dict[tuple[str, str], _Current]:
    rows = db.execute(
        """SELECT m.provider, m.model, m.id, m.display_name, m.context_window, m.open_weight,
                  m.missing_polls, m.removed_at, p.input_mtok, p.output_mtok, p.cache_read_mtok, p.flag, p.id
           FROM models m LEFT JOIN prices p ON p.model_id = m.id AND p.valid_to IS NULL
           WHERE m.source = ?""",
        [source],
    )
    return {
        (r[0], r[1]): _Current(r[2], r[3], r[4], r[5], r[6], r[7] is not None, None if r[12] is None else tuple(r[8:12]))
        for r in rows
    }


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def record(
    db: sqlite_utils.Database,
    poll: polls.Poll,
    quotes: Iterable[QuoteLike] | None,
    *,
    within: Callable[[sqlite_utils.Database, Outcome], None] | None = None,
) -> Outcome:
    """Store one poll of one source, and, when it carried a catalog, the price changes it shows.

    `quotes` is None for a poll without a catalog (failure, 304). `within` runs inside the same
    transaction (detectors), so a poll and what was concluded from it land together or not at all.
    """
    with transaction(db):
        digest = None
        if poll.payload is not None:
            previous = polls.last_catalog(db, poll.source)
            digest = payloads.keep(db, poll.payload, poll.observed_at, base=previous and previous["payload_hash"])
        if quotes is None:
            poll_id = polls.insert(db, poll, models_seen=None, changes=0, payload_hash=digest)
            outcome = Outcome(poll_id, poll.status, None)
        else:
            outcome = _record_catalog(db, poll, list(quotes), digest)
        if within is not None:
            within(db, outcome)
        return outcome


def _record_catalog(db: sqlite_utils.Database, poll: polls.Poll, quotes: list[QuoteLike], digest: str | None) -> Outcome:
    baseline = polls.last_good(db, poll.source)
    status = poll.status
    if baseline and baseline["models_seen"] and len(quotes) < SUSPECT_RATIO * baseline["models_seen"]:
        status = "suspect"
    plan = _plan(db, poll.source, poll.observed_at, quotes, suspect=status == "suspect")
    poll_id = polls.insert(db, replace(poll, status=status), models_seen=plan.models_seen, changes=len(plan.changes), payload_hash=digest)
    plan.apply(poll_id)
    return Outcome(poll_id, status, plan.models_seen, plan.changes)


@dataclass(slots=True)
class _Plan:
    """The changes one catalog makes, worked out before anything is written."""

    models_seen: int = 0
    changes: list[Change] = field(default_factory=list)
    writes: list[Callable[[int], None]] = field(default_factory=list)

    def apply(self, poll_id: int) -> None:
        for write in self.writes:
            write(poll_id)


def _plan(db: sqlite_utils.Database, source: str, at: datetime, quotes: Iterable[QuoteLike], *, suspect: bool) -> _Plan:
    current = _current(db, source)
    plan = _Plan()
    seen: set[tuple[str, str]] = set()
    for quote in quotes:
        key = (quote.provider, quote.model)
        if key in seen:  # parsers drop duplicate keys; never let one break the poll
            continue
        seen.add(key)
        prices = Prices.of(quote)
        known = current.pop(key, None)
        if known is None:
            plan.changes.append(Change("new", source, quote.provider, quote.model, at, None, prices))
            plan.writes.append(lambda poll_id, q=quote: _insert_model(db, source, q, at, poll_id))
            continue
        meta = (quote.display_name, quote.context_window, _bool(quote.open_weight))
        if meta != (known.display_name, known.context_window, known.open_weight) or known.missing_polls:
            plan.writes.append(lambda _, k=known, m=meta: _update_model(db, k.model_id, m))
        if known.prices == prices.stored() and not known.removed:
            continue
        old = Prices.from_row(known.prices) if known.prices else None
        kind = "returned" if known.removed else "changed"
        plan.changes.append(Change(kind, source, quote.provider, quote.model, at, old, prices))
        start = _effective_from(quote, at)
        plan.writes.append(lambda poll_id, k=known, p=prices, s=start: _replace_price(db, k.model_id, p, s, poll_id))
    plan.models_seen = len(seen)
    if suspect:  # a partial catalog says nothing about the models it left out
        return plan
    for (provider, model), known in current.items():
        if known.removed:
            continue
        gone = known.missing_polls + 1 >= ABSENT_POLLS_TO_REMOVE
        if gone:
            old = Prices.from_row(known.prices) if known.prices else None
            plan.changes.append(Change("removed", source, provider, model, at, old, None))
        plan.writes.append(lambda _, k=known, g=gone: _mark_absent(db, k.model_id, at, g))
    return plan


def rebuild(db: sqlite_utils.Database, source: str, parse: Callable[[bytes, datetime], Iterable[QuoteLike]]) -> tuple[int, int]:
    """Derive a source's price history again from its stored payloads, in poll order, with
    `parse` (the fixed parser): backfilled history is loaded again from its stored document.
    One transaction; returns (payloads read, intervals now held)."""
    with transaction(db):
        rows = db.execute(
            """SELECT id, observed_at, payload_hash, status FROM polls
               WHERE source = ? AND payload_hash IS NOT NULL AND status != 'failed' ORDER BY id""",
            [source],
        ).fetchall()
        db.execute("DELETE FROM prices WHERE model_id IN (SELECT id FROM models WHERE source = ?)", [source])
        db.execute("DELETE FROM models WHERE source = ?", [source])
        for poll_id, observed_at, digest, status in rows:
            body = payloads.load(db, digest)
            if status == archive.BACKFILL:
                archive.insert_source(db, archive.decode(body), source)
                continue
            plan = _plan(db, source, parse_iso(observed_at), parse(body, parse_iso(observed_at)), suspect=status == "suspect")
            plan.apply(poll_id)
            db.execute("UPDATE polls SET models_seen = ?, changes = ? WHERE id = ?", [plan.models_seen, len(plan.changes), poll_id])
        intervals = db.execute(
            "SELECT COUNT(*) FROM prices WHERE model_id IN (SELECT id FROM models WHERE source = ?)", [source]
        ).fetchone()[0]
    return len(rows), intervals


def _effective_from(quote: QuoteLike, observed_at: datetime) -> datetime:
    """When a price took effect: the upstream's own date if it gives one no later than now."""
    return quote.since if quote.since is not None and quote.since <= observed_at else observed_at


def _insert_model(db: sqlite_utils.Database, source: str, quote: QuoteLike, at: datetime, poll_id: int) -> None:
    cursor = db.execute(
        """INSERT INTO models (source, provider, model, display_name, context_window, open_weight, first_seen)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [source, quote.provider, quote.model, quote.display_name, quote.context_window, _bool(quote.open_weight), iso(at)],
    )
    model_id = cursor.lastrowid
    # Dated history the upstream ships (genai-prices) becomes real intervals on first sight.
    points = [p for p in quote.earlier if p.since < _effective_from(quote, at)]
    starts = [p.since for p in points] + [_effective_from(quote, at)]
    for point, end in zip(points, starts[1:]):
        db.execute(
            """INSERT INTO prices (model_id, valid_from, valid_to, input_mtok, output_mtok, cache_read_mtok, poll_id)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [model_id, iso(point.since), iso(end), _real(point.input_mtok), _real(point.output_mtok), _real(point.cache_read_mtok), poll_id],
        )
    _open_interval(db, model_id, Prices.of(quote), starts[-1], poll_id)


def _open_interval(db: sqlite_utils.Database, model_id: int, prices: Prices, start: datetime, poll_id: int) -> None:
    db.execute(
        """INSERT INTO prices (model_id, valid_from, input_mtok, output_mtok, cache_read_mtok, flag, poll_id)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [model_id, iso(start), *prices.stored(), poll_id],
    )


def _replace_price(db: sqlite_utils.Database, model_id: int, prices: Prices, start: datetime, poll_id: int) -> None:
    # A later-starting interval never begins before the one it closes.
    row = db.execute("SELECT valid_from FROM prices WHERE model_id = ? AND valid_to IS NULL", [model_id]).fetchone()
    if row is not None and iso(start) < row[0]:
        start = parse_iso(row[0])
    db.execute("UPDATE prices SET valid_to = ? WHERE model_id = ? AND valid_to IS NULL", [iso(start), model_id])
    db.execute("UPDATE models SET removed_at = NULL, missing_polls = 0, missing_since = NULL WHERE id = ?", [model_id])
    _open_interval(db, model_id, prices, start, poll_id)


def _update_model(db: sqlite_utils.Database, model_id: int, meta: tuple) -> None:
    db.execute(
        """UPDATE models SET display_name = ?, context_window = ?, open_weight = ?,
                  missing_polls = 0, missing_since = NULL WHERE id = ?""",
        [*meta, model_id],
    )


def _mark_absent(db: sqlite_utils.Database, model_id: int, at: datetime, gone: bool) -> None:
    db.execute(
        "UPDATE models SET missing_polls = missing_polls + 1, missing_since = COALESCE(missing_since, ?) WHERE id = ?",
        [iso(at), model_id],
    )
    if gone:
        since = db.execute("SELECT missing_since FROM models WHERE id = ?", [model_id]).fetchone()[0]
        db.execute("UPDATE prices SET valid_to = ? WHERE model_id = ? AND valid_to IS NULL", [since, model_id])
        db.execute("UPDATE models SET removed_at = ? WHERE id = ?", [since, model_id])


def model_keys(db: sqlite_utils.Database) -> list[str]:
    """Every distinct model key stored, for name resolution."""
    return [row[0] for row in db.execute("SELECT DISTINCT model FROM models ORDER BY model")]


def _model_filter(models: Sequence[str], source: str | None, provider: str | None) -> tuple[str, dict]:
    where = [f"m.model IN ({', '.join(f':m{i}' for i in range(len(models)))})"]
    params: dict = {f"m{i}": model for i, model in enumerate(models)}
    if source:
        where.append("m.source = :source")
        params["source"] = source
    if provider:
        where.append("lower(m.provider) = lower(:provider)")
        params["provider"] = provider
    return " AND ".join(where), params


def _with_decimals(row: dict) -> dict:
    return {**row, **{key: _decimal(row[key]) for key in ("input_mtok", "output_mtok", "cache_read_mtok")}}


_INTERVAL_SELECT = """SELECT m.source, m.provider, m.model, p.valid_from, p.valid_to,
       p.input_mtok, p.output_mtok, p.cache_read_mtok, p.flag, m.open_weight
FROM prices p JOIN models m ON m.id = p.model_id"""


def history(db: sqlite_utils.Database, models: Sequence[str], *, source: str | None = None, provider: str | None = None) -> list[dict]:
    """Every price interval of the given model keys, oldest first per source, provider, model."""
    if not models:
        return []
    where, params = _model_filter(models, source, provider)
    return [
        _with_decimals(row)
        for row in db.query(f"{_INTERVAL_SELECT} WHERE {where} ORDER BY m.source, m.provider, m.model, p.valid_from, p.id", params)
    ]


def in_force(db: sqlite_utils.Database, models: Sequence[str], at: datetime, *, source: str | None = None, provider: str | None = None) -> list[dict]:
    """The interval of each listing of the given model keys that was in force at `at`."""
    if not models:
        return []
    where, params = _model_filter(models, source, provider)
    params["at"] = iso(at)
    return [
        _with_decimals(row)
        for row in db.query(
            f"""{_INTERVAL_SELECT} WHERE {where} AND p.valid_from <= :at AND (p.valid_to IS NULL OR p.valid_to > :at)
                ORDER BY m.source, m.provider, m.model""",
            params,
        )
    ]


def counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Sizes for a summary: models listed now, sources, intervals."""
    return {
        "models": db.execute("SELECT COUNT(*) FROM models WHERE removed_at IS NULL").fetchone()[0],
        "sources": db.execute("SELECT COUNT(DISTINCT source) FROM models").fetchone()[0],
        "intervals": db.execute("SELECT COUNT(*) FROM prices").fetchone()[0],
        "polls": db.execute("SELECT COUNT(*) FROM polls").fetchone()[0],
    }


INTERVAL_COLUMNS = (
    "source", "provider", "model", "valid_from", "valid_to",
    "input_mtok", "output_mtok", "cache_read_mtok", "open_weight", "flag",
)  # fmt: skip


def intervals(db: sqlite_utils.Database, *, source: str | None = None) -> list[tuple]:
    """Every price interval as plain tuples in `INTERVAL_COLUMNS` order (floats in USD per
    million tokens, ISO text times), for analytics to frame; open_weight is 1, 0 or None."""
    where, params = ("WHERE m.source = ?", [source]) if source else ("", [])
    return db.execute(
        f"""SELECT m.source, m.provider, m.model, p.valid_from, p.valid_to,
                   p.input_mtok, p.output_mtok, p.cache_read_mtok, m.open_weight, p.flag
            FROM prices p JOIN models m ON m.id = p.model_id {where}
            ORDER BY p.valid_from, p.id""",
        params,
    ).fetchall()


def interval_table(db: sqlite_utils.Database) -> tuple[list[tuple], Iterator[tuple]]:
    """Every price interval, as `intervals` has them, in two plain tables that repeat nothing
    per interval, for analytics to frame years of history without a Python object per cell:
    the models (id, source, provider, model, open_weight) by id, and a cursor over the intervals
    (model_id, valid_from, valid_to, input_mtok, output_mtok, cache_read_mtok, flag) in
    `intervals` order, their times as whole seconds since the Unix epoch (NULL while current),
    to be read in chunks."""
    models = db.execute("SELECT id, source, provider, model, open_weight FROM models ORDER BY id").fetchall()
    rows = db.execute(
        """SELECT model_id, CAST(strftime('%s', valid_from) AS INTEGER), CAST(strftime('%s', valid_to) AS INTEGER),
                  input_mtok, output_mtok, cache_read_mtok, flag
           FROM prices ORDER BY valid_from, id"""
    )
    return models, rows
