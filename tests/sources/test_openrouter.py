"""OpenRouter's model list, parsed from trimmed real responses (see tests/fixtures/openrouter)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from bot.errors import PayloadError
from bot.quotes import FREE, SENTINEL
from bot.sources import litellm, llm_prices, models_dev, openrouter

OBSERVED = datetime(2025, 5, 23, 9, 6, tzinfo=timezone.utc)


def load(fixtures, date: str) -> dict:
    return json.loads((fixtures / "openrouter" / f"models-{date}.json").read_bytes())


def quotes(payload: dict) -> dict:
    catalog = openrouter.parse(json.dumps(payload).encode(), OBSERVED)
    return {q.model: q for q in catalog.quotes}


@pytest.mark.parametrize(
    ("date", "input_mtok", "output_mtok"),
    [("2024-09-27", Decimal("5"), Decimal("15")), ("2025-02-08", Decimal("2.5"), Decimal("10"))],
)
def test_gpt_4o_per_token_strings_become_exact_usd_per_mtok(fixtures, date, input_mtok, output_mtok):
    gpt_4o = quotes(load(fixtures, date))["openai/gpt-4o"]
    assert (gpt_4o.input_mtok, gpt_4o.output_mtok) == (input_mtok, output_mtok)
    assert gpt_4o.flag is None


def test_quote_carries_key_cache_price_name_and_context(fixtures):
    sonnet = quotes(load(fixtures, "2025-05-23"))["anthropic/claude-sonnet-4"]
    assert sonnet.key == ("anthropic", "anthropic/claude-sonnet-4")
    assert sonnet.prices() == (Decimal("3"), Decimal("15"), Decimal("0.3"))
    assert sonnet.display_name == "Anthropic: Claude Sonnet 4"
    assert sonnet.context_window == 200000
    assert (sonnet.source, sonnet.observed_at) == ("openrouter", OBSERVED)


@pytest.mark.parametrize("date", ["2024-09-27", "2025-02-08", "2025-05-23"])
def test_router_priced_minus_one_is_kept_as_sentinel(fixtures, date):
    auto = quotes(load(fixtures, date))["openrouter/auto"]
    assert auto.flag == SENTINEL
    assert auto.input_mtok == Decimal("-1000000")


def test_free_variants_and_zero_priced_models_are_flagged_free(fixtures):
    by_model = quotes(load(fixtures, "2025-05-23"))
    assert by_model["qwen/qwen3-30b-a3b:free"].flag == FREE
    # Not a ":free" id, but both prices are "0".
    assert by_model["google/gemini-2.5-pro-exp-03-25"].flag == FREE
    assert quotes(load(fixtures, "2024-09-27"))["meta-llama/llama-3.1-8b-instruct:free"].flag == FREE


def test_open_weight_only_from_a_hugging_face_link(fixtures):
    by_model = quotes(load(fixtures, "2025-05-23"))
    assert by_model["qwen/qwen3-30b-a3b:free"].open_weight is True  # "Qwen/Qwen3-30B-A3B"
    assert by_model["openai/gpt-4o"].open_weight is None  # null
    # "" although Gemma 3 weights are public: an empty link is not evidence of closed weights.
    assert by_model["google/gemma-3-27b-it"].open_weight is None
    assert quotes(load(fixtures, "2024-09-27"))["openai/gpt-4o"].open_weight is None  # no field yet


def test_bad_rows_are_skipped_one_at_a_time_and_counted(fixtures):
    payload = load(fixtures, "2025-02-08")
    good = len(payload["data"])
    gpt_4o = next(m for m in payload["data"] if m["id"] == "openai/gpt-4o")
    payload["data"] += [
        {**gpt_4o, "pricing": {**gpt_4o["pricing"], "prompt": "1.5"}},
        {**gpt_4o, "id": "openai/gpt-4o-x", "pricing": {**gpt_4o["pricing"], "completion": "n/a"}},
        {**gpt_4o, "id": "openai/gpt-4o-y", "pricing": {"image": "0.003613"}},
        {**gpt_4o, "id": None},
        "openai/gpt-4o",
    ]
    catalog = openrouter.parse(json.dumps(payload).encode(), OBSERVED)
    assert len(catalog.quotes) == good
    assert catalog.skipped == {
        "duplicate key": 1,
        "price is not a number": 1,
        "no token price": 1,
        "malformed row": 2,
    }
    # The first listing wins over the later duplicate.
    assert {q.model: q for q in catalog.quotes}["openai/gpt-4o"].input_mtok == Decimal("2.5")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "openrouter: payload is not JSON"),
        (b"", "openrouter: payload is not JSON"),
        (b'[{"id": "openai/gpt-4o"}]', "openrouter: expected a JSON dict at the top level, got list"),
        (b'{"error": {"code": 429, "message": "Rate limited"}}', "openrouter: expected a 'data' list at the top level, found no such key"),
        (b'{"data": {"openai/gpt-4o": {}}}', "openrouter: expected a 'data' list at the top level, found a dict"),
        (b'{"data": []}', "openrouter: no usable priced models in the payload (skipped: none)"),
        (b'{"data": [{"id": "openai/gpt-4o"}]}', "openrouter: no usable priced models in the payload (skipped: malformed row: 1)"),
    ],
)
def test_unusable_payload_raises_payload_error(payload, message):
    with pytest.raises(PayloadError, match="^" + re.escape(message)):
        openrouter.parse(payload, OBSERVED)


def test_a_payload_of_only_routers_is_unusable(fixtures):
    payload = load(fixtures, "2025-05-23")
    payload["data"] = [m for m in payload["data"] if m["id"] == "openrouter/auto"]
    with pytest.raises(PayloadError, match="openrouter: no usable priced models"):
        openrouter.parse(json.dumps(payload).encode(), OBSERVED)


# The contract every parser in this batch keeps, fed each upstream's newest real payload.
LATEST = {
    openrouter: "openrouter-models-2025-05-23.json",
    litellm: "litellm-model-prices-latest.json",
    llm_prices: "llm-prices-current-v1.json",
    models_dev: "models-dev-api-latest.json",
}


@pytest.mark.parametrize("module", LATEST, ids=lambda m: m.SOURCE.name)
def test_every_quote_names_its_source_and_the_given_time(shared_data, module):
    observed_at = datetime(2026, 8, 6, 1, 25, 35, tzinfo=timezone.utc)
    payload = (shared_data / "fixtures" / LATEST[module]).read_bytes()
    catalog = module.SOURCE.parse(payload, observed_at)
    assert module.SOURCE.parse is module.parse
    assert catalog.source == module.SOURCE.name
    assert len(catalog.quotes) > 100
    assert {q.source for q in catalog.quotes} == {module.SOURCE.name}
    assert {q.observed_at for q in catalog.quotes} == {observed_at}
    assert all(q.observed_at.utcoffset().total_seconds() == 0 for q in catalog.quotes)
    assert len({q.key for q in catalog.quotes}) == len(catalog.quotes)
