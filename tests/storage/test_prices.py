"""Price history as change intervals: what a poll writes, and what it must not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.quotes import FREE, PricePoint, Quote
from storage import polls, prices

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def quote(model: str, inp: str | None, out: str | None, *, provider: str = "openai", at: datetime = T0, **extra) -> Quote:
    return Quote(
        source="test",
        provider=provider,
        model=model,
        observed_at=at,
        input_mtok=None if inp is None else Decimal(inp),
        output_mtok=None if out is None else Decimal(out),
        **extra,
    )


def poll_at(at: datetime, payload: bytes | None = b"{}") -> polls.Poll:
    return polls.Poll(source="test", started_at=at, finished_at=at, observed_at=at, payload=payload)


def record(db, at: datetime, quotes: list[Quote], payload: bytes = b"{}") -> prices.Outcome:
    return prices.record(db, poll_at(at, payload), quotes)


def table_counts(db) -> dict[str, int]:
    return {name: db[name].count for name in ("polls", "models", "prices", "payloads")}


def catalog(n: int = 10, at: datetime = T0) -> list[Quote]:
    return [quote(f"m{i}", "1", "2", at=at) for i in range(n)]


def test_first_poll_creates_models_and_open_intervals(fresh_db):
    outcome = record(fresh_db, T0, [quote("gpt-4o", "2.5", "10"), quote("o3", "2", "8")])
    assert outcome.status == "ok" and outcome.models_seen == 2
    assert sorted(c.kind for c in outcome.changes) == ["new", "new"]
    assert table_counts(fresh_db) == {"polls": 1, "models": 2, "prices": 2, "payloads": 1}
    [row] = prices.history(fresh_db, ["gpt-4o"])
    assert (row["valid_from"], row["valid_to"]) == ("2025-06-01T00:00:00Z", None)
    assert (row["input_mtok"], row["output_mtok"]) == (Decimal("2.5"), Decimal("10"))


def test_identical_poll_writes_only_its_poll_row(fresh_db):
    record(fresh_db, T0, catalog())
    before = table_counts(fresh_db)
    outcome = record(fresh_db, T0 + timedelta(hours=6), catalog(at=T0 + timedelta(hours=6)))
    assert outcome.changes == []
    assert table_counts(fresh_db) == {**before, "polls": before["polls"] + 1}


def test_same_value_spelled_differently_is_no_change(fresh_db):
    record(fresh_db, T0, [quote("a", "2.50", "10.0")])
    outcome = record(fresh_db, T0 + timedelta(days=1), [quote("a", "2.5", "1E+1")])
    assert outcome.changes == []


def test_price_change_closes_the_interval_and_opens_another(fresh_db):
    record(fresh_db, T0, [quote("o3", "10", "40")])
    later = T0 + timedelta(days=9)
    outcome = record(fresh_db, later, [quote("o3", "2", "8", at=later)])
    [change] = outcome.changes
    assert change.kind == "changed"
    assert change.old.output_mtok == Decimal("40") and change.new.output_mtok == Decimal("8")
    rows = prices.history(fresh_db, ["o3"])
    assert [(r["valid_from"], r["valid_to"], r["output_mtok"]) for r in rows] == [
        ("2025-06-01T00:00:00Z", "2025-06-10T00:00:00Z", Decimal("40")),
        ("2025-06-10T00:00:00Z", None, Decimal("8")),
    ]
    open_intervals = fresh_db.execute("SELECT COUNT(*) FROM prices WHERE valid_to IS NULL").fetchone()[0]
    assert open_intervals == 1


def test_model_removed_only_after_two_consecutive_absences(fresh_db):
    record(fresh_db, T0, catalog(10))
    first = record(fresh_db, T0 + timedelta(hours=6), catalog(9))
    assert [c.kind for c in first.changes] == []
    assert fresh_db.execute("SELECT missing_polls FROM models WHERE model = 'm9'").fetchone()[0] == 1
    second = record(fresh_db, T0 + timedelta(hours=12), catalog(9))
    assert [(c.kind, c.model) for c in second.changes] == [("removed", "m9")]
    [row] = prices.history(fresh_db, ["m9"])
    assert row["valid_to"] == "2025-06-01T06:00:00Z"  # closed when it was first missed
    third = record(fresh_db, T0 + timedelta(hours=18), catalog(9))
    assert third.changes == []


def test_a_model_missed_once_and_back_is_not_removed(fresh_db):
    record(fresh_db, T0, catalog(10))
    record(fresh_db, T0 + timedelta(hours=6), catalog(9))
    back = record(fresh_db, T0 + timedelta(hours=12), catalog(10))
    assert back.changes == []
    assert fresh_db.execute("SELECT missing_polls FROM models WHERE model = 'm9'").fetchone()[0] == 0


def test_removed_model_that_returns_opens_a_new_interval(fresh_db):
    record(fresh_db, T0, catalog(10))
    record(fresh_db, T0 + timedelta(hours=6), catalog(9))
    record(fresh_db, T0 + timedelta(hours=12), catalog(9))
    back = record(fresh_db, T0 + timedelta(days=2), catalog(10))
    assert [(c.kind, c.model) for c in back.changes] == [("returned", "m9")]
    assert [r["valid_to"] for r in prices.history(fresh_db, ["m9"])] == ["2025-06-01T06:00:00Z", None]


def test_partial_catalog_is_suspect_and_removes_nothing(fresh_db):
    record(fresh_db, T0, catalog(10))
    outcome = record(fresh_db, T0 + timedelta(hours=6), catalog(5))
    assert outcome.status == "suspect"
    assert outcome.changes == []
    assert fresh_db.execute("SELECT SUM(missing_polls) FROM models").fetchone()[0] == 0
    # The next full poll is compared with the last good one, not the suspect one.
    assert record(fresh_db, T0 + timedelta(hours=12), catalog(10)).status == "ok"


def test_dated_history_becomes_real_intervals_on_first_sight(fresh_db):
    june_10 = datetime(2025, 6, 10, tzinfo=UTC)
    o3 = quote(
        "o3", "2", "8", at=datetime(2025, 7, 1, tzinfo=UTC), since=june_10,
        earlier=(PricePoint(datetime(2025, 4, 16, tzinfo=UTC), Decimal("10"), Decimal("40")),),
    )
    record(fresh_db, datetime(2025, 7, 1, tzinfo=UTC), [o3])
    rows = prices.history(fresh_db, ["o3"])
    assert [(r["valid_from"], r["valid_to"], r["output_mtok"]) for r in rows] == [
        ("2025-04-16T00:00:00Z", "2025-06-10T00:00:00Z", Decimal("40")),
        ("2025-06-10T00:00:00Z", None, Decimal("8")),
    ]


def test_flag_change_is_a_change(fresh_db):
    record(fresh_db, T0, [quote("x", "0", "0")])
    outcome = record(fresh_db, T0 + timedelta(days=1), [quote("x", "0", "0", flag=FREE)])
    assert [c.kind for c in outcome.changes] == ["changed"]


def test_failed_poll_writes_only_the_poll_row(fresh_db):
    record(fresh_db, T0, catalog())
    before = table_counts(fresh_db)
    failed = polls.Poll(source="test", started_at=T0, finished_at=T0, observed_at=T0, status="failed", error="HTTP 503 from x", payload=None)
    outcome = prices.record(fresh_db, failed, None)
    assert outcome.status == "failed"
    assert table_counts(fresh_db) == {**before, "polls": before["polls"] + 1}


def test_poll_is_one_transaction(fresh_db):
    """A failure while writing leaves nothing of the poll behind."""
    record(fresh_db, T0, catalog())
    before = table_counts(fresh_db)

    def explode(db, outcome):
        raise RuntimeError("crash after the writes")

    later = T0 + timedelta(days=1)
    with pytest.raises(RuntimeError):
        prices.record(fresh_db, poll_at(later, b"new"), [quote("m0", "0.5", "1", at=later), quote("new", "1", "1", at=later)], within=explode)
    assert table_counts(fresh_db) == before
    assert prices.history(fresh_db, ["m0"])[-1]["input_mtok"] == Decimal("1")


def test_identical_payloads_are_stored_once(fresh_db):
    record(fresh_db, T0, catalog(), payload=b'{"same": 1}')
    record(fresh_db, T0 + timedelta(hours=6), catalog(), payload=b'{"same": 1}')
    assert fresh_db["payloads"].count == 1
    hashes = {row[0] for row in fresh_db.execute("SELECT payload_hash FROM polls")}
    assert len(hashes) == 1


def test_in_force_finds_the_interval_covering_a_moment(fresh_db):
    record(fresh_db, T0, [quote("o3", "10", "40"), quote("gpt-4o", "5", "15")])
    record(fresh_db, T0 + timedelta(days=9), [quote("o3", "2", "8"), quote("gpt-4o", "5", "15")])
    assert [r["output_mtok"] for r in prices.in_force(fresh_db, ["o3"], T0 + timedelta(days=8))] == [Decimal("40")]
    assert [r["output_mtok"] for r in prices.in_force(fresh_db, ["o3"], T0 + timedelta(days=9))] == [Decimal("8")]
    assert prices.in_force(fresh_db, ["o3"], T0 - timedelta(days=1)) == []
    assert prices.history(fresh_db, ["gpt-9"]) == []
    assert prices.model_keys(fresh_db) == ["gpt-4o", "o3"]


def test_intervals_lists_every_interval_in_column_order(fresh_db):
    record(fresh_db, T0, [quote("o3", "10", "40", open_weight=False)])
    record(fresh_db, T0 + timedelta(days=9), [quote("o3", "2", "8", open_weight=False)])
    rows = prices.intervals(fresh_db)
    assert [dict(zip(prices.INTERVAL_COLUMNS, row)) for row in rows] == [
        {"source": "test", "provider": "openai", "model": "o3", "valid_from": "2025-06-01T00:00:00Z",
         "valid_to": "2025-06-10T00:00:00Z", "input_mtok": 10.0, "output_mtok": 40.0, "cache_read_mtok": None,
         "open_weight": 0, "flag": None},
        {"source": "test", "provider": "openai", "model": "o3", "valid_from": "2025-06-10T00:00:00Z",
         "valid_to": None, "input_mtok": 2.0, "output_mtok": 8.0, "cache_read_mtok": None,
         "open_weight": 0, "flag": None},
    ]
    assert prices.intervals(fresh_db, source="other") == []
