"""The watch-indicator commands of the command layer: `signals` and `indicator ...`, as cards.

Registered on `bot.commands.COMMANDS` when `bot.commands` is imported (it imports this module
last). The terminal mirrors them (`bot.cli_indicators`) with the same parsing and the same cards;
only importing a CSV file is terminal-only, because a chat message cannot name a file on the
bot's host.
"""

from __future__ import annotations

from decimal import Decimal

from bot import indicator_entry, indicator_sec, indicators
from bot.cards import Card, Table
from bot.commands import CommandError, Context, command
from bot.indicator_entry import Deleted, Written
from bot.indicators import Evaluation, fmt, guide_text
from storage import indicators as store

USAGE = (
    "indicator NAME | indicator set NAME VALUE [AS_OF] [NOTE] | "
    "indicator event saas-gm-guide-downs COMPANY OLD NEW [DATE] | indicator delete NAME AS_OF [COMPANY] | "
    "indicator import FILE.csv"
)
#: Rows of past readings an indicator card lists, newest last.
SHOWN_READINGS = 12


@command("signals", "signals", "signals", "the watch indicators: each one's latest value, threshold and status", slow=True)
def _signals(args: tuple[str, ...], context: Context) -> Card:
    if args:
        raise CommandError("Usage: `signals`, with nothing after it. For one indicator, type `indicator NAME`.")
    return signals_card(indicators.evaluate(context.db, context.settings, context.clock()))


@command("indicator", USAGE, "indicator hyperscaler-inference-mix", "one indicator's readings and status; admins add and delete readings", slow=True)
def _indicator(args: tuple[str, ...], context: Context) -> Card:
    if not args:
        raise CommandError(f"Usage: `{USAGE}`. The indicators are: {', '.join(indicators.INDICATORS)}.")
    verb, rest = args[0].lower(), args[1:]
    if verb == "import":
        raise CommandError(
            "Importing a CSV file works from the terminal on the bot's host, where the file is: "
            "`deflation-watch indicator import FILE.csv`. Here, add one reading at a time with "
            "`indicator set` or `indicator event`."
        )
    if verb in ("set", "event", "delete"):
        if not rest:
            raise CommandError(f"Usage: `{USAGE}`.")
        _require_admin(context)
        now = context.clock()
        indicator = indicators.get(rest[0])
        if verb == "delete":
            return deleted_card(indicator_entry.delete(context.db, indicator, rest[1:], context.settings, now))
        build = indicator_entry.reading_from if verb == "set" else indicator_entry.event_from
        item = build(indicator, rest[1:], now.date(), source="chat", entered_by=context.user or "unknown", now=now)
        return written_card(indicator_entry.record(context.db, item, context.settings, now))
    if len(args) > 1:
        raise CommandError(f"Usage: `{USAGE}`.")
    ev = indicators.evaluate_one(context.db, indicators.get(args[0]), context.settings, context.clock())
    return indicator_card(ev)


def _require_admin(context: Context) -> None:
    try:
        context.require_admin()
    except CommandError:
        raise CommandError("Only this bot's admins can record or delete indicator readings and events. Ask one of them.") from None


# --- cards ----------------------------------------------------------------------------------------


def signals_card(evaluations: list[Evaluation]) -> Card:
    """All indicators: a definition line each, then one table row each."""
    rows = tuple(
        (
            ev.indicator.name,
            fmt(ev.latest.value, ev.indicator.unit) if ev.latest else "—",
            ev.latest.label if ev.latest else "—",
            ev.trend or "—",
            "; ".join(t.text(ev.indicator.unit) for t in ev.indicator.thresholds) or "none (context)",
            ev.state + (" · signal on" if ev.active else ""),
            ev.next_print,
        )
        for ev in evaluations
    )
    on = sum(bool(ev.active) for ev in evaluations)
    return Card(
        title="Watch indicators",
        lines=[f"{ev.indicator.name}: {ev.indicator.definition}" for ev in evaluations],
        table=Table(("indicator", "latest", "as of", "trend", "threshold", "status", "next print"), rows),
        severity="warning" if on else "info",
        footer=f"{on} with a signal on. `indicator NAME` for readings and status; admins add readings with `indicator set`.",
    )


def indicator_card(ev: Evaluation) -> Card:
    ind = ev.indicator
    lines = [ind.definition, ev.status]
    if ind.reference:
        lines.append(f"The article: {ind.reference}.")
    fields = [
        ("Latest", f"{fmt(ev.latest.value, ind.unit)} ({ev.latest.label})" if ev.latest else "no readings yet"),
        ("Trend", ev.trend or "—"),
        ("Threshold", "; ".join(t.text(ind.unit) for t in ind.thresholds) or "none: context"),
        ("Status", ev.state),
        ("Next print", ev.next_print),
        ("Feed it", ind.how_to_feed),
    ]
    table = None
    if ind.feed == "events":
        table = _events_table(ev)
        lines += _margin_lines(ev)
    elif ind.feed == "sec-edgar":
        table = _companies_table(ev)
        lines += [f"Trailing four quarters to {p.period}: {fmt(p.value, ind.unit)}" for p in ev.points[-4:]]
    elif ind.feed == "computed":
        table = Table(("as of", ind.unit), tuple((p.as_of.isoformat(), fmt(p.value, ind.unit)) for p in ev.points))
    elif ev.extra.get("readings"):
        table = Table(
            ("as of", "value", "path", "entered by", "note"),
            tuple(
                (r.period or r.as_of.isoformat(), fmt(r.value, ind.unit), r.source, r.entered_by, r.note or "")
                for r in ev.extra["readings"][-SHOWN_READINGS:]
            ),
        )
    for active in ev.active.values():
        lines.append(f"Signal on: {active.message}")
    return Card(
        title=f"{ind.name}: {ind.title}",
        lines=lines,
        fields=fields,
        table=table,
        severity="warning" if ev.active else "info",
    )


def _events_table(ev: Evaluation) -> Table:
    events: list[store.Event] = ev.extra["events"]
    rows = tuple(
        (e.happened_on.isoformat(), indicators.quarter_of(e.happened_on), e.company, guide_text(e.old_low, e.old_high),
         guide_text(e.new_low, e.new_high), e.entered_by, e.note or "")
        for e in events[-SHOWN_READINGS:]
    )
    return Table(("date", "quarter", "company", "old guide", "new guide", "entered by", "note"), rows)


def _margin_lines(ev: Evaluation) -> list[str]:
    counts = ", ".join(f"{p.period} {p.value}" for p in ev.points[-4:])
    lines = [f"Guide-downs per quarter: {counts}."]
    shown = []
    for m in ev.extra["reported_margins"]:
        if m["reported_margin"] is None:
            shown.append(f"{m['company']} none stored")
            continue
        before = f", {_pct(m['year_before'])} a year before" if m["year_before"] is not None else ""
        shown.append(f"{m['company']} {_pct(m['reported_margin'])} in {m['quarter']}{before}")
    if shown:
        lines.append("Context, reported gross margin (GAAP gross profit / revenue as filed with the SEC, not guidance): " + "; ".join(shown) + ".")
    return lines


def _pct(fraction: Decimal) -> str:
    return f"{fraction * 100:.1f} %"


def _companies_table(ev: Evaluation) -> Table | None:
    companies = ev.extra.get("companies") or {}
    if not companies:
        return None
    quarters = sorted({q for c in companies.values() for q in c["quarters"]})
    rows = tuple(
        (ticker, fmt(Decimal(c["ttm_usd"]) / indicator_sec.USD_BN, "USD bn"),
         *(fmt(Decimal(c["quarters"][q]) / indicator_sec.USD_BN, "USD bn") if q in c["quarters"] else "—" for q in quarters))
        for ticker, c in companies.items()
    )
    return Table(("company", "trailing 4 quarters", *quarters), rows)


def written_card(written: Written) -> Card:
    item = written.record
    indicator = indicators.INDICATORS[item.indicator]
    lines = [_entry_line(item)]
    if not written.new:
        lines.append("This replaces what was stored for the same day.")
    if isinstance(item, store.Reading) and indicator.unit == "%" and item.value < 1:
        lines.append(f"That is {fmt(item.value, '%')}; if you meant {fmt(item.value * 100, '%')}, set it again for the same day.")
    return Card(title="Recorded" if written.new else "Corrected", lines=lines + _signal_lines(written.signals), severity="good")


def deleted_card(deleted: Deleted) -> Card:
    lines = [f"Deleted {_entry_line(item)}" for item in deleted.records]
    return Card(title="Deleted", lines=lines + _signal_lines(deleted.signals), severity="info")


def _entry_line(item: store.Reading | store.Event) -> str:
    """One stored reading or guide-down, as a sentence."""
    indicator = indicators.INDICATORS[item.indicator]
    if isinstance(item, store.Reading):
        what = f"{fmt(item.value, indicator.unit)} for {item.period or item.as_of.isoformat()}"
    else:
        what = (f"{item.company} lowered its long-term gross-margin guide from {guide_text(item.old_low, item.old_high)} "
                f"to {guide_text(item.new_low, item.new_high)} on {item.happened_on}")
    return f"{indicator.name}: {what}, entered by {item.entered_by}" + (f" ({item.note})" if item.note else "") + "."


def _signal_lines(signals: indicators.SignalReport) -> list[str]:
    if not (signals.raised or signals.resolved):
        return []
    return [f"Signals: {len(signals.raised)} raised, {len(signals.resolved)} fell back, {signals.queued} deliveries queued."]
