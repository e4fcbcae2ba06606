"""The other half of the implausible-move guard: a pending price alert is confirmed when the
source's next good poll still lists the model at the new price (a 304 says the same), and stays
pending while the model is missing or the poll is partial. Reverted and superseded moves are
dropped by `price_move`, which sees the change; another source showing the same move confirms it
when the alerts are grouped (`bot.alerting`).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from bot.detectors.base import Context, Resolution
from storage import alerts, polls


def detect(ctx: Context) -> Iterator[Resolution]:
    if ctx.status not in polls.GOOD:
        return
    for alert in alerts.pending(ctx.db, ctx.source, before_poll=ctx.poll_id):
        listed, price = ctx.current_price(alert["provider"], alert["model"], alert["field"])
        if listed and price == Decimal(alert["new_mtok"]):
            yield Resolution(alert["id"], "confirmed", "next_poll")
