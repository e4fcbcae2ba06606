"""What the CLI and the scheduler both call: poll, replay, reparse. Each step takes the
database, the HTTP client and the clock as parameters, so tests hand in their own."""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import httpx
import sqlite_utils

from bot import alerting, secrets
from bot.clock import Clock, utcnow
from bot.config import AlertSettings, Settings
from bot.errors import DeflationWatchError, FetchError, PayloadError, SourceError, storage_error
from bot.fetch import fetch
from bot.quotes import Catalog
from bot.sources import SOURCES, Source
from storage import archive, payloads, polls, prices, tier_floors
from storage.times import iso as storage_iso

log = logging.getLogger(__name__)

@dataclass(slots=True)
class PollReport:
    """How one poll of one source went, for a table row or a log line."""

    source: str
    status: str  # a poll row's status, or `deferred`: not polled, the upstream asked us to wait
    models_seen: int | None = None
    changes: int = 0
    skipped: int = 0
    seconds: float = 0.0
    error: str | None = None
    outcome: prices.Outcome | None = field(default=None, repr=False)
    alerts: alerting.AlertReport = field(default_factory=alerting.AlertReport, repr=False)
    #: Not before this may the source be polled again (its upstream sent Retry-After).
    retry_at: datetime | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "deferred")

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in ("source", "status", "models_seen", "changes", "skipped", "seconds", "error")}


def ingest(
    db: sqlite_utils.Database,
    source: Source,
    poll: polls.Poll,
    *,
    alerts: AlertSettings | None = None,
    clock: Clock = utcnow,
    notify: bool = True,
) -> PollReport:
    """Parse `poll.payload` (if any) and store poll, price changes and the alerts they raise
    in one transaction. A payload that does not parse is stored as a failed poll: the error is
    kept, the prices are not. `notify=False` stores alerts without queueing them for chat."""
    catalog: Catalog | None = None
    if poll.payload is not None and poll.status != "failed":
        try:
            catalog = source.parse(poll.payload, poll.observed_at)
        except PayloadError as exc:
            poll.status, poll.error = "failed", str(exc)
        else:
            poll.skipped = dict(catalog.skipped)
    return store(db, poll, catalog.quotes if catalog else None, alerts=alerts, clock=clock, notify=notify)


def store(
    db: sqlite_utils.Database,
    poll: polls.Poll,
    quotes: Iterable[prices.QuoteLike] | None,
    *,
    alerts: AlertSettings | None = None,
    clock: Clock = utcnow,
    notify: bool = True,
) -> PollReport:
    """Store a parsed poll and run the detectors inside the same transaction."""
    found = alerting.AlertReport()

    def detect(db: sqlite_utils.Database, outcome: prices.Outcome) -> None:
        nonlocal found
        found = alerting.run(db, poll.source, poll.observed_at, outcome, settings=alerts or AlertSettings(), now=clock(), notify=notify)

    outcome = prices.record(db, poll, quotes, within=detect)
    return PollReport(
        poll.source,
        outcome.status,
        outcome.models_seen,
        len(outcome.changes),
        sum(poll.skipped.values()),
        (poll.finished_at - poll.started_at).total_seconds(),
        poll.error,
        outcome,
        found,
    )


async def poll_source(db: sqlite_utils.Database, client: httpx.AsyncClient, settings: Settings, name: str, clock: Clock = utcnow) -> PollReport:
    """Fetch one source (conditionally) and ingest what came back; never raises for the
    source's own failures, which land as a failed poll row with the error text, nor for the
    database's (busy past the timeout, full), which are reported and leave nothing half-written.

    A source whose last poll was refused with a Retry-After (429, 503) is not asked again
    before that time: the report is `deferred`, with `retry_at`, and no row is written."""
    source = SOURCES[name]
    started = clock()
    began = time.monotonic()
    try:
        wait = polls.retry_at(db, name)
        if wait is not None and wait > started:
            log.info("poll of %s deferred until %s (Retry-After)", name, storage_iso(wait), extra={"source": name})
            return PollReport(name, "deferred", error=f"not polled: the upstream asked for no request before {storage_iso(wait)}", retry_at=wait)
        poll = await _fetch_poll(db, client, settings, name, started)
        poll.finished_at = started + timedelta(seconds=round(time.monotonic() - began))
        report = ingest(db, source, poll, alerts=settings.alerts, clock=clock)
    except sqlite3.Error as exc:
        error = storage_error(exc)
        log.error("poll of %s not stored: %s", name, error, extra={"source": name})
        return PollReport(name, "failed", error=str(error), seconds=time.monotonic() - began)
    report.seconds = time.monotonic() - began
    if report.outcome is not None:
        poll_id = report.outcome.poll_id
        report.retry_at = polls.retry_at(db, name)
        # INFO whatever the status: the CLI prints failures itself, and the status is a field of
        # its own in JSON logs for whoever alerts on them.
        seen = f"{report.models_seen} models, {report.changes} changes" if report.models_seen is not None else report.error
        log.info(
            "poll %s of %s: %s: %s", poll_id, name, report.status, seen,
            extra={"poll_id": poll_id, "source": name, "status": report.status, "alert_ids": report.alerts.created or None},
        )  # fmt: skip
    return report


async def _fetch_poll(db: sqlite_utils.Database, client: httpx.AsyncClient, settings: Settings, name: str, started: datetime) -> polls.Poll:
    """The poll of one source as fetched: its payload, or why there is none."""
    source = SOURCES[name]
    poll = polls.Poll(source=name, started_at=started, finished_at=started, observed_at=started)
    try:
        if source.read is not None:
            poll.payload = await asyncio.to_thread(source.read)
            poll.http_status = None
        else:
            previous = polls.last_catalog(db, name)
            fetched = await fetch(
                client,
                settings.sources[name].url,
                max_bytes=settings.http.max_bytes,
                etag=previous and previous["etag"],
                last_modified=previous and previous["last_modified"],
                deadline=settings.http.deadline,
            )
            poll.http_status, poll.etag, poll.last_modified = fetched.status, fetched.etag, fetched.last_modified
            if fetched.status == 304:
                poll.status = "not_modified"
                if source.dated and previous:
                    # The same payload can put a dated price in force today: read it again.
                    poll.payload = payloads.load(db, previous["payload_hash"])
            else:
                poll.payload = fetched.body
    except SourceError as exc:
        poll.status, poll.error = "failed", secrets.redact(str(exc))  # a mirror's URL may carry a token
        if isinstance(exc, FetchError):
            poll.http_status = exc.status
            if exc.retry_after is not None:
                polls.refused(poll, started + timedelta(seconds=math.ceil(exc.retry_after)))
    return poll


async def poll_once(db: sqlite_utils.Database, client: httpx.AsyncClient, settings: Settings, names: Iterable[str] | None = None, clock: Clock = utcnow) -> list[PollReport]:
    """One concurrent cycle over the named (default: enabled) sources. Fetches overlap; each
    source's ingest is its own transaction, so one failing source never blocks the others."""
    selected = list(names) if names else settings.enabled_sources()
    reports = list(await asyncio.gather(*(poll_source(db, client, settings, name, clock) for name in selected)))
    check_tier_floors(db, settings, reports, clock)
    return reports


def check_tier_floors(db: sqlite_utils.Database, settings: Settings, reports: list[PollReport], clock: Clock = utcnow) -> None:
    """After a cycle that changed prices (or before any floor is known), look for new tier
    floors. A failure here is logged, never lost polls: the prices are stored already."""
    from bot import tier_floor  # pandas: paid only by cycles that need it

    if not any(report.changes for report in reports) and tier_floors.known(db):
        return
    try:
        tier_floor.check(db, settings, clock())
    except Exception:
        log.exception("tier floor check failed")


SNAPSHOT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2})(\d{2})(\d{2})Z\.json(\.gz)?$")


def snapshot_time(path: Path) -> datetime:
    """The UTC time a snapshot file is named by (`2025-06-10T120000Z.json[.gz]`)."""
    match = SNAPSHOT_NAME.match(path.name)
    if not match:
        raise ValueError(f"{path.name} is not named like 2025-06-10T120000Z.json(.gz)")
    day, hh, mm, ss, _ = match.groups()
    return datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss}+00:00").astimezone(UTC)


def snapshots(directory: Path) -> list[Path]:
    """The snapshot files of a replay directory in time order; other files are ignored."""
    files = [path for path in directory.iterdir() if SNAPSHOT_NAME.match(path.name)]
    return sorted(files, key=snapshot_time)


def replay(
    db: sqlite_utils.Database,
    directory: Path,
    name: str,
    on_file: Callable[[Path, PollReport], None] | None = None,
    *,
    settings: Settings | None = None,
    notify: bool = False,
) -> list[PollReport]:
    """Feed snapshot files through the same parser, storage and detectors as a live poll,
    oldest first, each observed (and its clock set) at its file time. Snapshots no newer than
    what the database already holds for the source are passed over, so replaying a directory
    twice adds nothing. A replay is a backtest: its alerts are stored, not queued for chat."""
    source = SOURCES[name]
    latest = polls.last_catalog(db, name)
    reports = []
    for path in snapshots(directory):
        at = snapshot_time(path)
        if latest and storage_iso(at) <= latest["observed_at"]:
            continue
        raw = path.read_bytes()
        body = gzip.decompress(raw) if path.suffix == ".gz" else raw
        poll = polls.Poll(source=name, started_at=at, finished_at=at, observed_at=at, payload=body)
        report = ingest(db, source, poll, alerts=settings.alerts if settings else None, clock=lambda at=at: at, notify=notify)
        reports.append(report)
        if on_file:
            on_file(path, report)
    return reports


@dataclass(frozen=True, slots=True)
class Rebuilt:
    payloads: int
    intervals: int


def reparse(db: sqlite_utils.Database, name: str) -> Rebuilt:
    """Rebuild a source's price history from its stored payloads with today's parser."""
    parse = SOURCES[name].parse
    return Rebuilt(*prices.rebuild(db, name, lambda body, at: parse(body, at).quotes))


#: The compact real price history shipped with the package (README, "Where the data comes from").
SHIPPED_HISTORY = "history.json.gz"


def load_history(db: sqlite_utils.Database, file: Path | None = None, clock: Clock = utcnow) -> int:
    """Load an exported history document (default: the shipped one) into the sources the
    database has none of; return the intervals added."""
    raw = file.read_bytes() if file else resources.files("bot.data").joinpath(SHIPPED_HISTORY).read_bytes()
    try:
        return archive.load(db, raw, clock())
    except (ValueError, KeyError) as exc:
        raise DeflationWatchError(f"{file or SHIPPED_HISTORY} is not a price history document: {exc}") from None


def first_run(db: sqlite_utils.Database, settings: Settings, clock: Clock = utcnow) -> int:
    """On a database that has never polled, start from the shipped history (when `backfill`
    is on), so the first answers already have a curve behind them."""
    if not settings.backfill or db.execute("SELECT 1 FROM polls LIMIT 1").fetchone():
        return 0
    return load_history(db, clock=clock)
