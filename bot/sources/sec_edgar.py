"""SEC EDGAR XBRL company facts: hyperscalers' quarterly capex and reported gross margin.

Upstream: `GET https://data.sec.gov/api/xbrl/companyfacts/CIK##########.json`, one document per
company with every XBRL fact it has filed: `{cik, entityName, facts: {"us-gaap": {Concept:
{label, description, units: {"USD": [{start, end, val, accn, fy, fp, form, filed, frame?}]}}}}}`.
Values are whole US dollars. SEC refuses requests without a User-Agent naming the operator and
allows ten requests a second (https://www.sec.gov/os/accessing-edgar-data).

Facts are per filing, not per period: a quarter appears in its own 10-Q, again as next year's
comparative, and again when restated, and `fy`/`fp` describe the filing, not the period. So a
period is placed by its `start`/`end` dates alone, and each period keeps its latest-filed value.

Unlike the price sources, a malformed fact is refused rather than skipped: EDGAR writes every
row by machine, so one bad row means the format changed, and a dropped year-to-date row would
quietly remove quarters from the series.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from bot.errors import ConfigError, FetchError, PayloadError
from bot.fetch import fetch
from bot.sources import load_json

NAME = "sec-edgar"
#: `{cik}` is the ten-digit, zero-padded CIK.
URL = "https://data.sec.gov/api/xbrl/companyfacts/CIK{cik}.json"
EVERY = "1d"
#: Companyfacts documents run to a few megabytes (Microsoft's is 3.6 MB); this is the cap when
#: the caller passes none.
MAX_BYTES = 64 * 1024 * 1024
#: Ticker -> CIK of the companies the capex watch follows.
COMPANIES: dict[str, int] = {"MSFT": 789019, "AMZN": 1018724, "GOOGL": 1652044, "META": 1326801, "ORCL": 1341439}
#: Ticker -> CIK of listed AI software companies whose reported gross margin is shown beside
#: the guide-down events: C3.ai, Palantir, Snowflake.
SAAS_FILERS: dict[str, int] = {"AI": 1577526, "PLTR": 1321655, "SNOW": 1640147}

#: In order of preference. Amazon moved from the first to the second in 2018.
CAPEX_TAGS = ("PaymentsToAcquirePropertyPlantAndEquipment", "PaymentsToAcquireProductiveAssets")
GROSS_PROFIT_TAG = "GrossProfit"
#: In order of preference: the ASC 606 concept (2018 on), then the older one.
REVENUE_TAGS = ("RevenueFromContractWithCustomerExcludingAssessedTax", "Revenues")

#: `QuarterValue.basis`: the filing states the quarter's own three-month value ...
REPORTED = "reported"
#: ... or the quarter is the difference of two year-to-date values.
DERIVED = "derived"

_QUARTER_DAYS = 365.25 / 4
#: Tolerance for 52/53-week calendars and stray offsets (MSFT tags one quarter as starting 2016-07-02).
_SLACK = timedelta(days=10)
_DAY = timedelta(days=1)


def calendar_quarter(day: date) -> str:
    """The calendar quarter a day falls in, e.g. "2021Q4": the label that lines companies up."""
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


@dataclass(frozen=True, slots=True)
class QuarterValue:
    """One fiscal quarter's value of one concept for one company."""

    company: str  # ticker for the companies in COMPANIES, else "CIK##########"
    fiscal_year: int  # the year the fiscal year ends in: MSFT's FY2022 ends 2022-06-30
    fiscal_quarter: int  # 1-4
    start: date
    end: date
    value_usd: Decimal
    tag: str  # the us-gaap concept the value came from
    basis: str  # REPORTED or DERIVED

    @property
    def calendar_quarter(self) -> str:
        return calendar_quarter(self.end)


@dataclass(frozen=True, slots=True)
class ReportedGrossMargin:
    """Gross profit over revenue as filed (GAAP, no adjustments), for one fiscal quarter."""

    company: str
    fiscal_year: int
    fiscal_quarter: int
    start: date
    end: date
    gross_profit_usd: Decimal
    revenue_usd: Decimal
    revenue_tag: str

    @property
    def calendar_quarter(self) -> str:
        return calendar_quarter(self.end)

    @property
    def reported_margin(self) -> Decimal:
        """A fraction: 0.6721 is a 67.21 % reported gross margin."""
        return self.gross_profit_usd / self.revenue_usd


def companyfacts_url(template: str, cik: int) -> str:
    if not 0 < cik < 10**10:
        raise ConfigError(f"{NAME}: CIK must be a positive number of at most ten digits, got {cik!r}")
    return template.format(cik=f"{cik:010d}")


class RateLimiter:
    """At most `rate` requests in any one-second window, however many callers share it.

    Callers wait their turn rather than fail. `clock` and `sleep` are injectable so tests run on
    fake time.
    """

    def __init__(
        self,
        rate: int = 10,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        if rate < 1:
            raise ValueError(f"rate must be at least 1 request a second, got {rate!r}")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._granted: deque[float] = deque()  # clock times of the last `rate` grants
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            if len(self._granted) == self.rate:
                wait = self._granted[0] + 1.0 - self._clock()
                if wait > 0:
                    await self._sleep(wait)
                self._granted.popleft()
            self._granted.append(self._clock())


async def fetch_companyfacts(
    client: httpx.AsyncClient,
    template: str,
    cik: int,
    user_agent: str,
    limiter: RateLimiter,
    *,
    max_bytes: int = MAX_BYTES,
) -> bytes:
    """GET one company's facts through the shared fetch (size and time caps), identifying the
    operator as SEC requires."""
    if not user_agent.strip():
        raise ConfigError(
            f"{NAME}: a User-Agent naming the operator and a contact address (e.g. 'Example Corp "
            "admin@example.com') is required; SEC blocks requests without one. Set user_agent "
            "under [sources.sec-edgar]"
        )
    url = companyfacts_url(template, cik)
    await limiter.acquire()
    try:
        fetched = await fetch(client, url, max_bytes=max_bytes, headers={"User-Agent": user_agent})
    except FetchError as exc:
        raise FetchError(f"{NAME}: {exc}") from None
    return fetched.body or b""


def parse_companyfacts(payload: bytes) -> dict[str, Any]:
    """Decode a companyfacts payload and check its outer shape."""
    doc = load_json(payload, NAME, dict)
    _us_gaap(doc)
    return doc


def quarterly_capex(facts: dict[str, Any], company: str | None = None) -> list[QuarterValue]:
    """Capital expenditure per fiscal quarter, oldest first.

    Cash-flow facts in 10-Qs are year-to-date, so a quarter is the difference of consecutive
    year-to-date values (Q4: the 10-K's year minus nine months); a three-month fact fills in
    where a year-to-date value is missing. Quarters are derived within one tag and never by
    subtracting one tag from another, because the tags need not measure the same thing:
    Amazon's 2016 capex is 6,737M under the PP&E tag (as first filed) and 7,804M under
    ProductiveAssets (as filed from 2018). Where both tags give a quarter, the PP&E tag wins.
    """
    us_gaap = _us_gaap(facts)
    company = company or _company(facts)
    if not any(tag in us_gaap for tag in CAPEX_TAGS):
        raise PayloadError(f"{NAME}: {company} has neither {' nor '.join(CAPEX_TAGS)}")
    quarters = _series(us_gaap, CAPEX_TAGS, company, reported_first=False)
    if not quarters:
        tags = ", ".join(CAPEX_TAGS)
        raise PayloadError(f"{NAME}: {company}: no quarter of capex can be placed from {tags}")
    return [quarters[key] for key in sorted(quarters)]


def quarterly_gross_margin(facts: dict[str, Any], company: str | None = None) -> list[ReportedGrossMargin]:
    """Reported gross margin per fiscal quarter, oldest first, where both parts are filed.

    Income-statement facts are mostly three-month values, which are used as filed; a quarter
    with only year-to-date values is derived as for capex. Empty for companies that stopped
    tagging GrossProfit (Amazon, after 2010): that is the filings, not a bad payload.
    """
    us_gaap = _us_gaap(facts)
    company = company or _company(facts)
    if GROSS_PROFIT_TAG not in us_gaap or not any(tag in us_gaap for tag in REVENUE_TAGS):
        raise PayloadError(
            f"{NAME}: {company} lacks {GROSS_PROFIT_TAG} or a revenue concept ({' or '.join(REVENUE_TAGS)})"
        )
    profit = _series(us_gaap, (GROSS_PROFIT_TAG,), company, reported_first=True)
    revenue = _series(us_gaap, REVENUE_TAGS, company, reported_first=True)
    margins = []
    for key in sorted(profit.keys() & revenue.keys()):
        gp, rev = profit[key], revenue[key]
        if gp.end != rev.end or rev.value_usd <= 0:
            continue
        margins.append(
            ReportedGrossMargin(
                company, gp.fiscal_year, gp.fiscal_quarter, gp.start, gp.end, gp.value_usd, rev.value_usd, rev.tag
            )
        )
    return margins


def trailing_four_quarters(values: Iterable[QuarterValue], as_of_quarter: str) -> Decimal | None:
    """One company's sum over the four calendar quarters ending `as_of_quarter` ("2022Q1").

    None unless all four are present, so a quarter not yet filed never reads as a fall.
    """
    by_quarter: dict[str, Decimal] = {}
    for value in values:
        if value.calendar_quarter in by_quarter:
            raise ValueError(f"two values for {value.company} in {value.calendar_quarter}; pass one company")
        by_quarter[value.calendar_quarter] = value.value_usd
    wanted = _quarters_ending(as_of_quarter, 4)
    if not all(quarter in by_quarter for quarter in wanted):
        return None
    return sum((by_quarter[quarter] for quarter in wanted), Decimal(0))


def latest_common_quarter(per_company: dict[str, list[QuarterValue]]) -> str | None:
    """The latest calendar quarter every company has a value for; None if there is none."""
    if not per_company:
        return None
    common = set.intersection(*({v.calendar_quarter for v in values} for values in per_company.values()))
    return max(common, default=None)


def missing_companies(per_company: dict[str, list[QuarterValue]], quarter: str) -> list[str]:
    """The companies with no value for `quarter`, so a gap is named rather than summed over."""
    return [name for name, values in per_company.items() if all(v.calendar_quarter != quarter for v in values)]


@dataclass(frozen=True, slots=True)
class _Fact:
    start: date
    end: date
    value: Decimal
    filed: date
    annual: bool  # filed in an annual report (fp "FY"), where 12-month spans are fiscal years
    tag: str

    @property
    def quarters(self) -> int | None:
        """The span in quarters (1-4), or None for any other length."""
        days = (self.end - self.start).days + 1
        n = round(days / _QUARTER_DAYS)
        return n if 1 <= n <= 4 and abs(days - n * _QUARTER_DAYS) <= _SLACK.days else None


def _us_gaap(doc: dict[str, Any]) -> dict[str, Any]:
    facts = doc.get("facts")
    if not isinstance(facts, dict):
        found = "no such key" if "facts" not in doc else f"a {type(facts).__name__}"
        raise PayloadError(f"{NAME}: expected a 'facts' object at the top level, found {found}")
    us_gaap = facts.get("us-gaap")
    if not isinstance(us_gaap, dict):
        raise PayloadError(f"{NAME}: no 'us-gaap' object under 'facts' (found {', '.join(facts) or 'nothing'})")
    cik = doc.get("cik")
    if not isinstance(cik, int) or isinstance(cik, bool):
        raise PayloadError(f"{NAME}: expected a numeric 'cik' at the top level, got {cik!r}")
    return us_gaap


def _company(doc: dict[str, Any]) -> str:
    cik = doc["cik"]
    return next((ticker for ticker, known in COMPANIES.items() if known == cik), f"CIK{cik:010d}")


def _facts(us_gaap: dict[str, Any], tag: str, company: str) -> list[_Fact]:
    concept = us_gaap[tag]
    units = concept.get("units") if isinstance(concept, dict) else None
    rows = units.get("USD") if isinstance(units, dict) else None
    if not isinstance(rows, list):
        raise PayloadError(f"{NAME}: {company}: {tag} has no list of USD facts")
    facts = []
    for index, row in enumerate(rows):
        try:
            if not isinstance(row["val"], int | float) or isinstance(row["val"], bool):
                raise TypeError(row["val"])
            fact = _Fact(
                start=date.fromisoformat(row["start"]),
                end=date.fromisoformat(row["end"]),
                value=Decimal(str(row["val"])),
                filed=date.fromisoformat(row["filed"]),
                annual=row.get("fp") == "FY",
                tag=tag,
            )
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            where = f"{NAME}: {company}: {tag} fact #{index}"
            raise PayloadError(f"{where} is malformed ({type(exc).__name__}: {exc}): {row!r:.200}") from None
        if fact.end < fact.start or not fact.value.is_finite():
            raise PayloadError(f"{NAME}: {company}: {tag} fact #{index} is malformed: {row!r:.200}")
        facts.append(fact)
    return facts


_Quarters = dict[tuple[int, int], QuarterValue]  # keyed by (fiscal year, fiscal quarter)


def _series(us_gaap: dict[str, Any], tags: tuple[str, ...], company: str, *, reported_first: bool) -> _Quarters:
    """Each quarter from the first of `tags` that gives it."""
    per_tag = {tag: _facts(us_gaap, tag, company) for tag in tags if tag in us_gaap}
    starts = _fiscal_year_starts([fact for facts in per_tag.values() for fact in facts])
    merged: _Quarters = {}
    for facts in per_tag.values():
        for key, value in _quarters(facts, starts, company, reported_first).items():
            merged.setdefault(key, value)
    return merged


def _fiscal_year_starts(facts: list[_Fact]) -> list[date]:
    """The days fiscal years begin, sorted.

    Year-to-date spans of 6 and 9 months start on one, and so do an annual report's 12-month
    spans; the day after such a year ends starts the next one, which places the current year's Q1
    before any later value exists. A 10-Q's 12-month span (Amazon files trailing twelve months)
    is not a fiscal year.
    """
    starts = {f.start for f in facts if f.quarters in (2, 3) or (f.quarters == 4 and f.annual)}
    starts |= {f.end + _DAY for f in facts if f.quarters == 4 and f.start in starts}
    return sorted(starts)


def _quarters(facts: list[_Fact], starts: list[date], company: str, reported_first: bool) -> _Quarters:
    """One tag's quarters: each span at its latest filing, then differenced or used as it is.

    Spans pick their latest filing independently, so a restatement that reaches a year but not
    its nine months would make that Q4 a mix of the two (the three-month fact, when there is
    one, is the cross-check).
    """
    to_date: dict[tuple[int, int], _Fact] = {}  # (fiscal year, quarters since the year began)
    alone: dict[tuple[int, int], _Fact] = {}  # (fiscal year, quarter) for three-month spans
    for fact in facts:
        placed = _place(fact, starts)
        if placed is None:
            continue
        fiscal_year, ytd_quarters, quarter = placed
        for slots, n in ((to_date, ytd_quarters), (alone, quarter)):
            if n is not None and ((fiscal_year, n) not in slots or fact.filed >= slots[(fiscal_year, n)].filed):
                slots[(fiscal_year, n)] = fact
    out = {}
    for fiscal_year, q in sorted(to_date.keys() | alone.keys()):
        reported = derived = None
        if (fact := alone.get((fiscal_year, q))) is not None:
            reported = QuarterValue(company, fiscal_year, q, fact.start, fact.end, fact.value, fact.tag, REPORTED)
        longer, shorter = to_date.get((fiscal_year, q)), to_date.get((fiscal_year, q - 1))
        if longer is not None and shorter is not None:
            difference = longer.value - shorter.value
            derived = QuarterValue(
                company, fiscal_year, q, shorter.end + _DAY, longer.end, difference, longer.tag, DERIVED
            )
        chosen = (reported or derived) if reported_first else (derived or reported)
        if chosen is not None:
            out[(fiscal_year, q)] = chosen
    return out


def _place(fact: _Fact, starts: list[date]) -> tuple[int, int | None, int | None] | None:
    """(fiscal year, quarters to date if the span starts the year, quarter if it is 3 months)."""
    length = fact.quarters
    if length is None:
        return None
    i = bisect_right(starts, fact.start + _SLACK) - 1
    if i < 0:
        return None
    year_start = starts[i]
    fiscal_year = (year_start + timedelta(days=364)).year
    if fact.start - year_start <= _SLACK:
        return fiscal_year, length, 1 if length == 1 else None
    quarter = round(((fact.end - year_start).days + 1) / _QUARTER_DAYS)
    if length == 1 and 2 <= quarter <= 4:
        return fiscal_year, None, quarter
    return None


def _quarters_ending(label: str, count: int) -> list[str]:
    try:
        year, quarter = int(label[:4]), int(label[5:])
        if len(label) != 6 or label[4] != "Q" or not 1 <= quarter <= 4:
            raise ValueError
    except ValueError:
        raise ValueError(f"{label!r} is not a calendar quarter such as 2022Q1") from None
    index = year * 4 + quarter - 1
    return [f"{i // 4}Q{i % 4 + 1}" for i in range(index - count + 1, index + 1)]
