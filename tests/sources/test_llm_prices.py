"""llm-prices.com's current-v1.json, parsed from a trimmed real document (tests/fixtures/llm-prices)."""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from bot.errors import PayloadError
from bot.sources import llm_prices

OBSERVED = datetime(2026, 8, 6, 1, 25, 35, tzinfo=timezone.utc)


def load(fixtures) -> dict:
    return json.loads((fixtures / "llm-prices" / "current-v1-2026-08-05.json").read_bytes())


def parse(payload: dict):
    return llm_prices.parse(json.dumps(payload).encode(), OBSERVED)


def test_per_mtok_numbers_are_taken_as_given(fixtures):
    by_key = {q.key: q for q in parse(load(fixtures)).quotes}
    flash = by_key[("deepseek", "deepseek-v4-flash")]
    assert flash.prices() == (Decimal("0.14"), Decimal("0.28"), Decimal("0.028"))
    assert flash.display_name == "DeepSeek-V4-Flash"
    assert (flash.context_window, flash.open_weight, flash.flag) == (None, None, None)
    # input_cached null: no cache price, the quote stays.
    assert by_key[("amazon", "amazon-nova-micro")].prices() == (Decimal("0.035"), Decimal("0.14"), None)
    # Integers in the JSON (input 3, output 15) come out as the same Decimals.
    assert by_key[("anthropic", "claude-sonnet-4.5")].prices()[:2] == (Decimal("3"), Decimal("15"))


def test_a_repeated_id_keeps_the_first_row(fixtures):
    catalog = parse(load(fixtures))
    grok = [q for q in catalog.quotes if q.model == "grok-4-fast"]
    assert [q.display_name for q in grok] == ["Grok 4 Fast"]  # not "Grok 4 Fast ≤128k"
    assert catalog.skipped == {"duplicate key": 1}
    assert len(catalog.quotes) == 5


def test_bad_rows_are_skipped_one_at_a_time_and_counted(fixtures):
    payload = load(fixtures)
    nova = payload["prices"][0]
    payload["prices"] += [
        {**nova, "id": "nova-x", "input": "0.035 USD"},
        {**nova, "id": "nova-y", "input": None, "output": None},
        {**nova, "vendor": ""},
        None,
    ]
    catalog = parse(payload)
    assert len(catalog.quotes) == 5
    assert catalog.skipped == {
        "duplicate key": 1,
        "price is not a number": 1,
        "no token price": 1,
        "malformed row": 2,
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<!DOCTYPE html><title>Just a moment...</title>", "llm-prices: payload is not JSON"),
        (b'"2026-08-05"', "llm-prices: expected a JSON dict at the top level, got str"),
        (b'{"updated_at": "2026-08-05"}', "llm-prices: expected a 'prices' list at the top level, found no such key"),
        (b'{"updated_at": "2026-08-05", "prices": []}', "llm-prices: no usable priced models in the payload (skipped: none)"),
    ],
)
def test_unusable_payload_raises_payload_error(payload, message):
    with pytest.raises(PayloadError, match="^" + re.escape(message)):
        llm_prices.parse(payload, OBSERVED)


def test_every_replay_document_parses(shared_data):
    """40 documents, 2025-10 to 2026-08; all but the first four list `grok-4-fast` twice."""
    documents = sorted((shared_data / "replay" / "llm-prices").glob("*.json.gz"))
    assert len(documents) == 40
    duplicates = 0
    for path in documents:
        payload = gzip.decompress(path.read_bytes())
        catalog = llm_prices.parse(payload, OBSERVED)
        rows = json.loads(payload)["prices"]
        assert len(catalog.quotes) == len({(r["vendor"], r["id"]) for r in rows}), path.name
        assert catalog.skipped["duplicate key"] == len(rows) - len(catalog.quotes)
        duplicates += catalog.skipped["duplicate key"]
    assert duplicates == 36
