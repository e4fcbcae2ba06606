"""LiteLLM's `model_prices_and_context_window.json`: an object keyed by model name.

`input_cost_per_token`, `output_cost_per_token` and `cache_read_input_token_cost` are numbers
in USD per token. Only text-generation rows (`mode` chat, completion or responses) become
quotes. Rows that also carry a per-character or per-second price are skipped rather than read
per token: LiteLLM derives Vertex AI's per-token figures from per-character prices and has
recorded them on several conventions (`gemini-1.5-flash` 0.5 -> 0.004688 -> 0.075 USD/Mtok in
late 2024), which would read as price moves that never happened.
"""

from __future__ import annotations

from datetime import datetime

from bot.quotes import Catalog
from bot.sources import Source
from bot.sources._common import MALFORMED, CatalogBuilder, object_items, text

NAME = "litellm"

# A tuple, not a set: membership must not raise on an unhashable `mode` such as a list.
_TEXT_MODES = ("chat", "completion", "responses")
#: A documentation row in LiteLLM's own file (its values are prose), not a model.
_SPEC_KEY = "sample_spec"


def parse(payload: bytes, observed_at: datetime) -> Catalog:
    builder = CatalogBuilder(NAME, observed_at, per_token=True)
    for key, row in object_items(payload, NAME, builder.duplicate):
        if not builder.first(key):
            continue
        reason = _skip_reason(key, row)
        if reason:
            builder.skip(reason)
            continue
        builder.add(
            provider=_provider(key, row),
            model=key,
            input_price=row.get("input_cost_per_token"),
            output_price=row.get("output_cost_per_token"),
            cache_read_price=row.get("cache_read_input_token_cost"),
            context_window=row.get("max_input_tokens") or row.get("max_tokens"),
        )
    return builder.finish()


def _skip_reason(key: str, row: object) -> str | None:
    """Why a row is not a per-token text model, or None when it is one."""
    if key == _SPEC_KEY:
        return "schema example"
    if not isinstance(row, dict):
        return MALFORMED
    mode = row.get("mode")
    # Rows without a mode are size-class buckets ("together-ai-up-to-3b",
    # "fireworks-ai-embedding-up-to-150m"), not models anyone calls by that name.
    if mode is None:
        return "no mode"
    if mode not in _TEXT_MODES:
        return "not a chat model"
    if "input_cost_per_character" in row or "output_cost_per_character" in row:
        return "priced per character"
    if "input_cost_per_second" in row or "output_cost_per_second" in row:
        return "priced per second"
    return None


def _provider(key: str, row: dict) -> str:
    """`litellm_provider`; the two earliest snapshots (2024-01/02) lack it, so fall back to the
    key's prefix (`bedrock/...`, which matches the later field) or "unknown" for bare names
    such as `gpt-4`, whose history under "unknown" then stops when the field appears.
    """
    return text(row.get("litellm_provider")) or (key.split("/", 1)[0] if "/" in key else "unknown")


SOURCE = Source(
    name=NAME,
    url="https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json",
    every="6h",
    parse=parse,
)
