"""Synthetic catalogs of twenty models in each live source's own format, for fault tests.

A catalog is a list of `Row`s rendered by `render(source, rows)`. Objects are written from
(key, value) pairs, so a key can appear twice, as it does in a sloppy upstream; `price` turns
each price (USD per million tokens) into the value the source publishes, so a fault can put a
string, a negative or a NaN wherever a price goes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

#: The sources fetched over HTTP, which the fault tests serve from the loopback server.
LIVE = ("openrouter", "litellm", "genai-prices", "llm-prices", "models-dev")
_PER_TOKEN = ("openrouter", "litellm")
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Row:
    provider: str
    model: str
    input_mtok: Decimal
    output_mtok: Decimal

    def scaled(self, factor: Decimal | str) -> Row:
        return replace(self, input_mtok=self.input_mtok * Decimal(factor), output_mtok=self.output_mtok * Decimal(factor))


def rows(count: int = 20) -> list[Row]:
    providers = ("openai", "anthropic", "google", "mistral")
    return [
        Row(providers[i % 4], f"model-{i:02d}", Decimal("0.25") * (i + 1), Decimal("1.25") * (i + 1))
        for i in range(count)
    ]


class Pairs(list):
    """A JSON object as (key, value) pairs, in order, duplicates kept."""


def dumps(value: Any) -> str:
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(key)}: {dumps(item)}" for key, item in value) + "}"
    if isinstance(value, dict):
        return dumps(Pairs(value.items()))
    if isinstance(value, list):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    return json.dumps(value)  # NaN and Infinity come out as the bare words some encoders write


def unit(source: str, mtok: Decimal) -> Any:
    """A price as the source publishes it: OpenRouter per-token decimal strings, LiteLLM
    per-token numbers, the others numbers per million tokens."""
    if source == "openrouter":
        return format(mtok / _MILLION, "f")
    if source == "litellm":
        return float(mtok / _MILLION)
    return float(mtok)


def render(source: str, catalog: list[Row], price: Callable[[str, Decimal], Any] = unit) -> bytes:
    def p(value: Decimal) -> Any:
        return price(source, value)

    if source == "openrouter":
        data: Any = {"data": [{"id": f"{r.provider}/{r.model}", "name": r.model, "context_length": 128000,
                               "pricing": {"prompt": p(r.input_mtok), "completion": p(r.output_mtok)}} for r in catalog]}  # fmt: skip
    elif source == "litellm":
        data = Pairs((r.model, {"litellm_provider": r.provider, "mode": "chat", "max_input_tokens": 128000,
                                "input_cost_per_token": p(r.input_mtok), "output_cost_per_token": p(r.output_mtok)}) for r in catalog)  # fmt: skip
    elif source == "genai-prices":
        data = [{"id": provider, "name": provider, "models": [
                    {"id": r.model, "name": r.model, "context_window": 128000, "prices": {"input_mtok": p(r.input_mtok), "output_mtok": p(r.output_mtok)}}
                    for r in catalog if r.provider == provider]}
                for provider in dict.fromkeys(r.provider for r in catalog)]  # fmt: skip
    elif source == "llm-prices":
        data = {"updated_at": "2026-01-01", "prices": [{"id": r.model, "vendor": r.provider, "name": r.model,
                                                         "input": p(r.input_mtok), "output": p(r.output_mtok), "input_cached": None} for r in catalog]}  # fmt: skip
    elif source == "models-dev":
        data = Pairs((provider, {"id": provider, "name": provider, "models": Pairs(
                    (r.model, {"id": r.model, "name": r.model, "cost": {"input": p(r.input_mtok), "output": p(r.output_mtok)},
                               "limit": {"context": 128000}, "modalities": {"input": ["text"], "output": ["text"]}})
                    for r in catalog if r.provider == provider)})
                for provider in dict.fromkeys(r.provider for r in catalog))  # fmt: skip
    else:
        raise ValueError(f"no synthetic catalog for {source}")
    return dumps(data).encode()


def model_key(source: str, row: Row) -> str:
    """The key the source's parser stores the row under (OpenRouter prefixes the provider)."""
    return f"{row.provider}/{row.model}" if source == "openrouter" else row.model
