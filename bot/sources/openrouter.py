"""OpenRouter's model list (GET /api/v1/models): `{"data": [model, ...]}`.

`pricing.prompt`, `completion` and `input_cache_read` are decimal strings in USD per token.
Routers such as `openrouter/auto` are priced "-1" (kept, flagged SENTINEL); `:free` variants
cost "0" (flagged FREE).
"""

from __future__ import annotations

from datetime import datetime

from bot.quotes import Catalog
from bot.sources import Source
from bot.sources._common import MALFORMED, CatalogBuilder, list_under, text

NAME = "openrouter"


def parse(payload: bytes, observed_at: datetime) -> Catalog:
    builder = CatalogBuilder(NAME, observed_at, per_token=True)
    rows = list_under(payload, NAME, "data", builder.duplicate)
    for row in rows:
        model_id = text(row.get("id")) if isinstance(row, dict) else None
        provider, slash, _ = (model_id or "").partition("/")
        pricing = row.get("pricing") if isinstance(row, dict) else None
        if not (provider and slash and isinstance(pricing, dict)):
            builder.skip(MALFORMED)
            continue
        if not builder.first(model_id):
            continue
        builder.add(
            provider=provider,
            model=model_id,
            input_price=pricing.get("prompt"),
            output_price=pricing.get("completion"),
            cache_read_price=pricing.get("input_cache_read"),
            free_variant=model_id.endswith(":free"),
            display_name=row.get("name"),
            context_window=row.get("context_length"),
            open_weight=_open_weight(row.get("hugging_face_id")),
        )
    return builder.finish()


def _open_weight(hugging_face_id: object) -> bool | None:
    """True when OpenRouter links the weights on Hugging Face; otherwise unknown, not False.

    The field is empty ("") or null for closed models, but "" also appears on open ones
    (`google/gemma-3-27b-it`, `mistralai/pixtral-large-2411` in May 2025), so a missing link
    says nothing either way.
    """
    return True if text(hugging_face_id) else None


SOURCE = Source(name=NAME, url="https://openrouter.ai/api/v1/models", every="6h", parse=parse)
