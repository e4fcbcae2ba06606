"""What falling inference prices do to a seat-priced AI product's gross margin.

The seed article's model: a product sells a seat for P a period and spends C on inference per
seat in year 0. Inference gets cheaper by a fraction r each year, so in year n it costs
C × (1 − r)^n and the saving is C − cost. Customers notice and claw back a share s of that
saving by renegotiating, so the seat sells for P − s × saving. Gross margin is
(price − cost) / price. Money is exact Decimal; only `rate_from_drop`, which needs a fractional
power, is a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from bot.cards import Table

Number = Decimal | int | float | str
CENT, TENTH = Decimal("0.01"), Decimal("0.1")


@dataclass(frozen=True, slots=True)
class MarginYear:
    year: int
    cost: Decimal  # inference cost per seat, USD per period
    price: Decimal  # seat price after the clawback, USD per period
    gross_margin: Decimal  # (price − cost) / price, a fraction


def margin_model(seat_price: Number, cost: Number, rate: Number, years: int, clawback: Number = 0) -> list[MarginYear]:
    """Years 0 to `years` of the model above; `rate` and `clawback` are fractions (0.7 = 70 %)."""
    seat_price, cost, rate, clawback = (_decimal(v) for v in (seat_price, cost, rate, clawback))
    if seat_price <= 0:
        raise ValueError(f"seat price must be positive, got {seat_price}")
    if cost < 0:
        raise ValueError(f"inference cost must not be negative, got {cost}")
    if not 0 <= rate < 1:
        raise ValueError(f"annual decline must be at least 0 and below 1, got {rate}")
    if not 0 <= clawback <= 1:
        raise ValueError(f"clawback share must be between 0 and 1, got {clawback}")
    if years < 0:
        raise ValueError(f"years must not be negative, got {years}")
    rows = []
    for year in range(years + 1):
        cost_n = cost * (1 - rate) ** year
        price = seat_price - clawback * (cost - cost_n)
        rows.append(MarginYear(year, cost_n, price, (price - cost_n) / price))
    return rows


def margin_table(rows: list[MarginYear]) -> Table:
    """The years as a card table: money to the cent, margins to a tenth of a percent."""
    return Table(
        header=("Year", "Inference cost", "Seat price", "Gross margin"),
        rows=tuple(
            (
                str(r.year),
                f"${_round(r.cost, CENT):,}",
                f"${_round(r.price, CENT):,}",
                f"{_round(r.gross_margin * 100, TENTH)} %",
            )
            for r in rows
        ),
    )


def rate_from_drop(drop: float = 0.9, months: float = 24) -> float:
    """The annual decline that compounds to `drop` over `months`: 90 % in 24 months is 68.4 %/yr."""
    if not 0 <= drop < 1:
        raise ValueError(f"drop must be at least 0 and below 1, got {drop}")
    if months <= 0:
        raise ValueError(f"months must be positive, got {months}")
    return 1 - (1 - drop) ** (12 / months)


def _round(value: Decimal, step: Decimal) -> Decimal:
    # Half up, as people round by hand: a 96.85 % margin shows as 96.9 %, not 96.8 %.
    return value.quantize(step, rounding=ROUND_HALF_UP)


def _decimal(value: Number) -> Decimal:
    # repr keeps a float's shortest spelling, so 0.7 becomes Decimal("0.7"), not 0.6999….
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
