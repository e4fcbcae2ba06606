"""Model names as people type them resolve to every stored spelling, or to suggestions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot import lookup
from bot.errors import UnknownModelError
from bot.quotes import Quote
from storage import polls, prices

T0 = datetime(2025, 6, 1, tzinfo=UTC)
KEYS = ("o3", "openai/o3", "azure/o3", "o3-mini", "claude-3-5-sonnet-20240620", "anthropic/claude-3.5-sonnet-20240620")


@pytest.fixture
def db(fresh_db):
    quotes = [Quote("test", key.split("/")[0] if "/" in key else "openai", key, T0, Decimal(1), Decimal(2)) for key in KEYS]
    prices.record(fresh_db, polls.Poll("test", T0, T0, T0), quotes)
    return fresh_db


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("o3", {"o3", "openai/o3", "azure/o3"}),
        ("OpenAI/O3", {"o3", "openai/o3", "azure/o3"}),
        ("o3-mini", {"o3-mini"}),
        ("Claude 3.5 Sonnet 20240620", {"claude-3-5-sonnet-20240620", "anthropic/claude-3.5-sonnet-20240620"}),
    ],
)
def test_every_spelling_of_a_model(db, name, keys):
    assert set(lookup.resolve(db, name)) == keys


def test_unknown_model_suggests_the_closest(db):
    with pytest.raises(UnknownModelError) as caught:
        lookup.resolve(db, "o3-mni")
    assert caught.value.suggestions[0] == "o3-mini"
    assert "Did you mean: o3-mini" in str(caught.value)
