"""The models.dev catalogue, parsed from trimmed real snapshots (see tests/fixtures/models-dev)."""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from bot.errors import PayloadError
from bot.quotes import FREE
from bot.sources import models_dev

OBSERVED = datetime(2026, 5, 21, tzinfo=timezone.utc)


def read(fixtures, date: str) -> bytes:
    return (fixtures / "models-dev" / f"api-{date}.json").read_bytes()


def by_key(payload: bytes) -> dict:
    return {q.key: q for q in models_dev.parse(payload, OBSERVED).quotes}


def test_cost_is_per_mtok_and_the_key_is_provider_and_model_id(fixtures):
    quotes = by_key(read(fixtures, "2026-05-21"))
    gpt_4o = quotes[("openai", "gpt-4o")]
    assert gpt_4o.prices() == (Decimal("2.5"), Decimal("10"), Decimal("1.25"))
    assert (gpt_4o.display_name, gpt_4o.context_window, gpt_4o.flag) == ("GPT-4o", 128000, None)
    # A model id may contain "/" itself; it stays whole.
    assert quotes[("openrouter", "openai/gpt-5.4-mini")].prices() == (Decimal("0.75"), Decimal("4.5"), Decimal("0.075"))
    # The same model from four resellers: four quotes.
    assert sum(1 for provider, model in quotes if model == "Qwen/Qwen2.5-72B-Instruct") == 4


def test_open_weight_comes_from_open_weights(fixtures):
    quotes = by_key(read(fixtures, "2026-05-21"))
    assert quotes[("openai", "gpt-4o")].open_weight is False
    assert quotes[("deepseek", "deepseek-reasoner")].open_weight is True
    # Resellers disagree about the same weights; each quote keeps its own provider's word.
    assert quotes[("chutes", "Qwen/Qwen2.5-72B-Instruct")].open_weight is True
    assert quotes[("siliconflow", "Qwen/Qwen2.5-72B-Instruct")].open_weight is False


def test_zero_cost_is_flagged_free(fixtures):
    gemma = by_key(read(fixtures, "2026-05-21"))[("nvidia", "google/gemma-3-27b-it")]
    assert (gemma.input_mtok, gemma.output_mtok, gemma.flag) == (Decimal("0"), Decimal("0"), FREE)


def test_models_without_cost_or_text_output_are_skipped_by_reason(fixtures):
    catalog = models_dev.parse(read(fixtures, "2026-05-21"), OBSERVED)
    assert catalog.skipped == {"no cost": 1, "not a chat model": 1}  # gpt-image-1; a TTS model
    assert ("openai", "gpt-image-1") not in {q.key for q in catalog.quotes}
    assert ("google", "gemini-2.5-flash-preview-tts") not in {q.key for q in catalog.quotes}


def test_a_per_token_slip_is_parsed_as_given(fixtures):
    """models.dev stored OpenRouter's GPT-5.4 mini per token for a month; the parser does not guess."""
    mini = by_key(read(fixtures, "2026-03-20"))[("openrouter", "openai/gpt-5.4-mini")]
    assert mini.prices() == (Decimal("0.00000075"), Decimal("0.0000045"), Decimal("0.000000075"))


def test_bad_rows_are_skipped_one_at_a_time_and_counted(fixtures):
    data = json.loads(read(fixtures, "2026-05-21"))
    gpt_4o = data["openai"]["models"]["gpt-4o"]
    data["openai"]["models"].update(
        {
            "gpt-4o-x": {**gpt_4o, "cost": {"input": "2.5", "output": "ten"}},
            "gpt-4o-y": {**gpt_4o, "cost": {"cache_read": 1.25}},
            "gpt-4o-z": {**gpt_4o, "cost": 2.5},
            "gpt-4o-w": "gpt-4o",
        }
    )
    data["empty"] = {"id": "empty", "name": "No models"}
    catalog = models_dev.parse(json.dumps(data).encode(), OBSERVED)
    assert len(catalog.quotes) == 8
    assert catalog.skipped == {
        "no cost": 1,
        "not a chat model": 1,
        "price is not a number": 1,
        "no token price": 1,
        "malformed row": 3,
    }


def test_a_repeated_provider_keeps_the_first(fixtures):
    text = read(fixtures, "2026-05-21").decode()
    # Splice raw text so the duplicate key reaches the parser.
    first = '"openai": {"id": "openai", "models": {"gpt-4o": {"cost": {"input": 5, "output": 15}}}},\n '
    catalog = models_dev.parse(text.replace('"openai": {', first + '"openai": {', 1).encode(), OBSERVED)
    quotes = {q.key: q for q in catalog.quotes}
    assert quotes[("openai", "gpt-4o")].input_mtok == Decimal("5")
    assert catalog.skipped["duplicate key"] == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html><head><title>500 Internal Server Error</title></head></html>", "models-dev: payload is not JSON"),
        (b'[{"id": "openai", "models": {}}]', "models-dev: expected a JSON dict at the top level, got list"),
        (b"{}", "models-dev: no usable priced models in the payload (skipped: none)"),
        (
            b'{"openai": {"id": "openai", "models": {"gpt-image-1": {"id": "gpt-image-1"}}}, "models": []}',
            "models-dev: no usable priced models in the payload (skipped: no cost: 1, malformed row: 1)",
        ),
    ],
)
def test_unusable_payload_raises_payload_error(payload, message):
    with pytest.raises(PayloadError, match="^" + re.escape(message)):
        models_dev.parse(payload, OBSERVED)


def test_open_weight_index_normalises_names_and_breaks_ties_towards_open(fixtures):
    index = models_dev.open_weight_index(json.loads(read(fixtures, "2026-05-21")))
    assert models_dev.normalise_name("Qwen/Qwen2.5-72B-Instruct") == "qwen2.5-72b-instruct"
    # abacus and chutes say open, siliconflow and siliconflow-cn say closed: 2 to 2.
    assert index["qwen2.5-72b-instruct"] is True
    assert index["gpt-4o"] is False
    assert index["gpt-image-1"] is False  # no cost, but its weights are still known
    assert index["deepseek-reasoner"] is True


def test_open_weight_index_follows_the_majority_on_the_real_catalogue(shared_data):
    data = json.loads((shared_data / "fixtures" / "models-dev-api-latest.json").read_bytes())
    index = models_dev.open_weight_index(data)
    assert len(index) == 1783
    assert index["gemini-3-flash-preview"] is False  # 18 providers to ollama-cloud's 1
    assert index["gpt-oss-120b"] is True  # 29 to 10
    assert index["llama-3.1-405b-instruct"] is True


def test_every_replay_snapshot_parses_and_accounts_for_every_model(shared_data):
    """24 catalogues, 2026-01 to 2026-05, 2148 to 4803 models each."""
    snapshots = sorted((shared_data / "replay" / "models-dev").glob("*.json.gz"))
    assert len(snapshots) == 24
    for path in snapshots:
        payload = gzip.decompress(path.read_bytes())
        catalog = models_dev.parse(payload, OBSERVED)
        models = sum(len(provider["models"]) for provider in json.loads(payload).values())
        assert len(catalog.quotes) + sum(catalog.skipped.values()) == models, path.name
