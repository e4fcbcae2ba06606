"""The running bot's timed work, as APScheduler 3 jobs on the event loop (AsyncIOScheduler, UTC):

- `poll:<source>` every source's `every`, first at start-up: fetch and store, run the detectors,
  queue alerts for the subscribed channels (the same `pipeline.poll_once` as `deflation-watch poll`).
- `deliver` every `schedule.deliver_every`: send the outbox batches that are due (their
  `group_wait` over) through the chat adapters (`delivery.deliver_due`).
- `indicators` every `sources.sec-edgar.every` (a day), first at start-up: poll SEC EDGAR for
  the capex and gross-margin filings (when a `user_agent` is set), then raise and resolve every
  watch indicator's signals (`indicator_sec.poll_sec`, `indicators.check`).
- `digest` on the `schedule.digest` crontab in the configured `timezone`, and `digest:catch-up`
  every few minutes from start-up: post the digest of the latest slot to every digest channel
  that has not had it. The slot is stored per channel once posted, so a restart never posts it
  twice, and a bot that was down at the slot posts it once when it is back.

Polls and digests do their database work in worker threads, each with its own SQLite
connection, so the event loop keeps answering Slack and Discord within their 3 seconds. Jobs
run one at a time each (`max_instances=1`), missed runs coalesce into one, and a run that is
late by less than its grace still happens. At shut-down no new job starts, and `drain()`
waits for the ones in flight, so a poll's transaction is never cut off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot import delivery, heap, indicator_sec, indicators, pipeline
from bot.chat.base import Adapter, Delivery
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.fetch import make_client
from bot.metrics import Metrics
from storage import digests, open_db, transaction
from storage.times import iso

log = logging.getLogger(__name__)

#: How often the digest is checked for channels that still need the latest slot.
CATCH_UP_EVERY = timedelta(minutes=5)
#: How far back the latest slot is looked for: more than a month, so a monthly crontab works.
SLOT_LOOKBACK = timedelta(days=35)
#: How late a digest run may start and still run (a busy loop, a suspended laptop).
DIGEST_GRACE = timedelta(hours=6)


def digest_trigger(settings: Settings) -> CronTrigger | None:
    """The digest's schedule in the configured timezone; None when `schedule.digest` is empty."""
    if not settings.schedule.digest.strip():
        return None
    return CronTrigger.from_crontab(settings.schedule.digest, timezone=ZoneInfo(settings.timezone))


def latest_slot(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The last moment at or before `now` the trigger fired for (aware UTC), or None."""
    found = None
    moment = trigger.get_next_fire_time(None, now - SLOT_LOOKBACK)
    while moment is not None and moment <= now:
        found = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return found.astimezone(UTC) if found else None


def slot_key(slot: datetime, channel: str) -> str:
    """The idempotency key of one channel's digest of one slot: a re-send is recognised."""
    return f"digest-{slot:%Y%m%dT%H%MZ}-{channel}"


class Jobs:
    """The job bodies. `db` is the event loop's own connection (the outbox and digest records);
    worker threads open their own with `opener`."""

    def __init__(
        self,
        settings: Settings,
        db: sqlite_utils.Database,
        adapters: Mapping[str, Adapter],
        metrics: Metrics,
        *,
        clock: Clock = utcnow,
        opener: Callable[[Any], sqlite_utils.Database] = open_db,
    ):
        self.settings = settings
        self.db = db
        self.adapters = adapters
        self.metrics = metrics
        self.clock = clock
        self.opener = opener
        self.closing = False
        # One writer thread: polls (and the digest's reads) queue instead of fighting over the lock.
        self._workers = ThreadPoolExecutor(1, thread_name_prefix="deflation-watch-job")
        self._running: set[asyncio.Future] = set()
        self._digest_lock = asyncio.Lock()
        #: Set by `build_scheduler`: the scheduler whose poll jobs `reschedule` moves.
        self.scheduler: AsyncIOScheduler | None = None

    # -- the jobs as the scheduler calls them --

    async def poll_job(self, name: str) -> None:
        await self._guard(f"poll:{name}", lambda: self.poll(name))

    async def deliver_job(self) -> None:
        await self._guard("deliver", self.deliver)

    async def digest_job(self) -> None:
        await self._guard("digest", self.digest)

    async def indicators_job(self) -> None:
        await self._guard("indicators", self.indicators)

    # -- the work --

    async def poll(self, name: str) -> list[pipeline.PollReport]:
        reports = await asyncio.get_running_loop().run_in_executor(self._workers, self._poll_in_thread, name)
        for report in reports:
            self.metrics.polls.labels(report.source, report.status).inc()
            if report.retry_at is not None:
                self.reschedule(report.source, report.retry_at)
            if report.status == "deferred":
                # Not a failure: the upstream asked us (Retry-After) to wait, and we do.
                log.info("poll of %s deferred until %s", report.source, report.retry_at)
                continue
            if not report.ok:
                self.metrics.poll_failures.labels(report.source).inc()
                log.warning("poll of %s failed: %s", report.source, report.error)
            else:
                self.metrics.last_good_poll.labels(report.source).set(self.clock().timestamp())
            if report.alerts.created:
                self.metrics.alerts.labels(report.source).inc(len(report.alerts.created))
            log.info("polled %s: %s, %s changes, %s alerts, %s queued", report.source, report.status,
                     report.changes, len(report.alerts.created), report.alerts.queued)
        return reports

    def reschedule(self, name: str, at: datetime) -> None:
        """Move the next poll of `name` to `at` (its upstream's Retry-After), when the next one
        planned is sooner: no poll is spent on a source that said to wait."""
        job = self.scheduler.get_job(f"poll:{name}") if self.scheduler is not None else None
        if job is None or job.next_run_time is None or job.next_run_time >= at:
            return
        job.modify(next_run_time=at)
        log.info("next poll of %s at %s (Retry-After)", name, at)

    def _poll_in_thread(self, name: str) -> list[pipeline.PollReport]:
        db = self.opener(self.settings.db)
        try:
            async def cycle() -> list[pipeline.PollReport]:
                async with make_client(self.settings.http) as client:
                    return await pipeline.poll_once(db, client, self.settings, [name], self.clock)

            reports = asyncio.run(cycle())
            if any(report.changes for report in reports):
                self._warm(db)
            return reports
        finally:
            db.close()
            heap.trim()  # a parsed catalog is megabytes of freed heap

    def _warm(self, db: sqlite_utils.Database) -> None:
        """Work out the new price history's analytics here, once, rather than in the first
        `cheapest` or `trend` after the poll (see `analytics.warm`)."""
        from bot import analytics  # pandas: paid by the first poll that changes a price
        from bot.tiers import load_tiers

        try:
            analytics.warm(db, load_tiers(self.settings.tiers).values())
        except Exception:
            log.exception("working out the analytics after a poll failed; commands will do it")

    async def indicators(self) -> indicators.SignalReport:
        return await asyncio.get_running_loop().run_in_executor(self._workers, self._indicators_in_thread)

    def _indicators_in_thread(self) -> indicators.SignalReport:
        db = self.opener(self.settings.db)
        try:
            sec = self.settings.sec_edgar
            if sec.enabled and sec.user_agent:
                async def poll() -> indicator_sec.SecReport:
                    async with make_client(self.settings.http) as client:
                        return await indicator_sec.poll_sec(db, client, self.settings, self.clock)

                report = asyncio.run(poll())
                for ticker, why in report.missing.items():
                    log.warning("sec-edgar: %s is not in the capex sum: %s", ticker, why)
            elif sec.enabled:
                log.warning("sec-edgar: not polled: SEC requires user_agent under [sources.sec-edgar]")
            _, signals = indicators.check(db, self.settings, self.clock)
            log.info("indicators: %s signals raised, %s fell back, %s queued", len(signals.raised), len(signals.resolved), signals.queued)
            return signals
        finally:
            db.close()

    async def deliver(self) -> list[delivery.DeliveryReport]:
        reports = await delivery.deliver_due(self.db, self.adapters, self.clock, settings=self.settings.alerts)
        for report in reports:
            self.metrics.deliveries.labels(report.channel.partition(":")[0], report.state).inc()
        return reports

    async def digest(self) -> list[tuple[str, Delivery]]:
        """Post the latest slot's digest to each digest channel that has not had it."""
        trigger = digest_trigger(self.settings)
        slot = latest_slot(trigger, self.clock()) if trigger else None
        if slot is None:
            return []
        async with self._digest_lock:  # the cron run and a catch-up run must not both post
            alerts = self.settings.alerts
            channels = digests.due(self.db, slot, alerts.max_attempts, self.clock(), alerts.in_flight)
            channels = [c for c in channels if c.partition(":")[0] in self.adapters]
            if not channels:
                return []
            card = await asyncio.get_running_loop().run_in_executor(self._workers, self._digest_in_thread, slot)
            outcomes = []
            for channel in channels:
                platform, _, address = channel.partition(":")
                with transaction(self.db):
                    digests.begin(self.db, slot, channel, self.clock())
                try:
                    sent = await self.adapters[platform].send(address, [card], idempotency_key=slot_key(slot, channel))
                except Exception as exc:  # an adapter should answer, not raise; the others still get theirs
                    log.exception("%s adapter raised posting the digest to %s", platform, channel)
                    sent = Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
                state = "sent" if sent.ok else "failed" if sent.permanent else "retry"
                with transaction(self.db):
                    digests.record(self.db, slot, channel, state, self.clock(), message_id=sent.message_id, error=sent.error)
                self.metrics.digests.labels(platform, state).inc()
                if not sent.ok:
                    log.warning("digest of %s to %s: %s (%s)", iso(slot), channel, state, sent.error)
                outcomes.append((channel, sent))
            return outcomes

    def _digest_in_thread(self, slot: datetime) -> Any:
        from bot.digest import build_digest  # pandas and matplotlib: loaded when first needed

        db = self.opener(self.settings.db)
        try:
            return build_digest(db, slot, self.settings).card
        finally:
            db.close()
            heap.trim()

    # -- lifecycle --

    async def _guard(self, name: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Run one job so that the scheduler's shut-down cannot cancel it half-way (it is
        shielded and `drain` waits for it) and its errors are logged, never raised."""
        if self.closing:
            return
        task = asyncio.ensure_future(work())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            pass  # the scheduler is shutting down; the task itself goes on until drained
        except Exception:
            log.exception("job %s failed", name)

    async def drain(self, timeout: float) -> bool:
        """Start nothing new and wait up to `timeout` seconds for the jobs in flight; True when
        they all finished."""
        self.closing = True
        pending = set(self._running)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=timeout)
        self._workers.shutdown(wait=not pending)
        return not pending


def build_scheduler(settings: Settings, jobs: Jobs, clock: Clock = utcnow) -> AsyncIOScheduler:
    """The scheduler with every job; not started."""
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    jobs.scheduler = scheduler
    now = clock()
    for name in settings.enabled_sources():
        every = settings.sources[name].every
        scheduler.add_job(
            jobs.poll_job, IntervalTrigger(seconds=every.total_seconds(), timezone=UTC), args=[name], id=f"poll:{name}",
            name=f"poll {name}", next_run_time=now, misfire_grace_time=max(int(every.total_seconds()), 60),
        )
    scheduler.add_job(
        jobs.deliver_job, IntervalTrigger(seconds=settings.schedule.deliver_every.total_seconds(), timezone=UTC),
        id="deliver", name="deliver the outbox", next_run_time=now,
    )
    scheduler.add_job(
        jobs.indicators_job, IntervalTrigger(seconds=settings.sec_edgar.every.total_seconds(), timezone=UTC),
        id="indicators", name="SEC filings and indicator signals", next_run_time=now,
    )
    trigger = digest_trigger(settings)
    if trigger is not None:
        scheduler.add_job(jobs.digest_job, trigger, id="digest", name="weekly digest", misfire_grace_time=int(DIGEST_GRACE.total_seconds()))
        scheduler.add_job(
            jobs.digest_job, IntervalTrigger(seconds=CATCH_UP_EVERY.total_seconds(), timezone=UTC), id="digest:catch-up",
            name="digest catch-up", next_run_time=now,
        )
    return scheduler
