"""genai-prices: both feed formats, dated and time-of-day price schedules, and refusals.

Fixtures are real snapshots trimmed to a few models (see tests/fixtures/genai-prices/README.md).
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.errors import PayloadError
from bot.quotes import FREE, SENTINEL, Catalog, PricePoint, Quote
from bot.sources.genai_prices import SOURCE, parse

V2 = "v2-data-2026-08-21.json"  # the live feed, prices/new_data/v2/data.json
V1 = "data-2026-07-25T131025Z.json"  # the frozen prices/data.json, last version
V1_FIRST = "data-2025-06-22T093606Z.json"  # the first prices/data.json: nulls, max_tokens
V1_AUDIO = "data-2025-07-04T115315Z.json"

AUG_21 = datetime(2026, 8, 21, 12, tzinfo=UTC)


def D(text: str) -> Decimal:
    return Decimal(text)


def utc_day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def read(fixtures: Path, name: str) -> bytes:
    return (fixtures / "genai-prices" / name).read_bytes()


def quotes(catalog: Catalog) -> dict[tuple[str, str], Quote]:
    return {quote.key: quote for quote in catalog.quotes}


def parse_fixture(fixtures: Path, name: str, observed_at: datetime = AUG_21) -> dict[tuple[str, str], Quote]:
    return quotes(parse(read(fixtures, name), observed_at))


def test_source_declaration():
    assert SOURCE.name == "genai-prices"
    assert SOURCE.url == "https://raw.githubusercontent.com/pydantic/genai-prices/main/prices/new_data/v2/data.json"
    assert SOURCE.every == "12h"
    assert SOURCE.parse is parse and SOURCE.read is None
    assert SOURCE.dated  # Claude Sonnet 5's 2026-09-01 price sits in the 2026-08-21 feed


def test_plain_price_object(fixtures):
    catalog = parse(read(fixtures, V2), AUG_21)
    gpt_4o = quotes(catalog)[("openai", "gpt-4o")]
    assert gpt_4o == Quote(
        source="genai-prices",
        provider="openai",
        model="gpt-4o",
        observed_at=AUG_21,
        input_mtok=D("2.5"),
        output_mtok=D("10"),
        cache_read_mtok=D("1.25"),
        display_name="gpt 4o",
        context_window=128000,
    )


@pytest.mark.parametrize("snapshot", [V2, V1])
@pytest.mark.parametrize(
    ("observed_at", "prices", "since"),
    [
        # o3 was 10/40 until OpenAI's cut of 2025-06-10; the first entry carries no date.
        (datetime(2025, 6, 9, 23, 59, tzinfo=UTC), (D("10"), D("40"), D("0.5")), None),
        (datetime(2025, 6, 10, tzinfo=UTC), (D("2"), D("8"), D("0.5")), utc_day("2025-06-10")),
        (AUG_21, (D("2"), D("8"), D("0.5")), utc_day("2025-06-10")),
    ],
)
def test_start_date_decides_the_price_and_since(fixtures, snapshot, observed_at, prices, since):
    o3 = parse_fixture(fixtures, snapshot, observed_at)[("openai", "o3")]
    assert o3.prices() == prices
    assert o3.since == since
    # The 10/40 price has no known start, so it cannot be a PricePoint.
    assert o3.earlier == ()


def test_a_start_date_in_the_future_is_not_in_force_yet(fixtures):
    before = parse_fixture(fixtures, V2)[("anthropic", "claude-sonnet-5")]
    after = parse_fixture(fixtures, V2, datetime(2026, 9, 1, tzinfo=UTC))[("anthropic", "claude-sonnet-5")]
    assert (before.prices(), before.since) == ((D("2"), D("10"), D("0.2")), None)
    assert (after.prices(), after.since) == ((D("3"), D("15"), D("0.3")), utc_day("2026-09-01"))


@pytest.mark.parametrize("snapshot", [V2, V1])
def test_off_peak_window_is_not_a_price_change(fixtures, snapshot):
    """DeepSeek's 00:30-16:30Z entry holds the standard price; its fallback is the night discount."""
    day = parse_fixture(fixtures, snapshot, datetime(2026, 7, 20, 10, tzinfo=UTC))[("deepseek", "deepseek-chat")]
    night = parse_fixture(fixtures, snapshot, datetime(2026, 7, 20, 22, tzinfo=UTC))[("deepseek", "deepseek-chat")]
    assert day.prices() == night.prices() == (D("0.27"), D("1.1"), D("0.07"))
    assert day.since is night.since is None and day.earlier == night.earlier == ()


def test_tiered_prices_use_the_base(fixtures):
    by_key = parse_fixture(fixtures, V2)
    luna = by_key[("aws", "openai.gpt-5.6-luna")]
    assert luna.prices() == (D("0.22"), D("1.32"), D("0.022"))
    assert luna.since == utc_day("2026-07-30")
    # Opus 4.6 lost its long-context tier on 2026-03-13 but its base prices stayed: no change.
    opus = by_key[("anthropic", "claude-opus-4-6")]
    assert (opus.prices(), opus.since, opus.earlier) == ((D("5"), D("25"), D("0.5")), None, ())


def test_free_partial_and_unpriced_models(fixtures):
    catalog = parse(read(fixtures, V2), AUG_21)
    by_key = quotes(catalog)
    for key in [("google", "gemma-3"), ("openai", "moderation")]:
        assert (by_key[key].prices(), by_key[key].flag) == ((D("0"), D("0"), None), FREE)
    assert by_key[("openai", "text-embedding-3-large")].prices() == (D("0.13"), None, None)
    # Sonar's per-request fee is not a token price and is left out.
    assert by_key[("perplexity", "sonar")].prices() == (D("1"), D("1"), None)
    # cerebras qwen-3-coder-480b: `{}` beside a comment that it is no longer offered.
    assert ("cerebras", "qwen-3-coder-480b") not in by_key
    assert catalog.skipped == {"price given only in price_comments": 1}
    assert len(catalog.quotes) == 10


def test_earliest_format_with_nulls_and_max_tokens(fixtures):
    by_key = parse_fixture(fixtures, V1_FIRST, datetime(2025, 6, 22, 9, 36, 6, tzinfo=UTC))
    claude_2 = by_key[("anthropic", "claude-2")]
    assert (claude_2.prices(), claude_2.context_window) == ((D("8"), D("24"), None), 200000)
    for key in [("google", "gemini-2.5-pro-exp-03-25"), ("openrouter", "deepseek/deepseek-r1:free")]:
        assert (by_key[key].prices(), by_key[key].flag) == ((D("0"), D("0"), None), FREE)
    auto = by_key[("openrouter", "openrouter/auto")]
    assert (auto.prices(), auto.flag) == ((D("-1000000"), D("-1000000"), None), SENTINEL)


def test_audio_only_model_is_skipped(fixtures):
    catalog = parse(read(fixtures, V1_AUDIO), datetime(2025, 7, 4, 11, 53, 15, tzinfo=UTC))
    assert [quote.model for quote in catalog.quotes] == ["gpt-4o"]
    assert catalog.skipped == {"no token price (only request, audio or other units)": 1}


def provider(*models: object) -> bytes:
    return json.dumps([{"id": "deepseek", "name": "Deepseek", "models": list(models)}]).encode()


# deepseek-v4-flash as the installed genai-prices 0.2.3 data lists it: two dated changes, then
# two short peak windows that upstream puts last "so they win during peak hours".
V4_FLASH = {
    "id": "deepseek-v4-flash",
    "prices": [
        {"prices": {"input_mtok": 0.14, "cache_read_mtok": 0.0028, "output_mtok": 0.28}},
        {
            "constraint": {"start_date": "2026-08-17"},
            "prices": {"input_mtok": 0.22, "cache_read_mtok": 0.007, "output_mtok": 0.66},
        },
        {
            "constraint": {"start_date": "2026-09-10"},
            "prices": {"input_mtok": 0.15, "cache_read_mtok": 0.003, "output_mtok": 0.6},
        },
        {
            "constraint": {"start_time": "01:00:00Z", "end_time": "04:00:00Z"},
            "prices": {"input_mtok": 0.3, "cache_read_mtok": 0.006, "output_mtok": 1.2},
        },
        {
            "constraint": {"start_time": "06:00:00Z", "end_time": "10:00:00Z"},
            "prices": {"input_mtok": 0.3, "cache_read_mtok": 0.006, "output_mtok": 1.2},
        },
    ],
}


@pytest.mark.parametrize("hour", [2, 14])  # inside and outside a peak window
@pytest.mark.parametrize(
    ("day", "prices", "since", "earlier"),
    [
        ("2026-08-16", (D("0.14"), D("0.28"), D("0.0028")), None, ()),
        ("2026-08-17", (D("0.22"), D("0.66"), D("0.007")), utc_day("2026-08-17"), ()),
        (
            "2026-11-26",
            (D("0.15"), D("0.6"), D("0.003")),
            utc_day("2026-09-10"),
            (PricePoint(utc_day("2026-08-17"), D("0.22"), D("0.66"), D("0.007")),),
        ),
    ],
)
def test_short_windows_never_hold_and_earlier_keeps_dated_prices(hour, day, prices, since, earlier):
    (quote,) = parse(provider(V4_FLASH), utc_day(day).replace(hour=hour)).quotes
    assert (quote.prices(), quote.since, quote.earlier) == (prices, since, earlier)


def test_bad_rows_are_skipped_one_at_a_time():
    good = {"id": "deepseek-v3.2", "prices": {"input_mtok": 0.2288, "output_mtok": 0.3432}}
    catalog = parse(
        provider(
            good,
            "not a model",
            {"id": "a", "prices": {"input_mtok": "cheap", "output_mtok": 1}},
            {"id": "b", "prices": [{"constraint": {"region": "eu"}, "prices": {"input_mtok": 1}}]},
            {"id": "b2", "prices": [{"constraint": "weekdays", "prices": {"input_mtok": 1}}]},
            {"id": "c", "prices": [{"constraint": {"start_date": "soon"}, "prices": {"input_mtok": 1}}]},
            {"id": "e", "prices": [{"constraint": {"start_time": "9am", "end_time": "5pm"}, "prices": {}}]},
            {"id": "d"},
            good,
        ),
        AUG_21,
    )
    assert [quote.model for quote in catalog.quotes] == ["deepseek-v3.2"]
    assert catalog.skipped == {
        "malformed row": 1,
        "unreadable input_mtok": 1,
        "unknown price constraint": 2,
        "unreadable start_date constraint": 1,
        "unreadable time window constraint": 1,
        "prices neither an object nor a non-empty list": 1,
        "duplicate key": 1,
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html>rate limited</html>", "genai-prices: payload is not JSON"),
        (b'{"providers": []}', "genai-prices: expected a JSON list at the top level, got dict"),
        (b"[]", "genai-prices: the provider list is empty"),
        (b'[{"id": "openai", "name": "OpenAI"}]', "genai-prices: provider 'openai' has no `models` list"),
        (b'[["openai"]]', "genai-prices: provider #0 is not an object with a string `id`"),
        (provider({"id": "voice", "prices": {"audio_hours": 3}}), "genai-prices: no usable priced models"),
    ],
)
def test_unusable_payloads_are_refused(payload, message):
    with pytest.raises(PayloadError, match="^" + re.escape(message)):
        parse(payload, AUG_21)


def test_whole_live_feed_ignores_the_hour(shared_data):
    """Every model in the real v2 feed gets the same quote at 10:00 and 22:00 UTC."""
    payload = (shared_data / "fixtures" / "genai-prices-v2-data-latest.json").read_bytes()
    day = parse(payload, datetime(2026, 8, 21, 10, tzinfo=UTC))
    night = parse(payload, datetime(2026, 8, 21, 22, tzinfo=UTC))
    strip = [(q.key, q.prices(), q.flag, q.since, q.earlier) for q in day.quotes]
    assert strip == [(q.key, q.prices(), q.flag, q.since, q.earlier) for q in night.quotes]
    assert (len(day.quotes), day.skipped) == (1465, {"price given only in price_comments": 1})


def test_replay_series_parses_and_keeps_o3_and_deepseek_steady(shared_data):
    """Across the frozen format's history: o3 stays 2/8 since 2025-06-10, and DeepSeek's move to a
    time-of-day schedule on 2025-07-12 does not read as a price change."""
    deepseek, o3 = set(), set()
    for path in sorted((shared_data / "replay" / "genai-prices").glob("*.json.gz")):
        observed_at = datetime.strptime(path.name, "%Y-%m-%dT%H%M%SZ.json.gz").replace(tzinfo=UTC)
        by_key = quotes(parse(gzip.decompress(path.read_bytes()), observed_at))
        assert len(by_key) > 500, path.name
        if ("openai", "o3") in by_key:
            o3.add((by_key["openai", "o3"].prices(), by_key["openai", "o3"].since))
        if observed_at >= utc_day("2025-07-04T12:04:30"):
            deepseek.add(by_key["deepseek", "deepseek-chat"].prices())
    assert o3 == {((D("2"), D("8"), D("0.5")), None), ((D("2"), D("8"), D("0.5")), utc_day("2025-06-10"))}
    assert deepseek == {(D("0.27"), D("1.1"), D("0.07"))}
