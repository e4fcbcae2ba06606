from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.naming import normalise_model
from bot.tiers import load_tiers, members_on


@pytest.fixture(scope="module")
def tiers():
    return load_tiers()


# normalise_model: real keys from LiteLLM, OpenRouter, genai-prices, Bedrock and Vertex


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("gpt-4o", "gpt-4o"),
        ("azure/eu/gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("openrouter/openai/gpt-4o", "gpt-4o"),
        ("openai/gpt-4o:extended", "gpt-4o:extended"),
        ("anthropic/claude-3.5-sonnet:beta", "claude-3.5-sonnet"),
        ("meta-llama/llama-3.1-8b-instruct:free", "llama-3.1-8b-instruct"),
        ("claude-3-5-sonnet-20240620", "claude-3.5-sonnet-20240620"),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3.5-sonnet-20241022"),
        ("vertex_ai/claude-3-5-sonnet@20240620", "claude-3.5-sonnet-20240620"),
        ("claude-opus-4-1-20250805", "claude-opus-4.1-20250805"),
        ("claude-opus-4-20250514", "claude-opus-4-20250514"),
        ("anthropic.claude-v2:1", "claude-v2:1"),
        ("meta.llama3-1-405b-instruct-v1:0", "llama-3.1-405b-instruct"),
        ("together_ai/meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo", "llama-3.1-70b-instruct-turbo"),
        ("groq/llama3-70b-8192", "llama-3-70b-8192"),
        ("fireworks_ai/accounts/fireworks/models/deepseek-v3", "deepseek-v3"),
        ("deepinfra/deepseek-ai/DeepSeek-R1-0528", "deepseek-r1-0528"),
        ("openai.gpt-oss-120b-1:0", "gpt-oss-120b"),
        ("gemini/gemini-1.5-flash-002", "gemini-1.5-flash-002"),
        ("google/gemini-flash-1.5", "gemini-flash-1.5"),
    ],
)
def test_normalise_model(key, name):
    assert normalise_model(key) == name


# the shipped tiers


def test_the_shipped_file_has_the_three_tiers(tiers):
    assert list(tiers) == ["frontier", "gpt-4-class", "small-fast"]
    assert all(t.description for t in tiers.values())


def test_joined_is_the_release_date_on_any_sellers_spelling(tiers):
    gpt4_class = tiers["gpt-4-class"]
    assert gpt4_class.joined("gpt-4", "openai") == date(2023, 3, 14)
    assert gpt4_class.joined("openai/gpt-4-turbo", "openrouter") == date(2023, 11, 6)
    assert gpt4_class.joined("azure/gpt-4o-2024-08-06", "azure") == date(2024, 5, 13)
    assert gpt4_class.joined("anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock") == date(2024, 6, 20)
    assert gpt4_class.joined("deepseek/deepseek-chat", "deepseek") == date(2024, 12, 26)


@pytest.mark.parametrize(
    "key",
    [
        "gpt-4o-mini",  # MMLU 82.0, below the bar
        "gpt-4o-mini-audio-preview-2024-12-17",
        "gpt-4o-realtime-preview",
        "gpt-4o-transcribe",
        "chatgpt-4o-latest",
        "gpt-4.1-nano",
        "claude-3-sonnet-20240229",
        "claude-3-5-haiku-20241022",
        "meta-llama/llama-3-70b-instruct",
        "deepseek/deepseek-r1-distill-llama-70b",
        "gemini-2.0-flash-lite",
        "gemini-2.0-flash-exp",
        "gemini-2.5-flash-image-preview",
        "gemini-2.5-pro-preview-tts",
        "nousresearch/hermes-3-llama-3.1-405b",
    ],
)
def test_gpt_4_class_does_not_over_match(tiers, key):
    assert tiers["gpt-4-class"].joined(key, "any") is None


def test_small_fast_takes_gpt_4o_mini_but_not_its_audio_or_speech_variants(tiers):
    small = tiers["small-fast"]
    assert small.joined("openai/gpt-4o-mini-2024-07-18", "openai") == date(2024, 7, 18)
    assert small.joined("gpt-4o-mini-audio-preview", "openai") is None
    assert small.joined("gpt-4o-mini-tts", "openai") is None
    assert small.joined("gpt-3.5-turbo-instruct", "openai") is None


def test_members_on_counts_a_model_from_its_since_date(tiers):
    def patterns_on(day):
        return {p for m in members_on(tiers["gpt-4-class"], day) for p in m.patterns}

    assert "gpt-4o" not in patterns_on(date(2024, 5, 12))
    assert "gpt-4o" in patterns_on(date(2024, 5, 13))
    assert "gpt-4" in patterns_on(date(2023, 3, 14)) and len(members_on(tiers["gpt-4-class"], date(2023, 3, 13))) == 0
    assert "gpt-4o" in patterns_on(datetime(2024, 5, 13, 0, 30, tzinfo=timezone.utc))


def test_every_shipped_member_matches_a_real_key(tiers, shared_data):
    """Each member must name keys the sources really use, or it silently contributes nothing."""
    fixtures = shared_data / "fixtures"
    keys = set(json.loads((fixtures / "litellm-model-prices-latest.json").read_text()))
    for name in ("openrouter-models-2024-08-02.json", "openrouter-models-2025-05-23.json"):
        keys |= {m["id"] for m in json.loads((fixtures / name).read_text())["data"]}
    for name in ("genai-prices-data-latest.json", "genai-prices-v2-data-latest.json"):
        keys |= {m["id"] for provider in json.loads((fixtures / name).read_text()) for m in provider["models"]}
    for tier in tiers.values():
        for member in tier.members:
            assert any(member.matches(key, "any") for key in keys), f"{tier.name}: {member.patterns} matches no real key"


# validation of a user's file


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiers.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD_TIER = '[tiers.t]\ndescription = "d"\n'
MEMBER = 'members = [{ pattern = "gpt-4o", since = 2024-05-13 }]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD_TIER + 'members = [{ pattern = "gpt-4o" }]', "tiers.t.members[0].since must be a TOML date such as 2024-05-13, got None"),
        (GOOD_TIER + 'members = [{ pattern = "gpt-4o", since = "2024-05-13" }]', "tiers.t.members[0].since must be a TOML date"),
        (GOOD_TIER + 'members = [{ pattern = "gpt-4o", since = 2024-05-13T00:00:00Z }]', "tiers.t.members[0].since must be a TOML date"),
        (GOOD_TIER + 'members = [{ patern = "gpt-4o", since = 2024-05-13 }]', "tiers.t.members[0].patern is not a known key"),
        (GOOD_TIER + 'members = [{ pattern = [], since = 2024-05-13 }]', "tiers.t.members[0].pattern must be a glob or a non-empty list"),
        (GOOD_TIER + 'members = [{ pattern = "claude-3-5-sonnet*", since = 2024-06-20 }]',
         "tiers.t.members[0].pattern 'claude-3-5-sonnet*' can never match a normalised model name; write 'claude-3.5-sonnet*'"),
        (GOOD_TIER + 'members = [{ pattern = "openai/gpt-4o", since = 2024-05-13 }]', "write 'gpt-4o'"),
        (GOOD_TIER + 'members = [{ pattern = "gpt-4o", since = 2024-05-13, provider = 7 }]', "tiers.t.members[0].provider must be a provider name"),
        (GOOD_TIER + "members = []", "tiers.t.members must be a non-empty list"),
        (GOOD_TIER + 'members = ["gpt-4o"]', "tiers.t.members[0] must be a table"),
        ('[tiers.t]\nmembers = [{ pattern = "gpt-4o", since = 2024-05-13 }]', "tiers.t.description must be a non-empty string"),
        (GOOD_TIER + 'colour = "red"\nmembers = [{ pattern = "gpt-4o", since = 2024-05-13 }]', "tiers.t.colour is not a known key"),
        (GOOD_TIER + 'members = [{ pattern = "gpt-oss-120b", since = 2025-08-05, open_weight = "yes" }]',
         "tiers.t.members[0].open_weight must be true or false, got 'yes'"),
        ("[tier.t]\n", "unknown top-level key 'tier'"),
        (GOOD_TIER + MEMBER + '[[set_aside]]\nsource = "litellm"\npattern = "gemini-1.5-pro"\nuntil = 2024-07-01\n',
         "set_aside[0].reason must be a non-empty string, got None"),
        (GOOD_TIER + MEMBER + '[[set_aside]]\nsource = "litellm"\npattern = "gemini-1.5-pro"\nuntil = "2024-07-01"\nreason = "r"\n',
         "set_aside[0].until must be a TOML date such as 2024-07-01"),
        (GOOD_TIER + MEMBER + '[[set_aside]]\nsource = "litellm"\npattern = "gemini/gemini-1.5-pro"\nuntil = 2024-07-01\nreason = "r"\n',
         "set_aside[0].pattern 'gemini/gemini-1.5-pro' can never match a normalised model name; write 'gemini-1.5-pro'"),
        (GOOD_TIER + MEMBER + '[[set_aside]]\nsource = "litellm"\npattern = "x"\nuntil = 2024-07-01\nreason = "r"\nwhy = 1\n',
         "set_aside[0].why is not a known key"),
        ('set_aside = 3\n' + GOOD_TIER + MEMBER, "set_aside must be written as [[set_aside]] tables"),
        ("", "tiers: define at least one [tiers.<name>] table"),
        ("[tiers.t\n", "not a valid TOML file"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_tiers(path)
    assert str(excinfo.value).startswith(f"{path}: ")
    assert message in str(excinfo.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the tiers file"):
        load_tiers(tmp_path / "absent.toml")


def test_a_users_file_replaces_the_shipped_one(tmp_path):
    path = write(tmp_path, GOOD_TIER + 'members = [{ pattern = ["gpt-4o", "gpt-4o-20??-??-??"], since = 2024-05-13, provider = "OpenAI" }]')
    tier = load_tiers(path)["t"]
    assert tier.joined("gpt-4o-2024-08-06", "openai") == date(2024, 5, 13)
    assert tier.joined("gpt-4o", "azure") is None  # the provider narrows the member


def test_open_weight_and_set_aside_entries_are_read(tmp_path):
    path = write(tmp_path, GOOD_TIER + 'members = [{ pattern = "gpt-oss-120b", since = 2025-08-05, open_weight = true }, '
                 '{ pattern = "gpt-4o", since = 2024-05-13 }]\n'
                 '[[set_aside]]\nsource = "litellm"\nprovider = "Vertex"\npattern = "gemini-1.5-*"\nuntil = 2024-07-01\nreason = " per character "\n')
    tier = load_tiers(path)["t"]
    assert tier.open_weight("openai/gpt-oss-120b", "openrouter") and not tier.open_weight("gpt-4o", "openai")
    [entry] = tier.set_aside
    assert (entry.source, entry.provider, entry.until, entry.reason) == ("litellm", "vertex", date(2024, 7, 1), "per character")
    assert entry.matches("litellm", "vertex", "gemini-1.5-pro-001") and not entry.matches("litellm", "gemini", "gemini-1.5-pro")
    assert not entry.matches("genai-prices", "vertex", "gemini-1.5-pro")


def test_the_shipped_file_marks_open_weight_members_and_sets_aside_known_errors(tiers):
    gpt4_class = tiers["gpt-4-class"]
    assert gpt4_class.open_weight("deepinfra/meta-llama/Llama-3.3-70B-Instruct-Turbo", "deepinfra")
    assert gpt4_class.open_weight("deepseek-chat", "deepseek") and not gpt4_class.open_weight("gpt-4o", "openai")
    assert {entry.pattern for entry in gpt4_class.set_aside} == {"gemini-1.5-*", "gemini-1.5-pro", "gemini-1.5-pro-latest"}
    assert all(entry.reason for entry in gpt4_class.set_aside)
