"""No mention injection: model names from a source's payload and notes typed by users reach
Slack and Discord as text, never as @channel / @here / @everyone, user, group or role mentions.
Alert cards and command replies go through the real adapters to the fake platforms; Slack gets
`<`, `>` and `&` as entities (so `<!channel>` cannot be a control sequence) in every text
including the notification fallback; Discord gets the markdown escaped and every message sets
`allowed_mentions: {"parse": []}`, so even a bare `@everyone` pings no one."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

from bot import commands, config, delivery
from bot.chat.discord import DiscordAdapter
from bot.chat.slack import SlackAdapter
from bot.config import AlertSettings
from tests.detectors.builders import STEP, T0, Feed, catalog, q, subscribe

HOSTILE = "<!channel> <!here> @everyone @here <@U0BOSS> <!subteam^S0TEAM> <#C0OTHER> <@&12345> <@123456789>"
MODEL = "<!channel>@everyone<@U0BOSS>"
#: A raw Slack control sequence: a mention, a channel or group link, a special mention.
SLACK_CONTROL = re.compile(r"<[@#!]")
#: A Discord mention not escaped with a backslash.
DISCORD_MENTION = re.compile(r"(?<!\\)<(@[!&]?\d+|#\d+)>")


def adapters(fake_slack, fake_discord) -> dict:
    return {
        "slack": SlackAdapter(fake_slack.token, api_url=fake_slack.api_url, backoff=0.01, max_wait=0.5),
        "discord": DiscordAdapter(fake_discord.bot_token, api_url=fake_discord.api_url, backoff=0.01, max_wait=0.5),
    }


def slack_payloads(fake_slack) -> list[dict]:
    return [call.json or call.params for call in fake_slack.posted()]


def discord_payloads(fake_discord) -> list[dict]:
    return [call.json for call in fake_discord.created()]


def assert_safe_on_slack(payloads: list[dict]) -> None:
    assert payloads
    for payload in payloads:
        text = json.dumps(payload, ensure_ascii=False)
        assert not SLACK_CONTROL.search(text), text[:500]
        assert "&lt;!channel&gt;" in text or "&lt;!here&gt;" in text  # shown, as text
        assert not payload.get("link_names") and payload.get("parse") in (None, "none")


def assert_safe_on_discord(payloads: list[dict]) -> None:
    assert payloads
    for payload in payloads:
        assert payload["allowed_mentions"] == {"parse": []}
        texts = [piece for embed in payload["embeds"] for piece in _embed_texts(embed)]
        text = "\n".join(texts)
        # Inside a code block (the tables) Discord shows `<@&1>` as typed: no mention there.
        outside = re.sub(r"```.*?```", "", text, flags=re.S)
        assert not DISCORD_MENTION.search(outside), outside[:500]
        assert "@everyone" in text  # shown as text; allowed_mentions keeps it from pinging


def _embed_texts(embed: dict) -> list[str]:
    return [embed.get("title", ""), embed.get("description", ""), embed.get("footer", {}).get("text", ""),
            *(f"{f['name']}\n{f['value']}" for f in embed.get("fields", []))]


def test_a_hostile_model_name_in_a_source_payload_is_shown_not_pinged(fresh_db, fake_slack, fake_discord):
    subscribe(fresh_db, "slack:C0ALERTS")
    subscribe(fresh_db, "discord:1500000000000000002")
    feed = Feed(fresh_db)
    feed.poll([*catalog(3), q(MODEL, "10", "10", provider="<!here>@here")])
    feed.poll([*catalog(3), q(MODEL, "5", "10", provider="<!here>@here")])
    due = T0 + STEP + timedelta(minutes=1)
    reports = asyncio.run(delivery.deliver_due(fresh_db, adapters(fake_slack, fake_discord), lambda: due, settings=AlertSettings()))
    assert sorted(r.state for r in reports) == ["sent", "sent"]
    assert_safe_on_slack(slack_payloads(fake_slack))
    assert_safe_on_discord(discord_payloads(fake_discord))
    assert "@everyone" in json.dumps(slack_payloads(fake_slack)) and "&lt;@U0BOSS&gt;" in json.dumps(slack_payloads(fake_slack))


def test_command_replies_with_hostile_notes_and_names_are_shown_not_pinged(fresh_db, fake_slack, fake_discord):
    settings = config.load(environ={})
    context = commands.Context(fresh_db, settings, clock=lambda: T0, user="slack:U0ADMIN", channel="slack:C0CMD")
    cards = [
        commands.answer(f'indicator set hyperscaler-inference-mix 48% 2025Q1 "{HOSTILE}"', context),  # a note
        commands.answer("indicator hyperscaler-inference-mix", context),  # the note, read back
        commands.answer(f'mute "{MODEL}" 1d "{HOSTILE}"', context),  # a pattern and a reason
        commands.answer("mutes", context),
        commands.answer(f'price "{MODEL}"', context),  # a refusal quoting what was typed
        commands.answer(f'subscribe models="{MODEL}"', context),
    ]
    assert HOSTILE in cards[1].text() and HOSTILE in cards[3].text()
    chat = adapters(fake_slack, fake_discord)

    async def send() -> None:
        for i, card in enumerate(cards):
            assert (await chat["slack"].send("C0CMD", [card], idempotency_key=f"s{i}")).ok
            assert (await chat["discord"].send("1500000000000000002", [card], idempotency_key=f"d{i}")).ok
        await chat["discord"].aclose()

    asyncio.run(send())
    assert_safe_on_slack(slack_payloads(fake_slack))
    assert_safe_on_discord([p for p in discord_payloads(fake_discord) if "@everyone" in json.dumps(p)])
    assert all(p["allowed_mentions"] == {"parse": []} for p in discord_payloads(fake_discord))
