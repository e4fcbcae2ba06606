"""One command layer for Slack, Discord and the terminal: `parse(text) -> Command`, then
`run(command, context) -> Card`. Nothing here knows a chat platform.

Every mistake a person can make (an unknown command or model, a bad number or duration, a
missing argument) becomes a short card that says what to type instead; nothing is written to
the database unless the command ran whole. Commands that change a channel's settings are for
the configured admins only, when `admins` is set.

Commands marked `slow` (they crunch the whole price history or draw a chart) are answered by
the chat adapters after a first quick acknowledgement; the others answer within a second.
"""

from __future__ import annotations

import copy
import difflib
import logging
import re
import shlex
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlite_utils

from bot import lookup, secrets
from bot.cards import Card, Table
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.durations import format_duration, parse_duration
from bot.errors import DeflationWatchError
from bot.margin import margin_model
from storage import alerts, digests, polls, prices, subscriptions, transaction
from storage.times import iso

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
    user: str | None = None  # "slack:U0123", "discord:8123…" or "console:NAME"
    channel: str | None = None  # an address such as "slack:C0123" or "discord:4567"
    trusted: bool = False  # the terminal: whoever runs `deflation-watch ask` owns the database anyway

    def require_admin(self) -> None:
        """`admins` lists user ids, bare (`U0123`) or with their platform (`slack:U0123`)."""
        if self.trusted or not self.settings.admins:
            return
        bare = (self.user or "").partition(":")[2]
        if self.user not in self.settings.admins and bare not in self.settings.admins:
            raise CommandError("Only this bot's admins can change channel settings. Ask one of them.")

    def require_channel(self) -> str:
        if not self.channel:
            raise CommandError("This command works in a channel: run it there.")
        return self.channel


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    usage: str
    example: str
    summary: str
    handler: Callable[[tuple[str, ...], Context], Card] = field(repr=False)
    slow: bool = False  # may take over a second (whole-history analytics, a chart)


COMMANDS: dict[str, Spec] = {}


def command(name: str, usage: str, example: str, summary: str, *, slow: bool = False) -> Callable:
    """Register a handler under `name`; the registry order is the order `help` shows. A later
    registration under the same name replaces the handler and keeps the place."""

    def register(handler: Callable[[tuple[str, ...], Context], Card]) -> Callable:
        COMMANDS[name] = Spec(name, usage, example, summary, handler, slow)
        return handler

    return register


def is_slow(text: str) -> bool:
    """Whether the command in `text` may need more than the platforms' first-reply deadline."""
    try:
        return COMMANDS[parse(text).name].slow
    except CommandError:
        return False


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


ERROR_TITLE = "Sorry"


def error_card(message: str) -> Card:
    # A refusal may quote what was typed, or an error's text: never a known secret.
    return Card(title=ERROR_TITLE, lines=[secrets.redact(message)], severity="warning")


def is_error(card: Card) -> bool:
    """Whether a card is a refusal (shown only to the person who asked, where a platform can)."""
    return card.title == ERROR_TITLE and card.severity == "warning"


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


#: The tier `cheapest` and `trend` answer for when none is named.
DEFAULT_TIER = "gpt-4-class"


def _tiers(context: Context) -> dict:
    from bot.tiers import load_tiers

    return load_tiers(context.settings.tiers)


def _tier_named(name: str, tiers: dict) -> Any:
    if name in tiers:
        return tiers[name]
    close = difflib.get_close_matches(name, list(tiers), n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    raise CommandError(f"There is no tier `{name}`.{hint} The tiers are {', '.join(tiers)}.")


def usd(value: float | None) -> str:
    from bot.digest import usd as formatted

    return "—" if value is None else formatted(float(value))


@command("cheapest", "cheapest [TIER]", "cheapest gpt-4-class", "a tier's cheapest models now (its floor first)", slow=True)
def _cheapest(args: tuple[str, ...], context: Context) -> Card:
    from bot import analytics

    _arity("cheapest", args, 0, 1)
    tier = _tier_named(args[0] if args else DEFAULT_TIER, _tiers(context))
    result = analytics.cheapest(analytics.load_intervals(context.db), tier, context.clock())
    title = f"Cheapest {tier.name} models (blended USD per million tokens)"
    if result["floor"] is None:
        return Card(title=title, lines=[f"No member of {tier.name} has a price now."])
    rows = tuple(
        ("floor" if rank == 0 else str(rank + 1), listing["name"], listing["provider"], listing["source"],
         usd(listing["usd_per_mtok"]), usd(listing["input_mtok"]), usd(listing["output_mtok"]),
         "yes" if listing["open_weight"] else "no", listing["since"][:10])
        for rank, listing in enumerate([result["floor"], *result["next"]])
    )
    fields = []
    for label, key in (("Open-weight floor", "open_weight_floor"), ("Proprietary floor", "proprietary_floor")):
        listing = result[key]
        fields.append((label, "none priced" if listing is None else f"{listing['name']} ({listing['provider']}) {usd(listing['usd_per_mtok'])}"))
    return Card(
        title=title,
        lines=[tier.description.strip()] if tier.description.strip() else [],
        table=Table(("", "model", "provider", "source", "blended", "input", "output", "open weights", "price since"), rows),
        fields=fields,
        footer=BLENDED,
    )


BLENDED = "Blended = (3 × input + output) / 4, USD per million tokens."
#: Trend windows people write: days, weeks or years (`365d`, `52w`, `2y`), or `all`.
_YEAR = re.compile(r"^(\d+)\s*y$", re.IGNORECASE)


def window_days(text: str) -> int | None:
    """A trailing window in whole days, or None for `all`; CommandError when it is neither."""
    cleaned = text.strip().lower()
    if cleaned == "all":
        return None
    if match := _YEAR.match(cleaned):
        days = int(match.group(1)) * 365
    else:
        try:
            span = parse_duration(cleaned)
        except ValueError:
            raise CommandError(f"A window is whole days, weeks or years such as 90d, 52w or 2y, or `all`; got `{text}`.") from None
        if span.total_seconds() % 86400:
            raise CommandError(f"A window is whole days such as 90d or 2y, or `all`; got `{text}`.")
        days = span.days
    if not 1 <= days <= 36500:
        raise CommandError(f"A window is from 1 day to 100 years; got `{text}`.")
    return days


def _is_window(text: str) -> bool:
    try:
        window_days(text)
    except CommandError:
        return False
    return True


@command("trend", "trend [TIER|MODEL] [WINDOW]", "trend gpt-4-class 2y", "how fast a tier's floor or a model's price is falling, with a chart", slow=True)
def _trend(args: tuple[str, ...], context: Context) -> Card:
    from bot import analytics

    words = list(args)
    window = window_days(words.pop()) if words and _is_window(words[-1]) else 365
    target = " ".join(words) or DEFAULT_TIER
    tiers = _tiers(context)
    now = context.clock()
    frame = analytics.load_intervals(context.db)
    if target not in tiers:
        lookup.resolve(context.db, target)  # an unknown name gets the closest names, not an empty fit
    # The fit samples one price a day, so the answer holds for the rest of the UTC day while the
    # prices do: it is kept with them (its chart drawn to the moment it was first asked).
    key = ("trend", tiers.get(target), target, window, now.astimezone(UTC).date())
    return copy.deepcopy(analytics.kept(frame, key, lambda: _trend_card(frame, tiers, target, window, now)))


def _trend_card(frame: Any, tiers: dict, target: str, window: int | None, now: datetime) -> Card:
    from bot import analytics
    from bot.charts import tier_chart

    if target in tiers:
        fit = analytics.trend(frame, now, tier=tiers[target], window_days=window)
        what = f"{target} floor"
    else:
        fit = analytics.trend(frame, now, model=target, window_days=window)
        what = f"{target} (median of the sources)"
    points = fit["points"]
    first, last = points[0]["usd_per_mtok"], points[-1]["usd_per_mtok"]
    curve = analytics.pd.DataFrame({
        "date": analytics.pd.to_datetime([p["date"] for p in points], utc=True),
        "index": [p["usd_per_mtok"] / first * 100 for p in points],
    })
    span = "since its first price" if window is None else f"over the trailing {window} days"
    chart = tier_chart({what: curve}, analytics.reference_curves(curve["date"].iloc[0], now), now, f"{fit['n_points']} daily prices, {fit['start']} to {fit['end']}")
    return Card(
        title=f"{what}: {fit['label']}",
        lines=[f"{analytics.rate_verdict(fit['annual_decline'])[0].upper()}{analytics.rate_verdict(fit['annual_decline'])[1:]}, {span}."],
        fields=[
            ("Price then", f"{usd(first)} on {fit['start']}"),
            ("Price now", f"{usd(last)} on {fit['end']}"),
            ("Cheaper each year", f"{fit['fold_per_year']:.2g}×"),
            ("Fit", f"least squares of ln(price) on {fit['n_points']} daily prices"),
        ],
        footer=f"{BLENDED} The chart is indexed to 100 at {fit['start']}, on a log scale, against 30, 70 and 90 %/yr.",
        image=chart,
        image_name=f"trend-{fit['end']}.png",
    )


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


@command("digest", "digest", "digest", "this week's digest with its chart, now", slow=True)
def _digest(args: tuple[str, ...], context: Context) -> Card:
    from bot.digest import build_digest

    _arity("digest", args, 0, 0)
    return build_digest(context.db, context.clock(), context.settings).card


@command("signals", "signals", "signals", "the watch indicators")
def _signals(args: tuple[str, ...], context: Context) -> Card:
    # Replaced by bot.indicator_commands once the indicators exist (imported at the end of this module).
    _arity("signals", args, 0, 0)
    return Card(title="Watch indicators", lines=["No watch indicators are set yet."])


@command("sources", "sources", "sources", "each source's last good poll, last error and models")
def _sources(args: tuple[str, ...], context: Context) -> Card:
    _arity("sources", args, 0, 0)
    summary = {row["source"]: row for row in polls.summary(context.db)}
    rows = []
    for name in context.settings.sources:
        row = summary.get(name, {})
        state = "enabled" if context.settings.sources[name].enabled else "disabled"
        rows.append((name, state, (row.get("last_good_at") or "never")[:16], str(row.get("models", 0)), row.get("last_error") or "—"))
    return Card(
        title="Price sources",
        table=Table(("source", "state", "last good poll", "models", "last error"), tuple(rows)),
        fields=_delivery_problems(context),
    )


#: How far back `sources` reports deliveries given up, and how many channels it names.
PROBLEMS_SINCE = timedelta(days=7)
PROBLEMS_SHOWN = 5


def _delivery_problems(context: Context) -> list[tuple[str, str]]:
    """Alert and digest deliveries given up lately (a channel the bot left, a revoked token),
    by channel and reason, so they are seen in chat and not only in the logs."""
    since = iso(context.clock() - PROBLEMS_SINCE)
    found = context.db.execute(
        """SELECT channel, last_error, COUNT(*), MAX(at) FROM (
               SELECT channel, last_error, COALESCE(sent_at, next_attempt_at) AS at FROM outbox WHERE state = 'failed'
               UNION ALL
               SELECT channel, last_error, updated_at FROM digest_posts WHERE state = 'failed'
           ) WHERE at >= ? GROUP BY channel, last_error ORDER BY MAX(at) DESC""",
        [since],
    ).fetchall()
    lines = [f"{channel}: {error or 'failed'} ({count} since {since[:10]}, last {last[:16]})" for channel, error, count, last in found]
    if len(lines) > PROBLEMS_SHOWN:
        lines = lines[:PROBLEMS_SHOWN] + [f"and {len(lines) - PROBLEMS_SHOWN} more"]
    return [("Deliveries given up", "\n".join(lines))] if lines else []


#: What `subscribe kinds=...` accepts besides the stored kind names.
KIND_ALIASES = {
    "cut": "price_cut", "cuts": "price_cut", "hike": "price_hike", "hikes": "price_hike",
    "new": "new_model", "removed": "model_removed",
    "stale": "source_stale", "suspect": "source_suspect", "recovered": "source_recovered",
}
FILTER_KEYS = {"kinds": "kinds", "kind": "kinds", "providers": "providers", "provider": "providers",
               "models": "models", "model": "models", "min": "min", "digest": "digest"}
_YES, _NO = {"yes", "y", "true", "on", "1"}, {"no", "n", "false", "off", "0"}


@dataclass(slots=True)
class Filters:
    kinds: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    min_pct: Decimal | None = None
    alerts: bool = True
    digest: bool = True


def parse_filters(args: tuple[str, ...]) -> Filters:
    """`kinds=cut,new providers=openai models=gpt-4o*,o3* min=20% digest=yes|no|only`."""
    filters = Filters()
    for arg in args:
        key, equals, value = arg.partition("=")
        if not equals or not value.strip():
            raise CommandError(f"Filters are key=value, like `providers=openai` or `min=20%`; got `{arg}`. {_usage('subscribe')}")
        name = FILTER_KEYS.get(key.strip().lower())
        if name is None:
            raise CommandError(f"`{key}` is not a filter; use kinds, providers, models, min or digest.")
        items = [item.strip() for item in value.split(",") if item.strip()]
        if name == "kinds":
            for item in items:
                kind = KIND_ALIASES.get(item.lower(), item.lower())
                if kind not in alerts.KINDS:
                    raise CommandError(f"`{item}` is not an alert kind; kinds are cut, hike, new, removed, stale, suspect, recovered.")
                filters.kinds.append(kind)
        elif name in ("providers", "models"):
            getattr(filters, name).extend(item.lower() if name == "providers" else item for item in items)
        elif name == "min":
            pct = number(value, "The minimum move")
            if not 0 < pct < 100:
                raise CommandError(f"The minimum move is a percentage between 0 and 100, like `min=20%`; got `{value}`.")
            filters.min_pct = pct
        else:
            choice = value.strip().lower()
            if choice not in _YES | _NO | {"only"}:
                raise CommandError(f"`digest` is yes, no or only; got `{value}`.")
            filters.digest = choice not in _NO
            filters.alerts = choice != "only"
    return filters


def schedule_text(settings: Settings) -> str:
    """The digest's schedule in words where it is the usual shape (`Mondays at 09:00 UTC`)."""
    parts = settings.schedule.digest.split()
    days = {"mon": "Mondays", "tue": "Tuesdays", "wed": "Wednesdays", "thu": "Thursdays", "fri": "Fridays",
            "sat": "Saturdays", "sun": "Sundays", "1": "Mondays", "2": "Tuesdays", "3": "Wednesdays",
            "4": "Thursdays", "5": "Fridays", "6": "Saturdays", "0": "Sundays", "7": "Sundays"}
    if len(parts) == 5 and parts[0].isdigit() and parts[1].isdigit() and parts[2:4] == ["*", "*"] and parts[4].lower() in days:
        return f"{days[parts[4].lower()]} at {int(parts[1]):02d}:{int(parts[0]):02d} {settings.timezone}"
    return f"on the schedule `{settings.schedule.digest}` ({settings.timezone})" if parts else "never (no schedule is set)"


def _subscription_fields(subs: list, digest: bool, settings: Settings) -> list[tuple[str, str]]:
    def listed(values: tuple[str, ...] | None) -> str:
        return ", ".join(values) if values else "all"

    fields = []
    for number_, sub in enumerate(subs, start=1):
        label = "Alerts" if len(subs) == 1 else f"Alerts ({number_})"
        minimum = f"{float(sub.min_pct):g} %" if sub.min_pct is not None else f"{settings.alerts.threshold_pct:g} % (the default)"
        fields.append((label, f"kinds {listed(sub.kinds)}; providers {listed(sub.providers)}; models {listed(sub.models)}; moves of {minimum} or more"))
    if not subs:
        fields.append(("Alerts", "none"))
    fields.append(("Digest", schedule_text(settings) if digest else "no"))
    return fields


def _channel_subscriptions(context: Context, channel: str) -> list:
    return [sub for sub in subscriptions.subscriptions(context.db) if sub.channel == channel]


@command("subscribe", "subscribe [FILTERS]", "subscribe providers=openai,anthropic min=20% digest=yes",
         "alerts (filtered by kinds, providers, models, min) and the weekly digest in this channel")
def _subscribe(args: tuple[str, ...], context: Context) -> Card:
    channel = context.require_channel()
    context.require_admin()
    filters = parse_filters(args)
    now = context.clock()
    with transaction(context.db):
        for sub in _channel_subscriptions(context, channel):  # a channel has one subscription: this replaces it
            subscriptions.unsubscribe(context.db, sub.id)
        if filters.alerts:
            subscriptions.subscribe(
                context.db, channel, now, providers=filters.providers, models=filters.models, kinds=filters.kinds,
                min_pct=filters.min_pct, created_by=context.user,
            )
        if filters.digest:
            digests.enable(context.db, channel, now, context.user)
        else:
            digests.disable(context.db, channel)
    return Card(
        title="Subscribed this channel",
        fields=_subscription_fields(_channel_subscriptions(context, channel), filters.digest, context.settings),
        footer="`subscriptions` shows this again; `unsubscribe` stops it all.",
        severity="good",
    )


@command("unsubscribe", "unsubscribe", "unsubscribe", "stop alerts and the digest in this channel")
def _unsubscribe(args: tuple[str, ...], context: Context) -> Card:
    _arity("unsubscribe", args, 0, 0)
    channel = context.require_channel()
    context.require_admin()
    with transaction(context.db):
        removed = [subscriptions.unsubscribe(context.db, sub.id) for sub in _channel_subscriptions(context, channel)]
        digest = digests.disable(context.db, channel)
    if not removed and not digest:
        return Card(title="Not subscribed", lines=["This channel gets no alerts and no digest. `subscribe` starts them."])
    return Card(title="Unsubscribed this channel", lines=["No more alerts or digests here. `subscribe` starts them again."])


@command("subscriptions", "subscriptions", "subscriptions", "what this channel is subscribed to")
def _subscriptions(args: tuple[str, ...], context: Context) -> Card:
    _arity("subscriptions", args, 0, 0)
    channel = context.require_channel()
    subs = _channel_subscriptions(context, channel)
    digest = digests.get(context.db, channel) is not None
    if not subs and not digest:
        return Card(title="Not subscribed", lines=["This channel gets no alerts and no digest. Try `subscribe` or `subscribe min=20% digest=yes`."])
    return Card(title="This channel's subscription", fields=_subscription_fields(subs, digest, context.settings))


#: The longest mute: a typo like `6w` for `6h` should not silence a model for a year.
MAX_MUTE = timedelta(days=90)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@command("mute", "mute PATTERN DURATION [REASON]", "mute gpt-4o* 1d repricing week",
         "silence alerts for models matching a pattern, in this channel, for a while")
def _mute(args: tuple[str, ...], context: Context) -> Card:
    if len(args) < 2:
        raise CommandError(_usage("mute"))
    context.require_admin()
    channel = context.require_channel()
    pattern, duration, reason = args[0], args[1], " ".join(args[2:]).strip() or "muted in chat"
    try:
        span = parse_duration(duration)
    except ValueError:
        raise CommandError(f"`{duration}` is not a duration; write it like 30m, 6h, 1d or 2w.") from None
    if span > MAX_MUTE:
        raise CommandError(f"A mute lasts at most {MAX_MUTE.days} days; got {duration}.")
    now = context.clock()
    with transaction(context.db):
        silence_id = subscriptions.silence(
            context.db, pattern, now, until=now + span, created_by=context.user or "chat", reason=reason, channel=channel
        )
    return Card(
        title=f"Muted {pattern} for {format_duration(span)}",
        lines=[f"Alerts matching `{pattern}` (model, provider/model, source or kind) are held back in this channel until "
               f"{_when(now + span)}; other channels still get them. They are still stored."],
        fields=[("Mute", f"#{silence_id}"), ("Reason", reason)],
        footer=f"`unmute {silence_id}` lifts it early.",
    )


@command("unmute", "unmute ID", "unmute 3", "lift a mute")
def _unmute(args: tuple[str, ...], context: Context) -> Card:
    _arity("unmute", args, 1, 1)
    context.require_admin()
    text = args[0].removeprefix("#")
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:  # an SQLite integer
        raise CommandError(f"A mute's id is a number, like `unmute 3`; got `{args[0]}`. `mutes` lists them.")
    channel, now = context.require_channel(), context.clock()
    found = next((s for s in subscriptions.silences(context.db, active_at=now) if s.id == int(text)), None)
    if found is None or found.channel not in (None, channel):
        raise CommandError(f"No mute #{text} is in force in this channel. `mutes` lists them.")
    if found.channel is None:
        raise CommandError(
            f"Mute #{text} holds alerts back in every channel; it was set on the bot's host, and is lifted "
            f"there: `deflation-watch unsilence {text}`."
        )
    with transaction(context.db):
        subscriptions.expire(context.db, found.id, now)
    return Card(title=f"Unmuted #{text}", lines=["Its alerts are delivered to this channel again from now on."])


@command("mutes", "mutes", "mutes", "the mutes in force in this channel")
def _mutes(args: tuple[str, ...], context: Context) -> Card:
    _arity("mutes", args, 0, 0)
    channel = context.require_channel()
    found = subscriptions.silences(context.db, active_at=context.clock(), channel=channel)
    if not found:
        return Card(title="No mutes", lines=["Every alert for this channel is delivered. `mute PATTERN DURATION` holds some back."])
    return Card(
        title="Mutes in force",
        table=Table(("id", "pattern", "where", "until", "by", "reason"), tuple(
            (str(s.id), s.pattern, "this channel" if s.channel else "every channel", _when(s.expires_at), s.created_by, s.reason)
            for s in found
        )),
    )


# The watch indicators register their own `signals` (and more) once that module exists.
try:
    import bot.indicator_commands  # noqa: E402, F401
except ModuleNotFoundError as exc:
    if exc.name != "bot.indicator_commands":
        raise
