"""LiteLLM's price file, parsed from trimmed real snapshots (see tests/fixtures/litellm)."""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from bot.errors import PayloadError
from bot.quotes import FREE
from bot.sources import litellm

OBSERVED = datetime(2025, 9, 1, 0, 35, 34, tzinfo=timezone.utc)


def parse(fixtures, name: str):
    return litellm.parse((fixtures / "litellm" / name).read_bytes(), OBSERVED)


def test_gpt_4o_per_token_floats_become_exact_usd_per_mtok(fixtures):
    by_model = {q.model: q for q in parse(fixtures, "prices-2025-09-01.json").quotes}
    gpt_4o = by_model["gpt-4o"]
    # The payload says 2.5e-06, 1e-05 and 1.25e-06 per token.
    assert gpt_4o.prices() == (Decimal("2.5"), Decimal("10"), Decimal("1.25"))
    assert gpt_4o.key == ("openai", "gpt-4o")
    assert gpt_4o.context_window == 128000  # max_input_tokens, not max_tokens (16384)
    assert (gpt_4o.display_name, gpt_4o.open_weight, gpt_4o.flag) == (None, None, None)
    assert by_model["azure/gpt-4o"].key == ("azure", "azure/gpt-4o")


def test_text_modes_are_quoted_and_the_rest_skipped_by_reason(fixtures):
    catalog = parse(fixtures, "prices-2025-09-01.json")
    assert {q.model: q.key[0] for q in catalog.quotes} == {
        "gpt-4o": "openai",
        "azure/gpt-4o": "azure",
        "gpt-3.5-turbo-instruct": "text-completion-openai",  # mode completion
        "o1-pro": "openai",  # mode responses
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo-Free": "together_ai",
    }
    assert catalog.skipped == {
        "not a chat model": 1,  # text-embedding-3-small
        "priced per character": 1,  # gemini-1.5-flash (Vertex AI), though it lists per-token prices too
        "priced per second": 1,  # a Bedrock provisioned-throughput commitment
        "no mode": 1,  # fireworks-ai-up-to-16b, a size-class bucket
        "no token price": 1,  # snowflake/llama3.1-405b
    }


def test_zero_priced_chat_model_is_flagged_free(fixtures):
    by_model = {q.model: q for q in parse(fixtures, "prices-2025-09-01.json").quotes}
    free = by_model["together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"]
    assert (free.input_mtok, free.output_mtok, free.flag) == (Decimal("0"), Decimal("0"), FREE)


def test_first_snapshots_without_litellm_provider_fall_back_to_the_key_prefix(fixtures):
    catalog = parse(fixtures, "prices-2024-01-31.json")
    assert {q.model: q.provider for q in catalog.quotes} == {
        "gpt-4": "unknown",
        "claude-2": "unknown",
        "openrouter/meta-llama/llama-2-70b-chat": "openrouter",
        "bedrock/us-east-1/anthropic.claude-v2": "bedrock",
    }
    # Without max_input_tokens the context comes from max_tokens.
    assert {q.model: q.context_window for q in catalog.quotes}["claude-2"] == 100000
    assert catalog.skipped == {"no mode": 1}


def test_bad_rows_are_skipped_one_at_a_time_and_counted(fixtures):
    good = (fixtures / "litellm" / "prices-2025-09-01.json").read_text()
    # Splice raw text so the duplicate key survives into the payload.
    payload = good.replace(
        '{\n "gpt-4o": {',
        '{\n "gpt-4o": {"mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},'
        ' "broken": {"mode": "chat", "input_cost_per_token": "free", "output_cost_per_token": 0},'
        ' "not-finite": {"mode": "chat", "input_cost_per_token": NaN, "output_cost_per_token": 0},'
        ' "listed": [1, 2],\n "gpt-4o": {',
        1,
    )
    catalog = litellm.parse(payload.encode(), OBSERVED)
    by_model = {q.model: q for q in catalog.quotes}
    assert by_model["gpt-4o"].input_mtok == Decimal("1")  # the first listing wins
    assert "broken" not in by_model
    assert catalog.skipped["duplicate key"] == 1
    assert catalog.skipped["price is not a number"] == 2  # Python's json accepts NaN
    assert catalog.skipped["malformed row"] == 1
    assert len(catalog.quotes) == 5


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"404: Not Found", "litellm: payload is not JSON"),
        (b"[]", "litellm: expected a JSON dict at the top level, got list"),
        (b"{}", "litellm: no usable priced models in the payload (skipped: none)"),
        (
            b'{"sample_spec": {"mode": "one of chat, embedding"}, "tts-1": {"mode": "audio_speech", "input_cost_per_character": 1.5e-05}}',
            "litellm: no usable priced models in the payload (skipped: schema example: 1, not a chat model: 1)",
        ),
    ],
)
def test_unusable_payload_raises_payload_error(payload, message):
    with pytest.raises(PayloadError, match="^" + re.escape(message)):
        litellm.parse(payload, OBSERVED)


def test_every_replay_snapshot_parses_and_accounts_for_every_key(shared_data):
    """101 snapshots, 2024-01 to 2025-09: every historic shape parses, and no key goes unexplained."""
    snapshots = sorted((shared_data / "replay" / "litellm").glob("*.json.gz"))
    assert len(snapshots) == 101
    spec_seen = 0
    for path in snapshots:
        payload = gzip.decompress(path.read_bytes())
        catalog = litellm.parse(payload, OBSERVED)
        assert len(catalog.quotes) + sum(catalog.skipped.values()) == len(json.loads(payload)), path.name
        spec_seen += catalog.skipped["schema example"]
    assert spec_seen == 1  # sample_spec slipped into tokencost's copy once, on 2024-10-14
