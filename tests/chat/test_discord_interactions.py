"""Discord interactions: Ed25519 verification, responses, follow-ups and command registration."""

from __future__ import annotations

import json

import pytest
from nacl.signing import SigningKey

from bot.chat.discord import (
    DEFLATION_COMMAND,
    DiscordAdapter,
    command_text,
    deferred,
    message_response,
    pong,
    register_commands,
    verify_discord_signature,
)
from bot.errors import ConfigError, DeflationWatchError
from tests.chat.samples import long_card, png, run, small_card
from tests.fakes import discord_headers, discord_sign

KEY = SigningKey(bytes(range(32)))
PUBLIC = KEY.verify_key.encode().hex()
BODY = b'{"type":1,"id":"1","application_id":"2","token":"t"}'
STAMP = "1767225600"


def test_a_genuine_signature_verifies():
    assert verify_discord_signature(PUBLIC, discord_sign(KEY, STAMP, BODY), STAMP, BODY)
    assert verify_discord_signature(PUBLIC, discord_sign(KEY, STAMP, BODY), STAMP, BODY.decode())


@pytest.mark.parametrize(
    ("public", "signature", "stamp", "body"),
    [
        (PUBLIC, "00" * 64, STAMP, BODY),  # forged
        (SigningKey(b"\x01" * 32).verify_key.encode().hex(), discord_sign(KEY, STAMP, BODY), STAMP, BODY),  # wrong key
        (PUBLIC, discord_sign(SigningKey(b"\x02" * 32), STAMP, BODY), STAMP, BODY),  # signed by someone else
        (PUBLIC, discord_sign(KEY, STAMP, BODY), STAMP, BODY + b" "),  # tampered body
        (PUBLIC, discord_sign(KEY, STAMP, BODY), "1767225601", BODY),  # tampered timestamp
        (PUBLIC, "zz" * 64, STAMP, BODY),  # not hex
        (PUBLIC, discord_sign(KEY, STAMP, BODY)[:-2], STAMP, BODY),  # short signature
        (PUBLIC, discord_sign(KEY, STAMP, BODY) + "00", STAMP, BODY),  # long signature
        (PUBLIC, "", STAMP, BODY),
        ("not-a-key", discord_sign(KEY, STAMP, BODY), STAMP, BODY),
        (PUBLIC[:-2], discord_sign(KEY, STAMP, BODY), STAMP, BODY),  # 31-byte key
        ("", "", "", b""),
        (PUBLIC, None, STAMP, BODY),
        (PUBLIC, discord_sign(KEY, STAMP, BODY), None, BODY),
        (None, discord_sign(KEY, STAMP, BODY), STAMP, BODY),
    ],
)
def test_anything_else_fails_quietly(public, signature, stamp, body):
    assert verify_discord_signature(public, signature, stamp, body) is False


def test_signing_helper_makes_the_headers_discord_sends():
    headers = discord_headers(KEY.encode().hex(), BODY, STAMP)
    assert headers["X-Signature-Timestamp"] == STAMP
    assert verify_discord_signature(PUBLIC, headers["X-Signature-Ed25519"], STAMP, BODY)


def test_pong_and_deferred():
    assert pong() == {"type": 1}
    assert deferred() == {"type": 5}
    assert deferred(ephemeral=True) == {"type": 5, "data": {"flags": 64}}


def test_a_small_card_is_answered_at_once_with_embeds():
    response = message_response([small_card()], ephemeral=True)
    assert response["type"] == 4
    assert response["data"]["embeds"][0]["title"] == "GPT-4o input price cut 50%"
    assert response["data"]["allowed_mentions"] == {"parse": []}
    assert response["data"]["flags"] == 64
    json.dumps(response)  # the HTTP response body


def test_a_chart_or_a_long_answer_needs_a_deferred_reply():
    assert message_response([small_card(image=png())]) is None
    assert message_response([long_card()]) is None


def test_edit_original_fills_in_a_deferred_reply_with_the_chart(fake_discord):
    image = png()

    async def go():
        async with DiscordAdapter(api_url=fake_discord.api_url, application_id=fake_discord.application_id) as discord:
            return await discord.edit_original("itoken", [small_card(image=image)])

    delivery = run(go())
    (call,) = fake_discord.calls
    assert call.verb == "PATCH" and call.path.endswith(f"/webhooks/{fake_discord.application_id}/itoken/messages/@original")
    assert call.files[0].data == image and call.json["allowed_mentions"] == {"parse": []}
    original = fake_discord.originals["itoken"]
    assert delivery.ok and delivery.message_id == original["id"]
    assert original["embeds"][0]["image"] == {"url": "attachment://chart.png"}


def test_a_long_deferred_reply_edits_the_original_then_follows_up(fake_discord):
    async def go():
        async with DiscordAdapter(api_url=fake_discord.api_url, application_id=fake_discord.application_id) as discord:
            return await discord.edit_original("itoken", [long_card()], ephemeral=True)

    assert run(go()).ok
    verbs = [c.verb for c in fake_discord.calls]
    assert verbs[0] == "PATCH" and set(verbs[1:]) == {"POST"} and len(verbs) > 1
    assert all(c.json["flags"] == 64 and c.json["allowed_mentions"] == {"parse": []} for c in fake_discord.calls)
    assert len(fake_discord.followups["itoken"]) == len(verbs) - 1


def test_followup_posts_to_the_interaction_webhook(fake_discord):
    async def go():
        async with DiscordAdapter(api_url=fake_discord.api_url, application_id=fake_discord.application_id) as discord:
            return await discord.followup("itoken", [small_card()])

    assert run(go()).ok
    (call,) = fake_discord.calls
    assert call.verb == "POST" and call.path.endswith(f"/webhooks/{fake_discord.application_id}/itoken")
    assert "Authorization" not in call.headers


def test_interaction_replies_need_the_application_id(fake_discord):
    async def go():
        async with DiscordAdapter(api_url=fake_discord.api_url) as discord:
            return await discord.followup("itoken", [small_card()])

    delivery = run(go())
    assert delivery.permanent and "DISCORD_APPLICATION_ID" in delivery.error


def test_callback_endpoint_answers_an_interaction(fake_discord):
    async def go():
        async with DiscordAdapter(api_url=fake_discord.api_url) as discord:
            return await discord.callback("1600000000000000001", "itoken", message_response([small_card()]))

    assert run(go()).ok
    (body,) = fake_discord.interactions["itoken"]
    assert body["type"] == 4 and fake_discord.originals["itoken"]["embeds"]


# --- commands ------------------------------------------------------------------------------------

SUBCOMMANDS = [
    "help", "price", "history", "cheapest", "trend", "margin", "digest", "signals", "indicator", "sources",
    "subscribe", "unsubscribe", "subscriptions", "mute", "unmute", "mutes",
]  # fmt: skip


@pytest.mark.parametrize("guild", [None, "1700000000000000001"])
def test_register_commands_overwrites_deflation(fake_discord, guild):
    async def go():
        import httpx

        async with httpx.AsyncClient() as client:
            return await register_commands(client, fake_discord.application_id, "bot-test-token", guild_id=guild, api_url=fake_discord.api_url)

    stored = run(go())
    (call,) = fake_discord.calls
    assert call.verb == "PUT" and call.headers["Authorization"] == "Bot bot-test-token"
    expected = f"/api/v10/applications/{fake_discord.application_id}" + (f"/guilds/{guild}" if guild else "") + "/commands"
    assert call.path == expected
    assert call.json == [DEFLATION_COMMAND]
    assert [c["name"] for c in stored] == ["deflation"] and fake_discord.commands[guild][0]["id"]


def test_the_command_has_every_subcommand_and_its_options():
    subs = {s["name"]: s for s in DEFLATION_COMMAND["options"]}
    assert list(subs) == SUBCOMMANDS
    assert all(s["type"] == 1 for s in subs.values())

    def options(name):
        return [(o["name"], o["type"], o["required"]) for o in subs[name]["options"]]

    assert options("price") == [("model", 3, True)]
    assert options("history") == [("model", 3, True)]
    assert options("cheapest") == [("tier", 3, False)]
    assert options("trend") == [("target", 3, False), ("window", 3, False)]
    assert options("margin") == [("price", 10, True), ("cost", 10, True), ("rate", 3, False), ("years", 4, False)]
    assert options("subscribe") == [("filters", 3, False)]
    assert options("mute") == [("pattern", 3, True), ("duration", 3, True), ("reason", 3, False)]
    assert options("unmute") == [("id", 3, True)]
    assert options("indicator") == [("words", 3, True)]
    assert all(options(name) == [] for name in ("help", "digest", "signals", "sources", "unsubscribe", "subscriptions", "mutes"))


def test_register_with_a_bad_token_is_a_config_error(fake_discord):
    async def go():
        import httpx

        async with httpx.AsyncClient() as client:
            await register_commands(client, fake_discord.application_id, "wrong", api_url=fake_discord.api_url)

    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        run(go())


def test_register_when_discord_is_down_says_so(fake_discord):
    fake_discord.server_error(503, times=10)

    async def go():
        import httpx

        async with httpx.AsyncClient() as client:
            await register_commands(client, fake_discord.application_id, "bot-test-token", api_url=fake_discord.api_url, backoff=0.01)

    with pytest.raises(DeflationWatchError, match="HTTP 503") as raised:
        run(go())
    assert not isinstance(raised.value, ConfigError)


@pytest.mark.parametrize(
    ("sub", "options", "text"),
    [
        ("help", [], "help"),
        ("price", [{"name": "model", "type": 3, "value": "gpt-4o"}], "price gpt-4o"),
        ("trend", [{"name": "window", "type": 3, "value": "365d"}, {"name": "target", "type": 3, "value": "gpt-4-class"}], "trend gpt-4-class 365d"),
        ("margin", [{"name": "price", "type": 10, "value": 30.0}, {"name": "cost", "type": 10, "value": 12.5}], "margin 30 12.5"),
        ("mute", [{"name": "pattern", "type": 3, "value": "gpt-4o*"}, {"name": "duration", "type": 3, "value": "1d"}, {"name": "reason", "type": 3, "value": "too noisy"}], "mute gpt-4o* 1d too noisy"),
        ("subscribe", [{"name": "filters", "type": 3, "value": "kinds=cut min=10%"}], "subscribe kinds=cut min=10%"),
        ("cheapest", [{"name": "tier", "type": 3, "value": "frontier class"}], "cheapest frontier class"),
        ("trend", [{"name": "target", "type": 3, "value": "claude 3 opus"}, {"name": "window", "type": 3, "value": "1y"}], 'trend "claude 3 opus" 1y'),
    ],
)
def test_command_text_maps_options_back_to_the_command_line(sub, options, text):
    data = {"name": "deflation", "type": 1, "options": [{"name": sub, "type": 1, "options": options}]}
    assert command_text(data) == text
