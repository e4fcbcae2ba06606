"""`model_removed` and the guards around it: two absences, partial catalogs, inhibition."""

from __future__ import annotations

from storage import alerts
from tests.detectors.builders import Feed, catalog, found, queued, subscribe


def test_removed_after_two_consecutive_absences_once(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    feed.poll(catalog(9))
    assert found(fresh_db) == []
    feed.poll(catalog(9))
    feed.poll(catalog(9))
    assert found(fresh_db) == [("model_removed", "m9", "", "confirmed")]
    assert alerts.query(fresh_db)[0]["new_value"] == "2025-06-01T06:00:00Z"  # when it first went missing


def test_missed_once_and_back_is_not_removed(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    feed.poll(catalog(9))
    feed.poll(catalog(10))
    feed.poll(catalog(10))
    assert found(fresh_db) == []


def test_a_partial_catalog_raises_source_suspect_once_and_removes_nothing(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    feed.poll(catalog(5))
    feed.poll(catalog(5))
    assert found(fresh_db) == [("source_suspect", "", "", "confirmed")]
    [suspect] = alerts.query(fresh_db)
    assert suspect["detail"]["models_seen"] == 5 and suspect["detail"]["last_good_models"] == 10
    feed.poll(catalog(10))
    assert found(fresh_db, kinds=["model_removed"]) == []


def test_a_stale_source_inhibits_its_own_removals(fresh_db):
    subscribe(fresh_db)
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    feed.poll(catalog(9))  # m9 missed once
    for _ in range(3):
        feed.fail()
    feed.poll(catalog(9))  # back, m9 missed again: removed while the source was stale
    kinds = {a["kind"]: a for a in alerts.query(fresh_db)}
    assert set(kinds) == {"source_stale", "model_removed", "source_recovered"}
    assert kinds["model_removed"]["inhibited_by"] == "source_stale"
    assert kinds["model_removed"]["id"] not in [alert_id for alert_id, _ in queued(fresh_db)]


def test_a_suspect_source_inhibits_its_own_removals(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    feed.poll(catalog(9))
    feed.poll(catalog(3))  # suspect
    feed.poll(catalog(9))
    [removed] = alerts.query(fresh_db, kinds=["model_removed"])
    assert removed["inhibited_by"] == "source_suspect"
