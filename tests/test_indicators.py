"""Watch indicators: thresholds crossed and fallen back from, trajectories missed twice, guide-downs
counted per calendar quarter, and hyperscaler capex polled from real SEC filings over loopback."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from bot import alert_cards, config, indicator_entry, indicator_sec, indicators
from bot.errors import ConfigError
from storage import alerts, outbox, subscriptions
from storage import indicators as store

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
M = Decimal(1_000_000)
MSFT_FILE = "sec-companyfacts-CIK0000789019-MSFT-trimmed.json"
AMZN_FILE = "sec-companyfacts-CIK0001018724-AMZN-trimmed.json"


@pytest.fixture
def settings():
    return config.load(environ={})


def enter(db, settings, name: str, value: str, as_of: str, now: datetime = NOW):
    item = indicator_entry.reading_from(indicators.get(name), [value, as_of], now.date(), source="chat", entered_by="slack:U1", now=now)
    return indicator_entry.record(db, item, settings, now)


def guide_down(db, settings, company: str, day: str, now: datetime = NOW):
    item = indicator_entry.event_from(indicators.get("saas-gm-guide-downs"), [company, "70-75", "65-70", day], now.date(), source="chat", entered_by="slack:U1", now=now)
    return indicator_entry.record(db, item, settings, now)


def subscribe(db) -> None:
    subscriptions.subscribe(db, "console:", NOW)
    db.conn.commit()


def signal_rows(db, name: str) -> list[dict]:
    return [row for row in alerts.query(db, kinds=["indicator_threshold"]) if row["model"] == name]


# --- definitions ---------------------------------------------------------------------------------


def test_six_indicators_each_with_unit_definition_and_feed():
    assert list(indicators.INDICATORS) == [
        "hyperscaler-inference-mix", "saas-gm-guide-downs", "open-weight-token-share",
        "hyperscaler-capex", "open-weight-price-gap", "annualised-decline",
    ]
    for ind in indicators.INDICATORS.values():
        assert ind.unit and len(ind.definition) > 60 and ind.how_to_feed
    mix = indicators.INDICATORS["hyperscaler-inference-mix"].thresholds[0]
    assert (mix.direction, mix.level, mix.by, mix.trajectory) == ("above", 60, date(2027, 6, 30), True)
    share = indicators.INDICATORS["open-weight-token-share"].thresholds[0]
    assert (share.level, share.by) == (25, date(2026, 9, 30))
    assert [(t.direction, t.level) for t in indicators.INDICATORS["annualised-decline"].thresholds] == [("above", 70), ("below", 30)]


# --- threshold crossing and resolution ----------------------------------------------------------


def test_a_crossing_is_one_alert_posted_through_the_outbox_and_resolved_when_it_falls_back(fresh_db, settings):
    subscribe(fresh_db)
    enter(fresh_db, settings, "open-weight-token-share", "20", "2026-03-31")
    assert signal_rows(fresh_db, "open-weight-token-share") == []

    written = enter(fresh_db, settings, "open-weight-token-share", "26.5%", "2026-06-30")
    (crossed,) = signal_rows(fresh_db, "open-weight-token-share")
    assert written.signals.raised == [crossed["id"]] and written.signals.queued == 1
    assert (crossed["field"], crossed["new_value"], crossed["reason"], crossed["resolved_at"]) == ("above-25", "2026-06-30", "crossed", None)
    assert "26.5 %" in crossed["detail"]["message"] and "≥ 25 %" in crossed["detail"]["message"]
    assert [row["alert_id"] for row in outbox.rows(fresh_db)] == [crossed["id"]]

    # A reading still above it, and re-checking, change nothing: one episode, one alert.
    enter(fresh_db, settings, "open-weight-token-share", "27", "2026-07-31")
    indicators.check(fresh_db, settings, lambda: NOW)
    assert len(signal_rows(fresh_db, "open-weight-token-share")) == 1

    back = enter(fresh_db, settings, "open-weight-token-share", "24", "2026-08-31", now=NOW + timedelta(hours=1))
    crossed_now, notice = signal_rows(fresh_db, "open-weight-token-share")
    assert crossed_now["resolved_at"] == "2026-11-20T13:00:00Z"
    assert (notice["reason"], notice["new_value"], notice["field"]) == ("fell_back", "2026-06-30/fell-back", "above-25")
    assert back.signals.resolved == [notice["id"]]
    assert "fell back" in notice["detail"]["message"] and "24 %" in notice["detail"]["message"]
    assert [row["alert_id"] for row in outbox.rows(fresh_db)] == [crossed["id"], notice["id"]]
    assert store.open_signals(fresh_db, "open-weight-token-share") == []

    # Crossing again is a new episode with its own alert.
    enter(fresh_db, settings, "open-weight-token-share", "25", "2026-09-30", now=NOW + timedelta(hours=2))
    assert [r["new_value"] for r in signal_rows(fresh_db, "open-weight-token-share")][-1] == "2026-09-30"


def test_signals_render_as_alert_cards(fresh_db, settings):
    enter(fresh_db, settings, "open-weight-token-share", "26", "2026-06-30")
    card = alert_cards.render(alerts.query(fresh_db, kinds=["indicator_threshold"]))
    assert card.title == "Watch indicator: open-weight-token-share"
    assert card.lines[0].startswith("open-weight-token-share reached 26 % (2026-06-30)")


def test_a_silenced_signal_is_stored_and_marked_but_not_queued(fresh_db, settings):
    subscriptions.silence(fresh_db, "open-weight-*", NOW - timedelta(hours=1), until=NOW + timedelta(days=1), created_by="ops", reason="known")
    subscribe(fresh_db)
    enter(fresh_db, settings, "open-weight-token-share", "30", "2026-06-30")
    (row,) = signal_rows(fresh_db, "open-weight-token-share")
    assert row["silence_id"] is not None and outbox.rows(fresh_db) == []


def test_status_on_track_behind_crossed_and_missed(fresh_db, settings):
    name = "open-weight-token-share"
    early = datetime(2026, 3, 1, tzinfo=UTC)
    enter(fresh_db, settings, name, "14", "2025-09-30", now=early)
    ev = indicators.evaluate_one(fresh_db, indicators.get(name), settings, early)
    assert ev.state == "on track" and ev.status.startswith("First reading 14 %") and ev.trend == ""
    enter(fresh_db, settings, name, "16", "2025-12-31", now=early)  # the line: 14 + 11 × 92 / 365 = 16.77
    ev = indicators.evaluate_one(fresh_db, indicators.get(name), settings, early)
    assert ev.state == "behind" and "against 16.77 %" in ev.status and ev.trend == "+2 pts since 2025-09-30"
    assert indicators.evaluate_one(fresh_db, indicators.get(name), settings, NOW).state == "missed"  # past 2026-09-30
    enter(fresh_db, settings, name, "25", "2026-09-30")
    assert indicators.evaluate_one(fresh_db, indicators.get(name), settings, NOW).state == "crossed"


# --- trajectory ------------------------------------------------------------------------------------


def test_two_consecutive_prints_below_the_trajectory_are_a_signal(fresh_db, settings):
    name = "hyperscaler-inference-mix"
    now = datetime(2026, 6, 1, tzinfo=UTC)
    # The line runs from 40 % on 2025-06-30 to 60 % on 2027-06-30 (730 days): 42.52 on 2025-09-30,
    # 45.04 on 2025-12-31, 47.51 on 2026-03-31.
    enter(fresh_db, settings, name, "40", "2025-06-30", now=now)
    enter(fresh_db, settings, name, "42", "2025-09-30", now=now)  # one miss
    assert signal_rows(fresh_db, name) == []
    ev = indicators.evaluate_one(fresh_db, indicators.get(name), settings, now)
    assert ev.state == "behind" and ev.extra["trajectory_misses"] == 1

    written = enter(fresh_db, settings, name, "45", "2025-12-31", now=now)  # the second in a row
    (signal,) = signal_rows(fresh_db, name)
    assert written.signals.raised == [signal["id"]]
    assert (signal["field"], signal["new_value"]) == ("trajectory", "2025-12-31")
    assert "2 consecutive prints" in signal["detail"]["message"] and "45 % (2025-12-31) against 45.04 %" in signal["detail"]["message"]

    enter(fresh_db, settings, name, "48", "2026-03-31", now=now)  # back on the line: resolved
    first, notice = signal_rows(fresh_db, name)
    assert first["resolved_at"] is not None and notice["reason"] == "fell_back"
    assert indicators.evaluate_one(fresh_db, indicators.get(name), settings, now).state == "on track"


def test_misses_that_are_not_consecutive_are_no_signal(fresh_db, settings):
    name = "hyperscaler-inference-mix"
    now = datetime(2026, 6, 1, tzinfo=UTC)
    for value, day in (("40", "2025-06-30"), ("42", "2025-09-30"), ("46", "2025-12-31"), ("47", "2026-03-31")):
        enter(fresh_db, settings, name, value, day, now=now)
    assert signal_rows(fresh_db, name) == []  # miss, on track, miss


# --- guide-downs per calendar quarter --------------------------------------------------------------


def test_guide_downs_are_counted_per_calendar_quarter_across_its_boundaries(fresh_db, settings):
    name = "saas-gm-guide-downs"
    guide_down(fresh_db, settings, "ACME", "2026-09-29")
    guide_down(fresh_db, settings, "BETA", "2026-09-30")  # the last day of Q3
    guide_down(fresh_db, settings, "GAMMA", "2026-10-01")  # the first day of Q4
    assert signal_rows(fresh_db, name) == []  # two in Q3, one in Q4: three in 3 days, but not in one quarter
    ev = indicators.evaluate_one(fresh_db, indicators.get(name), settings, NOW)
    assert [(p.period, p.value) for p in ev.points] == [("2026Q3", 2), ("2026Q4", 1)]
    assert ev.state == "below" and ev.status.startswith("1 guide-down in 2026Q4")

    guide_down(fresh_db, settings, "DELTA", "2026-07-01")  # the first day of Q3: three there now
    (q3,) = signal_rows(fresh_db, name)
    assert (q3["field"], q3["new_value"]) == ("3-a-quarter:2026Q3", "2026Q3")
    assert "in 2026Q3 (DELTA, ACME, BETA)" in q3["detail"]["message"]
    ev = indicators.evaluate_one(fresh_db, indicators.get(name), settings, NOW)
    assert ev.state == "below" and "Last crossed in 2026Q3" in ev.status

    guide_down(fresh_db, settings, "EPS", "2026-11-02")
    guide_down(fresh_db, settings, "ZETA", "2026-11-19")
    assert [r["field"] for r in signal_rows(fresh_db, name)] == ["3-a-quarter:2026Q3", "3-a-quarter:2026Q4"]
    assert indicators.evaluate_one(fresh_db, indicators.get(name), settings, NOW).state == "crossed"

    # A new year's Q1 starts from zero; Q3 and Q4 stay counted as they were.
    later = datetime(2027, 1, 15, tzinfo=UTC)
    ev = indicators.evaluate_one(fresh_db, indicators.get(name), settings, later)
    assert [(p.period, p.value) for p in ev.points] == [("2026Q3", 3), ("2026Q4", 3), ("2027Q1", 0)]


# --- computed indicators -----------------------------------------------------------------------------


def test_computed_indicators_come_from_the_price_history(tmp_path, settings):
    from bot import pipeline
    from storage import open_db

    db = open_db(tmp_path / "history.db")
    pipeline.load_history(db)  # the shipped real history
    when = datetime(2025, 6, 1, tzinfo=UTC)
    gap, decline = indicators.evaluate(db, settings, when, ["open-weight-price-gap", "annualised-decline"])
    assert gap.state == "context" and gap.latest.value > 1 and gap.latest.as_of == date(2025, 6, 1)
    floors = gap.extra["now"]
    assert floors["open_weight_floor"]["open_weight"] and not floors["proprietary_floor"]["open_weight"]
    assert gap.latest.value == (Decimal(repr(floors["proprietary_floor"]["usd_per_mtok"])) / Decimal(repr(floors["open_weight_floor"]["usd_per_mtok"]))).quantize(Decimal("0.01"))
    assert 0 < decline.latest.value < 100 and [p.as_of for p in decline.points][-2:] == [date(2025, 5, 25), date(2025, 6, 1)]
    from bot import analytics
    from bot.tiers import load_tiers

    frame = analytics.load_intervals(db)
    fit = analytics.trend(frame, when, tier=load_tiers()["gpt-4-class"], window_days=365)
    assert decline.latest.value == Decimal(repr(round(fit["annual_decline"] * 100, 1)))
    db.close()


def test_the_decline_signals_at_seventy_up_and_thirty_down(fresh_db, settings, monkeypatch):
    values = iter([Decimal("72.5"), Decimal("71"), Decimal("65"), Decimal("28")])

    def fake(ev, context):
        ev.points = [indicators.Point(next(values), ev.now.date())]
        indicators._level_status(ev)
        ev.active = {key: dataclasses.replace(a, episode=ev.now.date().isoformat()) for key, a in ev.active.items()}

    monkeypatch.setattr(indicators, "_evaluate_computed", fake)
    ind = indicators.get("annualised-decline")

    def check(day):
        now = datetime(2026, 11, day, tzinfo=UTC)
        return indicators.reconcile(fresh_db, [indicators.evaluate_one(fresh_db, ind, settings, now)], settings.alerts, now)

    assert len(check(1).raised) == 1  # 72.5: crossed 70 upward
    assert check(2).raised == []  # 71: still the same episode
    assert len(check(3).resolved) == 1  # 65: fell back below 70
    assert len(check(4).raised) == 1  # 28: crossed 30 downward
    rows = signal_rows(fresh_db, "annualised-decline")
    assert [(r["field"], r["reason"], r["new_value"]) for r in rows] == [
        ("above-70", "crossed", "2026-11-01"), ("above-70", "fell_back", "2026-11-01/fell-back"), ("below-30", "crossed", "2026-11-04"),
    ]


def test_an_indicator_that_cannot_be_worked_out_leaves_its_signals_alone(fresh_db, settings):
    ev = indicators.Evaluation(indicators.get("annualised-decline"), NOW, error="not enough data")
    alerts.insert(fresh_db, alerts.NewAlert("indicator_threshold", "indicators", NOW, None, model="annualised-decline", field="above-70", new_value="x", reason="crossed"), NOW)
    assert indicators.reconcile(fresh_db, [ev], settings.alerts, NOW).resolved == []
    assert len(store.open_signals(fresh_db, "annualised-decline")) == 1


# --- SEC EDGAR: capex through the poll path, on real filings --------------------------------------


def serve_edgar(source_server, shared_data, **files):
    for cik, name in files.items():
        source_server.serve(f"/api/xbrl/companyfacts/CIK{int(cik[3:]):010d}.json", (shared_data / "fixtures" / name).read_bytes())
    return source_server.url("/api/xbrl/companyfacts/CIK{cik}.json")


def sec_settings(settings, url, companies, saas=None, user_agent="Deflation Watch tests ops@example.com"):
    sec = dataclasses.replace(settings.sec_edgar, url=url, user_agent=user_agent, companies=companies, saas_filers=saas or {})
    return dataclasses.replace(settings, sec_edgar=sec)


def poll(db, settings):
    async def go():
        async with httpx.AsyncClient(trust_env=False) as client:  # no proxy may capture loopback traffic
            return await indicator_sec.poll_sec(db, client, settings, lambda: NOW)

    return asyncio.run(go())


def test_capex_is_derived_per_quarter_and_summed_over_four_quarters_from_real_filings(fresh_db, settings, source_server, shared_data):
    url = serve_edgar(source_server, shared_data, cik789019=MSFT_FILE, cik1018724=AMZN_FILE)
    settings = sec_settings(settings, url, {"MSFT": 789019, "AMZN": 1018724}, saas={"MSFT": 789019, "AMZN": 1018724})
    report = poll(fresh_db, settings)

    # Each filing is fetched once (MSFT is in both lists) and names the operator.
    assert sorted(r.path for r in source_server.requests) == ["/api/xbrl/companyfacts/CIK0000789019.json", "/api/xbrl/companyfacts/CIK0001018724.json"]
    assert {r.headers["User-Agent"] for r in source_server.requests} == {"Deflation Watch tests ops@example.com"}

    # Quarters as stored: MSFT FY22 Q2 = 6-month YTD 11,675 - Q1 5,810 = 5,865; AMZN's tag switch.
    capex = {(q.company, q.fiscal_year, q.fiscal_quarter): q for q in store.sec_quarters(fresh_db, "capex")}
    assert (capex["MSFT", 2022, 2].value_usd, capex["MSFT", 2022, 2].calendar_quarter, capex["MSFT", 2022, 2].basis) == (5_865 * M, "2021Q4", "derived")
    amzn = {q.calendar_quarter: q for q in store.sec_quarters(fresh_db, "capex", ["AMZN"])}
    assert (amzn["2016Q4"].value_usd, amzn["2016Q4"].tag) == (2_006 * M, "PaymentsToAcquirePropertyPlantAndEquipment")
    assert (amzn["2021Q4"].value_usd, amzn["2021Q4"].tag) == (18_935 * M, "PaymentsToAcquireProductiveAssets")  # 61,053 - 42,118

    # The latest calendar quarter both have filed: 2022Q1. MSFT 6,452 + 5,810 + 5,865 + 5,340 =
    # 23,467; AMZN 14,288 + 15,748 + 18,935 + 14,951 = 63,922 (its own trailing-twelve-month fact).
    assert (report.quarter, report.capex_usd_bn, report.missing) == ("2022Q1", Decimal("87.389"), {})
    assert report.companies["MSFT"]["ttm_usd"] == str(23_467 * M) and report.companies["AMZN"]["ttm_usd"] == str(63_922 * M)
    assert report.companies["MSFT"]["quarters"] == {"2021Q2": str(6_452 * M), "2021Q3": str(5_810 * M), "2021Q4": str(5_865 * M), "2022Q1": str(5_340 * M)}

    ev = indicators.evaluate_one(fresh_db, indicators.get("hyperscaler-capex"), settings, NOW)
    by_quarter = {p.period: p for p in ev.points}
    # 2021Q4: AMZN's four 2021 quarters are its 10-K year, 61,053; MSFT 5,089 + 6,452 + 5,810 + 5,865 = 23,216.
    assert by_quarter["2021Q4"].value == Decimal("84.269")
    assert by_quarter["2021Q4"].detail["companies"]["AMZN"]["ttm_usd"] == str(61_053 * M)
    assert "2017Q4" not in by_quarter  # AMZN's 2017Q2 cannot be placed: no sum that leaves it out
    assert ev.latest.period == "2022Q1" and ev.state == "below" and ev.status == "Below: $87.4 bn (2022Q1), 14 % of ≥ $610.0 bn by 2026-12-31."
    assert ev.next_print == "2022Q2 figure, expected by 2022-08-09 (overdue)"
    as_json = indicators.as_json(ev)
    assert as_json["companies"]["AMZN"]["quarters"]["2022Q1"] == 14_951_000_000

    # Reported gross margin context: MSFT FY22 Q2 34,768 / 51,728 = 67.21 %; Amazon tags none.
    parts = {(q.measure, q.calendar_quarter): q.value_usd for q in store.sec_quarters(fresh_db, "gross_profit") + store.sec_quarters(fresh_db, "revenue")}
    assert (parts["gross_profit", "2021Q4"], parts["revenue", "2021Q4"]) == (34_768 * M, 51_728 * M)
    assert report.margins == {"MSFT": "2022Q1", "AMZN": None}

    # Polling again replaces rather than adds.
    readings = len(store.readings(fresh_db, "hyperscaler-capex"))
    poll(fresh_db, settings)
    assert len(store.readings(fresh_db, "hyperscaler-capex")) == readings


def test_a_company_whose_filing_is_missing_is_named_and_nothing_is_summed_without_it(fresh_db, settings, source_server, shared_data):
    url = serve_edgar(source_server, shared_data, cik789019=MSFT_FILE)
    settings = sec_settings(settings, url, {"MSFT": 789019, "GOOGL": 1652044})
    report = poll(fresh_db, settings)
    assert report.quarter is None and not report.ok
    assert list(report.missing) == ["GOOGL"] and "404" in report.missing["GOOGL"]
    assert store.readings(fresh_db, "hyperscaler-capex") == []
    assert store.sec_quarters(fresh_db, "capex", ["MSFT"])  # what did arrive is kept


def test_a_company_behind_on_its_filings_is_named(fresh_db, settings, source_server, shared_data):
    url = serve_edgar(source_server, shared_data, cik789019=MSFT_FILE, cik1018724=AMZN_FILE)
    msft = (shared_data / "fixtures" / MSFT_FILE).read_bytes()
    # MSFT's file without its last 10-Q (filed 2022-04-26): AMZN has 2022Q1, MSFT does not.
    import json

    doc = json.loads(msft)
    for concept in doc["facts"]["us-gaap"].values():
        for unit, rows in concept["units"].items():
            concept["units"][unit] = [r for r in rows if r["filed"] < "2022-04-01"]
    source_server.serve("/api/xbrl/companyfacts/CIK0000789019.json", json.dumps(doc).encode())
    report = poll(fresh_db, sec_settings(settings, url, {"MSFT": 789019, "AMZN": 1018724}))
    assert report.quarter == "2021Q4" and report.capex_usd_bn == Decimal("84.269")
    assert report.missing == {"MSFT": "has not filed 2022Q1 yet"}


@pytest.mark.parametrize("user_agent", ["", "   "])
def test_polling_refuses_to_start_without_a_user_agent(fresh_db, settings, source_server, shared_data, user_agent):
    url = serve_edgar(source_server, shared_data, cik789019=MSFT_FILE)
    settings = config.load(environ={
        "DEFLATION_WATCH_SOURCES__SEC_EDGAR__URL": url,
        "DEFLATION_WATCH_SOURCES__SEC_EDGAR__USER_AGENT": f'"{user_agent}"',
    })
    with pytest.raises(ConfigError, match=r"sources.sec-edgar.user_agent is not set: SEC requires a User-Agent"):
        poll(fresh_db, settings)
    assert source_server.requests == []


def test_the_daily_job_polls_sec_and_settles_the_signals(tmp_path, source_server, shared_data):
    from bot.metrics import Metrics
    from bot.scheduler import Jobs
    from storage import open_db

    url = serve_edgar(source_server, shared_data, cik789019=MSFT_FILE, cik1018724=AMZN_FILE)
    settings = config.load(db=tmp_path / "job.db", environ={
        "DEFLATION_WATCH_SOURCES__SEC_EDGAR__URL": url,
        "DEFLATION_WATCH_SOURCES__SEC_EDGAR__USER_AGENT": "Deflation Watch tests ops@example.com",
        "DEFLATION_WATCH_SOURCES__SEC_EDGAR__COMPANIES": "{ MSFT = 789019, AMZN = 1018724 }",
        "DEFLATION_WATCH_SOURCES__SEC_EDGAR__SAAS_FILERS": "{}",
    })
    db = open_db(settings.db)
    item = indicator_entry.reading_from(indicators.get("open-weight-token-share"), ["30", "2026-06-30"], NOW.date(), source="chat", entered_by="slack:U1", now=NOW)
    store.put_reading(db, item)  # stored without settling its signals: the job settles them
    db.conn.commit()
    jobs = Jobs(settings, db, {}, Metrics(), clock=lambda: NOW, opener=lambda path: open_db(path))
    report = asyncio.run(jobs.indicators())
    assert len(report.raised) == 1
    assert store.readings(db, "hyperscaler-capex")[-1].period == "2022Q1"
    assert len(source_server.requests) == 2
    db.close()


def test_the_weekly_digest_has_the_indicators_with_what_moved(tmp_path, settings):
    from bot import pipeline
    from bot.digest import build_digest
    from storage import open_db

    db = open_db(tmp_path / "digest.db")
    pipeline.load_history(db)
    as_of = datetime(2025, 6, 1, tzinfo=UTC)
    enter(db, settings, "open-weight-token-share", "20", "2025-05-20", now=as_of - timedelta(days=10))
    enter(db, settings, "open-weight-token-share", "22", "2025-05-28", now=as_of - timedelta(days=2))
    enter(db, settings, "hyperscaler-inference-mix", "40", "2025-03-31", now=as_of - timedelta(days=30))
    digest = build_digest(db, as_of, settings)
    section = {item["name"]: item for item in digest.data["indicators"]}
    assert list(section) == list(indicators.INDICATORS)
    assert section["open-weight-token-share"]["moved"] == "20 % (2025-05-20) → 22 % (2025-05-28)"
    assert section["open-weight-token-share"]["threshold"] == "≥ 25 % by 2026-09-30"
    assert section["hyperscaler-inference-mix"]["moved"] == "unchanged this week"
    assert section["hyperscaler-capex"]["moved"] == "no readings yet"
    assert section["annualised-decline"]["state"] == "crossed" and section["annualised-decline"]["signals_on"] == ["above-70"]
    (block,) = [line for line in digest.card.lines if line.startswith("Watch indicators")]
    assert "• open-weight-token-share: 22 % (2025-05-28); threshold ≥ 25 % by 2026-09-30; on track; 20 % (2025-05-20) → 22 % (2025-05-28)." in block
    db.close()
