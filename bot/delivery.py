"""The delivery loop: send each due outbox batch through its platform's adapter and record the
outcome. `deliver_due` never raises: a failed or raising send is recorded and retried with
exponential backoff (no sooner than the platform's `retry_after`), a permanent failure is given
up at once, and a batch whose platform has no adapter here waits for a process that has one.
A channel's batches go out in creation order: after a failure to retry, the channel's newer
batches wait for it (here and in `outbox.due`).

Each attempt is recorded as begun before its request goes out, and no attempt of a batch begins
sooner than `in_flight` after the one before it (`outbox.due`), even when that one was cut short
by a crash or a timeout: a message still on the wire lands first, and the adapter's check for an
earlier attempt (Slack's channel history, Discord's nonce) then finds it instead of posting it
again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from bot import alert_cards, secrets
from bot.cards import Card
from bot.chat.base import Adapter, Delivery
from bot.clock import Clock, utcnow
from bot.config import AlertSettings
from storage import alerts, outbox, transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    batch: int
    channel: str
    alerts: int
    state: str  # sent | retry | failed | waiting (no adapter here, an older batch pending, or the database not writable)
    error: str | None = None


def card_for(db: sqlite_utils.Database, batch: outbox.Batch, settings: AlertSettings) -> Card:
    """The message a batch is posted as: its alerts rendered together, biggest moves first."""
    return alert_cards.render(alerts.query(db, ids=batch.alert_ids), top=settings.top_moves)


def backoff(attempts: int, settings: AlertSettings, retry_after: float | None = None) -> timedelta:
    """Wait before the next try after `attempts` failed ones: doubling from `retry_after`
    (setting), capped at `retry_max`, never shorter than what the platform asked for."""
    wait = min(settings.retry_after * 2 ** max(attempts - 1, 0), settings.retry_max)
    return max(wait, timedelta(seconds=retry_after or 0))


def _begin(db: sqlite_utils.Database, batch: outbox.Batch, now: datetime) -> bool:
    """Record that an attempt of `batch` begins; False (and nothing sent) when that cannot be
    stored, since an unrecorded attempt could not be told from no attempt after a crash."""
    try:
        with transaction(db):
            outbox.mark_attempt(db, batch.id, now)
    except Exception:
        log.exception("could not record the start of delivering batch %s", batch.id, extra={"delivery_id": batch.id})
        return False
    return True


async def deliver_due(
    db: sqlite_utils.Database,
    adapters: Mapping[str, Adapter],
    clock: Clock = utcnow,
    *,
    settings: AlertSettings | None = None,
) -> list[DeliveryReport]:
    """Send every batch due now, one message per batch; return what happened to each."""
    settings = settings or AlertSettings()
    try:
        due = outbox.due(db, clock(), settings.in_flight)
    except Exception:
        log.exception("could not read the outbox")
        return []
    reports = []
    held: set[str] = set()  # channels whose older batch did not go out this round: the rest wait
    for batch in due:
        platform, _, address = batch.channel.partition(":")
        adapter = adapters.get(platform)
        if adapter is None:
            reports.append(DeliveryReport(batch.id, batch.channel, len(batch.alert_ids), "waiting", f"no {platform} adapter"))
            continue
        if batch.channel in held:
            reports.append(DeliveryReport(batch.id, batch.channel, len(batch.alert_ids), "waiting", "an older batch of the channel is pending"))
            continue
        if not _begin(db, batch, clock()):
            held.add(batch.channel)
            reports.append(DeliveryReport(batch.id, batch.channel, len(batch.alert_ids), "waiting", "the database is not writable"))
            continue
        try:
            delivery = await adapter.send(address, [card_for(db, batch, settings)], idempotency_key=batch.idempotency_key)
        except Exception as exc:  # an adapter should answer, not raise; the loop goes on either way
            log.exception("%s adapter raised for batch %s", platform, batch.id, extra={"delivery_id": batch.id, "channel": batch.channel})
            delivery = Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
        report = _record(db, batch, delivery, clock(), settings)
        if report.state == "retry":
            held.add(batch.channel)
        reports.append(report)
    return reports


def _record(db: sqlite_utils.Database, batch: outbox.Batch, delivery: Delivery, now: datetime, settings: AlertSettings) -> DeliveryReport:
    attempts = batch.attempts + 1
    # An adapter's error can quote a request (a webhook URL holds its token): stored and shown masked.
    failure = secrets.redact(delivery.error or "failed")
    if delivery.ok:
        state, error = "sent", None
    elif delivery.permanent or attempts >= settings.max_attempts:
        state, error = "failed", failure
    else:
        state, error = "retry", failure
    try:
        with transaction(db):
            if state == "sent":
                outbox.mark_sent(db, batch.id, now, delivery.message_id)
            elif state == "failed":
                outbox.mark_failed(db, batch.id, error)
            else:
                outbox.mark_retry(db, batch.id, now + backoff(attempts, settings, delivery.retry_after), error)
    except Exception:
        log.exception("could not record the delivery of batch %s", batch.id, extra={"delivery_id": batch.id})
    ids = {"delivery_id": batch.id, "channel": batch.channel, "alert_ids": list(batch.alert_ids), "state": state}
    if state != "sent":
        log.warning("delivery of batch %s to %s: %s (%s)", batch.id, batch.channel, state, error, extra=ids)
    else:
        log.info("delivery of batch %s to %s: sent as %s", batch.id, batch.channel, delivery.message_id, extra={**ids, "message_id": delivery.message_id})
    return DeliveryReport(batch.id, batch.channel, len(batch.alert_ids), state, error)
