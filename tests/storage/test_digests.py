"""Digest channels and posts: who takes the digest, and which slot each channel has had."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import digests

SLOT = datetime(2026, 1, 5, 9, tzinfo=UTC)  # a Monday, 09:00


def test_a_channel_takes_the_digest_once(fresh_db):
    assert digests.enable(fresh_db, "slack:C1", SLOT - timedelta(days=1), "U1")
    assert not digests.enable(fresh_db, "slack:C1", SLOT + timedelta(days=1), "U2")  # the first start date stays
    (channel,) = digests.channels(fresh_db)
    assert channel.created_by == "U1" and channel.created_at == SLOT - timedelta(days=1)
    assert digests.disable(fresh_db, "slack:C1") and not digests.disable(fresh_db, "slack:C1")
    assert digests.channels(fresh_db) == []


def test_due_skips_sent_failed_and_late_subscribers(fresh_db):
    for channel in ("slack:A", "slack:B", "slack:C", "slack:D"):
        digests.enable(fresh_db, channel, SLOT - timedelta(hours=1))
    digests.enable(fresh_db, "slack:LATE", SLOT + timedelta(minutes=1))
    digests.record(fresh_db, SLOT, "slack:A", "sent", SLOT, message_id="1")
    digests.record(fresh_db, SLOT, "slack:B", "failed", SLOT, error="channel_not_found")
    digests.record(fresh_db, SLOT, "slack:C", "retry", SLOT, error="rate limited")
    assert digests.due(fresh_db, SLOT, max_attempts=3) == ["slack:C", "slack:D"]
    digests.record(fresh_db, SLOT, "slack:C", "retry", SLOT)
    digests.record(fresh_db, SLOT, "slack:C", "retry", SLOT)
    assert digests.due(fresh_db, SLOT, max_attempts=3) == ["slack:D"]  # given up after three tries
    assert digests.due(fresh_db, SLOT + timedelta(days=7), max_attempts=3) == ["slack:A", "slack:B", "slack:C", "slack:D", "slack:LATE"]
    assert digests.last_sent(fresh_db) == SLOT


def test_an_unknown_state_is_refused(fresh_db):
    with pytest.raises(ValueError, match="not one of sent, retry, failed"):
        digests.record(fresh_db, SLOT, "slack:A", "maybe", SLOT)


def test_a_post_begun_is_not_due_until_in_flight_has_passed(fresh_db):
    digests.enable(fresh_db, "slack:A", SLOT - timedelta(hours=1))
    digests.begin(fresh_db, SLOT, "slack:A", SLOT + timedelta(seconds=5))
    grace = timedelta(seconds=30)
    assert digests.due(fresh_db, SLOT, 3, SLOT + timedelta(seconds=34), grace) == []
    assert digests.due(fresh_db, SLOT, 3, SLOT + timedelta(seconds=35), grace) == ["slack:A"]
    digests.record(fresh_db, SLOT, "slack:A", "sent", SLOT + timedelta(seconds=36), message_id="1")
    assert [(p["state"], p["attempts"]) for p in digests.posts(fresh_db)] == [("sent", 1)]
    digests.begin(fresh_db, SLOT + timedelta(days=7), "slack:A", SLOT + timedelta(days=7))
    digests.record(fresh_db, SLOT + timedelta(days=7), "slack:A", "retry", SLOT + timedelta(days=7), error="HTTP 500")
    digests.begin(fresh_db, SLOT + timedelta(days=7), "slack:A", SLOT + timedelta(days=7, minutes=5))
    assert digests.posts(fresh_db)[-1]["attempts"] == 1  # beginning is not an attempt until its outcome
