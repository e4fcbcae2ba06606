"""SEC EDGAR company facts, checked against figures read by hand from the real filings.

Every expected number below was computed from the raw facts in the shared trimmed companyfacts
files (values in millions of USD in the comments; the code works in whole dollars).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bot.errors import ConfigError, FetchError, PayloadError
from bot.sources import sec_edgar
from bot.sources.sec_edgar import (
    DERIVED,
    REPORTED,
    RateLimiter,
    companyfacts_url,
    fetch_companyfacts,
    latest_common_quarter,
    missing_companies,
    parse_companyfacts,
    quarterly_capex,
    quarterly_gross_margin,
    trailing_four_quarters,
)

MSFT_FILE = "sec-companyfacts-CIK0000789019-MSFT-trimmed.json"
AMZN_FILE = "sec-companyfacts-CIK0001018724-AMZN-trimmed.json"
PPE = "PaymentsToAcquirePropertyPlantAndEquipment"
PRODUCTIVE = "PaymentsToAcquireProductiveAssets"
M = Decimal(1_000_000)


@pytest.fixture(scope="session")
def msft(shared_data):
    return parse_companyfacts((shared_data / "fixtures" / MSFT_FILE).read_bytes())


@pytest.fixture(scope="session")
def amzn(shared_data):
    return parse_companyfacts((shared_data / "fixtures" / AMZN_FILE).read_bytes())


def by_fiscal(values):
    return {(v.fiscal_year, v.fiscal_quarter): v for v in values}


def by_calendar(values):
    return {v.calendar_quarter: v for v in values}


# --- builders for the few rules the real files cannot show ---------------------------------------


def row(start, end, val, filed, fp="Q2"):
    return {"start": start, "end": end, "val": val, "accn": "x", "fy": 2021, "fp": fp, "form": "10-Q", "filed": filed}


def doc(**concepts):
    us_gaap = {tag: {"label": tag, "units": {"USD": rows}} for tag, rows in concepts.items()}
    return {"cik": 1, "entityName": "TEST", "facts": {"us-gaap": us_gaap}}


# --- capex ------------------------------------------------------------------------------------------


def test_msft_quarters_come_from_year_to_date_differences(msft):
    q = by_fiscal(quarterly_capex(msft))

    # FY2022 Q1 = the 3-month YTD value 2021-07-01..2021-09-30: 5,810.
    assert q[2022, 1].value_usd == 5_810 * M
    assert (q[2022, 1].start, q[2022, 1].end, q[2022, 1].basis) == (date(2021, 7, 1), date(2021, 9, 30), REPORTED)
    # FY2022 Q2 = 6-month YTD 11,675 - 3-month 5,810 = 5,865 (MSFT's own 3-month figure is 5,865 too).
    assert q[2022, 2].value_usd == 5_865 * M
    assert (q[2022, 2].start, q[2022, 2].end, q[2022, 2].basis) == (date(2021, 10, 1), date(2021, 12, 31), DERIVED)
    # FY2022 Q3 = 9-month YTD 17,015 - 6-month 11,675 = 5,340.
    assert q[2022, 3].value_usd == 5_340 * M
    # FY2021 Q4 = 10-K year 20,622 (2020-07-01..2021-06-30) - 9-month YTD 14,170 = 6,452.
    assert q[2021, 4].value_usd == 6_452 * M
    assert (q[2021, 4].start, q[2021, 4].end, q[2021, 4].basis) == (date(2021, 4, 1), date(2021, 6, 30), DERIVED)
    # FY2017 Q4 = 8,129 - 5,846 = 2,283.
    assert q[2017, 4].value_usd == 2_283 * M
    assert {v.tag for v in q.values()} == {PPE}
    assert {v.company for v in q.values()} == {"MSFT"}


def test_calendar_quarter_is_where_the_period_ends(msft):
    q = by_fiscal(quarterly_capex(msft))
    # Microsoft's fiscal year starts in July: FY2022 Q2 ends 2021-12-31.
    assert q[2022, 2].calendar_quarter == "2021Q4"
    assert q[2021, 4].calendar_quarter == "2021Q2"
    assert quarterly_capex(msft)[-1].calendar_quarter == "2022Q1"


def test_amazon_switches_from_the_ppe_tag_to_productive_assets(amzn):
    q = by_calendar(quarterly_capex(amzn))

    # 2016 Q4 (PP&E tag, 10-K filed 2017-02-10) = year 6,737 - 9-month YTD 4,731 = 2,006.
    assert (q["2016Q4"].value_usd, q["2016Q4"].tag, q["2016Q4"].basis) == (2_006 * M, PPE, DERIVED)
    # 2016 Q2 (PP&E) = 6-month 2,890 - 3-month 1,179 = 1,711.
    assert q["2016Q2"].value_usd == 1_711 * M
    # 2017 Q1 is the last PP&E quarter: 1,861.
    assert (q["2017Q1"].value_usd, q["2017Q1"].tag) == (1_861 * M, PPE)
    # 2018 Q2 (ProductiveAssets) = 6-month 6,341 - 3-month 3,098 = 3,243.
    assert (q["2018Q2"].value_usd, q["2018Q2"].tag, q["2018Q2"].basis) == (3_243 * M, PRODUCTIVE, DERIVED)
    # 2017 Q4 (ProductiveAssets) = year 11,955 - 9-month 8,336 = 3,619, never PP&E minus ProductiveAssets.
    assert (q["2017Q4"].value_usd, q["2017Q4"].tag) == (3_619 * M, PRODUCTIVE)
    # No 6-month 2017 value under either tag: Q3 2017 falls back to its 3-month fact, 3,074 ...
    assert (q["2017Q3"].value_usd, q["2017Q3"].basis) == (3_074 * M, REPORTED)
    # ... and Q2 2017 cannot be placed at all.
    assert "2017Q2" not in q


def test_amazon_trailing_twelve_month_facts_are_not_read_as_years(amzn):
    values = quarterly_capex(amzn)
    # Amazon's 10-Qs also carry trailing-twelve-month capex (2020-10-01..2021-09-30 = 56,941).
    assert all((v.end - v.start).days < 100 for v in values)
    q = by_calendar(values)
    # 2021 Q3 = 9-month 42,118 - 6-month 26,370 = 15,748.
    assert q["2021Q3"].value_usd == 15_748 * M


def test_latest_filing_wins_for_a_restated_period():
    rows = [
        row("2020-01-01", "2020-09-30", 280, "2021-10-29", fp="Q3"),  # restated a year later
        row("2020-01-01", "2020-06-30", 200, "2020-07-30"),
        row("2020-01-01", "2020-09-30", 300, "2020-10-30", fp="Q3"),  # as first filed
        row("2020-01-01", "2020-12-31", 400, "2021-02-01", fp="FY"),
    ]
    q = by_fiscal(quarterly_capex(doc(**{PPE: rows})))
    assert q[2020, 3].value_usd == 80  # 280 - 200, not 300 - 200
    assert q[2020, 4].value_usd == 120  # 400 - 280, not 400 - 300
    assert q[2020, 3].company == "CIK0000000001"


def test_ppe_tag_wins_a_quarter_both_tags_give_and_tags_are_never_mixed():
    ppe = [row("2021-01-01", "2021-03-31", 50, "2021-04-30", fp="Q1")]
    productive = [
        row("2021-01-01", "2021-03-31", 60, "2021-04-30", fp="Q1"),
        row("2021-01-01", "2021-06-30", 130, "2021-07-30"),
    ]
    q = by_fiscal(quarterly_capex(doc(**{PPE: ppe, PRODUCTIVE: productive})))
    assert (q[2021, 1].value_usd, q[2021, 1].tag) == (50, PPE)
    assert (q[2021, 2].value_usd, q[2021, 2].tag) == (70, PRODUCTIVE)  # 130 - 60, not 130 - 50


def test_restated_gross_profit_uses_the_latest_filing(msft):
    q = by_fiscal(quarterly_gross_margin(msft))
    # FY2017 Q1 gross profit was 12,609 as filed (10-Q 2016-10-20) and 14,084 after the ASC 606
    # restatement (10-Q 2017-10-26, 10-K 2018-08-03); revenue is 21,928 (restated only).
    assert q[2017, 1].gross_profit_usd == 14_084 * M
    assert q[2017, 1].revenue_usd == 21_928 * M
    # FY2017 Q2: 14,189 as filed, 15,925 restated; revenue 25,826.
    assert q[2017, 2].gross_profit_usd == 15_925 * M
    assert q[2017, 2].reported_margin == Decimal(15_925) / Decimal(25_826)


# --- gross margin -----------------------------------------------------------------------------------


def test_msft_reported_gross_margin(msft):
    q = by_fiscal(quarterly_gross_margin(msft))
    # FY2022 Q2 (2021-10-01..2021-12-31), both 3-month facts as filed: 34,768 / 51,728 = 67.21 %.
    m = q[2022, 2]
    assert (m.gross_profit_usd, m.revenue_usd) == (34_768 * M, 51_728 * M)
    assert m.reported_margin == Decimal(34_768) / Decimal(51_728)
    assert round(m.reported_margin, 4) == Decimal("0.6721")
    assert (m.calendar_quarter, m.revenue_tag) == ("2021Q4", "RevenueFromContractWithCustomerExcludingAssessedTax")
    # FY2021 Q4 has no 3-month facts, so both parts are derived: gross profit 115,856 - 83,695 =
    # 32,161 and revenue 168,088 - 121,936 = 46,152, a margin of 69.68 %.
    m = q[2021, 4]
    assert (m.gross_profit_usd, m.revenue_usd) == (32_161 * M, 46_152 * M)
    assert round(m.reported_margin, 4) == Decimal("0.6968")


def test_gross_margin_falls_back_to_the_older_revenue_tag(msft):
    q = by_fiscal(quarterly_gross_margin(msft))
    # FY2011 Q2 (2010-10-01..2010-12-31) predates ASC 606: Revenues 19,953, gross profit 15,120.
    assert q[2011, 2].revenue_tag == "Revenues"
    assert q[2011, 2].reported_margin == Decimal(15_120) / Decimal(19_953)


def test_gross_margin_is_empty_when_the_parts_never_overlap(amzn):
    # Amazon tagged GrossProfit only in 2009-2010, and revenue under the ASC 606 concept only from 2016.
    assert quarterly_gross_margin(amzn) == []


# --- combining companies ----------------------------------------------------------------------------


def test_trailing_four_quarters(msft, amzn):
    # MSFT to 2022Q1: 6,452 + 5,810 + 5,865 + 5,340 = 23,467
    # (cross-check: FY2021 20,622 - its 9 months 14,170 + FY2022's 9 months 17,015 = 23,467).
    assert trailing_four_quarters(quarterly_capex(msft), "2022Q1") == 23_467 * M
    # AMZN's four 2021 quarters add up to its 10-K year: 12,082 + 14,288 + 15,748 + 18,935 = 61,053.
    assert trailing_four_quarters(quarterly_capex(amzn), "2021Q4") == 61_053 * M
    # 2017Q2 is missing for Amazon: a gap gives None, not a smaller sum.
    assert trailing_four_quarters(quarterly_capex(amzn), "2017Q4") is None
    with pytest.raises(ValueError, match="2022-Q1"):
        trailing_four_quarters([], "2022-Q1")


def test_latest_common_quarter_and_missing_companies(msft, amzn):
    per_company = {"MSFT": quarterly_capex(msft), "AMZN": quarterly_capex(amzn)}
    # MSFT FY2022 Q3 and AMZN 2022 Q1 both end 2022-03-31.
    assert latest_common_quarter(per_company) == "2022Q1"
    assert missing_companies(per_company, "2022Q1") == []

    # Amazon's capex for 2017 Q2 cannot be derived (see above); MSFT's FY2017 Q4 can.
    assert missing_companies(per_company, "2017Q2") == ["AMZN"]

    amzn_before_2022 = [v for v in per_company["AMZN"] if v.end < date(2022, 1, 1)]
    lagging = {"MSFT": per_company["MSFT"], "AMZN": amzn_before_2022}
    assert latest_common_quarter(lagging) == "2021Q4"
    assert missing_companies(lagging, "2022Q1") == ["AMZN"]

    assert latest_common_quarter({}) is None
    assert latest_common_quarter({"MSFT": per_company["MSFT"], "GOOGL": []}) is None


# --- payload shape ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html>Request Rate Threshold Exceeded</html>", "not JSON"),
        (b"[]", "expected a JSON dict"),
        (b'{"cik": 789019, "entityName": "MICROSOFT"}', "'facts'"),
        (b'{"cik": 789019, "facts": {"dei": {}}}', "us-gaap"),
        (b'{"facts": {"us-gaap": {}}}', "cik"),
    ],
)
def test_payload_shape_is_checked(payload, message):
    with pytest.raises(PayloadError, match=message) as info:
        parse_companyfacts(payload)
    assert str(info.value).startswith("sec-edgar:")


def test_missing_capex_tags_are_named():
    with pytest.raises(PayloadError, match=f"neither {PPE} nor {PRODUCTIVE}"):
        quarterly_capex(doc(GrossProfit=[]))


def test_missing_margin_parts_are_named():
    with pytest.raises(PayloadError, match="GrossProfit"):
        quarterly_gross_margin(doc(Revenues=[]))


def test_capex_that_places_no_quarter_is_refused():
    # A lone 12-month value from a 10-Q (a trailing twelve months) is no fiscal year.
    with pytest.raises(PayloadError, match="no quarter"):
        quarterly_capex(doc(**{PPE: [row("2020-04-01", "2021-03-31", 9, "2021-04-30", fp="Q1")]}))


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"val": "12"}, "TypeError"),
        ({"val": True}, "TypeError"),
        ({"start": None}, "TypeError"),
        ({"end": "2021-13-31"}, "ValueError"),
        ({"end": "2020-12-31"}, "malformed"),  # ends before it starts
    ],
)
def test_malformed_fact_is_refused_and_named(bad, problem):
    fact = {**row("2021-01-01", "2021-03-31", 5, "2021-04-30"), **bad}
    with pytest.raises(PayloadError, match=f"{PPE} fact #1 is malformed") as info:
        quarterly_capex(doc(**{PPE: [row("2021-01-01", "2021-06-30", 9, "2021-07-30"), fact]}))
    assert problem in str(info.value)


def test_concept_without_usd_facts_is_refused():
    broken = doc(**{PPE: []})
    broken["facts"]["us-gaap"][PPE]["units"] = {"EUR": []}
    with pytest.raises(PayloadError, match=f"{PPE} has no list of USD facts"):
        quarterly_capex(broken)


# --- fetching ---------------------------------------------------------------------------------------


def test_url_has_a_ten_digit_cik():
    assert companyfacts_url(sec_edgar.URL, 789019) == "https://data.sec.gov/api/xbrl/companyfacts/CIK0000789019.json"
    assert sec_edgar.COMPANIES["AMZN"] == 1018724
    with pytest.raises(ConfigError, match="CIK"):
        companyfacts_url(sec_edgar.URL, 0)


@pytest.mark.parametrize("user_agent", ["", "   "])
def test_user_agent_is_required(user_agent):
    def refuse(request):
        raise AssertionError(f"no request may be sent without a User-Agent: {request.url}")

    async def attempt():
        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
            await fetch_companyfacts(client, sec_edgar.URL, 789019, user_agent, RateLimiter())

    with pytest.raises(ConfigError, match="User-Agent"):
        asyncio.run(attempt())


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self):
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def assert_at_most_ten_a_second(times):
    for i in range(len(times) - 10):
        assert times[i + 10] - times[i] >= 1.0, f"11 grants within a second: {times[i:i + 11]}"


def test_rate_limiter_spaces_calls_on_fake_time():
    fake = FakeTime()
    limiter = RateLimiter(rate=10, clock=fake.clock, sleep=fake.sleep)
    granted = []

    async def calls():
        for _ in range(25):
            await limiter.acquire()
            granted.append(fake.now)

    asyncio.run(calls())
    # 10 at once, 10 a second later, 5 a second after that.
    assert granted[-1] - granted[0] >= 2.0
    assert_at_most_ten_a_second(granted)


def test_rate_limiter_is_shared_by_concurrent_callers():
    fake = FakeTime()
    limiter = RateLimiter(rate=10, clock=fake.clock, sleep=fake.sleep)
    granted = []

    async def one():
        await limiter.acquire()
        granted.append(fake.now)

    async def many():
        await asyncio.gather(*(one() for _ in range(25)))

    asyncio.run(many())
    assert fake.now - 100.0 >= 2.0
    assert_at_most_ten_a_second(sorted(granted))


@pytest.fixture
def edgar(shared_data):
    """A loopback server that serves the MSFT file at its EDGAR path and 404s everything else."""
    body = (shared_data / "fixtures" / MSFT_FILE).read_bytes()
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("User-Agent")))
            if self.path != "/api/xbrl/companyfacts/CIK0000789019.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    template = f"http://127.0.0.1:{server.server_address[1]}/api/xbrl/companyfacts/CIK{{cik}}.json"
    yield template, body, seen
    server.shutdown()
    server.server_close()
    thread.join()


def fetch_over_loopback(template: str, cik: int, user_agent: str) -> bytes:
    async def go():
        # trust_env=False: a proxy set in the environment must not capture loopback traffic.
        async with httpx.AsyncClient(trust_env=False, headers={"User-Agent": "generic-client/1"}) as client:
            return await fetch_companyfacts(client, template, cik, user_agent, RateLimiter())

    return asyncio.run(go())


def test_fetch_over_http_sends_the_operator_user_agent(edgar):
    template, body, seen = edgar
    payload = fetch_over_loopback(template, 789019, "Deflation Watch ops@example.com")
    assert payload == body
    assert seen == [("/api/xbrl/companyfacts/CIK0000789019.json", "Deflation Watch ops@example.com")]
    assert quarterly_capex(parse_companyfacts(payload))[-1].value_usd == 5_340 * M
    assert json.loads(payload)["entityName"] == "MICROSOFT CORPORATION"


def test_fetch_http_error_names_status_and_url(edgar):
    template, _, _ = edgar
    url = companyfacts_url(template, 1018724)
    with pytest.raises(FetchError) as info:
        fetch_over_loopback(template, 1018724, "Deflation Watch ops@example.com")
    assert "404" in str(info.value) and url in str(info.value)


def test_fetch_connection_failure_is_a_fetch_error():
    with socket.socket() as probe:  # a port that was free a moment ago, so nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match=f"127.0.0.1:{port}"):
        fetch_over_loopback(f"http://127.0.0.1:{port}/CIK{{cik}}.json", 789019, "Deflation Watch ops@example.com")
