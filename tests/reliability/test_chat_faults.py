"""Chat faults, through the real delivery loop (`delivery.deliver_due`) and the real Slack and
Discord adapters against the fake platforms on loopback: 429 storms with Retry-After, 5xx,
timeouts and permanent errors. Afterwards every pending alert is delivered once, each channel's
batches in the order they were made; no attempt comes before its `next_attempt_at`, a storm
costs a bounded number of HTTP calls (no busy loop), and a permanent failure is given up at
once, with its reason, and shown by `sources`.

Time is simulated for the outbox (a clock advanced a second per delivery round) while the
adapters talk real HTTP, so minutes of backoff take well under a second.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from bot import commands, config, delivery
from bot.chat.discord import DiscordAdapter
from bot.chat.slack import SlackAdapter
from bot.config import AlertSettings
from storage import outbox
from storage.times import parse_iso
from tests.detectors.builders import STEP, T0, Feed, catalog, q, subscribe
from tests.fakes.dying import DiesMidSend

SLACK, DISCORD = "slack:C0FAULTS", "discord:1300000000000000002"
CHANNELS = (SLACK, DISCORD)
CYCLES = 3  # poll cycles with cuts: three batches per channel, each its own message
SETTINGS = AlertSettings(retry_after=timedelta(seconds=2), retry_max=timedelta(minutes=5), max_attempts=20)


def queue_cuts(db, channels=CHANNELS) -> None:
    """Three poll cycles six hours apart, each cutting two models: three batches per channel."""
    for channel in channels:
        subscribe(db, channel)
    feed = Feed(db)
    prices = {f"fault-{i}": 10.0 for i in range(2 * CYCLES)}
    feed.poll([*catalog(3), *(q(m, str(p), "10") for m, p in prices.items())])
    for cycle in range(CYCLES):
        for i in (2 * cycle, 2 * cycle + 1):
            prices[f"fault-{i}"] = 5.0
        feed.poll([*catalog(3), *(q(m, str(p), "10") for m, p in prices.items())])


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Watched:
    """An adapter that checks, at every send, that the batch was due: no attempt before its
    `next_attempt_at`, and no batch of a channel while an older one is still pending."""

    def __init__(self, adapter, db, clock: Clock):
        self.adapter, self.db, self.clock = adapter, db, clock
        self.platform = adapter.platform
        self.sends: list[tuple[str, datetime]] = []

    async def send(self, channel, cards, *, idempotency_key):
        batch = int(idempotency_key.split("-")[1])
        rows = [row for row in outbox.rows(self.db) if row["batch"] == batch]
        assert rows and all(parse_iso(row["next_attempt_at"]) <= self.clock() for row in rows), (rows, self.clock())
        older = [row for row in outbox.rows(self.db, state="pending") if row["channel"] == rows[0]["channel"] and row["batch"] < batch]
        assert older == [], f"batch {batch} went before the older {older}"
        self.sends.append((idempotency_key, self.clock()))
        return await self.adapter.send(channel, cards, idempotency_key=idempotency_key)


def adapters(fake_slack, fake_discord, db, clock, **options) -> dict[str, Watched]:
    slack = SlackAdapter(fake_slack.token, api_url=fake_slack.api_url, backoff=0.05, **options)
    discord = DiscordAdapter(fake_discord.bot_token, api_url=fake_discord.api_url, backoff=0.05, **options)
    return {"slack": Watched(slack, db, clock), "discord": Watched(discord, db, clock)}


def run_rounds(db, chosen, clock: Clock, *, seconds: int, pause: float = 0.0) -> list[delivery.DeliveryReport]:
    """A delivery round every simulated second for `seconds`; stops early once nothing is pending."""

    async def rounds():
        reports = []
        for _ in range(seconds):
            reports += await delivery.deliver_due(db, chosen, clock, settings=SETTINGS)
            if not outbox.rows(db, state="pending"):
                break
            if pause:
                await asyncio.sleep(pause)
            clock.now += timedelta(seconds=1)
        return reports

    return asyncio.run(rounds())


def start_clock() -> Clock:
    return Clock(T0 + CYCLES * STEP + timedelta(minutes=1))  # every batch past its group_wait


def slack_keys(fake_slack) -> list[str]:
    return [m["metadata"]["event_payload"]["key"] for m in fake_slack.messages("C0FAULTS")]


def discord_nonces(fake_discord) -> list[str]:
    return [m["nonce"] for m in fake_discord.messages.get("1300000000000000002", [])]


def assert_all_delivered_once_in_order(db, fake_slack, fake_discord) -> None:
    from bot.chat.discord import nonce

    rows = outbox.rows(db)
    assert {row["state"] for row in rows} == {"sent"}, rows
    made = [b for b in outbox.batches(db)]  # creation order
    assert slack_keys(fake_slack) == [b.idempotency_key for b in made if b.channel == SLACK]
    assert discord_nonces(fake_discord) == [nonce(b.idempotency_key, 0) for b in made if b.channel == DISCORD]
    assert len(made) == 2 * CYCLES


@pytest.mark.parametrize("platform", ["slack", "discord"])
def test_a_429_storm_is_waited_out_with_bounded_calls_and_then_delivered_in_order(fresh_db, fake_slack, fake_discord, platform):
    queue_cuts(fresh_db)
    storm = 15  # consecutive 429s, each asking for 30 s: longer than an adapter waits in-line
    if platform == "slack":
        fake_slack.rate_limit("30", times=storm, route="chat.postMessage")
    else:
        fake_discord.rate_limit(30.0, times=storm, route="create_message")
    clock = start_clock()
    began = clock.now
    chosen = adapters(fake_slack, fake_discord, fresh_db, clock)
    run_rounds(fresh_db, chosen, clock, seconds=3600)

    assert_all_delivered_once_in_order(fresh_db, fake_slack, fake_discord)
    posts = fake_slack.calls_to("chat.postMessage") if platform == "slack" else fake_discord.calls_to("create_message")
    assert len(posts) == storm + CYCLES  # every 429 cost one call, then one per batch
    sends = [at for key, at in chosen[platform].sends]
    gaps = [(b - a).total_seconds() for a, b in zip(sends, sends[1:], strict=False)]
    assert min(gaps[: storm - 1]) >= 30  # Retry-After honoured between the attempts of the storm
    spent = (clock.now - began).total_seconds()
    planned = sum(delivery.backoff(n, SETTINGS, 30).total_seconds() for n in range(1, storm + 1))  # max(doubling, 30 s)
    assert storm * 30 <= spent <= planned + storm, (spent, planned)  # waited out, at most a round late each time
    assert len(chosen["slack" if platform == "discord" else "discord"].sends) == CYCLES  # the other platform was not held up


def test_short_429s_are_retried_in_line_then_by_the_outbox_never_busily(fresh_db, fake_slack, fake_discord):
    queue_cuts(fresh_db)
    fake_slack.rate_limit("0", times=9, route="chat.postMessage")  # Retry-After: 0, nine times
    fake_discord.rate_limit(0.0, times=9, route="create_message")
    clock = start_clock()
    chosen = adapters(fake_slack, fake_discord, fresh_db, clock)
    reports = run_rounds(fresh_db, chosen, clock, seconds=600)

    assert_all_delivered_once_in_order(fresh_db, fake_slack, fake_discord)
    # 3 tries per Slack send (2 retries in line), 4 per Discord send: then the outbox's backoff.
    assert len(fake_slack.calls_to("chat.postMessage")) == 9 + CYCLES
    assert len(fake_discord.calls_to("create_message")) == 9 + CYCLES
    retries = [r for r in reports if r.state == "retry"]
    assert {r.error for r in retries} == {"rate limited"} and len(retries) == 3 + 2  # 9 // 3 Slack, 9 // 4 Discord
    for watched in chosen.values():
        times = [at for _, at in watched.sends]
        assert all((b - a) >= timedelta(seconds=0) for a, b in zip(times, times[1:], strict=False))


def test_5xx_is_retried_with_backoff_and_each_batch_still_shown_once(fresh_db, fake_slack, fake_discord):
    queue_cuts(fresh_db)
    fake_slack.server_error(503, times=7, route="chat.postMessage")
    fake_discord.server_error(502, times=9, route="create_message")
    clock = start_clock()
    chosen = adapters(fake_slack, fake_discord, fresh_db, clock)
    reports = run_rounds(fresh_db, chosen, clock, seconds=3600)

    assert_all_delivered_once_in_order(fresh_db, fake_slack, fake_discord)
    failed = [r for r in reports if r.state == "retry"]
    assert failed and all(r.channel in CHANNELS for r in failed)
    # Backoff doubles from 2 s: after the in-line retries, each outbox retry waited longer.
    for watched in chosen.values():
        first_batch = [at for key, at in watched.sends if key == watched.sends[0][0]]
        gaps = [(b - a).total_seconds() for a, b in zip(first_batch, first_batch[1:], strict=False)]
        assert gaps == sorted(gaps) and all(gap >= 2 for gap in gaps), gaps
    assert len(fake_slack.calls_to("chat.postMessage")) == 7 + CYCLES
    assert len(fake_discord.calls_to("create_message")) == 9 + CYCLES


def test_a_timeout_after_the_platform_posted_is_not_shown_twice(fresh_db, fake_slack, fake_discord):
    """The request reaches the platform, which posts, but answers after the client gave up:
    the retry finds the message (Slack: its metadata in history; Discord: the nonce)."""
    queue_cuts(fresh_db)
    # The first post to each platform lands after 1 s, but the client gives up at 0.3 s; the
    # retry (2 s of backoff, two rounds half a second apart) comes after it has landed.
    fake_slack.delay(1.0, times=1, route="chat.postMessage")
    fake_discord.delay(1.0, times=1, route="create_message")
    clock = start_clock()
    chosen = adapters(fake_slack, fake_discord, fresh_db, clock, timeout=0.3)
    reports = run_rounds(fresh_db, chosen, clock, seconds=600, pause=0.5)

    assert_all_delivered_once_in_order(fresh_db, fake_slack, fake_discord)
    timeouts = [r for r in reports if r.state == "retry"]
    assert sorted(r.channel for r in timeouts) == sorted(CHANNELS), reports  # one on each platform
    # Slack: the retry found its metadata in the channel's history and posted nothing more.
    assert len(fake_slack.calls_to("chat.postMessage")) == CYCLES
    assert len(fake_slack.calls_to("conversations.history")) >= CYCLES + 1
    # Discord: the retry re-sent the same nonce and got the first message back.
    assert len(fake_discord.calls_to("create_message")) == CYCLES + 1


@pytest.mark.parametrize("platform", ["slack", "discord"])
def test_a_post_on_the_wire_when_the_bot_died_is_found_not_repeated(fresh_db, fake_slack, fake_discord, platform):
    """The restarted bot leaves the batch alone for `in_flight` after the dead attempt began,
    by when the post has landed and the duplicate check finds it (Slack: history; Discord:
    the nonce). Without the wait, Slack's check would run before the post exists."""
    channel = SLACK if platform == "slack" else DISCORD
    queue_cuts(fresh_db, channels=(channel,))
    fake = fake_slack if platform == "slack" else fake_discord
    route = "chat.postMessage" if platform == "slack" else "create_message"
    clock = start_clock()
    dying = DiesMidSend(adapters(fake_slack, fake_discord, fresh_db, clock)[platform].adapter, fake, route)
    with pytest.raises(SystemExit):
        asyncio.run(delivery.deliver_due(fresh_db, {platform: dying}, clock, settings=SETTINGS))

    restarted = adapters(fake_slack, fake_discord, fresh_db, clock)  # a new process: nothing remembered
    clock.now += timedelta(seconds=1)
    assert asyncio.run(delivery.deliver_due(fresh_db, restarted, clock, settings=SETTINGS)) == []
    dying.orphan.join(10)  # the held post lands while the batch waits
    clock.now += SETTINGS.in_flight
    reports = run_rounds(fresh_db, restarted, clock, seconds=60)
    assert {r.state for r in reports} == {"sent"}, reports
    assert {row["state"] for row in outbox.rows(fresh_db)} == {"sent"}
    shown = slack_keys(fake_slack) if platform == "slack" else discord_nonces(fake_discord)
    assert len(shown) == len(set(shown)) == CYCLES, shown


SLACK_PERMANENT = ["channel_not_found", "not_in_channel", "invalid_auth"]
DISCORD_PERMANENT = [(403, 50001, "Missing Access"), (404, 10003, "Unknown Channel")]


@pytest.mark.parametrize(
    "platform, failure",
    [("slack", error) for error in SLACK_PERMANENT] + [("discord", reject) for reject in DISCORD_PERMANENT],
    ids=SLACK_PERMANENT + ["discord-403", "discord-404"],
)
def test_a_permanent_error_is_given_up_at_once_with_its_reason_and_shown_in_sources(fresh_db, fake_slack, fake_discord, platform, failure):
    queue_cuts(fresh_db)
    if platform == "slack":
        fake_slack.fail_with(failure, times=1000, route="chat.postMessage")
        fake_slack.fail_with(failure, times=1000, route="conversations.history")
        channel, reason = SLACK, failure
    else:
        status, code, message = failure
        fake_discord.reject(status, code, message, times=1000, route="create_message")
        channel, reason = DISCORD, message
    clock = start_clock()
    chosen = adapters(fake_slack, fake_discord, fresh_db, clock)
    reports = run_rounds(fresh_db, chosen, clock, seconds=60)

    rows = outbox.rows(fresh_db)
    broken = [row for row in rows if row["channel"] == channel]
    assert {row["state"] for row in broken} == {"failed"}
    assert all(row["attempts"] == 1 and reason in row["last_error"] for row in broken), broken  # given up at once
    assert {row["state"] for row in rows if row["channel"] != channel} == {"sent"}  # the other channel is unaffected
    assert len(chosen[platform].sends) == CYCLES  # one try per batch, no retry loop
    assert not [r for r in reports if r.state == "retry"]

    context = commands.Context(fresh_db, config.load(environ={}), clock=clock, user="U1", channel="slack:C1")
    card = commands.answer("sources", context)
    shown = dict(card.fields)["Deliveries given up"]
    assert channel in shown and reason in shown and "(6 since" in shown, shown  # 2 alerts x 3 batches


def test_a_failing_batch_holds_back_its_channels_newer_batches(fresh_db, fake_slack, fake_discord):
    """Order: while the oldest batch of a channel backs off, its newer batches wait for it."""
    queue_cuts(fresh_db, channels=(SLACK,))
    fake_slack.rate_limit("60", times=1, route="chat.postMessage")
    clock = start_clock()
    chosen = adapters(fake_slack, fake_discord, fresh_db, clock)
    first = asyncio.run(delivery.deliver_due(fresh_db, chosen, clock, settings=SETTINGS))
    assert [r.state for r in first] == ["retry", "waiting", "waiting"]
    clock.now += timedelta(seconds=30)
    assert asyncio.run(delivery.deliver_due(fresh_db, chosen, clock, settings=SETTINGS)) == []  # nothing overtakes
    clock.now += timedelta(seconds=31)
    assert [r.state for r in asyncio.run(delivery.deliver_due(fresh_db, chosen, clock, settings=SETTINGS))] == ["sent"] * 3
    made = outbox.batches(fresh_db)
    assert slack_keys(fake_slack) == [b.idempotency_key for b in made]
