"""One spelling per model, so that sources, tiers and commands agree on what a model is called.

Each source names a model its own way: LiteLLM `azure/gpt-4o` and
`anthropic.claude-3-5-sonnet-20240620-v1:0`, OpenRouter `anthropic/claude-3.5-sonnet:beta`,
Vertex `claude-3-5-sonnet@20240620`, Together `meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo`.
`normalise_model` maps these to one lower-case name (`gpt-4o`, `claude-3.5-sonnet-20240620`,
`llama-3.1-70b-instruct-turbo`). It removes only what says *where* a model is sold, never what
says *which* model it is: version and date suffixes stay (`gpt-4o-2024-08-06` is its own model),
and so do serving variants such as `-turbo`, `-fp8` or `:extended`, which may be priced apart.
"""

from __future__ import annotations

import re
from functools import lru_cache

_BEDROCK_REGIONS = "us|eu|apac|au|jp|global|regional|us-gov"
_BEDROCK_VENDORS = "anthropic|meta|amazon|mistral|cohere|ai21|openai|qwen|google|nvidia|writer"

#: Applied in order; each names the upstream spelling it undoes.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # Provider, routing and organisation prefixes, at any depth: `azure/eu/`,
        # `openrouter/anthropic/`, `fireworks_ai/accounts/fireworks/models/`, `meta-llama/`.
        (r"^.*/", ""),
        # OpenRouter variants of the same model: `:free` (flagged as free anyway) and
        # `:beta` (self-moderated, same price).
        (r":(free|beta)$", ""),
        # Bedrock ids: optional region, then vendor, `us.anthropic.claude-…` -> `claude-…`.
        (rf"^(({_BEDROCK_REGIONS})\.)?({_BEDROCK_VENDORS})\.", ""),
        # Bedrock revisions: `-v1:0`, `-v0:2`, `-1:0`. A bare version such as `claude-v2:1`
        # (Claude 2.1) is the model's own name and stays.
        (r"^(.+-.+)-v?\d+:\d+$", r"\1"),
        # Vertex pins a snapshot with `@`: `claude-3-5-sonnet@20240620`.
        (r"@", "-"),
        # Llama spellings: `llama3`, `meta-llama-3` -> `llama-3`.
        (r"^(meta-)?llama-?(?=\d)", "llama-"),
        # A one-digit minor version written with a dash, as Anthropic's and Bedrock's ids do:
        # `claude-3-5-sonnet`, `claude-opus-4-1`, `llama-3-1-70b` -> `3.5`, `4.1`, `3.1`.
        # Dates (`-2024-08-06`) and sizes (`-3-8b`) are left alone.
        (r"(?<=[a-z]-)(\d)-(\d)(?=-|$)", r"\1.\2"),
    )
)


@lru_cache(maxsize=1 << 16)  # pure, and called for every listing of every series and tier
def normalise_model(model: str) -> str:
    """The name a model is matched by, whichever source listed it (rules in the module doc)."""
    name = model.strip().lower()
    for pattern, replacement in _REWRITES:
        name = pattern.sub(replacement, name)
    return name
