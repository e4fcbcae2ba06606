"""The delivery loop and the console deliverer: one message per batch, retries with backoff,
permanent failures, `retry_after`, stable idempotency keys, and a loop that never raises."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot import alert_cards, delivery
from bot.cards import Card
from bot.chat.base import Delivery
from bot.chat.console import HEADER, ConsoleAdapter
from bot.config import AlertSettings
from storage import alerts, outbox
from tests.detectors.builders import STEP, T0, Feed, catalog, q, subscribe


class Recorder:
    """A chat platform that answers with the next scripted outcome and remembers every send."""

    platform = "fake"

    def __init__(self, *outcomes: Delivery | Exception):
        self.outcomes = list(outcomes)
        self.sent: list[tuple[str, list[Card], str]] = []

    async def send(self, channel: str, cards: list[Card], *, idempotency_key: str) -> Delivery:
        self.sent.append((channel, cards, idempotency_key))
        outcome = self.outcomes.pop(0) if self.outcomes else Delivery(ok=True, message_id="m1")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


SETTINGS = AlertSettings()
DUE = T0 + STEP + timedelta(minutes=1)  # past the cycle's group_wait


def cuts(db, channel: str = "fake:C1", n: int = 12) -> None:
    """One poll cycle with n price cuts of different sizes for a subscribed channel."""
    subscribe(db, channel)
    feed = Feed(db)
    feed.poll([*catalog(3), *(q(f"model-{i}", "10", "10") for i in range(n))])
    feed.poll([*catalog(3), *(q(f"model-{i}", str(9 - i * 0.5), "10") for i in range(n))])


def deliver(db, adapter, at=DUE, settings=SETTINGS):
    return asyncio.run(delivery.deliver_due(db, {adapter.platform: adapter}, lambda: at, settings=settings))


def test_a_cycle_goes_out_as_one_message_biggest_moves_first(fresh_db):
    cuts(fresh_db)
    fake = Recorder()
    assert deliver(fresh_db, fake, at=T0 + STEP + timedelta(seconds=10)) == []  # still inside group_wait
    [report] = deliver(fresh_db, fake)
    assert (report.state, report.alerts) == ("sent", 12)
    [(channel, [card], key)] = fake.sent
    assert channel == "C1" and card.title == "12 price cuts" and card.severity == "good"
    assert card.lines[0].startswith("▼ model-11 (openai): input $10 → $3.5 (-65%)")
    assert card.lines[7].startswith("▼ model-4 ")
    assert card.lines[8] == "…and 4 more: 4 price cuts"
    assert {row["state"] for row in outbox.rows(fresh_db)} == {"sent"}
    assert deliver(fresh_db, fake) == []  # nothing twice


def test_failures_are_retried_with_backoff_and_the_same_key(fresh_db):
    cuts(fresh_db)
    fake = Recorder(Delivery(ok=False, error="HTTP 500"), RuntimeError("socket closed"), Delivery(ok=False, error="429", retry_after=600))
    assert [r.state for r in deliver(fresh_db, fake)] == ["retry"]
    row = outbox.rows(fresh_db)[0]
    assert (row["attempts"], row["last_error"], row["next_attempt_at"]) == (1, "HTTP 500", "2025-06-01T06:01:30Z")
    assert deliver(fresh_db, fake, at=DUE + timedelta(seconds=29)) == []
    [raised] = deliver(fresh_db, fake, at=DUE + timedelta(seconds=30))  # a raising adapter is recorded, not raised
    assert (raised.state, raised.error) == ("retry", "RuntimeError: socket closed")
    assert outbox.rows(fresh_db)[0]["next_attempt_at"] == "2025-06-01T06:02:30Z"  # doubled: 60 s
    deliver(fresh_db, fake, at=DUE + timedelta(seconds=90))
    assert outbox.rows(fresh_db)[0]["next_attempt_at"] == "2025-06-01T06:12:30Z"  # the platform asked for 600 s
    deliver(fresh_db, fake, at=DUE + timedelta(hours=1))
    assert outbox.rows(fresh_db)[0]["state"] == "sent"
    assert len({key for _, _, key in fake.sent}) == 1 and len(fake.sent) == 4


def test_permanent_failures_and_too_many_attempts_give_up(fresh_db):
    cuts(fresh_db)
    deliver(fresh_db, Recorder(Delivery(ok=False, error="channel_not_found", permanent=True)))
    assert outbox.rows(fresh_db)[0]["state"] == "failed"
    assert outbox.rows(fresh_db)[0]["last_error"] == "channel_not_found"
    cuts(fresh_db, "other:C2")
    failing = Recorder(*[Delivery(ok=False, error="down")] * 3)

    class Other(Recorder):
        platform = "other"

    other = Other(*failing.outcomes)
    for hour in range(3):
        deliver(fresh_db, other, at=DUE + timedelta(hours=hour + 1), settings=AlertSettings(max_attempts=3))
    assert [row["state"] for row in outbox.rows(fresh_db) if row["channel"] == "other:C2"][0] == "failed"


def test_a_platform_without_an_adapter_waits(fresh_db):
    cuts(fresh_db, "slack:C9")
    [report] = deliver(fresh_db, Recorder())
    assert (report.state, report.error) == ("waiting", "no slack adapter")
    assert outbox.rows(fresh_db)[0]["attempts"] == 0


def test_backoff_doubles_up_to_the_cap():
    settings = AlertSettings(retry_after=timedelta(seconds=30), retry_max=timedelta(minutes=5))
    assert [delivery.backoff(n, settings).total_seconds() for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    assert delivery.backoff(1, settings, retry_after=90).total_seconds() == 90


def test_console_adapter_prints_once_per_key(fresh_db, tmp_path):
    cuts(fresh_db, "console:")
    out = tmp_path / "console.txt"
    adapter = ConsoleAdapter(path=out)
    [report] = deliver(fresh_db, adapter)
    assert report.state == "sent"
    text = out.read_text()
    assert text.count(HEADER) == 1 and "12 price cuts" in text and "model-11" in text
    key = text.splitlines()[0].split()[2]
    # A re-send with the same key (a retry after a crash) is acknowledged without printing again.
    assert asyncio.run(ConsoleAdapter(path=out).send("", [Card("again")], idempotency_key=key)).ok
    assert out.read_text().count(HEADER) == 1


def test_crash_after_sending_before_recording_is_delivered_once(fresh_db, tmp_path, monkeypatch):
    cuts(fresh_db, "console:")
    out = tmp_path / "console.txt"

    def crash(*args, **kwargs):
        raise OSError("database is locked")

    monkeypatch.setattr(outbox, "mark_sent", crash)
    [report] = deliver(fresh_db, ConsoleAdapter(path=out))  # the loop logs and goes on
    assert outbox.rows(fresh_db)[0]["state"] == "pending"
    monkeypatch.undo()
    # A restarted process, a fresh adapter: the attempt may still be landing, so it waits first.
    assert deliver(fresh_db, ConsoleAdapter(path=out), at=DUE + SETTINGS.in_flight - timedelta(seconds=1)) == []
    [report] = deliver(fresh_db, ConsoleAdapter(path=out), at=DUE + SETTINGS.in_flight)
    assert report.state == "sent"
    assert out.read_text().count(HEADER) == 1


class Dies(Recorder):
    """A platform call during which the process dies: the request is out, no outcome comes back."""

    async def send(self, channel: str, cards: list[Card], *, idempotency_key: str) -> Delivery:
        await super().send(channel, cards, idempotency_key=idempotency_key)
        raise SystemExit("killed")


def test_a_send_cut_short_by_a_crash_is_not_retried_until_it_could_have_landed(fresh_db):
    cuts(fresh_db, "fake:C1")
    with pytest.raises(SystemExit):
        deliver(fresh_db, Dies())
    [row, *_] = outbox.rows(fresh_db)
    assert (row["state"], row["attempts"], row["attempted_at"]) == ("pending", 0, "2025-06-01T06:01:00Z")

    later = Recorder()
    settings = AlertSettings(in_flight=timedelta(seconds=45))
    assert deliver(fresh_db, later, at=DUE + timedelta(seconds=44), settings=settings) == []
    assert later.sent == []
    [report] = deliver(fresh_db, later, at=DUE + timedelta(seconds=45), settings=settings)
    assert report.state == "sent" and len(later.sent) == 1
    assert {(r["state"], r["attempted_at"]) for r in outbox.rows(fresh_db)} == {("sent", "2025-06-01T06:01:45Z")}


def test_a_newer_batch_of_the_channel_waits_behind_one_in_flight(fresh_db):
    cuts(fresh_db, "fake:C1")
    with pytest.raises(SystemExit):
        deliver(fresh_db, Dies())
    feed = Feed(fresh_db, start=T0 + 3 * STEP)
    feed.poll([*catalog(3), *(q(f"model-{i}", "1", "10") for i in range(12))])
    newer = T0 + 3 * STEP + timedelta(minutes=1)
    assert len(outbox.due(fresh_db, newer)) == 2
    assert outbox.due(fresh_db, DUE + timedelta(seconds=5), timedelta(seconds=30)) == []
    assert outbox.due(fresh_db, newer, timedelta(hours=13)) == []  # the older one began 12 h ago: in flight
    assert [b.id for b in outbox.due(fresh_db, newer, timedelta(seconds=30))] == [b.id for b in outbox.batches(fresh_db)]


def test_a_retry_is_never_sooner_than_in_flight_after_its_attempt_began(fresh_db):
    """A timed-out request may still be processed: its retry waits as a crashed one would."""
    cuts(fresh_db)
    settings = AlertSettings(retry_after=timedelta(seconds=1), in_flight=timedelta(seconds=20))
    fake = Recorder(Delivery(ok=False, error="timed out talking to Slack"))
    [report] = deliver(fresh_db, fake, settings=settings)
    assert report.state == "retry"
    assert outbox.rows(fresh_db)[0]["next_attempt_at"] == "2025-06-01T06:01:01Z"  # the backoff alone
    assert deliver(fresh_db, fake, at=DUE + timedelta(seconds=19), settings=settings) == []
    [again] = deliver(fresh_db, fake, at=DUE + timedelta(seconds=20), settings=settings)
    assert again.state == "sent" and len(fake.sent) == 2


def test_an_attempt_that_cannot_be_recorded_is_not_made(fresh_db, monkeypatch):
    cuts(fresh_db)
    monkeypatch.setattr(outbox, "mark_attempt", lambda *a, **k: 1 / 0)
    fake = Recorder()
    [report] = deliver(fresh_db, fake)
    assert (report.state, report.error) == ("waiting", "the database is not writable")
    assert fake.sent == []
    assert {(r["state"], r["attempts"], r["attempted_at"]) for r in outbox.rows(fresh_db)} == {("pending", 0, None)}


def test_source_and_model_alerts_render_plainly(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    feed.poll([*catalog(9), q("gpt-5", "1.25", "10")])
    feed.poll([*catalog(9), q("gpt-5", "1.25", "10")])
    for _ in range(3):
        feed.fail()
    card = alert_cards.render(alerts.query(fresh_db))
    assert card.title == "1 new model, 1 model removed, 1 stale source"
    assert card.severity == "warning"
    assert card.lines == [
        "New: gpt-5 (openai) at $1.25 in / $10 out per Mtok · test",
        "Removed: m9 (openai) · no longer listed by test since 2025-06-01",
        "Source test is stale: 3 failed polls in a row, last good poll 2025-06-01T12:00:00Z; last error: HTTP 503 from upstream",
    ]
    single = alert_cards.render(alerts.query(fresh_db, kinds=["new_model"]))
    assert single.title == "New model: gpt-5 (openai)"


@pytest.mark.parametrize("state", ["sent", "retry"])
def test_the_loop_never_raises_when_the_database_write_fails(fresh_db, monkeypatch, state):
    cuts(fresh_db)
    monkeypatch.setattr(outbox, "mark_sent" if state == "sent" else "mark_retry", lambda *a, **k: 1 / 0)
    outcome = Delivery(ok=True) if state == "sent" else Delivery(ok=False, error="x")
    [report] = deliver(fresh_db, Recorder(outcome))
    assert report.state == state
