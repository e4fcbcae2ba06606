"""`new_model`: news only when a source starts listing a priced model after its baseline."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.quotes import PricePoint
from storage import alerts, archive
from tests.detectors.builders import STEP, T0, Feed, catalog, found, q


def test_first_poll_is_a_baseline_and_later_additions_are_news(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    assert found(fresh_db) == []
    feed.poll([*catalog(10), q("gpt-5", "1.25", "10")])
    assert found(fresh_db) == [("new_model", "gpt-5", "", "confirmed")]
    assert alerts.query(fresh_db)[0]["detail"] == {"input_mtok": "1.25", "output_mtok": "10"}


def test_free_and_sentinel_listings_are_not_news(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    feed.poll([*catalog(10), q("x:free", "0", "0"), q("openrouter/auto", "-1", "-1"), q("y", "0", "0")])
    assert found(fresh_db) == []


def history_document(models: list[str]) -> bytes:
    """A history export holding `models` of source `test`, last seen a month before T0."""
    start = (T0 - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    items = [
        {"source": "test", "provider": "openai", "model": m, "display_name": None, "context_window": None,
         "open_weight": None, "removed_at": None, "intervals": [[start, None, 1.0, 2.0, None, None]]}
        for m in models
    ]
    return json.dumps({"format": 1, "exported_at": start, "sources": ["test"], "models": items}).encode()


def test_the_first_live_poll_after_a_backfill_is_a_baseline_too(fresh_db):
    archive.load(fresh_db, history_document([f"m{i}" for i in range(5)]), T0 - timedelta(days=1))
    feed = Feed(fresh_db)
    # Months of catalog growth arrive at once: 1000 models the shipped history did not have.
    feed.poll([q(f"late{i}", "1", "2") for i in range(1000)] + catalog(3))
    assert found(fresh_db) == []
    feed.poll([q(f"late{i}", "1", "2") for i in range(1000)] + catalog(3))
    # m3 and m4 went missing at the baseline poll: when they went is unknown, so no removal.
    assert found(fresh_db) == []
    feed.poll([q(f"late{i}", "1", "2") for i in range(1000)] + catalog(3) + [q("new", "1", "2")])
    assert found(fresh_db) == [("new_model", "new", "", "confirmed")]


def test_a_renamed_key_is_neither_new_nor_removed(fresh_db):
    feed = Feed(fresh_db)
    feed.poll([*catalog(10), q("claude-opus-4", "15", "75", provider="openrouter"), q("gpt-4", "30", "60", provider="unknown")])
    renamed = [*catalog(10), q("anthropic/claude-opus-4", "15", "75", provider="openrouter"), q("gpt-4", "30", "60", provider="openai")]
    feed.poll(renamed)
    feed.poll(renamed)
    assert fresh_db.execute("SELECT COUNT(*) FROM models WHERE removed_at IS NOT NULL").fetchone()[0] == 2
    assert found(fresh_db) == []


def test_an_old_model_the_upstream_dates_back_is_a_catalog_addition_not_a_launch(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    year_old = T0 - timedelta(days=365)
    added = q("old", "2", "8", since=T0 - timedelta(days=30), earlier=(PricePoint(year_old, None, None),))
    launched_today = q("fresh", "2", "8", since=T0 + STEP)
    feed.poll([*catalog(10), added, launched_today])
    assert found(fresh_db) == [("new_model", "fresh", "", "confirmed")]


def test_a_returning_model_is_not_new(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog(10))
    feed.poll(catalog(9))
    feed.poll(catalog(9))
    feed.poll(catalog(10))
    assert found(fresh_db) == [("model_removed", "m9", "", "confirmed")]
