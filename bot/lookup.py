"""From what a person types (`gpt-4o`, `Claude 3.5 Sonnet`, `openai/o3`) to stored model keys.

Names are compared after `normalise_model`, so one name finds a model under every source's
spelling (LiteLLM `azure/gpt-4o`, OpenRouter `openai/gpt-4o`); an unknown name raises
`UnknownModelError` with the closest stored names.
"""

from __future__ import annotations

import difflib

import sqlite_utils

from bot.errors import UnknownModelError
from bot.naming import normalise_model
from storage import prices

SUGGESTIONS = 5


def _typed(name: str) -> str:
    """What people type for a model: spaces for dashes, any case (`Claude 3.5 Sonnet`)."""
    return normalise_model("-".join(name.split()))


def resolve(db: sqlite_utils.Database, name: str) -> list[str]:
    """Every stored key of the model called `name`; UnknownModelError when there is none."""
    target = _typed(name)
    by_name: dict[str, list[str]] = {}
    for key in prices.model_keys(db):
        by_name.setdefault(normalise_model(key), []).append(key)
    if target in by_name:
        return by_name[target]
    raise UnknownModelError(name, difflib.get_close_matches(target, list(by_name), n=SUGGESTIONS, cutoff=0.6))
