"""`deflation-watch ask` and `deflation-watch discord register` through Typer's runner, and the
chat platforms' environment as `run` reads it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot import cli_run  # noqa: F401  (registers the commands on the app)
from bot.app import ChatEnv
from bot.cli import app
from bot.errors import ConfigError
from storage import digests, open_db

runner = CliRunner()


def test_ask_prints_the_card_and_a_mistake_exits_1(tmp_path):
    db = str(tmp_path / "ask.db")
    done = runner.invoke(app, ["ask", "margin 40 14", "--db", db])
    assert done.exit_code == 0, done.output
    assert "A $40 seat with $14 of inference per seat" in done.output and "89.5 %" in done.output
    wrong = runner.invoke(app, ["ask", "pricee gpt-4o", "--db", db])
    assert wrong.exit_code == 1 and "Did you mean `price`?" in wrong.output


def test_ask_acts_in_the_channel_given_and_the_terminal_is_an_admin(tmp_path, monkeypatch):
    db = tmp_path / "ask.db"
    monkeypatch.setenv("DEFLATION_WATCH_ADMINS", '["U_SOMEONE_ELSE"]')
    done = runner.invoke(app, ["ask", "subscribe digest=only", "--channel", "discord:4567", "--db", str(db)])
    assert done.exit_code == 0, done.output
    opened = open_db(db)
    assert [c.channel for c in digests.channels(opened)] == ["discord:4567"]
    opened.close()
    assert runner.invoke(app, ["ask", "subscriptions", "--channel", "nowhere", "--db", str(db)]).exit_code == 2


def test_discord_register_puts_the_command_globally_or_in_a_guild(fake_discord, monkeypatch):
    monkeypatch.setenv("DISCORD_APPLICATION_ID", fake_discord.application_id)
    monkeypatch.setenv("DISCORD_BOT_TOKEN", fake_discord.bot_token)
    monkeypatch.setenv("DISCORD_API_URL", fake_discord.api_url)
    done = runner.invoke(app, ["discord", "register", "--guild", "1600000000000000003"])
    assert done.exit_code == 0, done.output
    assert "registered /deflation in guild 1600000000000000003" in done.output
    assert [c["name"] for c in fake_discord.commands["1600000000000000003"]] == ["deflation"]
    assert runner.invoke(app, ["discord", "register"]).exit_code == 0
    assert None in fake_discord.commands
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "wrong")
    refused = runner.invoke(app, ["discord", "register"])
    assert refused.exit_code == 2 and "check DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN" in refused.output


def test_discord_register_needs_its_credentials(monkeypatch):
    monkeypatch.delenv("DISCORD_APPLICATION_ID", raising=False)
    done = runner.invoke(app, ["discord", "register"])
    assert done.exit_code == 2 and "set DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN" in done.output


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)"),
        ({"SLACK_SIGNING_SECRET": "s"}, "set SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"}, "starting with xapp-"),
        ({"DISCORD_PUBLIC_KEY": "abc", "DISCORD_APPLICATION_ID": "1"}, "64 hex digits"),
        ({"DISCORD_PUBLIC_KEY": "00" * 32}, "set DISCORD_APPLICATION_ID too"),
        ({"DISCORD_WEBHOOK_URL": "discord:webhook"}, "DISCORD_WEBHOOK_URL must be a channel webhook's URL"),
        ({"DISCORD_WEBHOOK_URL": "https://discord.com/channels/1/2"}, "https://discord.com/api/webhooks/ID/TOKEN"),
    ],
)
def test_half_configured_platforms_fail_at_start_up(environ, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ChatEnv.from_environ(environ)


def test_the_platforms_configured():
    env = ChatEnv.from_environ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/t0k3n", "SLACK_API_URL": " "})
    assert env.slack and env.discord and env.slack_api_url is None
    assert not ChatEnv.from_environ({}).slack and not ChatEnv.from_environ({}).discord


def test_run_refuses_a_half_configured_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    done = runner.invoke(app, ["run", "--db", str(tmp_path / "x.db")])
    assert done.exit_code == 2 and "SLACK_SIGNING_SECRET" in done.output
