"""Secrets come from the environment or a file and never show: not in logs (at any level, in
text or JSON, tracebacks included), not in `--json` output, not in error replies or lines."""

from __future__ import annotations

import asyncio
import io
import json
import pickle
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from bot import commands, delivery, logs, pipeline, secrets
from bot.chat.base import Delivery
from bot.cli import app
from bot.config import load
from bot.errors import ConfigError
from bot.sources import SOURCES
from storage import open_db, polls, subscriptions, transaction
from tests.reliability.catalogs import render, rows

WEBHOOK_TOKEN = "wh-token-SECRET-abcdefghijklmnopqrstuvwxyz012345"
TOKENS = {
    "SLACK_BOT_TOKEN": "xoxb-1111-2222-TESTSECRETbottoken",
    "SLACK_SIGNING_SECRET": "8f3c0e7d6b5a4f3e2d1c0b9a8f7e6d5c",
    "SLACK_APP_TOKEN": "xapp-1-A1111-2222-TESTSECRETapptoken",
    "DISCORD_BOT_TOKEN": "MTIzNDU2.TESTSECRET.discord-bot-token",
    "DISCORD_WEBHOOK_URL": f"https://discord.com/api/webhooks/123456789012345678/{WEBHOOK_TOKEN}",
}
T0 = datetime(2026, 1, 5, tzinfo=UTC)
runner = CliRunner()


def leaks(text: str) -> list[str]:
    return [name for name, value in {**TOKENS, "webhook token": WEBHOOK_TOKEN}.items() if value in text]


@pytest.fixture
def environment(monkeypatch):
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    return TOKENS


def test_a_secret_never_shows_itself():
    token = secrets.Secret(TOKENS["SLACK_BOT_TOKEN"], "SLACK_BOT_TOKEN")
    assert (repr(token), str(token), f"{token}", f"{token:>40}", "%s" % token) == ("***",) * 5
    assert f"token={token} in {[token]}" == "token=*** in [***]"
    assert token.reveal() == TOKENS["SLACK_BOT_TOKEN"]
    assert token == secrets.Secret(TOKENS["SLACK_BOT_TOKEN"]) and token != secrets.Secret("another-token-value")
    with pytest.raises(TypeError):
        pickle.dumps(token)


def test_read_from_the_environment_then_a_named_file_then_the_config(tmp_path):
    (tmp_path / "token").write_text("xoxb-from-a-file-0001\n")
    assert secrets.read("SLACK_BOT_TOKEN", environ={"SLACK_BOT_TOKEN": " xoxb-from-env-0001 "}).reveal() == "xoxb-from-env-0001"
    assert secrets.read("SLACK_BOT_TOKEN", environ={"SLACK_BOT_TOKEN_FILE": str(tmp_path / "token")}).reveal() == "xoxb-from-a-file-0001"
    assert secrets.read("SLACK_BOT_TOKEN", file=tmp_path / "token", environ={}).reveal() == "xoxb-from-a-file-0001"
    assert secrets.read("SLACK_BOT_TOKEN", environ={}) is None
    with pytest.raises(ConfigError, match=r"^SLACK_BOT_TOKEN: cannot read the secret file .*missing: FileNotFoundError$"):
        secrets.read("SLACK_BOT_TOKEN", environ={"SLACK_BOT_TOKEN_FILE": str(tmp_path / "missing")})
    assert "xoxb-from-a-file-0001" in secrets._known and "xoxb-from-env-0001" in secrets._known


@pytest.mark.parametrize("format", ["text", "json"])
def test_no_log_line_shows_a_token_whatever_logs_it(environment, format):
    """A token in a message, in an argument, in an exception's text and traceback, in an extra
    field: every one comes out masked, also through a handler that is not ours (pytest's,
    uvicorn's)."""
    import logging

    ours, foreign_out = io.StringIO(), io.StringIO()
    logs.setup(format, "debug", stream=ours)
    foreign = logging.StreamHandler(foreign_out)
    logging.getLogger().addHandler(foreign)
    log = logging.getLogger("bot.test")
    try:
        log.info("slack answered 401 for token %s", TOKENS["SLACK_BOT_TOKEN"])
        log.warning("posting to " + TOKENS["DISCORD_WEBHOOK_URL"] + "?wait=true failed", extra={"channel": f"discord:{TOKENS['DISCORD_BOT_TOKEN']}"})
        try:
            raise RuntimeError(f"Authorization: Bot {TOKENS['DISCORD_BOT_TOKEN']} refused; signing secret {TOKENS['SLACK_SIGNING_SECRET']}")
        except RuntimeError:
            log.exception("adapter raised")
        log.debug("just the webhook's token: %s", WEBHOOK_TOKEN)
    finally:
        logging.getLogger().removeHandler(foreign)
    for out in (ours, foreign_out):
        assert out.getvalue().count("***") >= 5 and leaks(out.getvalue()) == [], out.getvalue()
    if format == "json":
        lines = [json.loads(line) for line in ours.getvalue().splitlines()]
        assert [line["level"] for line in lines] == ["info", "warning", "error", "debug"]
        assert lines[1]["channel"] == "discord:***" and "RuntimeError: Authorization: Bot *** refused" in lines[2]["exc"]


def queued_alert(db, channel: str) -> None:
    with transaction(db):
        subscriptions.subscribe(db, channel, T0)
    for n, factor in enumerate(("1", "0.5")):
        at = T0 + timedelta(hours=n)
        catalog = [rows()[0].scaled(factor), *rows()[1:]]
        poll = polls.Poll(source="litellm", started_at=at, finished_at=at, observed_at=at, payload=render("litellm", catalog))
        pipeline.ingest(db, SOURCES["litellm"], poll, clock=lambda at=at: at)


class LeakyAdapter:
    """A Discord adapter failing the way a transport does: quoting the URL it posted to."""

    name = "discord"

    async def send(self, channel, cards, *, idempotency_key):
        raise ConnectionError(f"ConnectError posting to {TOKENS['DISCORD_WEBHOOK_URL']}?wait=true")


class ErrorAdapter:
    name = "discord"

    async def send(self, channel, cards, *, idempotency_key):
        return Delivery(ok=False, error=f"401 from discord with Bot {TOKENS['DISCORD_BOT_TOKEN']}", retry_after=None)


@pytest.mark.parametrize("adapter", [LeakyAdapter(), ErrorAdapter()], ids=["raising", "failing"])
def test_a_failed_delivery_stores_logs_and_reports_no_token(environment, tmp_path, adapter):
    out = io.StringIO()
    logs.setup("json", "debug", stream=out)
    db = open_db(tmp_path / "dw.db")
    queued_alert(db, "discord:123")
    [report] = asyncio.run(delivery.deliver_due(db, {"discord": adapter}, lambda: T0 + timedelta(days=1)))
    assert report.state == "retry" and "***" in report.error and leaks(report.error) == []
    stored = " ".join(row[0] for row in db.execute("SELECT last_error FROM outbox WHERE last_error IS NOT NULL"))
    assert "***" in stored and leaks(stored) == []
    assert "***" in out.getvalue() and leaks(out.getvalue()) == []


def test_no_command_output_or_error_line_shows_a_token(environment, tmp_path, source_server, monkeypatch):
    """Through the command line: a pasted token in a wrong setting, a token typed as a model
    name, a source mirror whose URL carries a token (its failure in the table, in `--json`,
    in the stored poll row); and the chat commands' error replies."""
    db_path = tmp_path / "dw.db"
    # A token pasted into the wrong variable: the config error quotes the value.
    monkeypatch.setenv("DEFLATION_WATCH_ADMINS", TOKENS["SLACK_BOT_TOKEN"])
    result = runner.invoke(app, ["poll", "--db", str(db_path)])
    assert result.exit_code == 2 and "admins must be a list" in result.stderr and "***" in result.stderr
    monkeypatch.delenv("DEFLATION_WATCH_ADMINS")

    mirror = source_server.serve(f"/litellm.json?token={TOKENS['DISCORD_BOT_TOKEN']}", b"down", status=503)
    monkeypatch.setenv("DEFLATION_WATCH_SOURCES__LITELLM__URL", mirror)
    outputs = []
    for args in (["poll", "--source", "litellm", "--json"], ["poll", "--source", "litellm"], ["--log-format", "json", "--log-level", "debug", "poll", "--source", "litellm"]):
        result = runner.invoke(app, [*args, "--db", str(db_path)])
        assert result.exit_code == 1
        outputs += [result.stdout, result.stderr]
    assert "HTTP 503 from" in outputs[0] and json.loads(outputs[0])[0]["error"].count("***") == 1
    result = runner.invoke(app, ["history", TOKENS["SLACK_APP_TOKEN"], "--db", str(db_path), "--json"])
    assert result.exit_code == 1 and "No model named '***'" in result.stderr
    outputs += [result.stdout, result.stderr]
    assert all(leaks(text) == [] for text in outputs), [leaks(text) for text in outputs]

    db = open_db(db_path)
    stored = " ".join(row[0] for row in db.execute("SELECT error FROM polls WHERE error IS NOT NULL"))
    assert "***" in stored and leaks(stored) == []
    context = commands.Context(db, load(db=db_path), user="slack:U1", channel="slack:C1")
    for text in (f"price {TOKENS['SLACK_BOT_TOKEN']}", f"history {WEBHOOK_TOKEN}", f"subscribe --model {TOKENS['DISCORD_BOT_TOKEN']} --kind nonsense", TOKENS["SLACK_SIGNING_SECRET"]):
        card = commands.answer(text, context)
        shown = json.dumps([card.title, card.lines], default=str)
        assert commands.is_error(card) and leaks(shown) == [], (text, shown)
