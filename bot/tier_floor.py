"""The `tier_floor` alert: the cheapest blended price of a capability tier fell by at least the
alert threshold since the floor last announced, or another model took the floor.

"GPT-4-class floor is now $0.0585/Mtok (llama-3.3-70b-instruct-turbo, deepinfra, open-weight),
−72.5 % vs 30 days ago". The floor is `analytics.cheapest` (outlier guard included), so what is
announced is what `deflation-watch cheapest TIER --json` shows. Each tier is measured from the
floor last announced (storage.tier_floors); the first check of a tier only records its floor as
that baseline, so a new install does not announce three floors at once.

It runs after each poll cycle (the scheduler's poll jobs and `deflation-watch poll`), not
inside each source's transaction: a floor is a fact about every source together, and working
it out costs a pandas pass over the price history, which one cycle should pay once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import sqlite_utils

from bot import alerting, analytics
from bot.config import Settings
from bot.tiers import load_tiers
from storage import alerts, subscriptions, tier_floors, transaction

KIND = "tier_floor"
COMPARE_DAYS = 30


def check(db: sqlite_utils.Database, settings: Settings, now: datetime) -> list[int]:
    """Store (and queue for subscribed channels) a `tier_floor` alert for every tier whose floor
    moved enough since the floor it is measured from; return the ids of the alerts stored."""
    frame = analytics.load_intervals(db)
    found = []
    for tier in load_tiers(settings.tiers).values():
        floor = analytics.cheapest(frame, tier, now, top=0)["floor"]
        if floor is not None:
            found.append((tier.name, floor, analytics.cheapest(frame, tier, now - timedelta(days=COMPARE_DAYS), top=0)["floor"]))
    created = []
    with transaction(db):
        subs = subscriptions.subscriptions(db)
        threshold = Decimal(repr(settings.alerts.threshold_pct))
        for tier, floor, before in found:
            alert_id = _consider(db, tier, floor, before, threshold, now)
            if alert_id is not None:
                created.append(alert_id)
                alerting.route(db, alerts.get(db, alert_id), subs, threshold, settings.alerts.group_wait, now)
    return created


def _consider(db: sqlite_utils.Database, tier: str, floor: dict, before: dict | None, threshold: Decimal, now: datetime) -> int | None:
    """Compare the floor with the one the tier is measured from; move that reference when the
    floor is news (or rose: a floor that came back up is measured from where it is now)."""
    price = _price(floor)
    last = tier_floors.get(db, tier)
    if last is None:
        tier_floors.put(db, tier, floor["provider"], floor["model"], price, None, now)
        return None
    if price <= last["usd_per_mtok"] * (1 - threshold / 100):
        reason = "drop"
    elif (floor["model"], floor["provider"]) != (last["model"], last["provider"]):
        reason = "new_floor_model"
    else:
        if price > last["usd_per_mtok"]:
            tier_floors.put(db, tier, floor["provider"], floor["model"], price, last["alert_id"], now)
        return None
    then = _price(before) if before else None
    pct = (price - then) / then * 100 if then else None
    alert_id = alerts.insert(
        db,
        alerts.NewAlert(
            kind=KIND,
            source=floor["source"],
            observed_at=now,
            poll_id=None,
            provider=floor["provider"],
            model=floor["model"],
            field=tier,
            new_value=alerts.decimal_text(price),
            old_mtok=then,
            new_mtok=price,
            # A new model at the floor is news at any size; only a drop is held to the threshold.
            pct_change=pct if reason == "drop" else None,
            reason=reason,
            detail={"message": message(tier, floor, pct), "name": floor["name"], "open_weight": floor["open_weight"]},
        ),
        now,
    )
    tier_floors.put(db, tier, floor["provider"], floor["model"], price, alert_id, now)
    return alert_id


def _price(listing: dict) -> Decimal:
    """The floor's blended price, rounded as people read it (4 significant digits)."""
    return Decimal(f"{listing['usd_per_mtok']:.4g}")


def message(tier: str, floor: dict, pct: Decimal | None) -> str:
    kind = "open-weight" if floor["open_weight"] else "proprietary"
    change = f", {pct:+.1f} % vs {COMPARE_DAYS} days ago".replace("-", "−") if pct is not None else ""
    label = (tier[:1].upper() + tier[1:]).replace("Gpt-", "GPT-")
    return f"{label} floor is now ${_price(floor)}/Mtok ({floor['name']}, {floor['provider']}, {kind}){change}"
