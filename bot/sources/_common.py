"""Row handling every source parser shares, so the rules for keys, skips and flags live once.

A parser walks its payload and hands each row to a `CatalogBuilder`; the builder turns raw
prices into `Quote`s, counts each rejected row under its reason, and refuses a payload that
yields nothing usable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.errors import PayloadError
from bot.quotes import FREE, SENTINEL, Catalog, Quote, mtok
from bot.sources import decode, first_wins, load_json

MALFORMED = "malformed row"


def object_items(payload: bytes, source: str, on_duplicate: Callable[[], None] | None = None) -> list[tuple[str, Any]]:
    """The top-level pairs of a JSON object payload in document order, duplicate keys kept,
    for sources keyed by model name, whose parsers keep the first of a repeated key and count
    the others. Objects further in keep their first value too, and each repeated key in them
    calls `on_duplicate` (see `load_json`).
    """
    objects: list[list[tuple[str, Any]]] = []
    nested_repeats = 0
    nested = first_wins()

    def keep(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal nested_repeats
        objects.append(pairs)
        # Until decoding ends it is unknown which object is the top level (the last one
        # closed); repeats are tallied per object and the top level's are left to the parser.
        nested_repeats += len(pairs) - len(dict(pairs))
        return nested(pairs)

    data = decode(payload, source, keep)
    if not isinstance(data, dict):
        raise PayloadError(f"{source}: expected a JSON dict at the top level, got {type(data).__name__}")
    top = objects[-1]
    nested_repeats -= len(top) - len(dict(top))
    for _ in range(nested_repeats if on_duplicate is not None else 0):
        on_duplicate()
    return top


def list_under(payload: bytes, source: str, key: str, on_duplicate: Callable[[], None] | None = None) -> list[Any]:
    """The list a payload shaped `{key: [...], ...}` holds; PayloadError when it holds none."""
    data = load_json(payload, source, dict, on_duplicate=on_duplicate)
    rows = data.get(key)
    if not isinstance(rows, list):
        found = "no such key" if key not in data else f"a {type(rows).__name__}"
        raise PayloadError(f"{source}: expected a {key!r} list at the top level, found {found}")
    return rows


def text(value: object) -> str | None:
    """A non-empty string, or None: ids and names must be usable as keys and labels."""
    return value if isinstance(value, str) and value else None


def positive_int(value: object) -> int | None:
    """A token count as an int; None for anything else. Some LiteLLM rows write 1e7 (a float)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def price_flag(prices: tuple[Decimal | None, ...], *, free_variant: bool = False) -> str | None:
    """SENTINEL for any negative price (a placeholder, not a price); FREE for a free listing."""
    if any(p is not None and p < 0 for p in prices):
        return SENTINEL
    if free_variant or (prices[0] == 0 and prices[1] == 0):
        return FREE
    return None


class CatalogBuilder:
    """Collects one payload's quotes and the reasons rows were skipped."""

    def __init__(self, source: str, observed_at: datetime, *, per_token: bool):
        self.catalog = Catalog(source=source, observed_at=observed_at)
        self._per_token = per_token
        self._seen: set[object] = set()

    def skip(self, reason: str) -> None:
        self.catalog.skip(reason)

    def duplicate(self) -> None:
        """Count a key an object repeated (the decoder kept its first value)."""
        self.skip("duplicate key")

    def first(self, key: object) -> bool:
        """True the first time a source key is seen; later rows with it are counted and dropped.

        A key listed twice is ambiguous, so the first listing decides even when it is unusable.
        """
        if key in self._seen:
            self.skip("duplicate key")
            return False
        self._seen.add(key)
        return True

    def add(
        self,
        *,
        provider: str,
        model: str,
        input_price: object,
        output_price: object,
        cache_read_price: object = None,
        free_variant: bool = False,
        display_name: object = None,
        context_window: object = None,
        open_weight: bool | None = None,
    ) -> None:
        """Add one row's quote, or count why it was skipped. Raw prices are in the source's unit."""
        try:
            prices = tuple(mtok(v, per_token=self._per_token) for v in (input_price, output_price, cache_read_price))
        except ValueError:
            self.skip("price is not a number")
            return
        if prices[0] is None and prices[1] is None:
            self.skip("no token price")
            return
        self.catalog.quotes.append(
            Quote(
                source=self.catalog.source,
                provider=provider,
                model=model,
                observed_at=self.catalog.observed_at,
                input_mtok=prices[0],
                output_mtok=prices[1],
                cache_read_mtok=prices[2],
                display_name=text(display_name),
                context_window=positive_int(context_window),
                open_weight=open_weight,
                flag=price_flag(prices, free_variant=free_variant),
            )
        )

    def finish(self) -> Catalog:
        """The catalog, or PayloadError when no row carried a real price (only placeholders)."""
        if not any(q.flag != SENTINEL for q in self.catalog.quotes):
            skipped = ", ".join(f"{reason}: {n}" for reason, n in self.catalog.skipped.most_common())
            raise PayloadError(
                f"{self.catalog.source}: no usable priced models in the payload (skipped: {skipped or 'none'})"
            )
        return self.catalog
