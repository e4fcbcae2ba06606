"""From detections to the outbox: dedupe, grouping, silences, subscriptions, one transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import AlertSettings
from storage import alerts, outbox, subscriptions, transaction
from tests.detectors.builders import T0, Feed, catalog, found, q, queued, subscribe


def cut_feed(db, source: str = "test", **options) -> Feed:
    feed = Feed(db, source, **options)
    feed.poll([*catalog(5), q("o3", "10", "40"), q("claude-3-5-sonnet", "3", "15", provider="anthropic")])
    return feed


def test_the_same_event_is_stored_once():
    new = alerts.NewAlert("price_cut", "test", T0, None, "openai", "o3", "output_mtok", "8")
    from storage import open_db

    db = open_db(":memory:")
    assert alerts.insert(db, new, T0) == 1
    assert alerts.insert(db, new, T0 + timedelta(days=1)) is None
    assert alerts.insert(db, alerts.NewAlert("price_cut", "test", T0, None, "openai", "o3", "output_mtok", "7"), T0) == 2


def test_one_outbox_row_per_matching_channel(fresh_db):
    subscribe(fresh_db, "slack:C1")
    subscribe(fresh_db, "slack:C1", providers=["openai"])  # a second subscription of the same channel
    subscribe(fresh_db, "discord:9", providers=["anthropic"])
    subscribe(fresh_db, "console:", models=["openai/o3*"], kinds=["price_cut"])
    subscribe(fresh_db, "console:big", min_pct=50)
    feed = cut_feed(fresh_db)
    feed.poll([*catalog(5), q("o3", "10", "32"), q("claude-3-5-sonnet", "2.4", "15", provider="anthropic")])
    o3, claude = alerts.query(fresh_db)
    assert (o3["model"], o3["pct_change"], claude["pct_change"]) == ("o3", -20.0, -20.0)
    assert sorted(queued(fresh_db)) == sorted(
        [(o3["id"], "slack:C1"), (o3["id"], "console:"), (claude["id"], "slack:C1"), (claude["id"], "discord:9")]
    )


def test_a_channels_alerts_of_one_cycle_are_one_batch(fresh_db):
    subscribe(fresh_db)
    a, b = cut_feed(fresh_db, "litellm"), cut_feed(fresh_db, "openrouter")
    moment = T0 + timedelta(hours=6)
    a.poll([*catalog(5), q("o3", "2", "8"), q("claude-3-5-sonnet", "3", "15", provider="anthropic")], at=moment)
    b.poll([*catalog(5), q("o3", "10", "40"), q("claude-3-5-sonnet", "1", "5", provider="anthropic")], at=moment + timedelta(seconds=20))
    [batch] = outbox.batches(fresh_db)
    assert len(batch.alert_ids) == 4
    # After group_wait the next cycle starts a new message.
    a.poll([*catalog(5), q("o3", "1", "4"), q("claude-3-5-sonnet", "3", "15", provider="anthropic")], at=moment + timedelta(minutes=5))
    assert len(outbox.batches(fresh_db)) == 2


def test_the_same_move_in_another_source_within_the_window_is_one_alert(fresh_db):
    subscribe(fresh_db)
    litellm, genai = cut_feed(fresh_db, "litellm"), Feed(fresh_db, "genai-prices")
    genai.poll([*catalog(5), q("o3", "10", "40")])
    litellm.poll([*catalog(5), q("o3", "2", "8"), q("claude-3-5-sonnet", "3", "15", provider="anthropic")])
    genai.poll([*catalog(5), q("o3", "2", "8")], at=T0 + timedelta(days=2))
    rows = alerts.query(fresh_db)
    assert {row["group_id"] for row in rows if row["source"] == "genai-prices"} == {row["id"] for row in rows if row["source"] == "litellm"}
    assert all(row["sources"] == ["litellm", "genai-prices"] for row in rows)
    assert {alert_id for alert_id, _ in queued(fresh_db)} == {row["id"] for row in rows if row["source"] == "litellm"}
    # Outside the window the same numbers are a new event.
    later = Feed(fresh_db, "llm-prices", start=T0 + timedelta(days=30))
    later.poll([*catalog(5), q("o3", "10", "40")])
    later.poll([*catalog(5), q("o3", "2", "8")])
    assert all(row["group_id"] is None for row in alerts.query(fresh_db, source="llm-prices"))


def test_silenced_alerts_are_stored_and_marked_not_delivered(fresh_db):
    subscribe(fresh_db)
    with transaction(fresh_db):
        silence = subscriptions.silence(fresh_db, "openai/o3*", T0, until=T0 + timedelta(days=1), created_by="ana", reason="known repricing")
        subscriptions.silence(fresh_db, "anthropic/*", T0 - timedelta(days=3), until=T0 - timedelta(days=2), created_by="ana", reason="expired")
    feed = cut_feed(fresh_db)
    feed.poll([*catalog(5), q("o3", "2", "8"), q("claude-3-5-sonnet", "1", "5", provider="anthropic")])
    rows = alerts.query(fresh_db)
    assert {(row["model"], row["silence_id"]) for row in rows} == {("o3", silence), ("claude-3-5-sonnet", None)}
    assert len(rows) == 4  # both fields of each model moved
    assert sorted(queued(fresh_db)) == [(row["id"], "console:") for row in rows if row["model"] != "o3"]


def test_a_channel_mute_holds_alerts_back_there_only(fresh_db):
    subscribe(fresh_db, "slack:C1")
    subscribe(fresh_db, "discord:2")
    with transaction(fresh_db):
        muted = subscriptions.silence(fresh_db, "openai/o3*", T0, until=T0 + timedelta(days=1), created_by="ana", reason="noisy", channel="slack:C1")
    feed = cut_feed(fresh_db)
    feed.poll([*catalog(5), q("o3", "2", "8"), q("claude-3-5-sonnet", "1", "5", provider="anthropic")])
    rows = alerts.query(fresh_db)
    o3 = {row["id"] for row in rows if row["model"] == "o3"}
    assert sorted(queued(fresh_db)) == sorted(
        [(row["id"], "discord:2") for row in rows] + [(row["id"], "slack:C1") for row in rows if row["id"] not in o3])
    assert all(row["silence_id"] is None for row in rows)  # delivered elsewhere: not silenced

    # Muted in every channel that would get it: stored and marked with the mute, queued nowhere.
    with transaction(fresh_db):
        subscriptions.silence(fresh_db, "openai/o3*", T0, until=T0 + timedelta(days=1), created_by="ana", reason="noisy", channel="discord:2")
    feed.poll([*catalog(5), q("o3", "1", "4"), q("claude-3-5-sonnet", "1", "5", provider="anthropic")])
    latest = [row for row in alerts.query(fresh_db) if row["id"] not in {r["id"] for r in rows}]
    assert latest and {row["silence_id"] for row in latest} == {muted}
    assert not {alert_id for alert_id, _ in queued(fresh_db)} & {row["id"] for row in latest}


@pytest.mark.parametrize("pattern", ["price_cut", "test", "o3", "openai/o3", "OPENAI/*"])
def test_a_silence_matches_kind_source_key_or_provider_and_model(fresh_db, pattern):
    with transaction(fresh_db):
        subscriptions.silence(fresh_db, pattern, T0, until=T0 + timedelta(days=1), created_by="ana", reason="test")
    feed = cut_feed(fresh_db)
    feed.poll([*catalog(5), q("o3", "2", "8"), q("claude-3-5-sonnet", "3", "15", provider="anthropic")])
    assert alerts.query(fresh_db)[0]["silence_id"] is not None


def test_replays_store_alerts_but_queue_nothing(fresh_db):
    subscribe(fresh_db)
    feed = cut_feed(fresh_db, notify=False)
    feed.poll([*catalog(5), q("o3", "2", "8"), q("claude-3-5-sonnet", "3", "15", provider="anthropic")])
    assert found(fresh_db) and queued(fresh_db) == []


def test_poll_alerts_and_outbox_land_together_or_not_at_all(fresh_db, monkeypatch):
    subscribe(fresh_db)
    feed = cut_feed(fresh_db)
    before = {name: fresh_db[name].count for name in ("polls", "prices", "alerts", "outbox")}

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(outbox, "enqueue", crash)
    with pytest.raises(RuntimeError):
        feed.poll([*catalog(5), q("o3", "2", "8"), q("claude-3-5-sonnet", "3", "15", provider="anthropic")])
    assert {name: fresh_db[name].count for name in before} == before
    monkeypatch.undo()
    feed.poll([*catalog(5), q("o3", "2", "8"), q("claude-3-5-sonnet", "3", "15", provider="anthropic")])
    assert len(found(fresh_db)) == 2 and len(queued(fresh_db)) == 2


def test_settings_are_validated_and_documented(tmp_path):
    from pathlib import Path

    from bot import config
    from bot.errors import ConfigError

    example = Path(__file__).resolve().parent.parent / "deploy" / "deflation-watch.example.toml"
    text = example.read_text()
    assert "[alerts]" in text
    for field in AlertSettings.__dataclass_fields__:
        assert f"\n{field} =" in text, field
    assert config.load(example, environ={}).alerts == AlertSettings()
    settings = config.load(environ={"DEFLATION_WATCH_ALERTS__GROUP_WAIT": "2m", "DEFLATION_WATCH_ALERTS__THRESHOLD_PCT": "5"})
    assert (settings.alerts.group_wait, settings.alerts.threshold_pct) == (timedelta(minutes=2), 5.0)
    for bad, message in [("threshold_pct = 0", "alerts.threshold_pct must be between"), ("implausible_pct = 5.0", "alerts.implausible_pct"),
                         ("stale_after_failures = 0", "alerts.stale_after_failures must be at least 1"), ('group_wait = "soon"', "alerts.group_wait must be a duration"),
                         ("nope = 1", "alerts.nope: unknown key")]:
        path = tmp_path / "bad.toml"
        path.write_text(f"[alerts]\n{bad}\n")
        with pytest.raises(ConfigError, match=message):
            config.load(path, environ={})
