"""`source_stale` after N failed polls or a quiet spell, `source_recovered` at the next good poll."""

from __future__ import annotations

from datetime import timedelta

from bot.config import AlertSettings
from storage import alerts
from tests.detectors.builders import T0, Feed, catalog, found


def test_stale_after_three_failures_once_then_recovered(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog())
    feed.fail()
    feed.fail()
    assert found(fresh_db) == []
    feed.fail()
    feed.fail()
    assert found(fresh_db) == [("source_stale", "", "", "confirmed")]
    [stale] = alerts.query(fresh_db)
    assert stale["detail"]["failures"] == 3 and stale["detail"]["error"] == "HTTP 503 from upstream"
    assert stale["new_value"] == "2025-06-01T06:00:00Z"  # the episode began with the first failure
    feed.not_modified()
    assert [a["kind"] for a in alerts.query(fresh_db)] == ["source_stale", "source_recovered"]
    assert alerts.query(fresh_db)[1]["new_value"] == stale["new_value"]
    for _ in range(3):
        feed.fail()
    assert [a["kind"] for a in alerts.query(fresh_db)] == ["source_stale", "source_recovered", "source_stale"]


def test_stale_without_a_good_poll_for_a_while(fresh_db):
    feed = Feed(fresh_db, settings=AlertSettings(stale_after=timedelta(days=2)))
    feed.poll(catalog())
    feed.fail(at=T0 + timedelta(days=1))
    assert found(fresh_db) == []
    feed.poll(catalog(3), at=T0 + timedelta(days=2, hours=1))  # a partial catalog is no good poll either
    assert [a["kind"] for a in alerts.query(fresh_db)] == ["source_suspect", "source_stale"]


def test_failures_to_stale_is_configurable(fresh_db):
    feed = Feed(fresh_db, settings=AlertSettings(stale_after_failures=1))
    feed.fail()
    assert found(fresh_db) == [("source_stale", "", "", "confirmed")]
    assert alerts.query(fresh_db)[0]["detail"]["last_good_at"] is None
