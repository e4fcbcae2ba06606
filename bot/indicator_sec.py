"""SEC EDGAR for the watch indicators: each hyperscaler's quarterly capex (quarters derived from
year-to-date filings, across a company's change of XBRL tag), summed over the latest four
calendar quarters every company has filed into `hyperscaler-capex`; and the SaaS filers'
reported gross margin, shown as context beside the guide-down events. Polled daily by the
scheduler (`poll_sec`) and by `deflation-watch poll-sec`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import sqlite_utils

from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.errors import ConfigError, SourceError
from bot.indicators import INDICATORS, Point, SignalReport, evaluate_one, quarter_end, quarters_ending, reconcile
from bot.sources import sec_edgar
from storage import indicators as store
from storage import transaction


@dataclass(slots=True)
class SecReport:
    quarter: str | None = None  # the latest calendar quarter every configured company has filed
    capex_usd_bn: Decimal | None = None  # the trailing four quarters to it, summed
    readings: int = 0  # quarters of hyperscaler-capex stored
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)  # ticker -> latest quarter, TTM, quarters
    missing: dict[str, str] = field(default_factory=dict)  # ticker -> why it is not in the latest quarter
    margins: dict[str, str | None] = field(default_factory=dict)  # SaaS filer -> latest quarter, or the error
    signals: SignalReport = field(default_factory=SignalReport)

    @property
    def ok(self) -> bool:
        return self.quarter is not None


USD_BN = Decimal(10) ** 9


async def poll_sec(db: sqlite_utils.Database, client: httpx.AsyncClient, settings: Settings, clock: Clock = utcnow) -> SecReport:
    """Fetch every configured company's facts (at most ten requests a second), store their
    quarterly capex and reported gross margin, and the trailing-four-quarter capex sum for every
    calendar quarter all companies have filed; then settle the capex signals.

    A company that fails to fetch or parse is named in `missing`, and no capex sum is stored
    that would leave it out: a quarter summed over fewer companies would read as a fall.
    Refuses to run without a User-Agent (ConfigError).
    """
    sec = settings.sec_edgar
    if not sec.user_agent:
        raise ConfigError(
            f"sources.{sec_edgar.NAME}.user_agent is not set: SEC requires a User-Agent naming the operator "
            "and a contact address, like \"Example Corp ops@example.com\". Set it in the config file or as "
            "DEFLATION_WATCH_SOURCES__SEC_EDGAR__USER_AGENT."
        )
    limiter = sec_edgar.RateLimiter(10)
    wanted = {**sec.saas_filers, **sec.companies}

    async def one(ticker: str, cik: int) -> dict[str, Any] | Exception:
        try:
            payload = await sec_edgar.fetch_companyfacts(client, sec.url, cik, sec.user_agent, limiter, max_bytes=settings.http.max_bytes)
            return sec_edgar.parse_companyfacts(payload)
        except SourceError as exc:
            return exc

    fetched = dict(zip(wanted, await asyncio.gather(*(one(t, c) for t, c in wanted.items()))))
    now = clock()
    report = SecReport()
    rows: list[store.SecQuarter] = []
    capex: dict[str, list[sec_edgar.QuarterValue]] = {}
    for ticker, cik in sec.companies.items():
        facts = fetched[ticker]
        try:
            if isinstance(facts, Exception):
                raise facts
            capex[ticker] = sec_edgar.quarterly_capex(facts, ticker)
        except SourceError as exc:
            report.missing[ticker] = str(exc)
            continue
        rows += [_sec_row(v, cik, "capex", v.value_usd, v.tag, v.basis) for v in capex[ticker]]
    for ticker, cik in sec.saas_filers.items():
        facts = fetched[ticker]
        try:
            if isinstance(facts, Exception):
                raise facts
            margins = sec_edgar.quarterly_gross_margin(facts, ticker)
        except SourceError as exc:
            report.margins[ticker] = str(exc)
            continue
        report.margins[ticker] = margins[-1].calendar_quarter if margins else None
        for m in margins:
            base = sec_edgar.QuarterValue(ticker, m.fiscal_year, m.fiscal_quarter, m.start, m.end, m.gross_profit_usd, sec_edgar.GROSS_PROFIT_TAG, "")
            rows.append(_sec_row(base, cik, "gross_profit", m.gross_profit_usd, sec_edgar.GROSS_PROFIT_TAG, ""))
            rows.append(_sec_row(base, cik, "revenue", m.revenue_usd, m.revenue_tag, ""))
    sums = _capex_sums(capex, report) if not report.missing else []
    if sums:
        latest = sums[-1]
        report.quarter, report.capex_usd_bn = latest.period, latest.value
        report.companies = latest.detail["companies"]
    newest = max((v.calendar_quarter for values in capex.values() for v in values), default=None)
    if newest is not None:
        for ticker in sec_edgar.missing_companies(capex, newest):
            report.missing.setdefault(ticker, f"has not filed {newest} yet")
    indicator = INDICATORS["hyperscaler-capex"]
    with transaction(db):
        store.put_sec_quarters(db, rows, now)
        if sums:
            # Sums over another set of companies (the list changed) would not compare: only these stay.
            store.drop_readings(db, indicator.name, sec_edgar.NAME, [point.as_of for point in sums])
            for point in sums:
                store.put_reading(db, store.Reading(
                    indicator.name, point.value, point.as_of, point.period, sec_edgar.NAME,
                    f"trailing four quarters to {point.period}, {', '.join(sec.companies)}",
                    f"{sec_edgar.NAME} poll", now, point.detail,
                ))
            report.readings = len(sums)
            report.signals = reconcile(db, [evaluate_one(db, indicator, settings, now)], settings.alerts, now)
    return report


def _sec_row(v: sec_edgar.QuarterValue, cik: int, measure: str, value: Decimal, tag: str, basis: str) -> store.SecQuarter:
    return store.SecQuarter(v.company, cik, measure, v.fiscal_year, v.fiscal_quarter, v.calendar_quarter, v.start, v.end, value, tag, basis)


def _capex_sums(capex: dict[str, list[sec_edgar.QuarterValue]], report: SecReport) -> list[Point]:
    """The trailing-four-quarter sum, in USD bn, for every calendar quarter every company has
    four quarters to, oldest first, with each company's share and quarters as detail."""
    latest = sec_edgar.latest_common_quarter(capex)
    if latest is None:
        return []
    quarters = sorted({v.calendar_quarter for values in capex.values() for v in values if v.calendar_quarter <= latest})
    points = []
    for quarter in quarters:
        window = set(quarters_ending(quarter, 4))
        companies = {}
        for ticker, values in capex.items():
            try:
                ttm = sec_edgar.trailing_four_quarters(values, quarter)
            except ValueError as exc:  # two fiscal quarters ending in one calendar quarter
                report.missing[ticker] = str(exc)
                return []
            if ttm is None:
                break
            companies[ticker] = {
                "ttm_usd": str(ttm),
                "quarters": {v.calendar_quarter: str(v.value_usd) for v in values if v.calendar_quarter in window},
            }
        else:
            total = sum((Decimal(c["ttm_usd"]) for c in companies.values()), Decimal(0))
            points.append(Point(total / USD_BN, quarter_end(quarter), quarter, {"companies": companies}))
    return points
