"""Admin-only commands, sent as real signed Slack and Discord requests to the running app: with
`admins` set in the configuration, anyone else is refused with a clear reply shown only to them
and nothing is written; an admin's writes record who made them (subscriptions.created_by,
digest_channels.created_by, silences.created_by, indicator readings' and events' entered_by)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from urllib.parse import urlencode

import pytest
from nacl.signing import SigningKey

from tests.chat.bot_server import BotServer, both_platforms, quiet_settings, wait_for
from tests.fakes import discord_headers, slack_headers

SECRET = "authorisation-signing-secret-0123"
KEY = SigningKey(bytes(range(32)))
APP_ID = "1100000000000000001"
SLACK_ADMIN, DISCORD_ADMIN = "U0ADMIN", "1700000000000000009"
SLACK_OTHER, DISCORD_OTHER = "U0MALLORY", "1700000000000000666"

#: Every admin-only command, as typed (Discord gets the same text through its subcommands).
ADMIN_ONLY = [
    "subscribe providers=openai min=20%",
    "unsubscribe",
    "mute gpt-4o* 1d repricing",
    "unmute 1",
    "indicator set hyperscaler-inference-mix 48% 2026Q3 from-the-call",
    "indicator event saas-gm-guide-downs ACME 80% 75% 2026-10-01",
    "indicator delete hyperscaler-inference-mix 2026Q3",
]


@pytest.fixture
def bot(tmp_path, fake_slack, fake_discord):
    env = both_platforms(fake_slack, fake_discord, SECRET, KEY, APP_ID)
    # The admin list comes from the configuration (here its environment form).
    settings = quiet_settings(tmp_path, DEFLATION_WATCH_ADMINS=json.dumps([f"slack:{SLACK_ADMIN}", DISCORD_ADMIN]))
    with BotServer(settings, env) as server:
        yield server


def rows(server: BotServer, sql: str) -> list[tuple]:
    with sqlite3.connect(server.settings.db) as db:
        return db.execute(sql).fetchall()


def fingerprint(server: BotServer) -> str:
    with sqlite3.connect(server.settings.db) as db:
        return hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()


def slack(server: BotServer, fake_slack, text: str, user: str, hook: str) -> dict:
    body = urlencode({"team_id": "T0001", "channel_id": "C0SLACK", "user_id": user, "command": "/deflation", "text": text,
                      "response_url": fake_slack.response_url(hook)}).encode()
    assert server.post("/slack/events", body, slack_headers(SECRET, body), "application/x-www-form-urlencoded").status_code == 200
    (answer,) = wait_for(lambda: fake_slack.responses.get(hook), timeout=30, what=f"the reply to {text!r}")
    return answer


def discord(server: BotServer, fake_discord, text: str, user: str, token: str) -> tuple[str, bool]:
    """(the answer's text, whether only the asker sees it)."""
    name, options = discord_options(text)
    payload = {
        "type": 2, "id": "1300000000000000001", "application_id": APP_ID, "token": token, "version": 1,
        "channel_id": "1500000000000000002", "member": {"user": {"id": user}},
        "data": {"id": "1", "name": "deflation", "type": 1, "options": [{"type": 1, "name": name, "options": options}]},
    }
    body = json.dumps(payload).encode()
    answer = server.post("/discord/interactions", body, discord_headers(KEY, body), "application/json").json()
    if answer["type"] == 4:
        return json.dumps(answer["data"]["embeds"]), answer["data"].get("flags") == 64
    original = wait_for(lambda: fake_discord.originals.get(token), timeout=30, what=f"the reply to {text!r}")
    return json.dumps(original["embeds"]), False


def discord_options(text: str) -> tuple[str, list[dict]]:
    """The subcommand and its string options for `text`, as a Discord client sends them: the
    words fill the declared options in order, the last takes the rest of the line."""
    from bot.chat.discord import DEFLATION_COMMAND

    name, _, rest = text.partition(" ")
    declared = next(s.get("options", []) for s in DEFLATION_COMMAND["options"] if s["name"] == name)
    words = rest.split(" ", max(len(declared) - 1, 0)) if rest else []
    return name, [{"type": 3, "name": option["name"], "value": word} for option, word in zip(declared, words)]


def test_discord_options_carry_the_typed_text():
    from bot.chat.discord import command_text

    for text in ADMIN_ONLY:
        name, options = discord_options(text)
        assert command_text({"options": [{"type": 1, "name": name, "options": options}]}) == text


def test_admin_only_commands_are_refused_to_others_on_both_platforms(bot, fake_slack, fake_discord):
    before = fingerprint(bot)
    for i, text in enumerate(ADMIN_ONLY):
        answer = slack(bot, fake_slack, text, SLACK_OTHER, f"T0001/{i}/no")
        assert answer["response_type"] == "ephemeral", text
        assert "Only this bot's admins" in json.dumps(answer), text
        shown, private = discord(bot, fake_discord, text, DISCORD_OTHER, f"no-{i}")
        assert "Only this bot's admins" in shown, text
        assert private or text.startswith("indicator"), text  # a deferred (slow) answer cannot turn private later
    # An admin listed with a platform (slack:U0ADMIN) is no admin under that id elsewhere.
    assert "Only this bot's admins" in discord(bot, fake_discord, "subscribe", SLACK_ADMIN, "no-x")[0]
    assert fingerprint(bot) == before


def test_an_admins_writes_record_who_made_them(bot, fake_slack, fake_discord):
    assert "Subscribed this channel" in json.dumps(slack(bot, fake_slack, "subscribe digest=yes", SLACK_ADMIN, "T0001/1/a"))
    assert "Muted" in json.dumps(slack(bot, fake_slack, "mute gpt-4o* 1d repricing", SLACK_ADMIN, "T0001/2/a"))
    slack(bot, fake_slack, "indicator set hyperscaler-inference-mix 48% 2026Q3 from-the-call", SLACK_ADMIN, "T0001/3/a")
    assert "Subscribed this channel" in discord(bot, fake_discord, "subscribe", DISCORD_ADMIN, "a-1")[0]
    assert "Muted" in discord(bot, fake_discord, "mute claude* 2h", DISCORD_ADMIN, "a-2")[0]
    discord(bot, fake_discord, "indicator event saas-gm-guide-downs ACME 80% 75% 2026-10-01", DISCORD_ADMIN, "a-3")

    assert sorted(rows(bot, "SELECT channel, created_by FROM subscriptions")) == [
        ("discord:1500000000000000002", f"discord:{DISCORD_ADMIN}"), ("slack:C0SLACK", f"slack:{SLACK_ADMIN}")]
    assert sorted(rows(bot, "SELECT channel, created_by FROM digest_channels")) == [
        ("discord:1500000000000000002", f"discord:{DISCORD_ADMIN}"), ("slack:C0SLACK", f"slack:{SLACK_ADMIN}")]
    assert sorted(rows(bot, "SELECT pattern, channel, created_by FROM silences")) == [
        ("claude*", "discord:1500000000000000002", f"discord:{DISCORD_ADMIN}"), ("gpt-4o*", "slack:C0SLACK", f"slack:{SLACK_ADMIN}")]
    assert rows(bot, "SELECT indicator, entered_by FROM indicator_readings WHERE source = 'chat'") == [
        ("hyperscaler-inference-mix", f"slack:{SLACK_ADMIN}")]
    assert [row[-1] for row in rows(bot, "SELECT company, entered_by FROM indicator_events")] == [f"discord:{DISCORD_ADMIN}"]
    # Unmute, unsubscribe and deleting a reading by the admins succeed too.
    assert "No mute #2 is in force in this channel" in json.dumps(slack(bot, fake_slack, "unmute 2", SLACK_ADMIN, "T0001/4/b"))
    assert "Unmuted" in json.dumps(slack(bot, fake_slack, "unmute 1", SLACK_ADMIN, "T0001/4/a"))
    assert "Unsubscribed" in discord(bot, fake_discord, "unsubscribe", DISCORD_ADMIN, "a-4")[0]
    assert "Deleted hyperscaler-inference-mix: 48 % for 2026Q3" in discord(
        bot, fake_discord, "indicator delete hyperscaler-inference-mix 2026Q3", DISCORD_ADMIN, "a-5")[0]
    assert rows(bot, "SELECT indicator FROM indicator_readings WHERE source = 'chat'") == []
