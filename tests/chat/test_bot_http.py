"""The running bot over real HTTP on loopback: slash commands signed exactly as Slack (HMAC v0)
and Discord (Ed25519) sign them are answered; forged, stale or unsigned ones get 401 and run
nothing; PING gets PONG; /healthz and /metrics report."""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import urlencode

import pytest
from nacl.signing import SigningKey

from bot.app import ChatEnv
from storage import digests, open_db, subscriptions
from tests.chat.bot_server import BotServer, both_platforms, quiet_settings, wait_for
from tests.fakes import discord_headers, slack_headers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
KEY = SigningKey(bytes(range(32)))
APP_ID = "1100000000000000001"


@pytest.fixture
def bot(tmp_path, fake_slack, fake_discord):
    env = both_platforms(fake_slack, fake_discord, SECRET, KEY, APP_ID)
    with BotServer(quiet_settings(tmp_path), env) as server:
        yield server


def fingerprint(server: BotServer) -> str:
    db = open_db(server.settings.db)
    try:
        return hashlib.sha256("\n".join(db.conn.iterdump()).encode()).hexdigest()
    finally:
        db.close()


def stored_subscriptions(server: BotServer) -> list[str]:
    db = open_db(server.settings.db)
    try:
        return [s.channel for s in subscriptions.subscriptions(db)] + [f"digest {c.channel}" for c in digests.channels(db)]
    finally:
        db.close()


# --- Slack ----------------------------------------------------------------------------------------


def slash(fake_slack, text: str, channel: str = "C0SLACK", hook: str = "T0001/1/abc") -> bytes:
    return urlencode({
        "token": "deprecated-verification-token", "team_id": "T0001", "team_domain": "test", "channel_id": channel,
        "channel_name": "prices", "user_id": "U0ALICE", "user_name": "alice", "command": "/deflation", "text": text,
        "api_app_id": "A0001", "response_url": fake_slack.response_url(hook), "trigger_id": "1.2.3",
    }).encode()


def post_slack(bot: BotServer, body: bytes, headers: dict[str, str]):
    return bot.post("/slack/events", body, headers, "application/x-www-form-urlencoded")


def test_a_signed_slack_command_is_acked_then_answered_through_its_response_url(bot, fake_slack):
    body = slash(fake_slack, "help")
    began = time.monotonic()
    response = post_slack(bot, body, slack_headers(SECRET, body))
    assert response.status_code == 200 and time.monotonic() - began < 3
    (answer,) = wait_for(lambda: fake_slack.responses.get("T0001/1/abc"), what="the reply")
    assert answer["response_type"] == "in_channel"
    assert answer["blocks"][0]["text"]["text"] == "Deflation Watch commands"


def test_a_slack_mistake_is_answered_to_the_asker_only(bot, fake_slack):
    body = slash(fake_slack, "pricee gpt-4o")
    assert post_slack(bot, body, slack_headers(SECRET, body)).status_code == 200
    (answer,) = wait_for(lambda: fake_slack.responses.get("T0001/1/abc"), what="the reply")
    assert answer["response_type"] == "ephemeral"
    assert "Did you mean `price`?" in json.dumps(answer)


def test_slack_subscribe_stores_this_channels_subscription(bot, fake_slack):
    body = slash(fake_slack, "subscribe providers=openai min=20%")
    assert post_slack(bot, body, slack_headers(SECRET, body)).status_code == 200
    wait_for(lambda: fake_slack.responses.get("T0001/1/abc"), what="the reply")
    assert stored_subscriptions(bot) == ["slack:C0SLACK", "digest slack:C0SLACK"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: slack_headers("not-the-secret", body), id="forged"),
        pytest.param(lambda body: slack_headers(SECRET, body, timestamp=int(time.time()) - 301), id="stale"),
        pytest.param(lambda body: slack_headers(SECRET, body, timestamp=int(time.time()) + 301), id="from-the-future"),
        pytest.param(lambda body: slack_headers(SECRET, body + b"&text=unsubscribe"), id="tampered"),
        pytest.param(lambda body: {}, id="unsigned"),
        pytest.param(lambda body: {"X-Slack-Request-Timestamp": str(int(time.time()))}, id="no-signature"),
    ],
)
def test_an_unverified_slack_request_is_refused_and_runs_nothing(bot, fake_slack, headers):
    before = fingerprint(bot)
    body = slash(fake_slack, "subscribe")
    response = post_slack(bot, body, headers(body))
    assert response.status_code == 401
    time.sleep(0.3)  # a reply, had anything run, would be on its way by now
    assert fake_slack.responses == {} and fake_slack.calls == []
    assert fingerprint(bot) == before


def test_a_slack_chart_follows_the_ack_as_an_upload_to_the_channel(bot, fake_slack):
    body = slash(fake_slack, "digest")
    began = time.monotonic()
    assert post_slack(bot, body, slack_headers(SECRET, body)).status_code == 200
    assert time.monotonic() - began < 3
    (answer,) = wait_for(lambda: fake_slack.responses.get("T0001/1/abc"), timeout=60, what="the digest")
    assert answer["blocks"][0]["text"]["text"].startswith("Deflation Watch — week to")
    upload = wait_for(lambda: [u for u in fake_slack.uploads.values() if u.channel == "C0SLACK"], what="the chart")
    assert upload[0].data.startswith(b"\x89PNG")


# --- Discord --------------------------------------------------------------------------------------


def interaction(kind: int = 2, sub: str = "help", options: list | None = None, token: str = "itoken") -> bytes:
    payload = {"type": kind, "id": "1300000000000000001", "application_id": APP_ID, "token": token, "version": 1}
    if kind == 2:
        payload |= {
            "channel_id": "1500000000000000002", "guild_id": "1600000000000000003",
            "member": {"user": {"id": "1700000000000000004", "username": "bob"}},
            "data": {"id": "1", "name": "deflation", "type": 1, "options": [{"type": 1, "name": sub, "options": options or []}]},
        }
    return json.dumps(payload).encode()


def post_discord(bot: BotServer, body: bytes, headers: dict[str, str]):
    return bot.post("/discord/interactions", body, headers, "application/json")


def test_discord_ping_gets_pong(bot):
    body = interaction(kind=1)
    response = post_discord(bot, body, discord_headers(KEY, body))
    assert response.status_code == 200 and response.json() == {"type": 1}


def test_a_quick_discord_command_is_answered_in_the_response(bot, fake_discord):
    body = interaction(sub="subscribe", options=[{"type": 3, "name": "filters", "value": "kinds=cut digest=no"}])
    response = post_discord(bot, body, discord_headers(KEY, body))
    assert response.status_code == 200
    answer = response.json()
    assert answer["type"] == 4 and answer["data"]["embeds"][0]["title"] == "Subscribed this channel"
    assert "flags" not in answer["data"]
    assert stored_subscriptions(bot) == ["discord:1500000000000000002"]


def test_a_discord_mistake_is_ephemeral(bot):
    body = interaction(sub="unmute", options=[{"type": 3, "name": "id", "value": "seven"}])
    answer = post_discord(bot, body, discord_headers(KEY, body)).json()
    assert answer["type"] == 4 and answer["data"]["flags"] == 64


def test_a_discord_chart_is_deferred_then_filled_in(bot, fake_discord):
    body = interaction(sub="digest", token="digest-token")
    began = time.monotonic()
    response = post_discord(bot, body, discord_headers(KEY, body))
    assert response.json() == {"type": 5} and time.monotonic() - began < 3
    original = wait_for(lambda: fake_discord.originals.get("digest-token"), timeout=60, what="the filled-in answer")
    assert original["embeds"][0]["title"].startswith("Deflation Watch — week to")
    assert original["attachments"][0]["filename"].endswith(".png")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: discord_headers(SigningKey(b"\x07" * 32), body), id="forged"),
        pytest.param(lambda body: discord_headers(KEY, body, timestamp=str(int(time.time()) - 301)), id="stale"),
        pytest.param(lambda body: discord_headers(KEY, body + b" "), id="tampered"),
        pytest.param(lambda body: {}, id="unsigned"),
        pytest.param(lambda body: {"X-Signature-Ed25519": "00" * 64, "X-Signature-Timestamp": "soon"}, id="garbage"),
    ],
)
@pytest.mark.parametrize("kind", [1, 2])
def test_an_unverified_discord_request_is_refused_and_runs_nothing(bot, fake_discord, headers, kind):
    before = fingerprint(bot)
    body = interaction(kind=kind, sub="subscribe")
    response = post_discord(bot, body, headers(body))
    assert response.status_code == 401
    time.sleep(0.2)
    assert fake_discord.calls == [] and fingerprint(bot) == before


# --- health and metrics ---------------------------------------------------------------------------


def test_healthz_and_metrics(bot, fake_slack):
    health = bot.post("/slack/events", b"", {}, "text/plain")  # unsigned: 401, counted nowhere
    assert health.status_code == 401
    import httpx

    report = httpx.get(bot.url + "/healthz").json()
    assert report == {"status": "ok", "database": "ok", "scheduler": "running", "sources": {}}
    body = slash(fake_slack, "help")
    post_slack(bot, body, slack_headers(SECRET, body))
    wait_for(lambda: fake_slack.responses.get("T0001/1/abc"), what="the reply")
    metrics = httpx.get(bot.url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'deflation_watch_command_seconds_count{command="help",platform="slack"} 1.0' in metrics.text
    assert "deflation_watch_polls_total" in metrics.text or "# TYPE deflation_watch_polls counter" in metrics.text


def test_healthz_is_503_when_the_database_is_unreachable(bot, monkeypatch):
    import httpx
    import sqlite3

    def broken():
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(bot.bot, "_poll_summary", broken)
    response = httpx.get(bot.url + "/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable: OperationalError: unable to open database file"


def test_healthz_is_503_when_every_source_is_stale(tmp_path, fake_slack):
    import httpx
    from datetime import UTC, datetime
    from decimal import Decimal

    from bot.quotes import Quote
    from storage import polls, prices

    settings = quiet_settings(tmp_path, DEFLATION_WATCH_SOURCES__LITELLM__ENABLED="true", DEFLATION_WATCH_SOURCES__LITELLM__URL="http://127.0.0.1:9/",
                              DEFLATION_WATCH_SOURCES__LITELLM__EVERY="1d")
    long_ago = datetime(2025, 1, 1, tzinfo=UTC)
    db = open_db(settings.db)
    prices.record(db, polls.Poll("litellm", long_ago, long_ago, long_ago), [Quote("litellm", "openai", "o3", long_ago, Decimal(2), Decimal(8))])
    db.close()
    with BotServer(settings, ChatEnv()) as server:
        response = httpx.get(server.url + "/healthz")
        assert response.status_code == 503
        report = response.json()
        assert report["status"] == "unhealthy" and report["sources"]["litellm"]["stale"]
        assert report["sources"]["litellm"]["last_good_poll"] == "2025-01-01T00:00:00Z"
