"""`price_cut` / `price_hike` and their guards: threshold, sentinel and free prices, moves from
zero, and the implausible-move hold (pending until confirmed, dropped when reverted)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from bot.config import AlertSettings
from bot.detectors import price_move
from storage import alerts
from tests.detectors.builders import Feed, found, q, queued, subscribe


def test_first_poll_is_a_baseline_then_a_cut_is_an_alert(fresh_db):
    feed = Feed(fresh_db)
    assert feed.poll([q("o3", "10", "40")]).alerts.created == []
    report = feed.poll([q("o3", "2", "8")])
    assert found(fresh_db) == [("price_cut", "o3", "input_mtok", "confirmed"), ("price_cut", "o3", "output_mtok", "confirmed")]
    [cut] = alerts.query(fresh_db, ids=report.alerts.created[1:])
    assert (cut["old_mtok"], cut["new_mtok"], cut["pct_change"], cut["new_value"]) == ("40", "8", -80.0, "8")


def test_each_field_moves_on_its_own_and_a_rise_is_a_hike(fresh_db):
    feed = Feed(fresh_db)
    feed.poll([q("a", "1", "2", "0.5")])
    feed.poll([q("a", "1", "2.5", "0.25")])
    assert found(fresh_db) == [("price_hike", "a", "output_mtok", "confirmed"), ("price_cut", "a", "cache_read_mtok", "confirmed")]
    assert [a["pct_change"] for a in alerts.query(fresh_db)] == [25.0, -50.0]


@pytest.mark.parametrize(("new", "alerted"), [("9.5", False), ("9.01", False), ("9", True), ("11", True)])
def test_threshold_is_inclusive_at_ten_percent(fresh_db, new, alerted):
    feed = Feed(fresh_db)
    feed.poll([q("a", "10", "10")])
    feed.poll([q("a", new, "10")])
    assert bool(found(fresh_db)) is alerted


def test_threshold_is_configurable(fresh_db):
    feed = Feed(fresh_db, settings=AlertSettings(threshold_pct=30))
    feed.poll([q("a", "10", "10")])
    feed.poll([q("a", "8", "6")])
    assert found(fresh_db) == [("price_cut", "a", "output_mtok", "confirmed")]


def test_a_subscription_may_ask_for_smaller_moves_than_the_global_threshold(fresh_db):
    subscribe(fresh_db, "console:all")
    subscribe(fresh_db, "console:keen", min_pct=Decimal("5"))
    feed = Feed(fresh_db)
    feed.poll([q("a", "10", "10")])
    feed.poll([q("a", "9.4", "10")])  # -6 %: only for the keen channel
    [small] = alerts.query(fresh_db)
    assert small["pct_change"] == -6.0
    assert queued(fresh_db) == [(small["id"], "console:keen")]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (q("openrouter/auto", "-1", "-1"), q("openrouter/auto", "2", "8")),  # sentinel to a price
        (q("r", "2", "8"), q("r", "-1", "-1")),  # a price to a sentinel
        (q("m:free", "0", "0"), q("m:free", "0.1", "0.1")),  # a :free variant is free whatever it says
        (q("m", "1", "2"), q("m", "0", "0")),  # an all-zero listing is a free one, not a 100 % cut
        (q("m", "0", "0"), q("m", "1", "2")),
    ],
)
def test_sentinel_and_free_prices_never_move(fresh_db, before, after):
    feed = Feed(fresh_db)
    feed.poll([before])
    feed.poll([after])
    assert found(fresh_db) == []


def test_moves_from_zero_or_from_nothing_have_no_percentage(fresh_db):
    feed = Feed(fresh_db)
    feed.poll([q("a", "1", "2", "0"), q("b", "1", "2")])
    feed.poll([q("a", "1", "2", "0.5"), q("b", "1", "2", "0.1")])
    assert found(fresh_db) == []


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("10", "1", "large_move"),  # -90 %: the threshold is inclusive
        ("10", "0.5", "large_move"),
        ("1", "10", "large_move"),  # the same factor upwards
        ("1", "0", "to_zero"),
        ("2", "2000000", "unit_jump"),  # a per-token price read as per million
        ("100000", "0.1", "unit_jump"),
        ("2", "0.002", "unit_jump"),
        ("10", "1.5", None),  # -85 %: a big but plausible cut
        ("1", "5", None),
    ],
)
def test_implausible_moves(old, new, reason):
    kind, pct, why = price_move.assess(Decimal(old), Decimal(new), Decimal(10), Decimal(90))
    assert why == reason
    assert kind == ("price_cut" if Decimal(new) < Decimal(old) else "price_hike")
    assert pct == ((Decimal(new) - Decimal(old)) / Decimal(old) * 100).quantize(Decimal("0.01"))


def test_implausible_move_is_pending_until_the_next_poll_confirms_it(fresh_db):
    subscribe(fresh_db)
    feed = Feed(fresh_db)
    feed.poll([q("a", "10", "2")])
    feed.poll([q("a", "0.5", "2")])
    assert found(fresh_db) == [("price_cut", "a", "input_mtok", "pending")]
    assert queued(fresh_db) == []  # nothing goes out while it is held
    feed.poll([q("a", "0.5", "2")])
    [alert] = alerts.query(fresh_db)
    assert (alert["status"], alert["reason"]) == ("confirmed", "next_poll")
    assert queued(fresh_db) == [(alert["id"], "console:")]


def test_a_not_modified_poll_confirms_too_but_a_failed_or_partial_one_does_not(fresh_db):
    feed = Feed(fresh_db)
    feed.poll(catalog := [q(f"m{i}", "1", "2") for i in range(9)] + [q("a", "10", "2")])
    feed.poll(catalog[:9] + [q("a", "0.5", "2")])
    feed.fail()
    feed.poll(catalog[:3])  # suspect: under 60 % of the last good catalog
    assert found(fresh_db, kinds=["price_cut"]) == [("price_cut", "a", "input_mtok", "pending")]
    feed.not_modified()
    assert found(fresh_db, kinds=["price_cut"]) == [("price_cut", "a", "input_mtok", "confirmed")]


def test_a_reverted_move_is_dropped_logged_and_not_a_move_back(fresh_db, caplog):
    feed = Feed(fresh_db)
    feed.poll([q("a", "2", "8")])
    feed.poll([q("a", "2000000", "8")])
    with caplog.at_level(logging.INFO, logger="bot.detectors.price_move"):
        report = feed.poll([q("a", "2", "8")])
    assert found(fresh_db) == [("price_hike", "a", "input_mtok", "dropped")]
    assert alerts.query(fresh_db)[0]["reason"] == "reverted"
    assert report.alerts.created == [] and report.alerts.dropped == 1
    assert "reverted" in caplog.text


def test_a_superseded_move_is_measured_from_the_last_trusted_price(fresh_db):
    feed = Feed(fresh_db)
    feed.poll([q("a", "10", "8")])
    feed.poll([q("a", "0.01", "8")])
    feed.poll([q("a", "8", "8")])
    rows = alerts.query(fresh_db)
    assert [(a["status"], a["reason"], a["old_mtok"], a["new_mtok"]) for a in rows] == [
        ("dropped", "superseded", "10", "0.01"),
        ("confirmed", None, "10", "8"),
    ]


def test_another_source_showing_the_same_move_confirms_it_as_one_alert(fresh_db):
    subscribe(fresh_db)
    litellm, openrouter = Feed(fresh_db, "litellm"), Feed(fresh_db, "openrouter")
    litellm.poll([q("o3", "10", "40")])
    openrouter.poll([q("openai/o3", "10", "40")])
    litellm.poll([q("o3", "0.5", "40")])
    assert found(fresh_db) == [("price_cut", "o3", "input_mtok", "pending")]
    openrouter.poll([q("openai/o3", "0.5", "40")])
    first, second = alerts.query(fresh_db)
    assert (first["status"], first["reason"], first["group_id"]) == ("confirmed", "other_source", None)
    assert (second["status"], second["group_id"]) == ("confirmed", first["id"])
    assert first["sources"] == second["sources"] == ["litellm", "openrouter"]
    assert queued(fresh_db) == [(first["id"], "console:")]
