"""`price_cut` / `price_hike`: a model's input, output or cache-read price moved by at least the
threshold (default 10 %) between two consecutive catalogs of one source.

Guards, in order:
- A move settles a pending alert for the same field first: back to the old price drops it
  (`reverted`, logged, no alert), any other price drops it (`superseded`) and the move is
  measured from the last trusted price instead of the doubtful one.
- Sentinel and free prices (negative placeholders, `:free` variants, all-zero listings) never
  make a move: their numbers are not prices.
- A move from zero has no percentage and is not a cut or a hike.
- Implausible moves are held `pending` (Alertmanager's `for`): a price going to zero, a jump by
  a power of 1000 (a per-token price read per million), or any cut of `implausible_pct` (90 %)
  or more, or rise by the same factor (x10). `pending` confirms or drops them later.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal

from bot.detectors.base import Context, Finding, Resolution
from bot.quotes import FREE, PRICE_FIELDS, SENTINEL
from storage import alerts
from storage.prices import Prices

log = logging.getLogger(__name__)
_CENT = Decimal("0.01")


def detect(ctx: Context) -> Iterator[Finding | Resolution]:
    if ctx.baseline:
        return
    held = {(a["provider"], a["model"], a["field"]): a for a in alerts.pending(ctx.db, ctx.source)}
    for change in ctx.changes_of("changed"):
        for field in PRICE_FIELDS:
            old, new = getattr(change.old, field), getattr(change.new, field)
            pending = held.get((change.provider, change.model, field))
            if pending is not None and new != _decimal(pending["new_mtok"]):
                if new == _decimal(pending["old_mtok"]):
                    log.info("dropped pending %s %s %s: reverted to %s", ctx.source, change.model, field, new)
                    yield Resolution(pending["id"], "dropped", "reverted")
                    continue
                log.info("dropped pending %s %s %s: superseded by %s", ctx.source, change.model, field, new)
                yield Resolution(pending["id"], "dropped", "superseded")
                old = _decimal(pending["old_mtok"])
            if _not_a_price(change.old) or _not_a_price(change.new):
                continue
            finding = assess(old, new, ctx.threshold_pct, Decimal(repr(ctx.settings.implausible_pct)))
            if finding is not None:
                kind, pct, reason = finding
                yield ctx.finding(
                    kind,
                    provider=change.provider,
                    model=change.model,
                    field=field,
                    new_value=alerts.decimal_text(new),
                    old_mtok=old,
                    new_mtok=new,
                    pct_change=pct,
                    status="pending" if reason else "confirmed",
                    reason=reason,
                )


def assess(old: Decimal | None, new: Decimal | None, threshold_pct: Decimal, implausible_pct: Decimal) -> tuple[str, Decimal, str | None] | None:
    """(kind, percent change, why it is implausible or None) for a move worth an alert, else None."""
    if old is None or new is None or old == new or old <= 0 or new < 0:
        return None
    pct = ((new - old) / old * 100).quantize(_CENT, rounding=ROUND_HALF_EVEN)
    if abs(pct) < threshold_pct:
        return None
    kind = "price_cut" if new < old else "price_hike"
    return kind, pct, implausible(old, new, implausible_pct)


def implausible(old: Decimal, new: Decimal, implausible_pct: Decimal) -> str | None:
    """Why a move from `old` to `new` (both >= 0, old > 0) needs confirming, or None."""
    if new == 0:
        return "to_zero"
    ratio = new / old
    thousands = math.log10(ratio) / 3
    if round(thousands) != 0 and abs(thousands - round(thousands)) < 0.05:
        return "unit_jump"
    keep = 1 - implausible_pct / 100
    if ratio <= keep or ratio >= 1 / keep:
        return "large_move"
    return None


def _not_a_price(prices: Prices | None) -> bool:
    return prices is None or prices.flag in (FREE, SENTINEL)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
