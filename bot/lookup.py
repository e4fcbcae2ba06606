"""From what a person types (`gpt-4o`, `Claude 3.5 Sonnet`, `openai/o3`) to stored model keys.

Names are compared after `normalise_model`, so one name finds a model under every source's
spelling (LiteLLM `azure/gpt-4o`, OpenRouter `openai/gpt-4o`); an unknown name raises
`UnknownModelError` with the closest stored names.

The index from normalised name to stored keys is built once and kept until the models table
changes (`bot.memo`): with years of history there are tens of thousands of keys, and
normalising every one of them on each `price` or `history` cost more than the answer itself.
"""

from __future__ import annotations

import difflib

import sqlite_utils

from bot.errors import UnknownModelError
from bot.memo import Memo
from bot.naming import normalise_model
from storage import prices

SUGGESTIONS = 5


def _typed(name: str) -> str:
    """What people type for a model: spaces for dashes, any case (`Claude 3.5 Sonnet`)."""
    return normalise_model("-".join(name.split()))


def _index(db: sqlite_utils.Database) -> dict[str, tuple[str, ...]]:
    """Normalised name -> every stored key with that name, in key order."""
    by_name: dict[str, list[str]] = {}
    for key in prices.model_keys(db):
        by_name.setdefault(normalise_model(key), []).append(key)
    return {name: tuple(keys) for name, keys in by_name.items()}


#: Keys are only ever inserted or deleted (a reparse), never renamed in place.
_NAMES = Memo("SELECT COUNT(*), MAX(id), TOTAL(length(model)) FROM models", _index)


def resolve(db: sqlite_utils.Database, name: str) -> list[str]:
    """Every stored key of the model called `name`; UnknownModelError when there is none."""
    target = _typed(name)
    by_name = _NAMES.get(db)
    if target in by_name:
        return list(by_name[target])
    raise UnknownModelError(name, difflib.get_close_matches(target, list(by_name), n=SUGGESTIONS, cutoff=0.6))
