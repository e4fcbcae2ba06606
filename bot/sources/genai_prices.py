"""genai-prices (pydantic/genai-prices): curated per-provider prices, in USD per million tokens.

The payload is a JSON list of providers `{id, name, models: [{id, name, context_window, prices}]}`.
The live feed is `prices/new_data/v2/data.json`; the older `prices/data.json` (frozen since
2026-07) has the same shape. What differs, and is handled here: v2 adds price keys we ignore
(`cache_write_1h_mtok`, `web_searches_kcount`, image and video prices); the earliest v1 files
spell unknown prices as `null` (so a free model is all nulls, not `{}`) and call the context
window `max_tokens`.

`prices` is a price object or a list of `{constraint?, prices}` entries, of which the last whose
constraint holds applies. A `start_date` constraint is a dated price change: it becomes the
quote's `since` and `earlier`. A daily `start_time`/`end_time` window is a time-of-day rate, not
a change, and the quote must not depend on the hour it was taken: a window of 12 hours or more
always holds and a shorter one never does, so the quote carries the rate in force most of the
day. For DeepSeek V3 that is the 00:30-16:30Z standard rate (the undated entry is the night
discount); for DeepSeek V4 (installed package data) it is the rate outside the 3- and 4-hour
peak windows, which also leaves its dated changes visible.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from bot.errors import PayloadError
from bot.quotes import Catalog, PricePoint, Quote, mtok
from bot.sources import Source, load_json
from bot.sources._common import MALFORMED, CatalogBuilder, positive_int, price_flag, text

NAME = "genai-prices"

_ZERO = Decimal(0)
_DAY = 24 * 3600

#: One entry of a model's price schedule: its start date (None when it always holds) and its prices.
_Entry = tuple[date | None, dict[str, Any]]
#: (input_mtok, output_mtok, cache_read_mtok)
_Row = tuple[Decimal | None, Decimal | None, Decimal | None]


def parse(payload: bytes, observed_at: datetime) -> Catalog:
    repeats: list[None] = []
    providers = load_json(payload, NAME, list, on_duplicate=lambda: repeats.append(None))
    return parse_providers(providers, observed_at, repeated_keys=len(repeats))


def parse_providers(providers: list[Any], observed_at: datetime, *, repeated_keys: int = 0) -> Catalog:
    """Quotes from an already decoded provider list, which `bundled` holds inside its payload;
    `repeated_keys` counts keys the decoder found repeated (and dropped) inside objects."""
    if not providers:
        raise PayloadError(f"{NAME}: the provider list is empty")
    builder = CatalogBuilder(NAME, observed_at, per_token=False)
    for _ in range(repeated_keys):
        builder.duplicate()
    today = observed_at.astimezone(UTC).date()
    for position, provider in enumerate(providers):
        provider_id = text(provider.get("id")) if isinstance(provider, dict) else None
        if provider_id is None:
            raise PayloadError(f"{NAME}: provider #{position} is not an object with a string `id`")
        if not isinstance(provider.get("models"), list):
            raise PayloadError(f"{NAME}: provider {provider_id!r} has no `models` list")
        for model in provider["models"]:
            model_id = text(model.get("id")) if isinstance(model, dict) else None
            if model_id is None:
                builder.skip(MALFORMED)
            elif builder.first((provider_id, model_id)):
                try:
                    builder.catalog.quotes.append(_quote(provider_id, model, observed_at, today))
                except ValueError as reason:
                    builder.skip(str(reason))
    return builder.finish()


def _quote(provider: str, model: dict[str, Any], observed_at: datetime, today: date) -> Quote:
    prices = model.get("prices")
    if isinstance(prices, dict) and not _drop_nulls(prices) and model.get("price_comments"):
        # Priced in words, not free: cerebras qwen-3-coder-480b is a placeholder "here to help
        # with tests"; the installed data's GitHub Copilot models are "included in the subscription".
        raise ValueError("price given only in price_comments")
    points = _timeline(_schedule(prices), today)
    since, current = points[-1]
    return Quote(
        source=NAME,
        provider=provider,
        model=model["id"],
        observed_at=observed_at,
        input_mtok=current[0],
        output_mtok=current[1],
        cache_read_mtok=current[2],
        display_name=text(model.get("name")),
        context_window=positive_int(model.get("context_window", model.get("max_tokens"))),
        flag=price_flag(current),
        since=_midnight(since),
        earlier=tuple(PricePoint(_midnight(start), *row) for start, row in points[:-1] if start),
    )


def _schedule(prices: Any) -> list[_Entry]:
    """The entries that can hold, in upstream order, each with its start date (None: always)."""
    if isinstance(prices, dict):
        return [(None, prices)]
    if not isinstance(prices, list) or not prices:
        raise ValueError("prices neither an object nor a non-empty list")
    schedule = []
    for entry in prices:
        if not isinstance(entry, dict) or not isinstance(entry.get("prices"), dict):
            raise ValueError("conditional price without a prices object")
        constraint = entry.get("constraint") or {}
        if not isinstance(constraint, dict):
            raise ValueError("unknown price constraint")
        if "start_date" in constraint:
            try:
                schedule.append((date.fromisoformat(constraint["start_date"]), entry["prices"]))
            except (TypeError, ValueError):
                raise ValueError("unreadable start_date constraint") from None
        elif not constraint or _most_of_the_day(constraint):
            schedule.append((None, entry["prices"]))
    if not schedule:
        raise ValueError("prices only for short daily windows")
    return schedule


def _most_of_the_day(window: dict[str, Any]) -> bool:
    """Whether a daily window lasts 12 hours or more, so that its price is the usual one."""
    if window.keys() != {"start_time", "end_time"}:
        raise ValueError("unknown price constraint")
    try:
        start, end = (time.fromisoformat(window[key]) for key in ("start_time", "end_time"))
    except (TypeError, ValueError):
        raise ValueError("unreadable time window constraint") from None
    seconds = (_seconds(end) - _seconds(start)) % _DAY
    return seconds >= _DAY // 2


def _seconds(moment: time) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _timeline(schedule: list[_Entry], today: date) -> list[tuple[date | None, _Row]]:
    """The prices in force over time up to `today`, oldest first, as (start, prices) runs.

    The first run starts with the undated entry in force before any dated one; its start is
    unknown (None). Runs with equal prices merge, so a re-dated but unchanged price (Claude
    Opus 4.6 dropping its long-context tier on 2026-03-13) is not a change.
    """
    undated = [prices for start, prices in schedule if start is None]
    starts = sorted({start for start, _ in schedule if start is not None and start <= today})
    points = [(start, _in_force(schedule, start)) for start in starts]
    if undated:
        points.insert(0, (None, undated[-1]))
    elif not points:
        # Every entry is dated in the future; upstream then uses the first one.
        points = [(None, schedule[0][1])]
    runs: list[tuple[date | None, _Row]] = []
    for start, prices in points:
        row = _prices(prices)
        if not runs or runs[-1][1] != row:
            runs.append((start, row))
    return runs


def _in_force(schedule: list[_Entry], day: date) -> dict[str, Any]:
    return next(prices for start, prices in reversed(schedule) if start is None or start <= day)


def _prices(prices: dict[str, Any]) -> _Row:
    """(input, output, cache_read) from one price object; a tiered price gives its base.

    An empty object is a free model (upstream writes `{}`; its earliest files all nulls).
    """
    prices = _drop_nulls(prices)
    if not prices:
        return (_ZERO, _ZERO, None)
    if "input_mtok" not in prices and "output_mtok" not in prices:
        raise ValueError("no token price (only request, audio or other units)")
    return (_mtok(prices, "input_mtok"), _mtok(prices, "output_mtok"), _mtok(prices, "cache_read_mtok"))


def _mtok(prices: dict[str, Any], key: str) -> Decimal | None:
    value = prices.get(key)
    if isinstance(value, dict):
        value = value.get("base")
    try:
        return mtok(value)
    except ValueError:
        raise ValueError(f"unreadable {key}") from None


def _drop_nulls(prices: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in prices.items() if value is not None}


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


SOURCE = Source(
    name=NAME,
    url="https://raw.githubusercontent.com/pydantic/genai-prices/main/prices/new_data/v2/data.json",
    every="12h",
    parse=parse,
    # Entries dated in the future (Claude Sonnet 5 from 2026-09-01) come into force unchanged.
    dated=True,
)
