"""Capability tiers: named sets of models, each member dated by the day it joined the tier.

A tier answers "what is the cheapest way to buy this much capability on a given day?", so a
model counts only from its `since` date: a later model that reaches the bar pulls the tier's
floor down from its release, never retroactively. The shipped tiers are in `data/tiers.toml`;
a user may point the config at their own file of the same shape:

    [tiers.my-tier]
    description = "What the members have in common, and the source for it."
    members = [
        { pattern = "gpt-4o", since = 2024-05-13 },
        { pattern = ["claude-3.5-sonnet", "claude-3.5-sonnet-2024????"], since = 2024-06-20 },
        { pattern = "llama-3.3-70b*", since = 2024-12-06, provider = "groq" },
    ]

`pattern` is an `fnmatch` glob, or a list of them, matched against the normalised model name
(`bot.naming.normalise_model`); `since` is a TOML date; `provider`, if given, limits the member
to what that seller charges.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.naming import normalise_model

SHIPPED = Path(__file__).parent / "data" / "tiers.toml"

_TIER_KEYS = {"description", "members"}
_MEMBER_KEYS = {"pattern", "since", "provider"}


@dataclass(frozen=True, slots=True)
class Member:
    patterns: tuple[str, ...]
    since: date
    provider: str | None = None

    def matches(self, model: str, provider: str) -> bool:
        """Whether a listing (a source's model key and its seller) is this member."""
        if self.provider is not None and self.provider != provider.lower():
            return False
        name = normalise_model(model)
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    description: str
    members: tuple[Member, ...]

    def joined(self, model: str, provider: str) -> date | None:
        """The day a listing joined this tier (its earliest matching member), or None."""
        return min((m.since for m in self.members if m.matches(model, provider)), default=None)


def members_on(tier: Tier, day: date) -> tuple[Member, ...]:
    """The members that had joined `tier` by `day` (an aware datetime counts by its UTC date)."""
    if isinstance(day, datetime):
        day = day.astimezone(UTC).date()
    return tuple(m for m in tier.members if m.since <= day)


def load_tiers(path: Path | str | None = None) -> dict[str, Tier]:
    """Read and check a tiers file (the shipped one by default), in file order.

    Raises ConfigError naming the file and the offending key, so a user's edit fails at load
    time rather than silently matching nothing.
    """
    path = Path(path) if path is not None else SHIPPED
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tiers file ({exc.strerror})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file ({exc})") from None
    extra = sorted(set(data) - {"tiers"})
    if extra:
        raise ConfigError(f"{path}: unknown top-level key {extra[0]!r}; only [tiers.<name>] tables belong here")
    tiers = data.get("tiers")
    if not isinstance(tiers, dict) or not tiers:
        raise ConfigError(f"{path}: tiers: define at least one [tiers.<name>] table")
    return {name: _tier(path, name, raw) for name, raw in tiers.items()}


def _tier(path: Path, name: str, raw: Any) -> Tier:
    key = f"tiers.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {key} must be a table with a description and members")
    _no_unknown_keys(path, key, raw, _TIER_KEYS)
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{path}: {key}.description must be a non-empty string")
    members = raw.get("members")
    if not isinstance(members, list) or not members:
        raise ConfigError(f"{path}: {key}.members must be a non-empty list of {{ pattern, since }} tables")
    members = tuple(_member(path, f"{key}.members[{i}]", raw_member) for i, raw_member in enumerate(members))
    return Tier(name, description.strip(), members)


def _member(path: Path, key: str, raw: Any) -> Member:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {key} must be a table like {{ pattern = \"gpt-4o\", since = 2024-05-13 }}")
    _no_unknown_keys(path, key, raw, _MEMBER_KEYS)
    patterns = raw.get("pattern")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError(f"{path}: {key}.pattern must be a glob or a non-empty list of globs, got {patterns!r}")
    for pattern in patterns:
        # Names are compared normalised, so a pattern in any other spelling could never match.
        if normalise_model(pattern) != pattern:
            raise ConfigError(
                f"{path}: {key}.pattern {pattern!r} can never match a normalised model name; "
                f"write {normalise_model(pattern)!r}"
            )
    since = raw.get("since")
    if not isinstance(since, date) or isinstance(since, datetime):
        raise ConfigError(f"{path}: {key}.since must be a TOML date such as 2024-05-13, got {since!r}")
    provider = raw.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise ConfigError(f"{path}: {key}.provider must be a provider name, got {provider!r}")
    return Member(tuple(patterns), since, provider.lower() if provider else None)


def _no_unknown_keys(path: Path, key: str, raw: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ConfigError(f"{path}: {key}.{extra[0]} is not a known key (expected {', '.join(sorted(allowed))})")
