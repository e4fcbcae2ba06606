"""The watch-indicator commands of `deflation-watch`, registered on `bot.cli.app`: `signals`,
`indicator ...` (the chat command's words, plus `import FILE.csv`) and `poll-sec`.

The terminal runs as the operator, who owns the database: writes need no admin list, and are
entered by `console:<OS user>`, the name `deflation-watch ask` gives the same person.
"""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer

from bot import indicator_entry, indicator_sec, indicators
from bot.chat.console import render
from bot.cli import ConfigOpt, DbOpt, JsonOpt, _print_json, _session, app, console, err
from bot.clock import utcnow
from bot.errors import InputError
from bot.fetch import make_client
from bot.indicator_commands import USAGE, deleted_card, indicator_card, signals_card, written_card


def _operator() -> str:
    return f"console:{getpass.getuser()}"


@app.command()
def signals(
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
    check: Annotated[bool, typer.Option("--check", help="Also raise and resolve the indicator signals (the daily job).")] = False,
) -> None:
    """Every watch indicator: definition, latest value, threshold, status, next print.  Example: deflation-watch signals --json"""
    with _session(config_file, db_path) as (settings, db):
        if check:
            evaluations, report = indicators.check(db, settings, utcnow)
            err.print(f"signals: {len(report.raised)} raised, {len(report.resolved)} fell back, {report.queued} deliveries queued")
        else:
            evaluations = indicators.evaluate(db, settings, utcnow())
        if as_json:
            _print_json([indicators.as_json(ev) for ev in evaluations])
        else:
            console.out(render(signals_card(evaluations), width=console.width), highlight=False)


@app.command(context_settings={"allow_interspersed_args": True})
def indicator(
    words: Annotated[list[str], typer.Argument(help=USAGE, show_default=False)],
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One indicator's readings and status, or record readings (`set`), guide-downs (`event`) and a CSV file (`import`), or delete one (`delete`).

    Examples: deflation-watch indicator hyperscaler-capex --json;
    deflation-watch indicator set hyperscaler-inference-mix 48 2026Q3 "MSFT FY26 Q1 call";
    deflation-watch indicator event saas-gm-guide-downs ACME 70-75 65-70 2026-11-05;
    deflation-watch indicator delete saas-gm-guide-downs 2026-11-05 ACME;
    deflation-watch indicator import readings.csv (columns: indicator, as_of, value | company, old, new, note)
    """
    verb, rest = words[0].lower(), words[1:]
    with _session(config_file, db_path) as (settings, db):
        now = utcnow()
        if verb == "import":
            if len(rest) != 1:
                raise InputError("Usage: deflation-watch indicator import FILE.csv")
            written = indicator_entry.import_csv(db, Path(rest[0]), settings, entered_by=_operator(), now=now)
            signals = written[-1].signals
            new = sum(w.new for w in written)
            console.print(
                f"{rest[0]}: {len(written)} rows imported ({new} new, {len(written) - new} corrections); "
                f"signals: {len(signals.raised)} raised, {len(signals.resolved)} fell back",
                highlight=False,
            )
            return
        if verb == "delete":
            if not rest:
                raise InputError(f"Usage: {USAGE}")
            deleted = indicator_entry.delete(db, indicators.get(rest[0]), rest[1:], settings, now)
            console.out(render(deleted_card(deleted), width=console.width), highlight=False)
            return
        if verb in ("set", "event"):
            if not rest:
                raise InputError(f"Usage: {USAGE}")
            build = indicator_entry.reading_from if verb == "set" else indicator_entry.event_from
            item = build(indicators.get(rest[0]), rest[1:], now.date(), source="terminal", entered_by=_operator(), now=now)
            console.out(render(written_card(indicator_entry.record(db, item, settings, now)), width=console.width), highlight=False)
            return
        if rest:
            raise InputError(f"Usage: {USAGE}")
        ev = indicators.evaluate_one(db, indicators.get(verb), settings, now)
        if as_json:
            _print_json(indicators.as_json(ev))
        else:
            console.out(render(indicator_card(ev), width=console.width), highlight=False)


@app.command("poll-sec")
def poll_sec(config_file: ConfigOpt = None, db_path: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Poll SEC EDGAR once: hyperscaler capex and SaaS filers' reported gross margin (the daily job).  Example: deflation-watch poll-sec --json"""
    with _session(config_file, db_path) as (settings, db):
        report = asyncio.run(_poll_sec(db, settings))
    if as_json:
        _print_json({
            "quarter": report.quarter,
            "capex_usd_bn": report.capex_usd_bn,
            "readings": report.readings,
            "companies": report.companies,
            "missing": report.missing,
            "gross_margin_latest": report.margins,
            "signals": {"raised": report.signals.raised, "resolved": report.signals.resolved},
        })
    elif report.quarter:
        console.print(
            f"hyperscaler-capex: {indicators.fmt(report.capex_usd_bn, 'USD bn')} in the four quarters to "
            f"{report.quarter} ({', '.join(report.companies)}); {report.readings} quarters stored",
            highlight=False,
        )
    for ticker, why in report.missing.items():
        err.print(f"{ticker}: {why}", highlight=False, markup=False)
    for ticker, latest in report.margins.items():
        if latest is None or not latest[:4].isdigit():
            err.print(f"{ticker} (gross margin): {latest or 'no quarter with both gross profit and revenue'}", highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)


async def _poll_sec(db, settings):
    async with make_client(settings.http) as client:
        return await indicator_sec.poll_sec(db, client, settings, utcnow)
