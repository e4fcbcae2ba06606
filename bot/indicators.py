"""Watch indicators: the seed article's numbers, SEC filings and our own prices, each with a
threshold, a status and signals.

The article that started this project names numbers to watch over the next quarterly prints.
None has a clean free API, so each indicator says which measure it uses (`definition`) and
where its readings come from (`feed`):

- `manual`: readings people enter (`indicator set`, `indicator import`: `bot.indicator_entry`);
- `events`: guide-down events people enter (`indicator event`), counted per calendar quarter;
- `sec-edgar`: quarterly capex from company filings, polled daily (`bot.indicator_sec`);
- `computed`: worked out from the price history this bot keeps (`bot.analytics`).

A threshold has a direction, a level and optionally a target date; with `trajectory`, the
straight line from the first reading to the level at the target date is the path to stay on.
Signals are alerts of kind `indicator_threshold`: one per episode (the dedupe key names the
indicator, the threshold and the episode), resolved (with a notice) when the value falls back,
routed to subscribed channels through the outbox like every other alert.

Evaluating reads only; `reconcile` writes, so a caller can hold its write transaction short.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import sqlite_utils

from bot import alerting
from bot.clock import Clock, utcnow
from bot.config import AlertSettings, Settings
from bot.errors import InputError, NotEnoughDataError
from bot.sources import sec_edgar
from storage import alerts, subscriptions, transaction
from storage import indicators as store

#: `alerts.source` of every indicator signal, so `alerts --source indicators` lists them all.
SIGNAL_SOURCE = "indicators"
#: The tier the computed indicators read.
GAP_TIER = "gpt-4-class"
#: Days before now at which computed indicators are also worked out, for their trend.
COMPUTED_LOOKBACK = (365, 90, 30, 7)


# --- definitions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Threshold:
    key: str  # names the threshold in an alert's dedupe key: above-60, below-30, 3-a-quarter
    direction: Literal["above", "below"]  # crossed when the value reaches the level from below / above
    level: Decimal
    by: date | None = None  # the target date, when there is one
    path: bool = False  # status is on track / behind against the straight line from the first reading
    trajectory: bool = False  # and two consecutive readings short of that line are a signal

    def beyond(self, value: Decimal) -> bool:
        return value >= self.level if self.direction == "above" else value <= self.level

    def text(self, unit: str) -> str:
        sign = "≥" if self.direction == "above" else "≤"
        return f"{sign} {fmt(self.level, unit)}" + (f" by {self.by}" if self.by else "")


@dataclass(frozen=True, slots=True)
class Indicator:
    name: str
    title: str
    unit: str  # %, USD bn, ×, %/yr, guide-downs
    definition: str  # which measure, in one line: shown by `signals`
    feed: Literal["manual", "events", "sec-edgar", "computed"]
    thresholds: tuple[Threshold, ...] = ()
    reference: str | None = None  # the article's figure, as context
    lowest: Decimal | None = None  # values outside [lowest, highest] are refused
    highest: Decimal | None = None
    lag_days: int = 0  # days after a quarter ends that its figure is expected
    how_to_feed: str = ""


PERCENT = dict(lowest=Decimal(0), highest=Decimal(100))

INDICATORS: dict[str, Indicator] = {
    ind.name: ind
    for ind in (
        Indicator(
            "hyperscaler-inference-mix",
            "Inference share of hyperscaler AI revenue",
            "%",
            "Inference as a share of the hyperscalers' AI revenue, as stated or implied in their quarterly "
            "results (calls, 10-Q, 10-K); each reading's note names the company and the measure used.",
            "manual",
            (Threshold("above-60", "above", Decimal(60), date(2027, 6, 30), path=True, trajectory=True),),
            reference="> 60 % by the end of FY27; two disappointing prints mean demand is sloping down faster than cost",
            lag_days=35,
            how_to_feed="indicator set hyperscaler-inference-mix 48 2026Q3 \"MSFT FY26 Q1 call\"",
            **PERCENT,
        ),
        Indicator(
            "saas-gm-guide-downs",
            "AI-native SaaS gross-margin guide-downs",
            "guide-downs",
            "AI-native SaaS companies lowering their long-term gross-margin guide (typically 70–75 %), counted "
            "per calendar quarter of the announcement; entered as events. Reported margins from SEC filings are context.",
            "events",
            (Threshold("3-a-quarter", "above", Decimal(3)),),
            reference="three or more in a quarter is a signal",
            how_to_feed="indicator event saas-gm-guide-downs ACME 70-75 65-70 2026-11-05",
        ),
        Indicator(
            "open-weight-token-share",
            "Open-weight share of served tokens",
            "%",
            "Share of served tokens on open-weight models as one named tracker measures it (e.g. OpenRouter "
            "token rankings, not an enterprise survey); the note names the measure.",
            "manual",
            (Threshold("above-25", "above", Decimal(25), date(2026, 9, 30), path=True),),
            reference="~14 % at the article's writing (best estimate), 25 % by Q3 2026",
            lag_days=0,
            how_to_feed="indicator set open-weight-token-share 17.5 2026-06-30 \"OpenRouter rankings, June\"",
            **PERCENT,
        ),
        Indicator(
            "hyperscaler-capex",
            "Hyperscaler capex, trailing four quarters",
            "USD bn",
            "Payments for property, plant and equipment (us-gaap PaymentsToAcquirePropertyPlantAndEquipment, "
            "else PaymentsToAcquireProductiveAssets) in SEC 10-Q/10-K filings, trailing four calendar quarters, "
            "summed over the configured companies.",
            "sec-edgar",
            (Threshold("above-610", "above", Decimal(610), date(2026, 12, 31)),),
            reference="about $610 bn for calendar 2026 in the article",
            lowest=Decimal(0),
            lag_days=40,  # 10-Qs are due 40 days after the quarter (10-Ks 60)
            how_to_feed="deflation-watch poll-sec (daily; needs user_agent under [sources.sec-edgar])",
        ),
        Indicator(
            "open-weight-price-gap",
            f"Open-weight price gap ({GAP_TIER})",
            "×",
            f"The cheapest proprietary blended price ((3 × input + output) / 4, USD/Mtok) in the {GAP_TIER} tier "
            "over the cheapest open-weight one, from the prices this bot polls; above 1, open weights are cheaper.",
            "computed",
            how_to_feed="computed from the price history; nothing to enter",
        ),
        Indicator(
            "annualised-decline",
            f"Annualised price decline ({GAP_TIER})",
            "%/yr",
            f"The {GAP_TIER} tier's floor blended price fitted as an exponential over the trailing 365 days "
            f"(deflation-watch trend --tier {GAP_TIER}): how much cheaper it gets per year.",
            "computed",
            (Threshold("above-70", "above", Decimal(70)), Threshold("below-30", "below", Decimal(30))),
            reference="the article's ~70 %/yr thesis against the 30 %/yr business plan",
            how_to_feed="computed from the price history; nothing to enter",
        ),
    )
}


def get(name: str) -> Indicator:
    indicator = INDICATORS.get(name.strip().lower())
    if indicator is None:
        close = difflib.get_close_matches(name.lower(), list(INDICATORS), n=1, cutoff=0.5)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise InputError(f"There is no indicator `{name}`.{hint} The indicators are: {', '.join(INDICATORS)}.")
    return indicator


def fmt(value: Decimal | None, unit: str) -> str:
    """A value with its unit, as people read it: 48.5 %, $612.3 bn, 3.2×, 64.0 %/yr."""
    if value is None:
        return "—"
    if unit == "USD bn":
        return f"${value:,.1f} bn"
    if unit == "×":
        return f"{value:.2f}×"
    if unit == "guide-downs":
        return f"{value:f}"
    return f"{_plain(value)} {unit}"


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


# --- quarters ---------------------------------------------------------------------------------


def quarter_of(day: date) -> str:
    return sec_edgar.calendar_quarter(day)


def quarter_end(label: str) -> date:
    year, quarter = int(label[:4]), int(label[-1])
    return date(year, 12, 31) if quarter == 4 else date(year, 3 * quarter + 1, 1) - timedelta(days=1)


def next_quarter(label: str) -> str:
    year, quarter = int(label[:4]), int(label[-1])
    return f"{year + 1}Q1" if quarter == 4 else f"{year}Q{quarter + 1}"


def quarters_ending(last: str, count: int) -> list[str]:
    """The `count` calendar quarters up to and including `last`, oldest first."""
    year, quarter = int(last[:4]), int(last[-1])
    index = year * 4 + quarter - 1
    return [f"{i // 4}Q{i % 4 + 1}" for i in range(index - count + 1, index + 1)]


def quarters_between(first: str, last: str) -> list[str]:
    out = [first]
    while out[-1] < last:
        out.append(next_quarter(out[-1]))
    return out


# --- evaluation: status and which signals are on ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    value: Decimal
    as_of: date
    period: str | None = None
    detail: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.period or self.as_of.isoformat()


@dataclass(frozen=True, slots=True)
class Active:
    """A signal that is on now: which episode, and the sentence that announces it."""

    episode: str  # part of the dedupe key: the day (or quarter) the episode began
    value: Decimal
    as_of: date
    message: str


@dataclass(slots=True)
class Evaluation:
    indicator: Indicator
    now: datetime
    points: list[Point] = field(default_factory=list)
    state: str = "no readings"  # crossed | on track | behind | missed | below | between | context | no readings | unavailable
    status: str = "No readings yet."
    trend: str = ""
    next_print: str = ""
    active: dict[str, Active] = field(default_factory=dict)  # alert field -> the signal
    extra: dict[str, Any] = field(default_factory=dict)  # per-company values, events, margins
    error: str | None = None  # why nothing could be worked out (signals are left as they are)

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None


def evaluate(db: sqlite_utils.Database, settings: Settings, now: datetime, names: Iterable[str] | None = None) -> list[Evaluation]:
    """Every indicator's status (or the named ones'), in definition order. Reads only."""
    wanted = list(INDICATORS) if names is None else [get(name).name for name in names]
    context = _ComputedContext(db, settings)
    return [evaluate_one(db, INDICATORS[name], settings, now, context) for name in wanted]


def evaluate_one(db: sqlite_utils.Database, indicator: Indicator, settings: Settings, now: datetime, context: _ComputedContext | None = None) -> Evaluation:
    ev = Evaluation(indicator, now)
    if indicator.feed == "events":
        _evaluate_events(db, ev, settings)
    elif indicator.feed == "computed":
        _evaluate_computed(ev, context or _ComputedContext(db, settings))
    else:
        _evaluate_readings(db, ev)
    return ev


def _day_points(readings: list[store.Reading]) -> list[Point]:
    """One point per day: where several paths gave the same day, the last entered wins."""
    by_day: dict[date, store.Reading] = {}
    for reading in sorted(readings, key=lambda r: r.entered_at):
        by_day[reading.as_of] = reading
    return [Point(r.value, r.as_of, r.period, r.detail) for r in sorted(by_day.values(), key=lambda r: r.as_of)]


def _evaluate_readings(db: sqlite_utils.Database, ev: Evaluation) -> None:
    ind = ev.indicator
    readings = [r for r in store.readings(db, ind.name) if r.as_of <= ev.now.date() and r.entered_at <= ev.now]
    ev.extra["readings"] = readings
    ev.points = _day_points(readings)
    ev.next_print = _next_quarterly_print(ind, ev.latest.as_of if ev.latest else None, ev.now.date())
    if ind.feed == "sec-edgar" and ev.latest is not None:
        ev.extra["companies"] = ev.latest.detail.get("companies", {})
    _level_status(ev)


def _level_status(ev: Evaluation) -> None:
    """State, status line, trend and active signals of an indicator with levels to cross."""
    ind, points, today = ev.indicator, ev.points, ev.now.date()
    if not points:
        return
    latest = points[-1]
    ev.trend = _trend(ind, points)
    crossed = [t for t in ind.thresholds if t.beyond(latest.value)]
    for threshold in crossed:
        start = _run_start(points, threshold.beyond)
        verb = "reached" if threshold.direction == "above" else "fell to"
        ev.active[threshold.key] = Active(
            start.as_of.isoformat(),
            latest.value,
            latest.as_of,
            f"{ind.name} {verb} {fmt(latest.value, ind.unit)} ({latest.label}), crossing its threshold "
            f"{threshold.text(ind.unit)}. {ind.title}: {ind.definition}",
        )
    for threshold in ind.thresholds:
        if threshold.trajectory:
            _trajectory_signal(ev, threshold)
    target = next((t for t in ind.thresholds if t.by), None)
    line = _trajectory(points, target) if target is not None and target.path and len(points) > 1 else None
    if crossed:
        ev.state = "crossed"
        ev.status = f"Crossed {crossed[0].text(ind.unit)}: {fmt(latest.value, ind.unit)} ({latest.label})."
    elif target is not None and today > target.by:
        ev.state = "missed"
        ev.status = f"Missed {target.text(ind.unit)}: {fmt(latest.value, ind.unit)} ({latest.label})."
    elif line is not None:
        expected = line(latest.as_of)
        ahead = latest.value >= expected if target.direction == "above" else latest.value <= expected
        ev.state = "on track" if ahead else "behind"
        ev.status = (
            f"{'On track' if ahead else 'Behind'}: {fmt(latest.value, ind.unit)} ({latest.label}) against "
            f"{fmt(expected.quantize(Decimal('0.01')), ind.unit)} on the straight line from the first reading to "
            f"{target.text(ind.unit)}."
        )
    elif target is not None and target.path:
        ev.state = "on track"
        ev.status = f"First reading {fmt(latest.value, ind.unit)} ({latest.label}); the trajectory to {target.text(ind.unit)} starts here."
    elif len(ind.thresholds) > 1:
        ev.state = "between"
        levels = " and ".join(t.text(ind.unit) for t in ind.thresholds)
        ev.status = f"{fmt(latest.value, ind.unit)}: not past {levels}."
    else:
        threshold = ind.thresholds[0]
        share = latest.value / threshold.level * 100
        ev.state = "below"
        ev.status = f"Below: {fmt(latest.value, ind.unit)} ({latest.label}), {share:.0f} % of {threshold.text(ind.unit)}."


def _run_start(points: list[Point], test) -> Point:
    """The first point of the run, ending at the latest, of points that pass `test`."""
    start = points[-1]
    for point in reversed(points):
        if not test(point.value):
            break
        start = point
    return start


def _trajectory(points: list[Point], threshold: Threshold):
    """The straight line from the first reading to the level at the target date, as a function
    of the day; None when there is no line to draw (one reading, or the first after the target)."""
    first = points[0]
    if threshold.by is None or first.as_of >= threshold.by:
        return None
    span = Decimal((threshold.by - first.as_of).days)

    def expected(day: date) -> Decimal:
        if day >= threshold.by:
            return threshold.level
        return first.value + (threshold.level - first.value) * Decimal((day - first.as_of).days) / span

    return expected


def _trajectory_signal(ev: Evaluation, threshold: Threshold) -> None:
    """On when the last two (or more) readings in a row fell short of the straight line."""
    ind, points = ev.indicator, ev.points
    line = _trajectory(points, threshold)
    if line is None:
        return
    misses = []
    for point in reversed(points[1:]):
        short = point.value < line(point.as_of) if threshold.direction == "above" else point.value > line(point.as_of)
        if not short:
            break
        misses.append(point)
    ev.extra["trajectory_misses"] = len(misses)
    if len(misses) < 2:
        return
    second, latest = misses[-2], misses[0]
    ev.active["trajectory"] = Active(
        second.as_of.isoformat(),
        latest.value,
        latest.as_of,
        f"{ind.name} fell short of its trajectory in {len(misses)} consecutive prints: "
        f"{fmt(latest.value, ind.unit)} ({latest.label}) against {fmt(line(latest.as_of).quantize(Decimal('0.01')), ind.unit)} "
        f"on the straight line to {threshold.text(ind.unit)}. The article: if this disappoints in two prints, "
        "the demand curve is sloping down faster than the cost curve.",
    )


def _trend(ind: Indicator, points: list[Point]) -> str:
    if len(points) < 2:
        return ""
    latest, before = points[-1], points[-2]
    if ind.unit in ("%", "%/yr", "guide-downs"):
        delta = latest.value - before.value
        unit = "pts" if ind.unit != "guide-downs" else ""
        change = "unchanged" if delta == 0 else f"{'+' if delta > 0 else '−'}{_plain(abs(delta))} {unit}".strip()
    elif before.value:
        pct = (latest.value / before.value - 1) * 100
        change = "unchanged" if pct == 0 else f"{'+' if pct > 0 else '−'}{abs(pct):.1f} %"
    else:
        return ""
    return f"{change} since {before.label}"


def _next_quarterly_print(ind: Indicator, latest: date | None, today: date) -> str:
    """The next quarter's figure after the latest reading, and when it is due (lag after the quarter)."""
    quarter = next_quarter(quarter_of(latest)) if latest else quarter_of(today)
    lag = 60 if ind.feed == "sec-edgar" and quarter.endswith("Q4") else ind.lag_days
    due = quarter_end(quarter) + timedelta(days=lag)
    late = " (overdue)" if due < today else ""
    return f"{quarter} figure, expected by {due}{late}"


def _evaluate_events(db: sqlite_utils.Database, ev: Evaluation, settings: Settings) -> None:
    """Guide-downs per calendar quarter; each quarter at the threshold is its own signal."""
    ind, today = ev.indicator, ev.now.date()
    threshold = ind.thresholds[0]
    events = [e for e in store.events(db, ind.name) if e.happened_on <= today and e.entered_at <= ev.now]
    ev.extra["events"] = events
    ev.extra["reported_margins"] = reported_margins(db, settings)
    current = quarter_of(today)
    counts = Counter(quarter_of(e.happened_on) for e in events)
    first = min([*counts, current])
    ev.points = [
        Point(Decimal(counts[q]), min(quarter_end(q), today), q, {"companies": [e.company for e in events if quarter_of(e.happened_on) == q]})
        for q in quarters_between(first, current)
    ]
    for point in ev.points:
        if threshold.beyond(point.value):
            ev.active[f"{threshold.key}:{point.period}"] = Active(
                point.period,
                point.value,
                point.as_of,
                f"{point.value} AI-native SaaS companies lowered their long-term gross-margin guide in {point.period} "
                f"({', '.join(point.detail['companies'])}): {threshold.level} or more in one calendar quarter is the signal.",
            )
    latest = ev.points[-1]
    ev.trend = _trend(ind, ev.points)
    crossed = [p.period for p in ev.points if threshold.beyond(p.value)]
    if threshold.beyond(latest.value):
        ev.state, ev.status = "crossed", f"Crossed: {latest.value} guide-downs in {current} (signal at {threshold.level})."
    else:
        ev.state = "below"
        ev.status = f"{latest.value} guide-down{'s' if latest.value != 1 else ''} in {current} so far (signal at {threshold.level})."
    if crossed and crossed[-1] != current:
        ev.status += f" Last crossed in {crossed[-1]}."
    ev.next_print = f"as announced; {current} closes {quarter_end(current)}"


def reported_margins(db: sqlite_utils.Database, settings: Settings) -> list[dict[str, Any]]:
    """Per configured SaaS filer, its latest quarter's reported gross margin (GAAP, as filed:
    not guidance) and the same quarter a year before, from the last SEC poll."""
    filers = list(settings.sec_edgar.saas_filers)
    parts: dict[tuple[str, str], dict[str, Decimal]] = {}
    for measure in ("gross_profit", "revenue"):
        for q in store.sec_quarters(db, measure, filers):
            parts.setdefault((q.company, q.calendar_quarter), {})[measure] = q.value_usd
    out = []
    for company in filers:
        quarters = sorted(
            (quarter, p["gross_profit"] / p["revenue"])
            for (name, quarter), p in parts.items()
            if name == company and "gross_profit" in p and p.get("revenue")
        )
        if not quarters:
            out.append({"company": company, "quarter": None, "reported_margin": None, "year_before": None})
            continue
        quarter, margin = quarters[-1]
        earlier = dict(quarters).get(f"{int(quarter[:4]) - 1}{quarter[4:]}")
        out.append({"company": company, "quarter": quarter, "reported_margin": margin, "year_before": earlier})
    return out


class _ComputedContext:
    """The price frame and the tier, loaded once for both computed indicators."""

    def __init__(self, db: sqlite_utils.Database, settings: Settings):
        self.db, self.settings = db, settings
        self._loaded: tuple | None = None

    def load(self):
        if self._loaded is None:
            from bot import (
                analytics,  # pandas: only when a computed indicator is asked for
            )
            from bot.tiers import load_tiers

            tier = load_tiers(self.settings.tiers).get(GAP_TIER)
            frame = analytics.load_intervals(self.db)
            series = analytics.tier_series(frame, tier) if tier is not None else None
            self._loaded = (analytics, frame, tier, series)
        return self._loaded


def _evaluate_computed(ev: Evaluation, context: _ComputedContext) -> None:
    ind = ev.indicator
    ev.next_print = "recomputed from every price poll"
    analytics, frame, tier, series = context.load()
    if tier is None:
        ev.state, ev.error = "unavailable", f"the tiers file has no {GAP_TIER} tier"
        ev.status = f"Unavailable: {ev.error}."
        return
    moments = [ev.now - timedelta(days=days) for days in COMPUTED_LOOKBACK] + [ev.now]
    for moment in moments:
        try:
            value, detail = _computed_value(ind, analytics, frame, tier, series, moment)
        except NotEnoughDataError as exc:
            if moment == ev.now:
                ev.error = str(exc)
            continue
        if value is not None:
            ev.points.append(Point(value, moment.date(), None, detail))
    if not ev.points or ev.points[-1].as_of != ev.now.date():
        ev.points = []
        ev.state = "unavailable"
        ev.error = ev.error or f"no open-weight and proprietary price in {GAP_TIER} now"
        ev.status = f"Unavailable: {ev.error}"
        return
    ev.extra["now"] = ev.points[-1].detail
    if not ind.thresholds:
        latest = ev.points[-1]
        ev.trend = _trend(ind, ev.points)
        ev.state, ev.status = "context", f"{fmt(latest.value, ind.unit)} now; context, no threshold."
        return
    _level_status(ev)
    # A computed value has no stored history to date an episode by: it begins when first seen.
    ev.active = {key: replace(active, episode=ev.now.date().isoformat()) for key, active in ev.active.items()}


def _computed_value(ind, analytics, frame, tier, series, moment: datetime) -> tuple[Decimal | None, dict]:
    if ind.name == "annualised-decline":
        fit = analytics.annual_decline(series, 365, moment)
        value = Decimal(repr(round(fit.annual_decline * 100, 1)))
        return value, {"start": f"{fit.start:%Y-%m-%d}", "end": f"{fit.end:%Y-%m-%d}", "n_points": fit.n_points}
    floors = analytics.cheapest(frame, tier, moment)
    open_floor, closed = floors["open_weight_floor"], floors["proprietary_floor"]
    if not open_floor or not closed:
        return None, {}
    ratio = Decimal(repr(closed["usd_per_mtok"])) / Decimal(repr(open_floor["usd_per_mtok"]))
    return ratio.quantize(Decimal("0.01")), {"open_weight_floor": open_floor, "proprietary_floor": closed}


# --- signals: alerts of kind indicator_threshold ------------------------------------------------


@dataclass(slots=True)
class SignalReport:
    raised: list[int] = field(default_factory=list)  # alert ids of signals that came on
    resolved: list[int] = field(default_factory=list)  # alert ids of the fell-back notices
    queued: int = 0  # outbox rows


def reconcile(db: sqlite_utils.Database, evaluations: Iterable[Evaluation], settings: AlertSettings, now: datetime) -> SignalReport:
    """Store a signal for every active one not yet on; resolve (with a notice) those on whose
    value fell back. Call inside a transaction. An indicator that could not be worked out
    leaves its signals as they are."""
    report = SignalReport()
    threshold = Decimal(repr(settings.threshold_pct))
    subs = subscriptions.subscriptions(db)
    for ev in evaluations:
        if ev.error is not None:
            continue
        on = {row["field"]: row for row in store.open_signals(db, ev.indicator.name)}
        for key, active in ev.active.items():
            if key in on:
                continue
            alert_id = _insert(db, ev, key, active.episode, active, store.CROSSED, now)
            if alert_id is not None:
                report.raised.append(alert_id)
                report.queued += alerting.route(db, alerts.get(db, alert_id), subs, threshold, settings.group_wait, now)
        for key, row in on.items():
            if key in ev.active:
                continue
            store.close_signal(db, row["id"], now)
            latest = ev.latest
            message = f"{ev.indicator.name} fell back: {ev.status}"
            back = Active(row["new_value"], latest.value if latest else Decimal(0), latest.as_of if latest else now.date(), message)
            alert_id = _insert(db, ev, key, f"{row['new_value']}/fell-back", back, store.FELL_BACK, now)
            if alert_id is not None:
                report.resolved.append(alert_id)
                report.queued += alerting.route(db, alerts.get(db, alert_id), subs, threshold, settings.group_wait, now)
    return report


def _insert(db, ev: Evaluation, key: str, episode: str, active: Active, reason: str, now: datetime) -> int | None:
    ind = ev.indicator
    return alerts.insert(
        db,
        alerts.NewAlert(
            kind=store.SIGNAL_KIND,
            source=SIGNAL_SOURCE,
            observed_at=datetime.combine(active.as_of, time(), UTC) if active.as_of != now.date() else now,
            poll_id=None,
            model=ind.name,
            field=key,
            new_value=episode,
            reason=reason,
            detail={"message": active.message, "value": str(active.value), "unit": ind.unit, "as_of": active.as_of.isoformat(), "title": ind.title},
        ),
        now,
    )


def check(db: sqlite_utils.Database, settings: Settings, clock: Clock = utcnow) -> tuple[list[Evaluation], SignalReport]:
    """The daily job: work out every indicator, then settle their signals in one transaction."""
    now = clock()
    evaluations = evaluate(db, settings, now)
    with transaction(db):
        report = reconcile(db, evaluations, settings.alerts, now)
    return evaluations, report


# --- the weekly digest's section --------------------------------------------------------------------


def digest_section(db: sqlite_utils.Database, settings: Settings, as_of: datetime, week: timedelta = timedelta(days=7)) -> list[dict[str, Any]]:
    """Each indicator for the digest: its number, threshold, status, and what moved in the week
    to `as_of` (the latest value a week before against now; readings entered later are not seen
    a week before, so a late-entered figure shows as this week's news)."""
    now = evaluate(db, settings, as_of)
    manual = [ev.indicator.name for ev in now if ev.indicator.feed != "computed"]
    before = {ev.indicator.name: ev for ev in evaluate(db, settings, as_of - week, manual)}
    section = []
    for ev in now:
        ind = ev.indicator
        if ind.feed == "computed":  # its history is the price history: a week ago is one of its points
            then = next((p for p in ev.points if p.as_of == (as_of - week).date()), None)
        else:
            then = before[ind.name].latest
        section.append({
            "name": ind.name,
            "unit": ind.unit,
            "latest": None if ev.latest is None else {"value": float(ev.latest.value), "as_of": ev.latest.as_of.isoformat(), "period": ev.latest.period},
            "threshold": "; ".join(t.text(ind.unit) for t in ind.thresholds) or None,
            "state": ev.state,
            "status": ev.status,
            "moved": _moved(ind, then, ev.latest),
            "signals_on": sorted(ev.active),
        })
    return section


def _moved(ind: Indicator, then: Point | None, now: Point | None) -> str:
    if now is None:
        return "no readings yet"
    if then is None:
        return f"new: {fmt(now.value, ind.unit)} ({now.label})"
    if (then.value, then.label) == (now.value, now.label) or (ind.feed == "computed" and then.value == now.value):
        return "unchanged this week"
    return f"{fmt(then.value, ind.unit)} ({then.label}) → {fmt(now.value, ind.unit)} ({now.label})"


def digest_lines(section: list[dict[str, Any]]) -> list[str]:
    """The section as the digest card's lines: a heading, then one line per indicator."""
    lines = ["Watch indicators (deflation-watch signals):"]
    for item in section:
        latest = item["latest"]
        value = "no readings" if latest is None else f"{fmt(Decimal(repr(latest['value'])), item['unit'])} ({latest['period'] or latest['as_of']})"
        threshold = f"threshold {item['threshold']}" if item["threshold"] else "context, no threshold"
        signal = ", signal on" if item["signals_on"] else ""
        lines.append(f"• {item['name']}: {value}; {threshold}; {item['state']}{signal}; {item['moved']}.")
    return lines


# --- plain values for --json ---------------------------------------------------------------------


def as_json(ev: Evaluation) -> dict[str, Any]:
    """An evaluation as JSON-ready values: numbers as strings are avoided, Decimals as floats."""
    ind = ev.indicator
    latest = ev.latest
    data: dict[str, Any] = {
        "name": ind.name,
        "title": ind.title,
        "unit": ind.unit,
        "definition": ind.definition,
        "feed": ind.feed,
        "thresholds": [
            {"key": t.key, "direction": t.direction, "level": float(t.level), "by": t.by.isoformat() if t.by else None, "trajectory": t.trajectory}
            for t in ind.thresholds
        ],
        "reference": ind.reference,
        "latest": None if latest is None else {"value": float(latest.value), "as_of": latest.as_of.isoformat(), "period": latest.period},
        "trend": ev.trend or None,
        "state": ev.state,
        "status": ev.status,
        "next_print": ev.next_print,
        "signals_on": sorted(ev.active),
        "how_to_feed": ind.how_to_feed,
        "readings": [{"value": float(p.value), "as_of": p.as_of.isoformat(), "period": p.period} for p in ev.points],
    }
    if ev.error:
        data["error"] = ev.error
    if ind.feed == "computed" and latest is not None:
        data["detail"] = latest.detail
    if "companies" in ev.extra:
        data["companies"] = {
            ticker: {"ttm_usd": int(Decimal(c["ttm_usd"])), "quarters": {q: int(Decimal(v)) for q, v in c["quarters"].items()}}
            for ticker, c in ev.extra["companies"].items()
        }
    if "events" in ev.extra:
        data["events"] = [
            {"company": e.company, "date": e.happened_on.isoformat(), "quarter": quarter_of(e.happened_on),
             "old_guide": guide_text(e.old_low, e.old_high), "new_guide": guide_text(e.new_low, e.new_high),
             "note": e.note, "entered_by": e.entered_by}
            for e in ev.extra["events"]
        ]
        data["reported_gross_margin"] = [
            {**m, "reported_margin": None if m["reported_margin"] is None else float(m["reported_margin"]),
             "year_before": None if m["year_before"] is None else float(m["year_before"])}
            for m in ev.extra["reported_margins"]
        ]
    if "readings" in ev.extra:
        data["entries"] = [
            {"value": float(r.value), "as_of": r.as_of.isoformat(), "period": r.period, "source": r.source,
             "note": r.note, "entered_by": r.entered_by, "entered_at": r.entered_at.isoformat()}
            for r in ev.extra["readings"] if r.source != sec_edgar.NAME
        ]
    return data


def guide_text(low: Decimal, high: Decimal) -> str:
    return f"{low:f} %" if low == high else f"{low:f}–{high:f} %"
