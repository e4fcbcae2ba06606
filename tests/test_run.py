"""`deflation-watch run` as a real process against loopback fakes: a signed `/deflation
subscribe` in a channel, then a poll that cuts a price, ends in exactly one grouped message in
that channel, even when Slack answers the first post with 429; the same over Slack Socket Mode
and to a Discord webhook with no bot; SIGTERM ends it with exit 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlencode

import httpx
import pytest

from bot.sources import SOURCES
from tests.chat.bot_server import wait_for
from tests.fakes import slack_headers

SECRET = "e2e-signing-secret"


def litellm_payload(o3_input: float, o3_output: float) -> bytes:
    rows = {f"model-{i}": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "litellm_provider": "openai", "mode": "chat"} for i in range(5)}
    rows["o3"] = {"input_cost_per_token": o3_input, "output_cost_per_token": o3_output, "litellm_provider": "openai", "mode": "chat"}
    return json.dumps(rows).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bot_environ(tmp_path, source_server, fake_slack, **overrides: str | None) -> dict[str, str]:
    """The environment of a bot polling litellm at `source_server` every second, with Slack at
    `fake_slack` in HTTP mode (or no Slack for None); `overrides` set variables, or with None
    remove them."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DEFLATION_WATCH_", "SLACK_", "DISCORD_"))}
    env |= {f"DEFLATION_WATCH_SOURCES__{name.upper().replace('-', '_')}__ENABLED": "false" for name in SOURCES if name != "litellm"}
    env |= {
        "DEFLATION_WATCH_DB": str(tmp_path / "bot.db"),
        "DEFLATION_WATCH_BACKFILL": "false",
        "DEFLATION_WATCH_SOURCES__LITELLM__URL": source_server.url("/litellm.json"),
        "DEFLATION_WATCH_SOURCES__LITELLM__EVERY": "1s",
        "DEFLATION_WATCH_ALERTS__GROUP_WAIT": "1s",
        "DEFLATION_WATCH_SCHEDULE__DELIVER_EVERY": "1s",
    }
    if fake_slack is not None:
        env |= {"SLACK_BOT_TOKEN": fake_slack.token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake_slack.api_url}
    env |= overrides
    return {name: value for name, value in env.items() if value is not None}


def start(tmp_path, source_server, fake_slack, port: int, **overrides: str | None) -> subprocess.Popen:
    """`deflation-watch run` on `port`, with `bot_environ`; its output goes to bot.log."""
    env = bot_environ(tmp_path, source_server, fake_slack, **overrides)
    log = (tmp_path / "bot.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)


def metric(base: str, name: str) -> float:
    for line in httpx.get(base + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("rate_limited", [False, True], ids=["plain", "429-first"])
def test_subscribe_then_a_price_cut_is_one_grouped_message(tmp_path, source_server, fake_slack, rate_limited):
    source_server.serve("/litellm.json", litellm_payload(1e-05, 4e-05))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bot = start(tmp_path, source_server, fake_slack, port)
    try:
        wait_for(lambda: _healthy(base), timeout=60, what="the bot to serve and poll")
        body = urlencode({"command": "/deflation", "text": "subscribe", "channel_id": "C0ALERTS", "user_id": "U0ADMIN",
                          "team_id": "T0001", "response_url": fake_slack.response_url("T0001/9/sub")}).encode()
        answer = httpx.post(base + "/slack/events", content=body, timeout=10,
                            headers={"Content-Type": "application/x-www-form-urlencoded", **slack_headers(SECRET, body)})
        assert answer.status_code == 200
        (reply,) = wait_for(lambda: fake_slack.responses.get("T0001/9/sub"), what="the subscribe reply")
        assert "Subscribed this channel" in json.dumps(reply)

        if rate_limited:
            fake_slack.rate_limit("1", route="chat.postMessage")
        source_server.serve("/litellm.json", litellm_payload(5e-06, 2e-05))  # o3 input and output halved
        wait_for(lambda: fake_slack.messages("C0ALERTS"), timeout=30, what="the alert message")
        time.sleep(3)  # several more polls and delivery rounds: nothing else may arrive

        (message,) = fake_slack.messages("C0ALERTS")
        text = json.dumps(message["blocks"])
        assert "o3" in text and "input" in text and "output" in text  # both cuts, one message
        assert len(fake_slack.posted()) == 1
        if rate_limited:
            assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [429, 200]
        assert metric(base, 'deflation_watch_deliveries_total{platform="slack",state="sent"}') == 1
        assert metric(base, 'deflation_watch_alerts_total{source="litellm"}') >= 2
    finally:
        bot.send_signal(signal.SIGTERM)
        code = bot.wait(60)
    assert code == 0, (tmp_path / "bot.log").read_text()


def _healthy(base: str) -> bool:
    try:
        report = httpx.get(base + "/healthz", timeout=2).json()
    except (httpx.TransportError, ValueError):
        return False
    return report["status"] == "ok" and report["sources"]["litellm"]["last_good_poll"] is not None


def test_sigterm_during_a_poll_lets_it_finish_and_exits_0(tmp_path, source_server, fake_slack):
    import sqlite3

    source_server.serve("/litellm.json", litellm_payload(1e-05, 4e-05), delay=3.0)
    port = free_port()
    bot = start(tmp_path, source_server, fake_slack, port)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}"), timeout=60, what="the bot to serve")
        time.sleep(0.5)  # the first poll is waiting for the slow upstream now
    finally:
        bot.send_signal(signal.SIGTERM)
        code = bot.wait(60)
    assert code == 0, (tmp_path / "bot.log").read_text()
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("SELECT source, status FROM polls").fetchall() == [("litellm", "ok")]
        assert db.execute("SELECT COUNT(*) FROM prices").fetchone()[0] == 6


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_socket_mode_subscribe_then_a_price_cut_then_sigterm_with_the_socket_open(tmp_path, source_server, fake_slack):
    import sqlite3

    socket = fake_slack.socket_mode()
    source_server.serve("/litellm.json", litellm_payload(1e-05, 4e-05))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bot = start(tmp_path, source_server, fake_slack, port, SLACK_APP_TOKEN=socket.app_token, SLACK_SIGNING_SECRET=None)
    try:
        wait_for(lambda: _healthy(base), timeout=60, what="the bot to serve, poll and connect over Socket Mode")  # "ok" needs the socket
        assert socket.live() == [0]
        envelope = socket.slash_command("subscribe", channel_id="C0SOCKET", response_url=fake_slack.response_url("T0001/20/sub"))
        (reply,) = wait_for(lambda: fake_slack.responses.get("T0001/20/sub"), what="the subscribe reply")
        assert socket.ack_delay(envelope) < 3
        assert "Subscribed this channel" in json.dumps(reply)
        with sqlite3.connect(tmp_path / "bot.db") as db:
            assert db.execute("SELECT channel, created_by FROM subscriptions").fetchall() == [("slack:C0SOCKET", "slack:U0ALICE")]

        source_server.serve("/litellm.json", litellm_payload(5e-06, 2e-05))
        wait_for(lambda: fake_slack.messages("C0SOCKET"), timeout=30, what="the alert message")
        time.sleep(3)
        (message,) = fake_slack.messages("C0SOCKET")
        assert "o3" in json.dumps(message["blocks"]) and len(fake_slack.posted()) == 1
        assert socket.live() == [0]  # one connection throughout, open when the signal comes
    finally:
        bot.send_signal(signal.SIGTERM)
        code = bot.wait(60)
    assert code == 0, (tmp_path / "bot.log").read_text()
    (connection,) = socket.connections
    assert connection.close_code == 1000 and not connection.closed_by_server  # the bot said goodbye


def test_a_discord_webhook_alone_gets_exactly_one_message_for_a_price_cut(tmp_path, source_server, fake_discord):
    """No bot token: the channel `discord:webhook` is subscribed from the terminal, and the
    alerts go to DISCORD_WEBHOOK_URL."""
    hook_id, hook_token = "1200000000000000009", "hook-secret-token"
    fake_discord.webhooks = {hook_id: hook_token}  # any other webhook is unknown
    source_server.serve("/litellm.json", litellm_payload(1e-05, 4e-05))
    environ = bot_environ(tmp_path, source_server, None, DISCORD_WEBHOOK_URL=fake_discord.webhook_url(hook_id, hook_token))
    subscribed = subprocess.run([sys.executable, "-m", "bot", "ask", "--channel", "discord:webhook", "subscribe"],
                                env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert subscribed.returncode == 0 and "Subscribed this channel" in subscribed.stdout, subscribed.stdout + subscribed.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bot = start(tmp_path, source_server, None, port, DISCORD_WEBHOOK_URL=environ["DISCORD_WEBHOOK_URL"])
    try:
        wait_for(lambda: _healthy(base), timeout=60, what="the bot to serve and poll")
        assert httpx.post(base + "/discord/interactions", content=b"{}", timeout=5).status_code == 404  # no public key: no route
        source_server.serve("/litellm.json", litellm_payload(5e-06, 2e-05))  # o3 input and output halved
        wait_for(lambda: fake_discord.messages.get(hook_id), timeout=30, what="the alert on the webhook")
        time.sleep(3)  # several more polls and delivery rounds: nothing else may arrive

        (message,) = fake_discord.messages[hook_id]
        text = json.dumps(message["embeds"])
        assert "o3" in text and "input" in text and "output" in text  # both cuts, one message
        (call,) = fake_discord.created()
        assert call.route == "execute_webhook" and call.query == {"wait": "true"} and "Authorization" not in call.headers
        assert "nonce" not in call.json and call.json["allowed_mentions"] == {"parse": []}
        assert metric(base, 'deflation_watch_deliveries_total{platform="discord",state="sent"}') == 1
    finally:
        bot.send_signal(signal.SIGTERM)
        code = bot.wait(60)
    assert code == 0, (tmp_path / "bot.log").read_text()
    assert hook_token not in (tmp_path / "bot.log").read_text()
