"""llm-prices.com's current prices (`current-v1.json`): `{"updated_at", "prices": [row, ...]}`.

Each row is `{id, vendor, name, input, output, input_cached}` with prices as numbers in USD per
million tokens. The vendor files behind it list some ids twice (`grok-4-fast` as "Grok 4 Fast"
and "Grok 4 Fast ≤128k"); the first row wins.
"""

from __future__ import annotations

from datetime import datetime

from bot.quotes import Catalog
from bot.sources import Source
from bot.sources._common import MALFORMED, CatalogBuilder, list_under, text

NAME = "llm-prices"


def parse(payload: bytes, observed_at: datetime) -> Catalog:
    builder = CatalogBuilder(NAME, observed_at, per_token=False)
    rows = list_under(payload, NAME, "prices", builder.duplicate)
    for row in rows:
        vendor = text(row.get("vendor")) if isinstance(row, dict) else None
        model_id = text(row.get("id")) if isinstance(row, dict) else None
        if vendor is None or model_id is None:
            builder.skip(MALFORMED)
            continue
        if not builder.first((vendor, model_id)):
            continue
        builder.add(
            provider=vendor,
            model=model_id,
            input_price=row.get("input"),
            output_price=row.get("output"),
            cache_read_price=row.get("input_cached"),
            display_name=row.get("name"),
        )
    return builder.finish()


SOURCE = Source(name=NAME, url="https://www.llm-prices.com/current-v1.json", every="12h", parse=parse)
