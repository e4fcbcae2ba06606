"""One command layer for Slack, Discord and the terminal: `parse(text) -> Command`, then
`run(command, context) -> Card`. Nothing here knows a chat platform.

Every mistake a person can make (an unknown command or model, a bad number or duration, a
missing argument) becomes a short card that says what to type instead; nothing is written to
the database unless the command ran whole. Commands that change a channel's settings are for
the configured admins only, when `admins` is set.
"""

from __future__ import annotations

import difflib
import logging
import shlex
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import sqlite_utils

from bot import lookup
from bot.cards import Card, Table
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.errors import DeflationWatchError
from bot.margin import margin_model, margin_table
from storage import polls, prices

log = logging.getLogger(__name__)

#: Longer input is refused before it is parsed: no command needs more.
MAX_TEXT = 500
MAX_ARG = 120


class CommandError(DeflationWatchError):
    """A reply to a person's mistake: shown as is, never with a stack trace."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[str, ...] = ()


@dataclass(slots=True)
class Context:
    """Who asks, where, and what the command may use."""

    db: sqlite_utils.Database
    settings: Settings
    clock: Clock = utcnow
    user: str | None = None
    channel: str | None = None  # an address such as "slack:C0123" or "discord:4567"

    def require_admin(self) -> None:
        if self.settings.admins and self.user not in self.settings.admins:
            raise CommandError("Only this bot's admins can change channel settings. Ask one of them.")


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    usage: str
    example: str
    summary: str
    handler: Callable[[tuple[str, ...], Context], Card] = field(repr=False)


COMMANDS: dict[str, Spec] = {}


def command(name: str, usage: str, example: str, summary: str) -> Callable:
    """Register a handler under `name`; the registry order is the order `help` shows."""

    def register(handler: Callable[[tuple[str, ...], Context], Card]) -> Callable:
        COMMANDS[name] = Spec(name, usage, example, summary, handler)
        return handler

    return register


def parse(text: str) -> Command:
    """Split a command line as a shell would (quotes group words); an empty line is `help`."""
    if len(text) > MAX_TEXT:
        raise CommandError(f"That is {len(text)} characters; commands are at most {MAX_TEXT}.")
    try:
        words = shlex.split(text)
    except ValueError:
        raise CommandError("A quote is not closed. Put quotes around a name with spaces, like \"Claude 3.5 Sonnet\".") from None
    if not words:
        return Command("help")
    name, args = words[0].lower(), tuple(words[1:])
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise CommandError(f"There is no `{name}` command.{hint} Type `help` for the list.")
    for arg in args:
        if len(arg) > MAX_ARG:
            raise CommandError(f"An argument of {len(arg)} characters is too long; the limit is {MAX_ARG}.")
    return Command(name, args)


def run(command: Command, context: Context) -> Card:
    """Run a parsed command; every failure becomes a card, never an exception."""
    try:
        return COMMANDS[command.name].handler(command.args, context)
    except DeflationWatchError as exc:
        return error_card(str(exc))
    except Exception:  # a bug must not take the bot down or show a traceback in a channel
        log.exception("command %s failed", command.name)
        return error_card("Something went wrong on our side; it has been logged. Try again later.")


def answer(text: str, context: Context) -> Card:
    """`parse` and `run` in one: what the chat adapters and `deflation-watch ask` call."""
    try:
        return run(parse(text), context)
    except CommandError as exc:
        return error_card(str(exc))


def error_card(message: str) -> Card:
    return Card(title="Sorry", lines=[message], severity="warning")


def _usage(name: str) -> str:
    spec = COMMANDS[name]
    return f"Usage: `{spec.usage}`, for example `{spec.example}`."


def _arity(name: str, args: tuple[str, ...], least: int, most: int) -> None:
    if not least <= len(args) <= most:
        raise CommandError(_usage(name))


def number(text: str, what: str, *, percent: bool = False) -> Decimal:
    """A number as people write it: `40`, `$40`, `1,200`, `70%` (a fraction when `percent`)."""
    cleaned = text.strip().replace(",", "").removeprefix("$")
    is_percent = cleaned.endswith("%")
    try:
        value = Decimal(cleaned.removesuffix("%"))
    except InvalidOperation:
        raise CommandError(f"{what} must be a number, like 40 or 0.7; got `{text}`.") from None
    if not value.is_finite():
        raise CommandError(f"{what} must be a number, like 40 or 0.7; got `{text}`.")
    if percent and (is_percent or value > 1):
        value /= 100
    return value


def money(value: Decimal | None) -> str:
    return "—" if value is None else f"${value:,f}"


def blend(row: dict) -> Decimal | None:
    """(3 × input + 1 × output) / 4, the blended price used everywhere (see analytics)."""
    if row["flag"] or row["input_mtok"] is None or row["output_mtok"] is None:
        return None
    return (3 * row["input_mtok"] + row["output_mtok"]) / 4


@command("help", "help", "help", "every command with an example")
def _help(args: tuple[str, ...], context: Context) -> Card:
    rows = tuple((spec.usage, spec.summary, spec.example) for spec in COMMANDS.values())
    return Card(
        title="Deflation Watch commands",
        lines=["Prices are USD per million tokens. Blended = (3 × input + output) / 4."],
        table=Table(("command", "what it does", "example"), rows),
    )


#: Windows over which `price` reports the change of the typical blended price.
CHANGE_WINDOWS = (30, 90, 365)


@command("price", "price MODEL", "price gpt-4o", "current prices across sources and providers, and how they moved")
def _price(args: tuple[str, ...], context: Context) -> Card:
    if not args:
        raise CommandError(_usage("price"))
    name = " ".join(args)
    keys = lookup.resolve(context.db, name)
    now = context.clock()
    current = [row for row in prices.in_force(context.db, keys, now)]
    if not current:
        raise CommandError(f"{name} is not listed by any source now. Try `history {name}`.")
    typical = _typical(current)
    fields = [("Typical blended", money(_rounded(typical)))] if typical else []
    for days in CHANGE_WINDOWS:
        then = _typical(prices.in_force(context.db, keys, now - timedelta(days=days)))
        fields.append((f"{days}-day change", _change(then, typical)))
    last = _last_change(prices.history(context.db, keys))
    fields.append(("Last change", last[:10] if last else "none recorded"))
    return Card(
        title=f"{name}: USD per million tokens",
        lines=[f"{len(current)} listings from {len({r['source'] for r in current})} sources, grouped by price."],
        table=Table(("input", "output", "cache read", "listings", "sold by"), _by_price(current)),
        fields=fields,
    )


#: How many sellers a grouped price row names before it says "+N more".
NAMED_SELLERS = 4


def _by_price(rows: list[dict]) -> tuple[tuple[str, ...], ...]:
    """Listings grouped by identical prices, the most common first: twenty resellers at the
    list price are one row, and the odd one out stands out."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["input_mtok"], row["output_mtok"], row["cache_read_mtok"], row["flag"]), []).append(row)
    out = []
    for (inp, outp, cache, flag), members in sorted(groups.items(), key=lambda item: -len(item[1])):
        sellers = sorted({m["provider"] for m in members})
        named = ", ".join(sellers[:NAMED_SELLERS]) + (f" +{len(sellers) - NAMED_SELLERS} more" if len(sellers) > NAMED_SELLERS else "")
        out.append((money(inp), money(outp), money(cache), f"{len(members)}" + (f" ({flag})" if flag else ""), named))
    return tuple(out)


def _last_change(history: list[dict]) -> str | None:
    """When any listing last changed price: the start of any interval but a listing's first."""
    starts: dict[tuple, list[str]] = {}
    for row in history:
        starts.setdefault((row["source"], row["provider"], row["model"]), []).append(row["valid_from"])
    return max((start for listing in starts.values() for start in listing[1:]), default=None)


def _typical(rows: list[dict]) -> Decimal | None:
    """The median blended price over listings: one reseller's typo cannot move it."""
    blends = [value for value in map(blend, rows) if value]
    return statistics.median(blends) if blends else None


def _rounded(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.0001")).normalize()


def _change(then: Decimal | None, now: Decimal | None) -> str:
    if not then or not now:
        return "no price then"
    pct = (now - then) / then * 100
    return "unchanged" if pct == 0 else f"{pct:+.1f} %"


@command("history", "history MODEL", "history o3", "the price intervals of a model")
def _history(args: tuple[str, ...], context: Context) -> Card:
    if not args:
        raise CommandError(_usage("history"))
    name = " ".join(args)
    rows = prices.history(context.db, lookup.resolve(context.db, name))
    return Card(
        title=f"Price history of {name} (USD per million tokens)",
        table=Table(
            ("source", "provider", "key", "from", "to", "input", "output"),
            tuple(
                (r["source"], r["provider"], r["model"], r["valid_from"][:10], (r["valid_to"] or "now")[:10],
                 money(r["input_mtok"]), money(r["output_mtok"]))
                for r in rows
            ),
        ),
    )


@command("sources", "sources", "sources", "each source's last good poll, last error and models")
def _sources(args: tuple[str, ...], context: Context) -> Card:
    _arity("sources", args, 0, 0)
    summary = {row["source"]: row for row in polls.summary(context.db)}
    rows = []
    for name in context.settings.sources:
        row = summary.get(name, {})
        state = "enabled" if context.settings.sources[name].enabled else "disabled"
        rows.append((name, state, (row.get("last_good_at") or "never")[:16], str(row.get("models", 0)), row.get("last_error") or "—"))
    return Card(title="Price sources", table=Table(("source", "state", "last good poll", "models", "last error"), tuple(rows)))


@command("margin", "margin PRICE COST [RATE] [YEARS]", "margin 40 14", "gross margin of a seat as inference gets cheaper")
def _margin(args: tuple[str, ...], context: Context) -> Card:
    _arity("margin", args, 2, 4)
    price = number(args[0], "The seat price")
    cost = number(args[1], "The inference cost")
    years = number(args[3], "Years") if len(args) > 3 else Decimal(3)
    if years != years.to_integral_value() or not 0 <= years <= 20:
        raise CommandError(f"Years must be a whole number from 0 to 20; got {args[3]}.")
    # Without a rate, the question the bot exists for: the 30 % plan against the 70 % thesis.
    rates = [number(args[2], "The annual decline", percent=True)] if len(args) > 2 else [Decimal("0.3"), Decimal("0.7")]
    try:
        runs = [margin_model(price, cost, rate, int(years)) for rate in rates]
    except ValueError as exc:
        raise CommandError(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
    header = ["year"] + [f"{label} at {float(rate * 100):g} %/yr" for rate in rates for label in ("cost", "margin")]
    rows = tuple(
        (str(year), *(cell for run in runs for cell in (f"${run[year].cost:,.2f}", f"{run[year].gross_margin * 100:.1f} %")))
        for year in range(int(years) + 1)
    )
    return Card(
        title=f"A ${price:,f} seat with ${cost:,f} of inference per seat",
        lines=["Gross margin = (seat price − inference cost) / seat price, as inference gets cheaper each year."],
        table=Table(tuple(header), rows),
    )
