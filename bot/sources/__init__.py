"""Price sources: one module per upstream, listed explicitly in `SOURCES`.

A source knows its upstream's URL and how to turn one payload into a `Catalog` of normalised
quotes. Fetching (HTTP, conditional requests, size caps) is shared and lives in `bot.fetch`;
a source that reads data shipped in installed packages instead provides `read`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.errors import PayloadError
from bot.quotes import Catalog


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    url: str
    every: str
    parse: Callable[[bytes, datetime], Catalog]
    #: Reads the payload from installed packages instead of the network (the `bundled` source).
    read: Callable[[], bytes] | None = None
    #: The payload dates its prices, so the same bytes can put a new price in force on a later
    #: day: a 304 is then parsed again from the stored payload instead of ending the poll.
    dated: bool = False


def load_json(payload: bytes, source: str, expect: type, *, on_duplicate: Callable[[], None] | None = None) -> Any:
    """Decode a payload strictly and check its outer type, naming the source in the error.

    An object that repeats a key keeps its *first* value, as parsers keep the first row of a
    repeated model (`json.loads` alone would silently keep the last, letting a stray second
    listing decide a price), and each repeat calls `on_duplicate`, so it can be counted.
    """
    data = decode(payload, source, first_wins(on_duplicate))
    if not isinstance(data, expect):
        raise PayloadError(f"{source}: expected a JSON {expect.__name__} at the top level, got {type(data).__name__}")
    return data


def decode(payload: bytes, source: str, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any]) -> Any:
    """`json.loads` with every way a payload can fail to be JSON as one PayloadError."""
    try:
        return json.loads(payload, object_pairs_hook=object_pairs_hook)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        head = payload[:40].decode("utf-8", "replace").strip()
        raise PayloadError(f"{source}: payload is not JSON ({exc.__class__.__name__}: {exc}); starts {head!r}") from None
    except RecursionError:
        raise PayloadError(f"{source}: payload is nested too deeply to be a catalog ({len(payload)} bytes)") from None


def first_wins(on_duplicate: Callable[[], None] | None = None) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An `object_pairs_hook` keeping each key's first value and reporting every repeat."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) == len(pairs):
            return result
        result = {}
        for key, value in pairs:
            if key in result:
                if on_duplicate is not None:
                    on_duplicate()
                continue
            result[key] = value
        return result

    return hook


# The registry, in the order sources are shown. Imported last: each module builds its `Source`
# from the class above.
from bot.sources import bundled, genai_prices, litellm, llm_prices, models_dev, openrouter  # noqa: E402

SOURCES: dict[str, Source] = {
    module.SOURCE.name: module.SOURCE for module in (openrouter, litellm, genai_prices, llm_prices, models_dev, bundled)
}
