"""DiscordAdapter against the fake Discord API over loopback HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from bot.chat.base import Delivery
from bot.chat.discord import DiscordAdapter, nonce
from tests.chat.samples import embed_texts, free_port_url, long_card, png, run, small_card, squash, tokens, unescape_discord
from tests.fakes import FakeDiscord

CHANNEL = "1000000000000000001"


def adapter(fake: FakeDiscord, **options) -> DiscordAdapter:
    options.setdefault("backoff", 0.01)
    return DiscordAdapter(bot_token=fake.bot_token, api_url=fake.api_url, application_id=fake.application_id, **options)


async def send(discord: DiscordAdapter, cards, key="alert-1", channel=CHANNEL) -> Delivery:
    async with discord:
        return await discord.send(channel, cards, idempotency_key=key)


def test_posts_embeds_with_the_bot_token_a_nonce_and_no_mentions(fake_discord):
    delivery = run(send(adapter(fake_discord), [small_card()]))
    (message,) = fake_discord.messages[CHANNEL]
    assert delivery == Delivery(ok=True, message_id=message["id"])
    (call,) = fake_discord.calls
    assert call.path == f"/api/v10/channels/{CHANNEL}/messages"
    assert call.headers["Authorization"] == "Bot bot-test-token"
    assert call.json["allowed_mentions"] == {"parse": []}
    assert call.json["nonce"] == nonce("alert-1", 0) and call.json["enforce_nonce"] is True
    assert call.json["embeds"][0]["title"] == "GPT-4o input price cut 50%"


def test_mentions_from_data_never_ping(fake_discord):
    card = small_card(title="@everyone cut", lines=["@here <@123456789012345678> <@&987654321098765432> <#1>"])
    run(send(adapter(fake_discord), [card]))
    (call,) = fake_discord.calls
    assert call.json["allowed_mentions"] == {"parse": []}
    assert "\\<@123456789012345678>" in call.json["embeds"][0]["description"]


def test_long_card_arrives_whole_in_several_messages_within_limits(fake_discord):
    card = long_card(image=png())
    delivery = run(send(adapter(fake_discord), [card]))
    assert delivery.ok
    messages = fake_discord.messages[CHANNEL]
    assert len(messages) > 1 and all(c.status == 200 for c in fake_discord.calls)
    assert all(c.json["allowed_mentions"] == {"parse": []} for c in fake_discord.calls)
    assert len({c.json["nonce"] for c in fake_discord.calls}) == len(messages)
    text = squash(unescape_discord("\n".join(embed_texts(m["embeds"]) for m in messages)))
    assert [t for t in tokens(card) if squash(t) not in text] == []


def test_chart_is_a_multipart_attachment_the_embed_points_at(fake_discord):
    image = png(5, 5)
    run(send(adapter(fake_discord), [small_card(image=image)]))
    (call,) = fake_discord.calls
    assert call.headers["Content-Type"].startswith("multipart/form-data")
    (part,) = call.files
    assert (part.name, part.filename, part.content_type, part.data) == ("files[0]", "chart.png", "image/png", image)
    assert call.json["attachments"] == [{"id": 0, "filename": "chart.png"}]
    assert call.json["embeds"][0]["image"] == {"url": "attachment://chart.png"}
    assert fake_discord.messages[CHANNEL][0]["attachments"][0]["size"] == len(image)


def test_429_waits_retry_after_from_the_body_then_posts_once(fake_discord):
    fake_discord.rate_limit(0.2)
    delivery = run(send(adapter(fake_discord), [small_card()]))
    assert delivery.ok
    first, second = fake_discord.calls
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.2
    assert len(fake_discord.messages[CHANNEL]) == 1


def test_429_without_json_honours_the_retry_after_header(fake_discord):
    fake_discord.rate_limit(0.3, header_only=True)
    run(send(adapter(fake_discord), [small_card()]))
    first, second = fake_discord.calls
    assert second.at - first.at >= 0.3
    assert len(fake_discord.messages[CHANNEL]) == 1


def test_429_longer_than_max_wait_goes_back_to_the_outbox(fake_discord):
    fake_discord.rate_limit(64.5)
    started = time.monotonic()
    delivery = run(send(adapter(fake_discord, max_wait=5), [small_card()]))
    assert time.monotonic() - started < 5
    assert delivery == Delivery(ok=False, error="rate limited", retry_after=64.5)


def test_429_retries_are_bounded(fake_discord):
    fake_discord.rate_limit(0.01, times=10)
    delivery = run(send(adapter(fake_discord, max_retries=2), [small_card()]))
    assert delivery.ok is False and delivery.permanent is False and delivery.retry_after == pytest.approx(0.01)
    assert len(fake_discord.calls) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_then_posts_once(fake_discord, status):
    fake_discord.server_error(status, times=2)
    delivery = run(send(adapter(fake_discord), [small_card()]))
    assert delivery.ok
    assert [c.status for c in fake_discord.calls] == [status, status, 200]
    assert len(fake_discord.messages[CHANNEL]) == 1


def test_5xx_backs_off_exponentially_and_gives_up(fake_discord):
    fake_discord.server_error(500, times=10)
    delivery = run(send(adapter(fake_discord, max_retries=2, backoff=0.1), [small_card()]))
    assert delivery == Delivery(ok=False, error="HTTP 500 from Discord")
    gaps = [b.at - a.at for a, b in zip(fake_discord.calls, fake_discord.calls[1:])]
    assert len(gaps) == 2 and gaps[0] >= 0.1 and gaps[1] >= 0.2


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [(403, 50001, "Missing Access"), (403, 50013, "Missing Permissions"), (404, 10003, "Unknown Channel"), (401, 0, "401: Unauthorized")],
)
def test_4xx_is_permanent_with_discords_reason_and_not_retried(fake_discord, status, code, message):
    fake_discord.reject(status, code, message)
    delivery = run(send(adapter(fake_discord), [small_card()]))
    assert delivery.ok is False and delivery.permanent is True
    assert message in delivery.error and str(status) in delivery.error
    assert len(fake_discord.calls) == 1


def test_unknown_channel_and_wrong_token_come_from_the_platform_itself():
    with FakeDiscord(channels={CHANNEL}) as fake:
        unknown = run(send(adapter(fake), [small_card()], channel="999"))
        assert unknown == Delivery(ok=False, error="HTTP 404: Unknown Channel (code 10003)", permanent=True)
        wrong = DiscordAdapter(bot_token="nope", api_url=fake.api_url)
        assert run(send(wrong, [small_card()])) == Delivery(ok=False, error="HTTP 401: 401: Unauthorized", permanent=True)


def test_timeout_is_a_failure_not_an_exception(fake_discord):
    fake_discord.delay(1.0)
    started = time.monotonic()
    delivery = run(send(adapter(fake_discord, timeout=0.3), [small_card()]))
    assert time.monotonic() - started < 1.0
    assert delivery.ok is False and delivery.permanent is False and "timed out" in delivery.error


def test_unreachable_discord_is_a_transient_failure():
    delivery = run(send(DiscordAdapter(bot_token="t", api_url=free_port_url()), [small_card()]))
    assert delivery.ok is False and delivery.permanent is False and "ConnectError" in delivery.error


def test_no_token_and_no_webhook_is_permanent():
    assert run(send(DiscordAdapter(), [small_card()])) == Delivery(
        ok=False, error="no Discord bot token or webhook URL is configured", permanent=True
    )


def test_a_shared_client_is_used_and_left_open(fake_discord):
    async def go():
        async with httpx.AsyncClient() as client:
            discord = DiscordAdapter(bot_token=fake_discord.bot_token, api_url=fake_discord.api_url, client=client)
            await discord.aclose()
            assert not client.is_closed
            return await discord.send(CHANNEL, [small_card()], idempotency_key="k")

    assert run(go()).ok


# --- idempotency ---------------------------------------------------------------------------------


def test_resend_with_the_same_key_makes_one_message(fake_discord):
    first = run(send(adapter(fake_discord), [small_card()], key="alert-9"))
    again = run(send(adapter(fake_discord), [small_card()], key="alert-9"))  # a restarted bot
    assert first.ok and again.ok and first.message_id == again.message_id
    assert len(fake_discord.calls) == 2 and len(fake_discord.messages[CHANNEL]) == 1
    assert run(send(adapter(fake_discord), [small_card()], key="alert-10")).message_id != first.message_id


def test_a_timed_out_post_that_discord_made_is_not_repeated(fake_discord):
    fake_discord.delay(0.6)
    assert not run(send(adapter(fake_discord, timeout=0.2), [small_card()])).ok
    time.sleep(0.6)
    assert run(send(adapter(fake_discord), [small_card()])).ok
    assert len(fake_discord.messages[CHANNEL]) == 1


def test_a_partly_sent_delivery_resumes_without_repeating_parts(fake_discord):
    cards = [long_card()]
    fake_discord.reject(403, after=1)  # the second message fails
    assert not run(send(adapter(fake_discord), cards)).ok
    assert len(fake_discord.messages[CHANNEL]) == 1
    assert run(send(adapter(fake_discord), cards)).ok
    parts = len(fake_discord.messages[CHANNEL])
    assert parts == len({c.json["nonce"] for c in fake_discord.calls if c.status == 200}) > 1


# --- webhook mode --------------------------------------------------------------------------------


def test_webhook_mode_posts_through_the_webhook_and_waits_for_the_message(fake_discord):
    url = fake_discord.webhook_url("1200000000000000001", "hook-token")
    delivery = run(send(DiscordAdapter(webhook_url=url), [small_card(image=png())]))
    (call,) = fake_discord.calls
    assert call.path == "/api/webhooks/1200000000000000001/hook-token" and call.query == {"wait": "true"}
    assert "Authorization" not in call.headers and "nonce" not in call.json
    assert call.json["allowed_mentions"] == {"parse": []}
    assert call.files[0].filename == "chart.png"
    (message,) = fake_discord.messages["1200000000000000001"]
    assert delivery == Delivery(ok=True, message_id=message["id"])


def test_webhook_mode_unknown_webhook_is_permanent():
    with FakeDiscord(webhooks={"1200000000000000001": "right"}) as fake:
        delivery = run(send(DiscordAdapter(webhook_url=fake.webhook_url("1200000000000000001", "wrong")), [small_card()]))
        assert delivery == Delivery(ok=False, error="HTTP 404: Unknown Webhook (code 10015)", permanent=True)


def test_webhook_mode_remembers_deliveries_within_the_process(fake_discord):
    discord = DiscordAdapter(webhook_url=fake_discord.webhook_url())

    async def twice():
        async with discord:
            await discord.send(CHANNEL, [small_card()], idempotency_key="k")
            return await discord.send(CHANNEL, [small_card()], idempotency_key="k")

    assert run(twice()).ok and len(fake_discord.calls) == 1


def test_with_a_bot_and_a_webhook_discord_webhook_goes_to_the_webhook_and_ids_to_the_bot(fake_discord):
    hook = fake_discord.webhook_url("1200000000000000001", "hook-token")
    both = DiscordAdapter(bot_token=fake_discord.bot_token, webhook_url=hook, api_url=fake_discord.api_url)

    async def go():
        async with both:
            return await both.send("webhook", [small_card()], idempotency_key="a"), await both.send(CHANNEL, [small_card()], idempotency_key="b")

    to_hook, to_channel = run(go())
    assert to_hook.ok and to_channel.ok
    assert [(c.route, "Authorization" in c.headers, "nonce" in c.json) for c in fake_discord.calls] == [
        ("execute_webhook", False, False), ("create_message", True, True),
    ]
    assert len(fake_discord.messages["1200000000000000001"]) == 1 and len(fake_discord.messages[CHANNEL]) == 1


def test_discord_webhook_without_a_webhook_url_is_permanent_and_sends_nothing(fake_discord):
    assert run(send(adapter(fake_discord), [small_card()], channel="webhook")) == Delivery(
        ok=False, error="discord:webhook: DISCORD_WEBHOOK_URL is not set", permanent=True
    )
    assert fake_discord.calls == []


def test_with_no_bot_every_discord_channel_goes_to_the_webhook(fake_discord):
    """A channel subscribed with /deflation (an interactions-only app: a public key, no bot)
    still gets its alerts, in the webhook's channel."""
    discord = DiscordAdapter(webhook_url=fake_discord.webhook_url("1200000000000000001", "hook-token"))
    assert run(send(discord, [small_card()], channel=CHANNEL)).ok
    (call,) = fake_discord.calls
    assert call.route == "execute_webhook" and list(fake_discord.messages) == ["1200000000000000001"]
