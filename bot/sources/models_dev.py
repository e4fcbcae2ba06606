"""The models.dev catalogue (`api.json`): `{provider_id: {id, name, models: {model_id: model}}}`.

`cost.input`, `cost.output` and `cost.cache_read` are numbers in USD per million tokens. The key
is (provider_id, model_id); a model id may itself contain "/" (`openrouter` -> `openai/gpt-5.4-mini`).
Some entries are stored per token by mistake (`openrouter/openai/gpt-5.4-mini` read 7.5e-07 for a
month of 2026); they are parsed as given, because telling a slip from a price move is the
detectors' job, not the parser's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from bot.quotes import Catalog
from bot.sources import Source
from bot.sources._common import MALFORMED, CatalogBuilder, object_items, text

NAME = "models-dev"


def parse(payload: bytes, observed_at: datetime) -> Catalog:
    builder = CatalogBuilder(NAME, observed_at, per_token=False)
    for provider_id, provider in object_items(payload, NAME, builder.duplicate):
        if not builder.first(provider_id):
            continue
        models = provider.get("models") if isinstance(provider, dict) else None
        if not isinstance(models, dict):
            builder.skip(MALFORMED)
            continue
        for model_id, model in models.items():
            reason = _skip_reason(model_id, model)
            if reason:
                builder.skip(reason)
                continue
            cost, limit = model["cost"], model.get("limit")
            builder.add(
                provider=provider_id,
                model=model_id,
                input_price=cost.get("input"),
                output_price=cost.get("output"),
                cache_read_price=cost.get("cache_read"),
                display_name=model.get("name"),
                context_window=limit.get("context") if isinstance(limit, dict) else None,
                open_weight=_open_weights(model),
            )
    return builder.finish()


def _skip_reason(model_id: str, model: object) -> str | None:
    if not text(model_id) or not isinstance(model, dict):
        return MALFORMED
    if model.get("cost") is None:
        return "no cost"
    if not isinstance(model["cost"], dict):
        return MALFORMED
    # Image, audio and video generators are outside the text prices this bot compares.
    modalities = model.get("modalities")
    outputs = modalities.get("output") if isinstance(modalities, dict) else None
    if isinstance(outputs, list) and "text" not in outputs:
        return "not a chat model"
    return None


def _open_weights(model: dict) -> bool | None:
    flag = model.get("open_weights")
    return flag if isinstance(flag, bool) else None


def normalise_name(model_id: str) -> str:
    """The name other sources' models are matched on: lower case, any "vendor/" path removed."""
    return model_id.rsplit("/", 1)[-1].lower()


def open_weight_index(data: dict[str, Any]) -> dict[str, bool]:
    """Map each normalised model name in a decoded catalogue to whether its weights are open.

    The same model is listed by many resellers, which disagree (228 of 1783 names in the
    2026-05-21 catalogue). The majority of providers wins; a tie counts as open, because the
    usual error is a gateway leaving `open_weights` false on an open model (nano-gpt and
    siliconflow list Qwen and DeepSeek models as closed).
    """
    votes: defaultdict[str, Counter[bool]] = defaultdict(Counter)
    for provider in data.values():
        models = provider.get("models") if isinstance(provider, dict) else None
        if not isinstance(models, dict):
            continue
        for model_id, model in models.items():
            flag = _open_weights(model) if isinstance(model, dict) else None
            if flag is not None:
                votes[normalise_name(model_id)][flag] += 1
    return {name: tally[True] >= tally[False] for name, tally in votes.items()}


SOURCE = Source(name=NAME, url="https://models.dev/api.json", every="12h", parse=parse)
