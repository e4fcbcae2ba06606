"""Normalised price quotes: what every source parser produces and storage consumes.

All prices are USD per million tokens, held as `Decimal` rounded to 15 significant digits, so
that a value survives a round trip through an SQLite REAL unchanged and a price that parses to
the same number never reads as a change.
"""

from __future__ import annotations

import decimal
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

PRICE_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok")

#: `Quote.flag` values. A flagged quote is stored but never treated as a real price move.
FREE = "free"  # a `:free` variant or a zero-priced listing
SENTINEL = "sentinel"  # a placeholder such as OpenRouter's -1 for routers

_CONTEXT = decimal.Context(prec=15, rounding=decimal.ROUND_HALF_EVEN)
_MILLION = Decimal(1_000_000)
#: Bounds of a number that can be a price (USD per million tokens; zero is a price too). Far
#: wider than any real price, so a unit slip (x1e6) still parses and is held by the detectors,
#: but an upstream's "1e400" is refused before it overflows a float or the decimal context.
_SMALLEST, _LARGEST = Decimal("1e-9"), Decimal("1e12")


def mtok(value: object, *, per_token: bool = False) -> Decimal | None:
    """Parse a price as exact USD per million tokens; `per_token` scales a per-token price.

    Floats go through `repr` so that 2.5e-06 per token becomes exactly 2.5, not 2.4999….
    Returns None for a missing value; raises ValueError for anything that is not a number.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a price: {value!r}")
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise ValueError(f"not a price: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a price: {value!r}")
    if per_token:
        number *= _MILLION
    if number and not _SMALLEST <= abs(number) < _LARGEST:
        raise ValueError(f"not a price: {value!r} is outside {_SMALLEST}..{_LARGEST} USD per million tokens")
    return canonical(number)


def canonical(number: Decimal) -> Decimal:
    """Round to 15 significant digits and drop trailing zeros, keeping plain notation."""
    number = _CONTEXT.plus(number).normalize(_CONTEXT)
    return number.quantize(1) if number.as_tuple().exponent > 0 else number


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One set of prices and the moment the upstream says it came into force."""

    since: datetime
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """One model's prices as one source lists them at `observed_at`.

    `model` is the source's own key (LiteLLM `azure/gpt-4o`, OpenRouter `openai/gpt-4o`);
    `provider` is who serves it at that price. `since` is when the upstream says this price
    took effect, if it says; `earlier` holds the dated prices it replaced (genai-prices keeps
    such history), oldest first, so a new database can start with real intervals.
    """

    source: str
    provider: str
    model: str
    observed_at: datetime
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None = None
    display_name: str | None = None
    context_window: int | None = None
    open_weight: bool | None = None
    flag: str | None = None
    since: datetime | None = None
    earlier: tuple[PricePoint, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.model)

    def prices(self) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        return (self.input_mtok, self.output_mtok, self.cache_read_mtok)


@dataclass(slots=True)
class Catalog:
    """Everything one payload of one source yields: quotes, and rows skipped with the reason."""

    source: str
    observed_at: datetime
    quotes: list[Quote] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1
