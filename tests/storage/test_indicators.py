"""Indicator storage: readings and events are exact, and entering the same one again corrects it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from storage import alerts
from storage import indicators as store

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def reading(value: str, as_of: date, source: str = "chat", **extra) -> store.Reading:
    return store.Reading("open-weight-token-share", Decimal(value), as_of, None, source, extra.pop("note", None), "slack:U1", NOW, **extra)


def test_a_reading_for_the_same_day_and_path_corrects_the_first(fresh_db):
    assert store.put_reading(fresh_db, reading("17.50", date(2026, 6, 30), note="first"))
    assert store.put_reading(fresh_db, reading("15", date(2026, 3, 31)))
    assert not store.put_reading(fresh_db, reading("18.0", date(2026, 6, 30), note="corrected"))
    assert store.put_reading(fresh_db, reading("18", date(2026, 6, 30), source="csv"))  # another path, another reading
    stored = store.readings(fresh_db, "open-weight-token-share")
    assert [(r.value, r.as_of, r.source, r.note) for r in stored] == [
        (Decimal("15"), date(2026, 3, 31), "chat", None),
        (Decimal("18"), date(2026, 6, 30), "chat", "corrected"),
        (Decimal("18"), date(2026, 6, 30), "csv", None),
    ]
    assert fresh_db.execute("SELECT value FROM indicator_readings WHERE as_of = '2026-06-30' AND source = 'chat'").fetchone() == ("18",)


def test_reading_detail_round_trips(fresh_db):
    detail = {"companies": {"MSFT": {"ttm_usd": "23467000000"}}}
    store.put_reading(fresh_db, reading("23.467", date(2022, 3, 31), source="sec-edgar", detail=detail))
    assert store.readings(fresh_db, "open-weight-token-share")[0].detail == detail


def test_events_are_one_per_company_and_day(fresh_db):
    event = store.Event("saas-gm-guide-downs", "ACME", date(2026, 9, 30), Decimal(70), Decimal(75), Decimal(65), Decimal(70), "chat", None, "slack:U1", NOW)
    assert store.put_event(fresh_db, event)
    assert not store.put_event(fresh_db, store.Event(**{**_fields(event), "new_low": Decimal(60)}))
    assert store.put_event(fresh_db, store.Event(**{**_fields(event), "happened_on": date(2026, 10, 1)}))
    stored = store.events(fresh_db, "saas-gm-guide-downs")
    assert [(e.happened_on, e.new_low, e.new_high) for e in stored] == [(date(2026, 9, 30), 60, 70), (date(2026, 10, 1), 65, 70)]


def _fields(event: store.Event) -> dict:
    return {name: getattr(event, name) for name in store.Event.__dataclass_fields__}


def test_sec_quarters_are_replaced_by_a_later_poll(fresh_db):
    q = store.SecQuarter("MSFT", 789019, "capex", 2022, 2, "2021Q4", date(2021, 10, 1), date(2021, 12, 31), Decimal(5_865_000_000), "PaymentsToAcquirePropertyPlantAndEquipment", "derived")
    store.put_sec_quarters(fresh_db, [q], NOW)
    store.put_sec_quarters(fresh_db, [store.SecQuarter(**{**{n: getattr(q, n) for n in store.SecQuarter.__dataclass_fields__}, "value_usd": Decimal(5_900_000_000)})], NOW)
    assert [s.value_usd for s in store.sec_quarters(fresh_db, "capex")] == [Decimal(5_900_000_000)]
    assert store.sec_quarters(fresh_db, "capex", ["AMZN"]) == []


def test_open_signals_and_closing_them(fresh_db):
    signal = alerts.NewAlert(
        kind=store.SIGNAL_KIND, source="indicators", observed_at=NOW, poll_id=None,
        model="annualised-decline", field="above-70", new_value="2026-11-01", reason=store.CROSSED,
    )
    alert_id = alerts.insert(fresh_db, signal, NOW)
    assert [row["id"] for row in store.open_signals(fresh_db, "annualised-decline")] == [alert_id]
    store.close_signal(fresh_db, alert_id, NOW)
    assert store.open_signals(fresh_db, "annualised-decline") == []
    assert alerts.get(fresh_db, alert_id)["resolved_at"] == "2026-11-01T00:00:00Z"
