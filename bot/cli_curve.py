"""The cost-curve commands, registered on `bot.cli.app`: trend, cheapest, margin and digest.

Each calls one function (`analytics.trend`, `analytics.cheapest`, `margin.margin_model`,
`digest.build_digest`) and prints a Rich table, or with `--json` exactly what that function
returned, so every figure the digest states can be checked here. pandas and matplotlib are
imported inside the commands that need them, so the rest of the CLI starts quickly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table

from bot import margin as margins
from bot.cards import Card
from bot.cli import ConfigOpt, DbOpt, JsonOpt, _fail, _print_json, _session, app, console
from bot.clock import utcnow
from bot.config import Settings
from bot.durations import parse_duration
from bot.errors import ConfigError
from bot.tiers import Tier, load_tiers

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_TIER = "gpt-4-class"
#: The declines `margin` compares when no --rate is given: the 2024 plan's and the article's.
COMPARED_RATES = (Decimal("0.3"), Decimal("0.7"))

AsOfOpt = Annotated[
    Optional[str],
    typer.Option("--as-of", help="The moment to answer for: a date (midnight UTC, e.g. 2026-11-23) or an ISO time; default now."),
]


def parse_as_of(text: str | None) -> datetime:
    """`--as-of`: a date is that day's midnight UTC; a time without an offset is UTC."""
    if text is None:
        return utcnow()
    try:
        moment = datetime.combine(date.fromisoformat(text), datetime.min.time()) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--as-of must be a date such as 2026-11-23 or an ISO time such as 2026-11-23T09:00:00Z, got {text!r}", 2)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_window(text: str) -> int | None:
    """`--window`: whole days (`365d`, `90d`, `52w`) or `all` (since the first price)."""
    if text.strip().lower() == "all":
        return None
    try:
        span = parse_duration(text)
    except ValueError as exc:
        _fail(f"--window: {exc}, or all", 2)
    if span.days < 1 or span.total_seconds() % 86400:
        _fail(f"--window must be whole days such as 365d or 90d, or all; got {text!r}", 2)
    return span.days


def _tier(settings: Settings, name: str) -> Tier:
    try:
        tiers = load_tiers(settings.tiers)
    except ConfigError as exc:
        _fail(f"config: {exc}", 2)
    if name not in tiers:
        _fail(f"unknown tier {name!r}; the tiers are {', '.join(tiers)} (see `tiers` in the config)", 2)
    return tiers[name]


def _usd(value: float | Decimal | None) -> str:
    from bot.digest import usd

    return "—" if value is None else usd(float(value))


@app.command()
def trend(
    tier: Annotated[Optional[str], typer.Option("--tier", help=f"A tier of the tiers file (default {DEFAULT_TIER}).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="A model instead of a tier: its consensus price across sources.")] = None,
    provider: Annotated[Optional[str], typer.Option("--provider", help="With --model: only this seller's listings.")] = None,
    window: Annotated[str, typer.Option("--window", help="Trailing window fitted: 365d, 90d, 2w ... or all.")] = "365d",
    as_of: AsOfOpt = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How fast a tier's floor (or a model's price) is falling: daily prices, the fit, the rate.  Example: deflation-watch trend --tier gpt-4-class --window all --json"""
    from bot import analytics

    if tier is not None and model is not None:
        _fail("give --tier or --model, not both", 2)
    if provider is not None and model is None:
        _fail("--provider narrows a --model; a tier already names its sellers", 2)
    window_days, when = parse_window(window), parse_as_of(as_of)
    with _session(config_file, db_path) as (settings, db):
        frame = analytics.load_intervals(db)
        if model is not None:
            result = analytics.trend(frame, when, model=model, provider=provider, window_days=window_days)
        else:
            result = analytics.trend(frame, when, tier=_tier(settings, tier or DEFAULT_TIER), window_days=window_days)
    if as_json:
        _print_json(result)
        return
    what = f"{result['tier']} floor" if result["tier"] else f"{result['model']}{' from ' + provider if provider else ''} (consensus of sources)"
    span = "since its first price" if window_days is None else f"over the trailing {window_days} days"
    console.print(f"[bold]{what}[/], {span}, to {result['end']}: [bold]{result['label']}[/]", highlight=False)
    console.print(analytics.rate_verdict(result["annual_decline"]), highlight=False, markup=False)
    console.print(
        f"least-squares fit of ln(price) on {result['n_points']} daily prices ({result['start']} to {result['end']}), "
        f"slope {result['slope_per_day']:.6f}/day; rate = 1 − exp(365 × slope)",
        style="dim", highlight=False,
    )
    console.print(_steps_table(result))


def _steps_table(result: dict[str, Any]) -> Table:
    """The fitted daily prices, one row per change (the days between repeat the row above)."""
    is_tier = result["tier"] is not None
    table = Table(title="Prices fitted (a row each time the price or its holder changes)", title_justify="left")
    columns = ["from", "USD/Mtok", *(("model", "provider", "source", "open-weight") if is_tier else ("sources",))]
    for column in columns:
        table.add_column(column, justify="right" if column in ("USD/Mtok", "sources") else "left")
    previous = None
    for point in result["points"]:
        key = tuple(v for k, v in point.items() if k != "date")
        if key == previous:
            continue
        previous = key
        extra = (point["model"], point["provider"], point["source"], "yes" if point["open_weight"] else "no") if is_tier else (str(point["n_sources"]),)
        table.add_row(point["date"], _usd(point["usd_per_mtok"]), *extra)
    return table


@app.command()
def cheapest(
    tier: Annotated[str, typer.Argument(help="A tier of the tiers file.")] = DEFAULT_TIER,
    top: Annotated[int, typer.Option("--top", min=0, help="How many of the next cheapest models to list.")] = 5,
    as_of: AsOfOpt = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A tier's floor now: its cheapest member, and the next cheapest models.  Example: deflation-watch cheapest gpt-4-class --json"""
    from bot import analytics

    when = parse_as_of(as_of)
    with _session(config_file, db_path) as (settings, db):
        result = analytics.cheapest(analytics.load_intervals(db), _tier(settings, tier), when, top)
    if as_json:
        _print_json(result)
        return
    if result["floor"] is None:
        console.print(f"No member of {tier} has a price at {result['as_of']}.", highlight=False)
        return
    table = Table(title=f"Cheapest {tier} models at {result['as_of'][:16].replace('T', ' ')} UTC (USD per million tokens)", title_justify="left")
    for column in ("", "model", "provider", "source", "blended", "input", "output", "open-weight", "price since"):
        table.add_column(column, justify="right" if column in ("blended", "input", "output") else "left")
    for rank, listing in enumerate([result["floor"], *result["next"]]):
        table.add_row(
            "floor" if rank == 0 else str(rank + 1), listing["name"], listing["provider"], listing["source"],
            _usd(listing["usd_per_mtok"]), _usd(listing["input_mtok"]), _usd(listing["output_mtok"]),
            "yes" if listing["open_weight"] else "no", listing["since"][:10],
            style="bold" if rank == 0 else None,
        )
    console.print(table)
    for label, key in (("open-weight floor", "open_weight_floor"), ("proprietary floor", "proprietary_floor")):
        listing = result[key]
        text = "none priced" if listing is None else f"{listing['name']} from {listing['provider']} ({listing['source']}) at {_usd(listing['usd_per_mtok'])}"
        console.print(f"{label}: {text}", highlight=False, markup=False)
    for listing in result["set_aside"]:
        console.print(
            f"set aside by the outlier guard: {listing['model']} from {listing['provider']} ({listing['source']}) at "
            f"{_usd(listing['usd_per_mtok'])}, under a fifth of the other listings of {listing['name']}",
            style="dim", highlight=False, markup=False,
        )


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        _fail(f"{name} must be a number, got {text!r}", 2)
    if not value.is_finite():
        _fail(f"{name} must be a finite number, got {text!r}", 2)
    return value


# Unknown options pass through as arguments, so a negative PRICE reaches the check that names it.
@app.command(context_settings={"ignore_unknown_options": True})
def margin(
    price: Annotated[str, typer.Argument(help="Seat price per period, USD (e.g. 40).")],
    cost: Annotated[str, typer.Argument(help="Inference cost per seat per period in year 0, USD (e.g. 14).")],
    rate: Annotated[Optional[str], typer.Option("--rate", help="Annual decline of inference cost, a fraction (0.7 = 70 %/yr). Default: 30 % and 70 % side by side.")] = None,
    drop: Annotated[Optional[str], typer.Option("--drop", help="Instead of --rate: a total drop (0.9 = 90 %) ...")] = None,
    months: Annotated[Optional[str], typer.Option("--months", help="... over this many months (with --drop).")] = None,
    years: Annotated[int, typer.Option("--years", help="Years after year 0 to show.")] = 3,
    clawback: Annotated[str, typer.Option("--clawback", help="Share of the saving customers win back in renegotiation (0.3 = 30 %).")] = "0.3",
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What falling inference cost does to a seat's gross margin, year by year (30 % and 70 %/yr side by side unless --rate or --drop says).  Example: deflation-watch margin 40 14 --rate 0.7 --clawback 0"""
    del config_file, db_path  # accepted like every command's; the margin model reads no data
    seat, spend, share = _decimal(price, "PRICE"), _decimal(cost, "COST"), _decimal(clawback, "--clawback")
    if seat <= 0:
        _fail(f"PRICE must be positive, got {price}", 2)
    if spend < 0:
        _fail(f"COST must not be negative, got {cost}", 2)
    if spend > seat:
        _fail(f"COST ({cost}) is above PRICE ({price}): the seat loses money before any decline", 2)
    if not 0 <= share <= 1:
        _fail(f"--clawback must be between 0 and 1 (0.3 = 30 %), got {clawback}", 2)
    if not 0 <= years <= 50:
        _fail(f"--years must be between 0 and 50, got {years}", 2)
    rates, derived = _rates(rate, drop, months)
    runs = [(annual, margins.margin_model(seat, spend, annual, years, share)) for annual in rates]
    result = {
        "seat_price": seat, "cost": spend, "clawback": share, "years": years, **derived,
        "scenarios": [
            {"rate": annual, "years": [{"year": r.year, "cost": r.cost, "seat_price": r.price, "gross_margin": r.gross_margin} for r in rows]}
            for annual, rows in runs
        ],
    }
    if as_json:
        _print_json(result)
        return
    if derived:
        console.print(f"a {float(derived['drop']) * 100:g} % drop over {float(derived['months']):g} months is {float(rates[0]) * 100:.1f} %/yr", highlight=False)
    console.print(_margin_table(seat, spend, share, runs))


def _rates(rate: str | None, drop: str | None, months: str | None) -> tuple[list[Decimal], dict[str, Decimal]]:
    """The declines to show: --rate, or the one --drop over --months compounds to, or 30 % and 70 %."""
    if drop is not None or months is not None:
        if rate is not None or drop is None or months is None:
            _fail("give --drop with --months (e.g. --drop 0.9 --months 24), instead of --rate", 2)
        total, span = _decimal(drop, "--drop"), _decimal(months, "--months")
        if not 0 <= total < 1:
            _fail(f"--drop must be at least 0 and below 1 (0.9 = 90 %), got {drop}", 2)
        if span <= 0:
            _fail(f"--months must be positive, got {months}", 2)
        annual = Decimal(repr(margins.rate_from_drop(float(total), float(span))))
        return [annual], {"drop": total, "months": span}
    if rate is None:
        return list(COMPARED_RATES), {}
    annual = _decimal(rate, "--rate")
    if not 0 <= annual < 1:
        _fail(f"--rate must be at least 0 and below 1 (0.7 = 70 %/yr), got {rate}", 2)
    return [annual], {}


def _margin_table(seat: Decimal, spend: Decimal, share: Decimal, runs: list[tuple[Decimal, list[margins.MarginYear]]]) -> Table:
    """The years down, each decline's cost, seat price and margin across (as `margin_table` formats them)."""
    table = Table(title=f"Seat at ${seat:,}, inference ${spend:,} in year 0, {float(share) * 100:g} % of the saving clawed back", title_justify="left")
    table.add_column("Year", justify="right")
    formatted = [margins.margin_table(rows) for _, rows in runs]
    for annual, _ in runs:
        for column in ("inference cost", "seat price", "gross margin"):
            table.add_column(f"{column}\n@ {float(annual) * 100:.3g} %/yr", justify="right")
    for rows in zip(*(f.rows for f in formatted)):
        table.add_row(rows[0][0], *(cell for row in rows for cell in row[1:]))
    return table


@app.command()
def digest(
    as_of: AsOfOpt = None,
    chart: Annotated[Optional[Path], typer.Option("--chart", help="Where to write the chart (default ./deflation-watch-digest-YYYY-MM-DD.png).")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The weekly digest: the week's moves, tier floors, rates against 30/70/90 %/yr, and a chart.  Example: deflation-watch digest --as-of 2026-11-23 --chart digest.png"""
    from bot.digest import build_digest

    when = parse_as_of(as_of)
    with _session(config_file, db_path) as (settings, db):
        result = build_digest(db, when, settings)
    path = chart or Path(f"deflation-watch-digest-{when:%Y-%m-%d}.png")
    try:
        path.write_bytes(result.chart)
    except OSError as exc:
        _fail(f"cannot write the chart to {path}: {exc.strerror}")
    if as_json:
        _print_json({**result.data, "chart_file": str(path)})
        return
    print_card(result.card)
    console.print(f"chart: {path}", highlight=False)


def print_card(card: Card) -> None:
    """A card in the terminal: title, paragraphs, table, footer (its image is a file)."""
    console.rule(f"[bold]{card.title}[/]")
    if card.table is not None:
        table = Table(*card.table.header, title_justify="left")
        for row in card.table.rows:
            table.add_row(*row)
        console.print(table)
    for line in card.lines:
        console.print(line, highlight=False, markup=False)
        console.print()
    if card.footer:
        console.print(card.footer, style="dim", highlight=False, markup=False)


def show_digest(db: sqlite_utils.Database, settings: Settings, chart: Path) -> None:
    """Print the digest of the week to now and write its chart to `chart` (what `demo` ends with)."""
    from bot.digest import build_digest

    result = build_digest(db, settings=settings)
    chart.write_bytes(result.chart)
    print_card(result.card)
    console.print(f"chart: {chart}", highlight=False)
