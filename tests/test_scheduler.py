"""The running bot's jobs: the weekly digest posted as text and chart to every digest channel on
both platforms, once per slot across restarts, and once when the bot was down at the slot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.chat.discord import DiscordAdapter
from bot.chat.slack import SlackAdapter
from bot.config import load
from bot.metrics import Metrics
from bot.quotes import Quote
from bot.scheduler import Jobs, build_scheduler, digest_trigger, latest_slot
from storage import digests, polls, prices, transaction
from tests.fakes.dying import DiesMidSend

MONDAY_9_BERLIN = datetime(2026, 1, 5, 8, tzinfo=UTC)  # 09:00 CET


@pytest.mark.parametrize(
    ("now", "slot"),
    [
        (MONDAY_9_BERLIN - timedelta(seconds=1), MONDAY_9_BERLIN - timedelta(days=7)),
        (MONDAY_9_BERLIN, MONDAY_9_BERLIN),
        (MONDAY_9_BERLIN + timedelta(days=6, hours=23), MONDAY_9_BERLIN),
    ],
)
def test_the_latest_slot_is_in_the_configured_timezone(now, slot):
    settings = load(environ={"DEFLATION_WATCH_TIMEZONE": "Europe/Berlin"})
    assert latest_slot(digest_trigger(settings), now) == slot


def test_no_digest_schedule_means_no_digest_job():
    settings = load(environ={"DEFLATION_WATCH_SCHEDULE__DIGEST": '""'})
    assert digest_trigger(settings) is None
    jobs = Jobs(settings, None, {}, Metrics())
    ids = [job.id for job in build_scheduler(settings, jobs).get_jobs()]
    assert {*(f"poll:{n}" for n in settings.enabled_sources()), "deliver"} <= set(ids)
    assert "digest" not in ids and "digest:catch-up" not in ids


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(fresh_db):
    at = MONDAY_9_BERLIN - timedelta(days=30)
    quotes = [Quote("litellm", "openai", "gpt-4o", at, Decimal("5"), Decimal("15")), Quote("litellm", "openai", "gpt-4o-mini", at, Decimal("0.15"), Decimal("0.6"))]
    prices.record(fresh_db, polls.Poll("litellm", at, at, at), quotes)
    return fresh_db


def jobs_for(db, fake_slack, fake_discord, clock, **environ) -> Jobs:
    path = db.execute("PRAGMA database_list").fetchone()[2]  # the digest is built on its own connection
    settings = load(environ={"DEFLATION_WATCH_TIMEZONE": "Europe/Berlin", **environ}, db=path)
    adapters = {
        "slack": SlackAdapter(fake_slack.token, api_url=fake_slack.api_url, backoff=0.01, max_wait=0.5),
        "discord": DiscordAdapter(fake_discord.bot_token, api_url=fake_discord.api_url, backoff=0.01, max_wait=0.5),
    }
    return Jobs(settings, db, adapters, Metrics(), clock=clock)


def subscribe(db, channel: str, at: datetime) -> None:
    with transaction(db):
        digests.enable(db, channel, at, "U1")


def slack_posts(fake_slack, channel: str) -> list[dict]:
    return [m for m in fake_slack.messages(channel) if "blocks" in m]


def test_the_digest_posts_text_and_chart_to_both_platforms(db, fake_slack, fake_discord):
    subscribe(db, "slack:C1", MONDAY_9_BERLIN - timedelta(days=2))
    subscribe(db, "discord:1500000000000000002", MONDAY_9_BERLIN - timedelta(days=2))
    jobs = jobs_for(db, fake_slack, fake_discord, Clock(MONDAY_9_BERLIN + timedelta(seconds=1)))
    outcomes = asyncio.run(jobs.digest())
    assert [(channel, sent.ok) for channel, sent in outcomes] == [("discord:1500000000000000002", True), ("slack:C1", True)]

    (post,) = slack_posts(fake_slack, "C1")
    assert post["blocks"][0]["text"]["text"] == "Deflation Watch — week to 2026-01-05"
    assert "gpt-4-class" in "\n".join(b.get("text", {}).get("text", "") for b in post["blocks"] if b["type"] == "section")
    (upload,) = fake_slack.uploads.values()
    assert upload.channel == "C1" and upload.data.startswith(b"\x89PNG") and upload.filename.startswith("deflation-watch-2026-01-05")

    (message,) = fake_discord.messages["1500000000000000002"]
    assert message["embeds"][0]["title"] == "Deflation Watch — week to 2026-01-05"
    assert message["attachments"][0]["filename"].endswith(".png")
    (call,) = fake_discord.created()
    assert call.files[0].data.startswith(b"\x89PNG")
    assert [row["state"] for row in digests.posts(db)] == ["sent", "sent"]


def test_the_digest_posts_text_and_chart_to_a_discord_webhook_with_no_bot(db, fake_slack, fake_discord):
    subscribe(db, "discord:webhook", MONDAY_9_BERLIN - timedelta(days=2))
    jobs = jobs_for(db, fake_slack, fake_discord, Clock(MONDAY_9_BERLIN + timedelta(seconds=1)))
    webhook = fake_discord.webhook_url("1200000000000000001", "hook-token")
    jobs.adapters["discord"] = DiscordAdapter(webhook_url=webhook, backoff=0.01, max_wait=0.5)  # no bot token
    assert [(channel, sent.ok) for channel, sent in asyncio.run(jobs.digest())] == [("discord:webhook", True)]

    (call,) = fake_discord.created()
    assert call.route == "execute_webhook" and call.query == {"wait": "true"} and "Authorization" not in call.headers
    assert call.files[0].data.startswith(b"\x89PNG")
    (message,) = fake_discord.messages["1200000000000000001"]
    assert message["embeds"][0]["title"] == "Deflation Watch — week to 2026-01-05"
    assert "gpt-4-class" in message["embeds"][0].get("description", "") + str(message["embeds"])
    assert message["attachments"][0]["filename"].endswith(".png")
    assert message["embeds"][-1]["image"]["url"] == f"attachment://{message['attachments'][0]['filename']}"
    assert [(row["channel"], row["state"]) for row in digests.posts(db)] == [("discord:webhook", "sent")]
    assert asyncio.run(jobs.digest()) == []  # the slot is posted once


def test_a_slot_is_posted_once_across_restarts(db, fake_slack, fake_discord):
    subscribe(db, "slack:C1", MONDAY_9_BERLIN - timedelta(days=2))
    clock = Clock(MONDAY_9_BERLIN)
    asyncio.run(jobs_for(db, fake_slack, fake_discord, clock).digest())
    clock.now += timedelta(hours=2)
    assert asyncio.run(jobs_for(db, fake_slack, fake_discord, clock).digest()) == []  # a restart, the same slot
    assert len(slack_posts(fake_slack, "C1")) == 1
    clock.now += timedelta(days=7)
    asyncio.run(jobs_for(db, fake_slack, fake_discord, clock).digest())  # next week's
    assert len(slack_posts(fake_slack, "C1")) == 2


def test_a_digest_on_the_wire_when_the_bot_died_is_posted_once(db, fake_slack, fake_discord):
    """Killed while the post is held by Slack: the restart leaves the slot alone for `in_flight`,
    then finds the landed post in the channel's history and records it sent."""
    subscribe(db, "slack:C1", MONDAY_9_BERLIN - timedelta(days=2))
    clock = Clock(MONDAY_9_BERLIN + timedelta(seconds=1))
    jobs = jobs_for(db, fake_slack, fake_discord, clock)
    dying = DiesMidSend(jobs.adapters["slack"], fake_slack, "chat.postMessage")
    jobs.adapters["slack"] = dying
    with pytest.raises(SystemExit):
        asyncio.run(jobs.digest())
    assert [(row["state"], row["attempts"]) for row in digests.posts(db)] == [("sending", 0)]

    clock.now += timedelta(seconds=1)
    restarted = jobs_for(db, fake_slack, fake_discord, clock)
    assert asyncio.run(restarted.digest()) == []  # the post may still be landing
    dying.orphan.join(10)
    clock.now += restarted.settings.alerts.in_flight
    [(channel, sent)] = asyncio.run(restarted.digest())
    assert channel == "slack:C1" and sent.ok
    assert len(slack_posts(fake_slack, "C1")) == 1 and len(fake_slack.uploads) == 1
    assert [(row["state"], row["attempts"]) for row in digests.posts(db)] == [("sent", 1)]


def test_a_bot_down_all_monday_posts_the_digest_once_when_back(db, fake_slack, fake_discord):
    subscribe(db, "slack:C1", MONDAY_9_BERLIN - timedelta(days=3))
    subscribe(db, "slack:LATE", MONDAY_9_BERLIN + timedelta(hours=20))  # joined after the slot: waits for the next
    back = Clock(MONDAY_9_BERLIN + timedelta(days=1, hours=3))
    jobs = jobs_for(db, fake_slack, fake_discord, back)
    assert [channel for channel, _ in asyncio.run(jobs.digest())] == ["slack:C1"]
    assert asyncio.run(jobs.digest()) == []  # the catch-up job's next round
    assert len(slack_posts(fake_slack, "C1")) == 1 and slack_posts(fake_slack, "LATE") == []
    assert slack_posts(fake_slack, "C1")[0]["blocks"][0]["text"]["text"] == "Deflation Watch — week to 2026-01-05"


def test_a_failed_post_is_retried_and_still_shown_once(db, fake_slack, fake_discord):
    subscribe(db, "slack:C1", MONDAY_9_BERLIN - timedelta(days=2))
    subscribe(db, "slack:GONE", MONDAY_9_BERLIN - timedelta(days=2))
    fake_slack.server_error(times=5, route="chat.postMessage")
    fake_slack.fail_with("channel_not_found", route="conversations.history", times=10)
    clock = Clock(MONDAY_9_BERLIN)
    jobs = jobs_for(db, fake_slack, fake_discord, clock)
    first = dict(asyncio.run(jobs.digest()))
    assert not first["slack:C1"].ok or not first["slack:GONE"].ok
    for _ in range(3):
        clock.now += timedelta(minutes=5)
        asyncio.run(jobs.digest())
    states = {row["channel"]: row["state"] for row in digests.posts(db)}
    assert states["slack:C1"] == "sent"
    assert len(slack_posts(fake_slack, "C1")) == 1


def test_a_channel_on_a_platform_this_process_lacks_waits(db, fake_slack, fake_discord):
    subscribe(db, "teams:T1", MONDAY_9_BERLIN - timedelta(days=2))
    assert asyncio.run(jobs_for(db, fake_slack, fake_discord, Clock(MONDAY_9_BERLIN)).digest()) == []
    assert digests.posts(db) == []


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DEFLATION_WATCH_SCHEDULE__DIGEST": "0 25 * * mon"}, "schedule.digest must be a crontab"),
        ({"DEFLATION_WATCH_SCHEDULE__DIGEST": "mondays"}, "schedule.digest must be a crontab"),
        ({"DEFLATION_WATCH_TIMEZONE": "Mars/Olympus"}, "timezone must be an IANA zone"),
        ({"DEFLATION_WATCH_SCHEDULE__DELIVER_EVERY": "often"}, "schedule.deliver_every must be a duration"),
        ({"DEFLATION_WATCH_SCHEDULE__CRON": "x"}, "schedule.cron: unknown key"),
    ],
)
def test_a_bad_schedule_stops_start_up(environ, message):
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load(environ=environ)


def test_the_jobs_and_their_misfire_rules():
    settings = load(environ={"DEFLATION_WATCH_SCHEDULE__DIGEST": "30 8 * * fri", "DEFLATION_WATCH_TIMEZONE": "America/New_York"})
    scheduler = build_scheduler(settings, Jobs(settings, None, {}, Metrics()))

    async def started() -> dict:  # job defaults apply once the scheduler starts
        scheduler.start(paused=True)
        found = {job.id: job for job in scheduler.get_jobs()}
        scheduler.shutdown(wait=False)
        return found

    jobs = asyncio.run(started())
    assert {*(f"poll:{n}" for n in settings.enabled_sources()), "deliver", "digest", "digest:catch-up"} <= set(jobs)
    assert all(job.coalesce and job.max_instances == 1 for job in jobs.values())
    assert jobs["poll:litellm"].misfire_grace_time == 6 * 3600
    assert str(jobs["digest"].trigger.timezone) == "America/New_York"
    assert str(scheduler.timezone) == "UTC"


def test_the_example_config_documents_the_schedule():
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "deploy" / "deflation-watch.example.toml"
    text = example.read_text().split("[schedule]")[1]
    assert '\ndigest = "0 9 * * mon"' in text and '\ndeliver_every = "5s"' in text
    assert load(example, environ={}).schedule == load(environ={}).schedule


def test_the_slack_manifest_declares_the_command_and_scopes():
    from pathlib import Path

    manifest = (Path(__file__).resolve().parent.parent / "deploy" / "slack-app-manifest.yml").read_text()
    assert "command: /deflation" in manifest and "socket_mode_enabled: true" in manifest
    for scope in ("commands", "chat:write", "files:write", "channels:history", "groups:history"):
        assert f"      - {scope} " in manifest, scope
    assert "/slack/events" in manifest  # the HTTP variant's URL


def test_a_deferred_poll_is_no_failure_and_the_next_poll_waits_for_retry_after(tmp_path, source_server):
    """A 429 with Retry-After is one failed poll; the job is moved to the time the upstream
    named, and a poll asked for before then is `deferred`: counted as such, not as a failure."""
    source_server.serve("/litellm.json", b"slow down", status=429, headers={"Retry-After": "600"})
    now = datetime.now(UTC)
    settings = load(environ={"DEFLATION_WATCH_SOURCES__LITELLM__URL": source_server.url("/litellm.json"),
                             "DEFLATION_WATCH_SOURCES__LITELLM__EVERY": "1m", "DEFLATION_WATCH_BACKFILL": "false"},
                    db=tmp_path / "bot.db")
    from storage import open_db

    db = open_db(settings.db)
    metrics = Metrics()
    jobs = Jobs(settings, db, {}, metrics, clock=lambda: now)

    def count(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(f"deflation_watch_{name}_total", labels) or 0.0

    async def scenario() -> tuple:
        scheduler = build_scheduler(settings, jobs, lambda: now)
        scheduler.start(paused=True)
        try:
            (failed,) = await jobs.poll("litellm")
            moved = scheduler.get_job("poll:litellm").next_run_time
            (deferred,) = await jobs.poll("litellm")  # asked again early (a restart, a manual run)
            return failed, moved, deferred, scheduler.get_job("poll:litellm").next_run_time
        finally:
            scheduler.shutdown(wait=False)
            await jobs.drain(5)

    failed, moved, deferred, still = asyncio.run(scenario())
    db.close()
    assert failed.status == "failed" and failed.retry_at is not None
    assert abs((failed.retry_at - now).total_seconds() - 600) < 5
    assert moved == failed.retry_at == still  # the next poll is when the upstream said, not in a minute
    assert deferred.status == "deferred" and deferred.retry_at == failed.retry_at
    assert count("poll_failures", source="litellm") == 1  # the deferral is not a second failure
    assert count("polls", source="litellm", status="deferred") == 1
    assert len(source_server.requests) == 1  # the deferred poll asked the upstream nothing
