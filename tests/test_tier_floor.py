"""The `tier_floor` alert: a tier's cheapest blended price fell by the threshold, or another
model took the floor; the first check is a silent baseline; nothing is announced twice."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from bot import cli_alerts, config, tier_floor  # noqa: F401  (cli_alerts registers the `alerts` command)
from bot.cli import app
from bot.quotes import Quote
from storage import alerts, polls, prices, subscriptions, tier_floors, transaction

NOW = datetime(2025, 9, 1, tzinfo=UTC)
TIERS = """
[tiers.gpt-4-class]
description = "test tier"
members = [
    { pattern = "gpt-4o", since = 2024-05-13 },
    { pattern = "llama-3.1-405b-instruct", since = 2024-07-23, open_weight = true },
]
"""


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "tiers.toml"
    path.write_text(TIERS)
    return replace(config.load(environ={}), tiers=path)


def poll(db, at: datetime, listings: dict[str, tuple[str, str, str]]) -> None:
    """One litellm poll: model key -> (provider, input, output)."""
    quotes = [Quote("litellm", p, key, at, Decimal(i), Decimal(o)) for key, (p, i, o) in listings.items()]
    prices.record(db, polls.Poll("litellm", at, at, at), quotes)


START = {"gpt-4o": ("openai", "2.5", "10"), "llama-3.1-405b-instruct": ("together", "3.5", "3.5")}


def floors(db) -> list[dict]:
    return list(db.query("SELECT * FROM alerts WHERE kind = 'tier_floor' ORDER BY id"))


def test_first_check_is_a_silent_baseline(fresh_db, settings):
    poll(fresh_db, NOW - timedelta(days=60), START)
    with transaction(fresh_db):
        subscriptions.subscribe(fresh_db, "console:", NOW)
    assert tier_floor.check(fresh_db, settings, NOW) == []
    baseline = tier_floors.get(fresh_db, "gpt-4-class")
    assert (baseline["model"], baseline["usd_per_mtok"], baseline["alert_id"]) == ("llama-3.1-405b-instruct", Decimal("3.5"), None)
    assert fresh_db["alerts"].count == 0 and fresh_db["outbox"].count == 0
    assert tier_floor.check(fresh_db, settings, NOW) == []


def test_a_drop_by_the_threshold_is_announced_once(fresh_db, settings):
    poll(fresh_db, NOW - timedelta(days=60), START)
    tier_floor.check(fresh_db, settings, NOW - timedelta(days=59))
    poll(fresh_db, NOW - timedelta(days=1), {**START, "llama-3.1-405b-instruct": ("together", "0.8", "0.8")})
    [alert_id] = tier_floor.check(fresh_db, settings, NOW)
    row = alerts.get(fresh_db, alert_id)
    assert row["reason"] == "drop" and row["pct_change"] == pytest.approx(-77.142857, rel=1e-6)
    assert fresh_db["outbox"].count == 0  # no channel is subscribed here
    message = json.loads(row["detail"])["message"]
    assert message == "GPT-4-class floor is now $0.8/Mtok (llama-3.1-405b-instruct, together, open-weight), −77.1 % vs 30 days ago"
    assert tier_floor.check(fresh_db, settings, NOW + timedelta(hours=6)) == []


def test_a_small_drop_of_the_same_model_is_not_news(fresh_db, settings):
    poll(fresh_db, NOW - timedelta(days=60), START)
    tier_floor.check(fresh_db, settings, NOW - timedelta(days=59))
    poll(fresh_db, NOW - timedelta(days=1), {**START, "llama-3.1-405b-instruct": ("together", "3.3", "3.3")})
    assert tier_floor.check(fresh_db, settings, NOW) == []


def test_another_model_taking_the_floor_is_news_at_any_size(fresh_db, settings):
    poll(fresh_db, NOW - timedelta(days=60), START)
    tier_floor.check(fresh_db, settings, NOW - timedelta(days=59))
    poll(fresh_db, NOW - timedelta(days=1), {**START, "gpt-4o": ("openai", "3.2", "3.6")})  # 3.3: 5.7 % under 3.5
    [alert_id] = tier_floor.check(fresh_db, settings, NOW)
    row = alerts.get(fresh_db, alert_id)
    assert (row["reason"], row["model"], row["pct_change"]) == ("new_floor_model", "gpt-4o", None)
    assert "(gpt-4o, openai, proprietary), −5.7 % vs 30 days ago" in json.loads(row["detail"])["message"]


def test_a_poll_cycle_that_cuts_a_member_price_raises_the_alert(tmp_path, settings, source_server):
    """End to end through `deflation-watch poll`: the first cycle sets the baseline, the cut
    in the next one is a tier_floor alert listed by `deflation-watch alerts`."""
    def catalog(price: float) -> bytes:
        return json.dumps({
            "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05},
            "llama-3.1-405b-instruct": {"litellm_provider": "together_ai", "mode": "chat", "input_cost_per_token": price, "output_cost_per_token": price},
        }).encode()

    url = source_server.serve("/litellm.json", catalog(3.5e-06))
    cfg = tmp_path / "dw.toml"
    cfg.write_text(
        f'db = "{tmp_path / "dw.db"}"\nbackfill = false\ntiers = "{settings.tiers}"\n'
        + "".join(f"[sources.{name}]\nenabled = false\n" for name in ("openrouter", "genai-prices", "llm-prices", "models-dev", "bundled"))
        + f'[sources.litellm]\nurl = "{url}"\n'
    )
    runner = CliRunner()
    assert runner.invoke(app, ["poll", "--config", str(cfg)]).exit_code == 0
    source_server.serve("/litellm.json", catalog(8e-07))
    assert runner.invoke(app, ["poll", "--config", str(cfg)]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["alerts", "--config", str(cfg), "--kind", "tier_floor", "--json"]).stdout)
    assert [(row["model"], row["new_mtok"]) for row in listed] == [("llama-3.1-405b-instruct", 0.8)]


def test_an_announced_floor_reaches_the_subscribed_channel(fresh_db, settings):
    with transaction(fresh_db):
        subscriptions.subscribe(fresh_db, "console:", NOW)
    poll(fresh_db, NOW - timedelta(days=60), START)
    tier_floor.check(fresh_db, settings, NOW - timedelta(days=59))
    poll(fresh_db, NOW - timedelta(days=1), {**START, "llama-3.1-405b-instruct": ("together", "0.8", "0.8")})
    [alert_id] = tier_floor.check(fresh_db, settings, NOW)
    assert [row["alert_id"] for row in fresh_db.query("SELECT alert_id FROM outbox WHERE channel = 'console:'")] == [alert_id]


def test_the_alert_renders_as_its_sentence(fresh_db, settings):
    from bot.alert_cards import render

    poll(fresh_db, NOW - timedelta(days=60), START)
    tier_floor.check(fresh_db, settings, NOW - timedelta(days=59))
    poll(fresh_db, NOW - timedelta(days=1), {**START, "llama-3.1-405b-instruct": ("together", "0.8", "0.8")})
    [alert_id] = tier_floor.check(fresh_db, settings, NOW)
    text = render(alerts.query(fresh_db, ids=[alert_id]), top=8).text()
    assert "GPT-4-class floor is now $0.8/Mtok (llama-3.1-405b-instruct, together, open-weight)" in text


def test_a_floor_that_rose_is_measured_from_where_it_is(fresh_db, settings):
    """The floor model's price goes up: no alert; a later cut is measured from the new level."""
    poll(fresh_db, NOW - timedelta(days=60), START)
    tier_floor.check(fresh_db, settings, NOW - timedelta(days=59))
    poll(fresh_db, NOW - timedelta(days=40), {**START, "llama-3.1-405b-instruct": ("together", "4", "4")})
    assert tier_floor.check(fresh_db, settings, NOW - timedelta(days=39)) == []
    assert tier_floors.get(fresh_db, "gpt-4-class")["usd_per_mtok"] == Decimal("4")
    poll(fresh_db, NOW - timedelta(days=20), START)  # back to 3.5: 12.5 % under 4
    [alert_id] = tier_floor.check(fresh_db, settings, NOW - timedelta(days=19))
    assert alerts.get(fresh_db, alert_id)["reason"] == "drop"
