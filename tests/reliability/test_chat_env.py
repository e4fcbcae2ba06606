"""The chat platforms' secrets (`ChatEnv`) are `bot.secrets.Secret`s, read from `NAME` or from
the file named by `NAME_FILE`, shown nowhere, and what the running bot verifies and sends with."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from bot import secrets
from bot.app import ChatEnv
from bot.errors import ConfigError
from bot.secrets import Secret
from tests.chat.bot_server import BotServer, quiet_settings, wait_for
from tests.fakes import slack_headers

SIGNING = "file-signing-secret-0123456789abcdef"


def test_every_secret_is_a_secret_and_may_come_from_a_file(tmp_path):
    files = {}
    for name, value in (("SLACK_BOT_TOKEN", "xoxb-from-a-file-123456"), ("SLACK_SIGNING_SECRET", SIGNING),
                        ("DISCORD_BOT_TOKEN", "discord-bot-token-from-file"),
                        ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/webhook-token-from-a-file-0123456789")):
        path = tmp_path / name.lower()
        path.write_text(value + "\n")
        files[f"{name}_FILE"] = str(path)
    env = ChatEnv.from_environ({**files, "SLACK_APP_TOKEN": "xapp-1-from-the-environment"})
    for name in secrets.SECRET_ENV:
        assert isinstance(getattr(env, name.lower()), Secret), name
    assert env.reveal("slack_bot_token") == "xoxb-from-a-file-123456" and env.reveal("slack_signing_secret") == SIGNING
    assert env.reveal("slack_app_token") == "xapp-1-from-the-environment"
    assert env.reveal("discord_webhook_url").endswith("webhook-token-from-a-file-0123456789")
    shown = repr(env) + str(env)
    for value in ("xoxb-from-a-file", SIGNING, "discord-bot-token", "webhook-token-from-a-file", "xapp-1-from"):
        assert value not in shown
    assert env.slack and env.discord
    # A plain string given by hand becomes a Secret too.
    assert isinstance(ChatEnv(slack_bot_token="xoxb-by-hand-0000").slack_bot_token, Secret)


def test_an_unreadable_secret_file_names_the_file_not_a_value(tmp_path):
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN: cannot read the secret file .*missing"):
        ChatEnv.from_environ({"SLACK_BOT_TOKEN_FILE": str(tmp_path / "missing")})


def test_checks_still_apply_to_secrets_from_files(tmp_path):
    (tmp_path / "app").write_text("xoxb-not-an-app-token\n")
    with pytest.raises(ConfigError, match="starting with xapp-"):
        ChatEnv.from_environ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN_FILE": str(tmp_path / "app")})


def test_the_running_bot_verifies_with_a_signing_secret_read_from_a_file(tmp_path, fake_slack):
    (tmp_path / "signing").write_text(SIGNING + "\n")
    (tmp_path / "token").write_text(fake_slack.token + "\n")
    env = ChatEnv.from_environ({"SLACK_SIGNING_SECRET_FILE": str(tmp_path / "signing"), "SLACK_BOT_TOKEN_FILE": str(tmp_path / "token"),
                                "SLACK_API_URL": fake_slack.api_url})
    with BotServer(quiet_settings(tmp_path), env) as server:
        body = urlencode({"team_id": "T0001", "channel_id": "C0", "user_id": "U0", "command": "/deflation", "text": "help",
                          "response_url": fake_slack.response_url("T0001/1/f")}).encode()
        assert server.post("/slack/events", body, slack_headers("wrong-secret-0123456789", body), "application/x-www-form-urlencoded").status_code == 401
        assert server.post("/slack/events", body, slack_headers(SIGNING, body), "application/x-www-form-urlencoded").status_code == 200
        wait_for(lambda: fake_slack.responses.get("T0001/1/f"), what="the reply")
