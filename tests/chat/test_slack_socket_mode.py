"""Slack Socket Mode over a real WebSocket on loopback: the running bot asks the fake Slack's
`apps.connections.open` (at SLACK_API_URL, with the app-level token) for a URL, connects,
acks each `slash_commands` envelope within Slack's 3 seconds and answers through its
response_url; it moves to a fresh connection when Slack asks, keeps serving HTTP and its jobs
when Slack refuses the token or is down, and closes the socket cleanly when it stops."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import httpx
import pytest

from bot.app import ChatEnv
from storage import digests, open_db, subscriptions
from tests.chat.bot_server import BotServer, quiet_settings, wait_for
from tests.fakes import FakeSlack, slack_headers


def socket_env(fake: FakeSlack, app_token: str | None = None) -> ChatEnv:
    socket = fake.socket_mode()
    return ChatEnv(slack_bot_token=fake.token, slack_app_token=app_token or socket.app_token, slack_api_url=fake.api_url)


def health(bot: BotServer) -> dict:
    return httpx.get(bot.url + "/healthz", timeout=5).json()


def test_a_command_is_acked_within_3s_and_answered_and_the_socket_closes_cleanly(tmp_path, fake_slack):
    socket = fake_slack.socket_mode()
    with BotServer(quiet_settings(tmp_path), socket_env(fake_slack)) as bot:
        wait_for(socket.live, what="the bot to connect over Socket Mode")
        (opened,) = fake_slack.calls_to("apps.connections.open")
        assert opened.verb == "POST" and opened.headers["Authorization"] == f"Bearer {socket.app_token}"
        assert wait_for(lambda: health(bot).get("slack_socket_mode") == "connected", what="/healthz to see the socket")
        assert health(bot)["status"] == "ok"

        envelope = socket.slash_command("help", response_url=fake_slack.response_url("T0001/7/help"))
        wait_for(lambda: socket.acks.get(envelope), timeout=3, what="the ack")
        assert socket.ack_delay(envelope) < 3
        assert socket.acks[envelope].payload is None  # an empty ack: the answer goes to response_url
        (answer,) = wait_for(lambda: fake_slack.responses.get("T0001/7/help"), what="the reply")
        assert answer["response_type"] == "in_channel"
        assert answer["blocks"][0]["text"]["text"] == "Deflation Watch commands"
    assert bot.exit_code == 0
    (connection,) = socket.connections
    assert not connection.open and not connection.closed_by_server and connection.close_code == 1000
    assert socket.refused == [] and [m for m in socket.received if "envelope_id" not in m] == []


def test_subscribe_over_socket_mode_lands_in_the_database(tmp_path, fake_slack):
    socket = fake_slack.socket_mode()
    with BotServer(quiet_settings(tmp_path), socket_env(fake_slack)) as bot:
        wait_for(socket.live, what="the bot to connect")
        envelope = socket.slash_command("subscribe min=20%", channel_id="C0SOCKET", response_url=fake_slack.response_url("T0001/8/sub"))
        (answer,) = wait_for(lambda: fake_slack.responses.get("T0001/8/sub"), what="the reply")
        assert socket.ack_delay(envelope) < 3
        assert answer["response_type"] == "in_channel" and "Subscribed this channel" in str(answer["blocks"])
        db = open_db(bot.settings.db)
        try:
            (sub,) = subscriptions.subscriptions(db)
            assert (sub.channel, float(sub.min_pct), sub.created_by) == ("slack:C0SOCKET", 20.0, "slack:U0ALICE")
            assert [c.channel for c in digests.channels(db)] == ["slack:C0SOCKET"]
        finally:
            db.close()


def test_a_mistake_is_acked_and_shown_to_the_asker_only(tmp_path, fake_slack):
    socket = fake_slack.socket_mode()
    with BotServer(quiet_settings(tmp_path), socket_env(fake_slack)):
        wait_for(socket.live, what="the bot to connect")
        envelope = socket.slash_command("mute gpt-4o* soon", response_url=fake_slack.response_url("T0001/9/bad"))
        (answer,) = wait_for(lambda: fake_slack.responses.get("T0001/9/bad"), what="the reply")
        assert socket.ack_delay(envelope) < 3
        assert answer["response_type"] == "ephemeral" and "is not a duration" in str(answer["blocks"])


def test_the_bot_moves_to_a_fresh_connection_when_slack_asks(tmp_path, fake_slack):
    socket = fake_slack.socket_mode()
    with BotServer(quiet_settings(tmp_path), socket_env(fake_slack)):
        wait_for(socket.live, what="the bot to connect")
        socket.request_refresh()
        wait_for(lambda: socket.live() == [1], what="the bot to reconnect on a new URL")
        assert len(fake_slack.calls_to("apps.connections.open")) == 2
        assert socket.connections[0].closed_by_server is False  # the bot hung up the old one itself
        envelope = socket.slash_command("help", response_url=fake_slack.response_url("T0001/10/again"))
        wait_for(lambda: fake_slack.responses.get("T0001/10/again"), what="the reply on the new connection")
        assert socket.acks[envelope].connection == 1 and socket.ack_delay(envelope) < 3


def test_a_refused_app_token_leaves_http_and_the_jobs_running(tmp_path, fake_slack):
    fake_slack.socket_mode()
    env = socket_env(fake_slack, app_token="xapp-1-A0DEFLATION-1-revoked")
    with BotServer(quiet_settings(tmp_path), env) as bot:
        report = wait_for(lambda: (r := health(bot)).get("slack_socket_mode", "").startswith("failed") and r, what="the refusal")
        assert report["slack_socket_mode"] == "failed: invalid_auth" and report["status"] == "degraded"
        assert report["scheduler"] == "running"
        time.sleep(1.5)  # no retrying a token Slack refused
        assert len(fake_slack.calls_to("apps.connections.open")) == 1
    assert bot.exit_code == 0


def test_slack_down_at_start_up_is_retried(tmp_path, fake_slack):
    socket = fake_slack.socket_mode()
    fake_slack.server_error(503, route="apps.connections.open")
    with BotServer(quiet_settings(tmp_path), socket_env(fake_slack)) as bot:
        assert health(bot)["status"] in ("ok", "degraded")  # HTTP answers while Socket Mode waits
        wait_for(socket.live, timeout=10, what="the bot to connect on its second try")
        assert [c.status for c in fake_slack.calls_to("apps.connections.open")] == [503, 200]
        envelope = socket.slash_command("help", response_url=fake_slack.response_url("T0001/11/late"))
        wait_for(lambda: fake_slack.responses.get("T0001/11/late"), what="the reply")
        assert socket.ack_delay(envelope) < 3
    assert bot.exit_code == 0


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_socket_mode_alone_serves_no_slack_http(tmp_path, fake_slack, signed):
    """Without a signing secret nothing that arrives over HTTP could be verified: no route, nothing run."""
    socket = fake_slack.socket_mode()
    with BotServer(quiet_settings(tmp_path), socket_env(fake_slack)) as bot:
        wait_for(socket.live, what="the bot to connect")
        body = urlencode({"command": "/deflation", "text": "subscribe", "channel_id": "C0HTTP", "user_id": "U0MALLORY",
                          "response_url": fake_slack.response_url("T0001/12/http")}).encode()
        headers = slack_headers("", body) if signed else {}
        assert bot.post("/slack/events", body, headers, "application/x-www-form-urlencoded").status_code == 404
        time.sleep(0.3)
        assert "T0001/12/http" not in fake_slack.responses
        db = open_db(bot.settings.db)
        try:
            assert subscriptions.subscriptions(db) == []
        finally:
            db.close()
