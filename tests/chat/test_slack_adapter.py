"""SlackAdapter against the fake Slack Web API over loopback HTTP."""

from __future__ import annotations

import logging
import time

import pytest

from bot.chat.base import Delivery
from bot.chat.slack import METADATA_EVENT, SlackAdapter
from tests.chat.samples import block_texts, long_card, png, run, small_card, squash, tokens, unescape_slack
from tests.fakes import FakeSlack


def adapter(fake: FakeSlack, **options) -> SlackAdapter:
    options.setdefault("backoff", 0.01)
    return SlackAdapter(fake.token, api_url=fake.api_url, **options)


def test_posts_blocks_text_and_metadata_with_the_bot_token(fake_slack):
    delivery = run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="alert-1"))
    assert delivery.ok and delivery.message_id == fake_slack.messages("C1")[0]["ts"]
    (call,) = fake_slack.posted()
    assert call.headers["Authorization"] == "Bearer xoxb-test-token"
    body = call.json
    assert body["channel"] == "C1"
    assert body["text"] == "GPT-4o input price cut 50%"
    assert body["blocks"][0]["type"] == "header"
    assert body["metadata"] == {"event_type": METADATA_EVENT, "event_payload": {"key": "alert-1", "part": 0}}
    assert body["link_names"] is False and body["unfurl_links"] is False


def test_mentions_in_data_reach_slack_escaped(fake_slack):
    card = small_card(title="<!channel> price cut", lines=["<!here> <!everyone> <@U024BE7LH> <!subteam^S1>"])
    run(adapter(fake_slack).send("C1", [card], idempotency_key="k"))
    (call,) = fake_slack.posted()
    texts = block_texts(call.json["blocks"]) + [call.json["text"]]
    assert all("<" not in text and ">" not in text for text in texts)
    assert "&lt;!channel&gt; price cut" in call.json["text"]
    assert "&lt;!here&gt; &lt;!everyone&gt; &lt;@U024BE7LH&gt;" in texts[1]


def test_long_card_arrives_whole_in_several_messages_and_the_chart_last(fake_slack):
    card = long_card(image=png())
    delivery = run(adapter(fake_slack).send("C1", [card], idempotency_key="digest-2026-w30"))
    assert delivery.ok
    messages = fake_slack.messages("C1")
    posts = [m for m in messages if "blocks" in m]
    assert len(posts) > 1 and all(c.status == 200 for c in fake_slack.calls)
    assert "files" in messages[-1]
    text = squash(unescape_slack("\n".join(t for m in posts for t in block_texts(m["blocks"]))))
    assert [t for t in tokens(card) if squash(t) not in text] == []


def test_chart_is_uploaded_to_the_channel_with_files_upload_v2(fake_slack):
    image = png(4, 3)
    run(adapter(fake_slack).send("C1", [small_card(image=image)], idempotency_key="digest-1"))
    routes = [c.route for c in fake_slack.calls]
    assert routes == ["conversations.history", "chat.postMessage", "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    (upload,) = fake_slack.uploads.values()
    assert upload.data == image and upload.channel == "C1"
    assert upload.title == "GPT-4o input price cut 50%"
    assert upload.filename.startswith("chart-") and upload.filename.endswith(".png")


def test_429_waits_retry_after_then_posts_once(fake_slack):
    fake_slack.rate_limit("0.2", route="chat.postMessage")
    delivery = run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="k"))
    assert delivery.ok
    first, second = fake_slack.calls_to("chat.postMessage")
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.2
    assert len(fake_slack.messages("C1")) == 1


def test_429_longer_than_max_wait_goes_back_to_the_outbox(fake_slack):
    fake_slack.rate_limit("30", route="chat.postMessage")
    started = time.monotonic()
    delivery = run(adapter(fake_slack, max_wait=5).send("C1", [small_card()], idempotency_key="k"))
    assert time.monotonic() - started < 5
    assert delivery == Delivery(ok=False, error="rate limited", retry_after=30.0)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_429_retries_are_bounded(fake_slack):
    fake_slack.rate_limit("0", times=10, route="chat.postMessage")
    delivery = run(adapter(fake_slack, max_retries=2).send("C1", [small_card()], idempotency_key="k"))
    assert not delivery.ok and not delivery.permanent and delivery.retry_after == 0
    assert len(fake_slack.calls_to("chat.postMessage")) == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_with_backoff_then_posts_once(fake_slack, status):
    fake_slack.server_error(status, route="chat.postMessage")
    delivery = run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="k"))
    assert delivery.ok
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [status, 200]
    assert len(fake_slack.messages("C1")) == 1


def test_5xx_that_persists_is_a_transient_failure(fake_slack):
    fake_slack.server_error(500, times=10, route="chat.postMessage")
    delivery = run(adapter(fake_slack, max_retries=2).send("C1", [small_card()], idempotency_key="k"))
    assert delivery == Delivery(ok=False, error="HTTP 500 from Slack")
    assert len(fake_slack.calls_to("chat.postMessage")) == 3


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived", "account_inactive", "invalid_auth", "token_revoked"])
def test_permanent_errors_are_reported_and_not_retried(fake_slack, error):
    fake_slack.fail_with(error, route="chat.postMessage")
    delivery = run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="k"))
    assert delivery == Delivery(ok=False, error=error, permanent=True)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_unknown_channel_and_wrong_token_come_from_the_platform_itself():
    with FakeSlack(channels={"C1"}) as fake:
        assert run(adapter(fake).send("C404", [small_card()], idempotency_key="k")) == Delivery(
            ok=False, error="channel_not_found", permanent=True
        )
        wrong = SlackAdapter("xoxb-wrong", api_url=fake.api_url)
        assert run(wrong.send("C1", [small_card()], idempotency_key="k")) == Delivery(ok=False, error="invalid_auth", permanent=True)
        fake.archived.add("C1")
        assert run(adapter(fake).send("C1", [small_card()], idempotency_key="k2")).error == "is_archived"
        assert fake.messages("C1") == []


def test_other_slack_errors_are_transient(fake_slack):
    fake_slack.fail_with("fatal_error", route="chat.postMessage")
    delivery = run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="k"))
    assert delivery == Delivery(ok=False, error="fatal_error")


def test_timeout_is_a_failure_not_an_exception(fake_slack):
    fake_slack.delay(1.0, route="chat.postMessage")
    started = time.monotonic()
    delivery = run(adapter(fake_slack, timeout=0.3).send("C1", [small_card()], idempotency_key="k"))
    assert time.monotonic() - started < 1.0
    assert delivery.ok is False and delivery.permanent is False and "timed out" in delivery.error


def test_unreachable_slack_is_a_transient_failure():
    from tests.chat.samples import free_port_url

    delivery = run(SlackAdapter("xoxb-x", api_url=free_port_url()).send("C1", [small_card()], idempotency_key="k"))
    assert delivery.ok is False and delivery.permanent is False and delivery.error


# --- idempotency ---------------------------------------------------------------------------------


def test_resend_of_a_delivered_key_posts_nothing_new_even_from_a_new_process(fake_slack):
    cards = [small_card(image=png())]
    first = run(adapter(fake_slack).send("C1", cards, idempotency_key="alert-7"))
    again = run(adapter(fake_slack).send("C1", cards, idempotency_key="alert-7"))  # a restarted bot
    assert first.ok and again.ok and again.message_id == first.message_id
    assert len(fake_slack.posted()) == 1 and len(fake_slack.uploads) == 1
    other = run(adapter(fake_slack).send("C1", cards, idempotency_key="alert-8"))
    assert other.ok and len(fake_slack.posted()) == 2


def test_same_adapter_remembers_without_asking_slack_again(fake_slack):
    slack = adapter(fake_slack)
    run(slack.send("C1", [small_card()], idempotency_key="k"))
    calls = len(fake_slack.calls)
    assert run(slack.send("C1", [small_card()], idempotency_key="k")).ok
    assert len(fake_slack.calls) == calls


def test_a_timed_out_post_that_slack_made_is_not_repeated(fake_slack):
    fake_slack.delay(0.6, route="chat.postMessage")
    assert not run(adapter(fake_slack, timeout=0.2).send("C1", [small_card()], idempotency_key="k")).ok
    time.sleep(0.6)  # the fake finishes the post the client gave up on
    assert len(fake_slack.messages("C1")) == 1
    assert run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="k")).ok
    assert len(fake_slack.messages("C1")) == 1


def test_a_partly_sent_delivery_resumes_where_it_stopped(fake_slack):
    cards = [small_card(title="first", image=png()), small_card(title="second")]
    fake_slack.fail_with("fatal_error", route="files.completeUploadExternal")
    assert not run(adapter(fake_slack).send("C1", cards, idempotency_key="k")).ok
    assert [m.get("text") for m in fake_slack.messages("C1")] == ["first"]
    assert run(adapter(fake_slack).send("C1", cards, idempotency_key="k")).ok
    shown = fake_slack.messages("C1")
    assert [m.get("text") or "(chart)" for m in shown] == ["first", "(chart)", "second"]


def test_without_history_access_it_still_posts_and_warns(fake_slack, caplog):
    fake_slack.fail_with("missing_scope", route="conversations.history")
    with caplog.at_level(logging.WARNING, logger="bot.chat.slack"):
        delivery = run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="k"))
    assert delivery.ok and len(fake_slack.posted()) == 1
    assert "a re-send may repeat a message" in caplog.text


def test_history_rate_limited_is_a_transient_failure_and_nothing_is_posted(fake_slack):
    fake_slack.rate_limit("30", route="conversations.history")
    delivery = run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="k"))
    assert delivery == Delivery(ok=False, error="rate limited", retry_after=30.0)
    assert fake_slack.posted() == []


def test_history_check_reads_metadata_only_within_the_lookback(fake_slack):
    run(adapter(fake_slack).send("C1", [small_card()], idempotency_key="k"))
    (history,) = fake_slack.calls_to("conversations.history")
    assert history.params["include_all_metadata"] in ("1", "true")
    assert float(history.params["oldest"]) == pytest.approx(time.time() - 86400, abs=60)


# --- response_url --------------------------------------------------------------------------------


def test_respond_posts_an_ephemeral_reply_to_the_response_url(fake_slack):
    delivery = run(adapter(fake_slack).respond(fake_slack.response_url("T1/1/a"), [small_card()]))
    assert delivery.ok
    (body,) = fake_slack.responses["T1/1/a"]
    assert body["response_type"] == "ephemeral" and body["replace_original"] is False
    assert body["blocks"][0]["text"]["text"] == "GPT-4o input price cut 50%"


def test_respond_in_channel_uploads_the_chart_to_the_channel(fake_slack):
    image = png()
    delivery = run(adapter(fake_slack).respond(fake_slack.response_url("T1/2/b"), [small_card(image=image)], in_channel=True, channel="C1"))
    assert delivery.ok
    assert fake_slack.responses["T1/2/b"][0]["response_type"] == "in_channel"
    assert [u.data for u in fake_slack.uploads.values()] == [image]


def test_respond_splits_a_long_reply_and_replaces_the_original_only_once(fake_slack):
    run(adapter(fake_slack).respond(fake_slack.response_url("T1/3/c"), [long_card()], replace_original=True))
    bodies = fake_slack.responses["T1/3/c"]
    assert len(bodies) > 1
    assert [b["replace_original"] for b in bodies] == [True] + [False] * (len(bodies) - 1)


def test_respond_to_an_expired_url_is_permanent(fake_slack):
    fake_slack.script(status=404, body=b"expired_url", route="response_url")
    delivery = run(adapter(fake_slack).respond(fake_slack.response_url(), [small_card()]))
    assert delivery == Delivery(ok=False, error="expired_url", permanent=True)
