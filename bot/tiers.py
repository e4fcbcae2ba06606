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
        { pattern = "llama-3.3-70b*", since = 2024-12-06, provider = "groq", open_weight = true },
    ]

`pattern` is an `fnmatch` glob, or a list of them, matched against the normalised model name
(`bot.naming.normalise_model`); `since` is a TOML date; `provider`, if given, limits the member
to what that seller charges; `open_weight = true` marks a model whose weights are published
(default false). The tier file, not the sources, says which members are open-weight: LiteLLM
does not say at all, and models.dev calls the same model open from one host and closed from
another.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase, translate
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.naming import normalise_model

SHIPPED = Path(__file__).parent / "data" / "tiers.toml"

_TIER_KEYS = {"description", "members"}
_MEMBER_KEYS = {"pattern", "since", "provider", "open_weight"}
_SET_ASIDE_KEYS = {"source", "provider", "pattern", "until", "reason"}


@dataclass(frozen=True, slots=True)
class Member:
    patterns: tuple[str, ...]
    since: date
    provider: str | None = None
    open_weight: bool = False
    # The patterns as one compiled regex: tiers are matched against thousands of keys.
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile("|".join(translate(p) for p in self.patterns)))

    def matches(self, model: str, provider: str) -> bool:
        """Whether a listing (a source's model key and its seller) is this member."""
        return self.matches_name(normalise_model(model), provider)

    def matches_name(self, name: str, provider: str) -> bool:
        """`matches` for a name that is already normalised."""
        if self.provider is not None and self.provider != provider.lower():
            return False
        return self._regex.match(name) is not None


@dataclass(frozen=True, slots=True)
class SetAside:
    """Prices a source got wrong that no floor should use: those of the matching listings that
    took effect before `until`. For errors the outlier guard cannot see, because no other
    seller listed the model at the time (see `bot.analytics.tier_series`)."""

    source: str
    pattern: str  # fnmatch glob on the normalised model name
    until: date
    reason: str
    provider: str | None = None

    def matches(self, source: str, provider: str, model: str) -> bool:
        """Whether a listing (source, seller, the source's model key) is covered."""
        if source != self.source or (self.provider is not None and self.provider != provider.lower()):
            return False
        return fnmatchcase(normalise_model(model), self.pattern)


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    description: str
    members: tuple[Member, ...]
    set_aside: tuple[SetAside, ...] = ()  # the file's [[set_aside]] entries, shared by every tier
    # Every member's patterns as one regex, to pass over the thousands of names no member has.
    _any: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_any", re.compile("|".join(f"(?:{m._regex.pattern})" for m in self.members)))

    def joined(self, model: str, provider: str) -> date | None:
        """The day a listing joined this tier (its earliest matching member), or None."""
        return min((m.since for m in self.matching(model, provider)), default=None)

    def open_weight(self, model: str, provider: str) -> bool:
        """Whether a member this listing matches is marked open-weight in the tier file."""
        return any(m.open_weight for m in self.matching(model, provider))

    def could_match(self, name: str) -> bool:
        """Whether some member's pattern matches this normalised name (whatever the seller)."""
        return self._any.match(name) is not None

    def matching(self, model: str, provider: str) -> list[Member]:
        """The members a listing (a source's model key and its seller) belongs to."""
        name = normalise_model(model)
        if self._any.match(name) is None:
            return []
        return [m for m in self.members if m.matches_name(name, provider)]


def members_on(tier: Tier, day: date) -> tuple[Member, ...]:
    """The members that had joined `tier` by `day` (an aware datetime counts by its UTC date)."""
    if isinstance(day, datetime):
        day = day.astimezone(UTC).date()
    return tuple(m for m in tier.members if m.since <= day)


#: The tiers of each file read, by (path, modification time, size): every `cheapest` and
#: `trend` needs them, and parsing the file and compiling its patterns cost more than the answer.
_READ: dict[tuple[str, int, int], dict[str, Tier]] = {}


def load_tiers(path: Path | str | None = None) -> dict[str, Tier]:
    """Read and check a tiers file (the shipped one by default), in file order.

    Raises ConfigError naming the file and the offending key, so a user's edit fails at load
    time rather than silently matching nothing. A file is read again only once it has changed.
    """
    path = Path(path) if path is not None else SHIPPED
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tiers file ({exc.strerror})") from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _READ:
        tiers = _read_tiers(path)
        _READ.clear()  # one file is in use at a time; keep no history of edits
        _READ[key] = tiers
    return dict(_READ[key])


def _read_tiers(path: Path) -> dict[str, Tier]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tiers file ({exc.strerror})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file ({exc})") from None
    extra = sorted(set(data) - {"tiers", "set_aside"})
    if extra:
        raise ConfigError(
            f"{path}: unknown top-level key {extra[0]!r}; only [tiers.<name>] tables and [[set_aside]] entries belong here"
        )
    tiers = data.get("tiers")
    if not isinstance(tiers, dict) or not tiers:
        raise ConfigError(f"{path}: tiers: define at least one [tiers.<name>] table")
    entries = data.get("set_aside", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: set_aside must be written as [[set_aside]] tables")
    set_aside = tuple(_set_aside(path, f"set_aside[{i}]", raw) for i, raw in enumerate(entries))
    return {name: replace(_tier(path, name, raw), set_aside=set_aside) for name, raw in tiers.items()}


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
        _check_pattern(path, key, pattern)
    open_weight = raw.get("open_weight", False)
    if not isinstance(open_weight, bool):
        raise ConfigError(f"{path}: {key}.open_weight must be true or false, got {open_weight!r}")
    return Member(tuple(patterns), _date(path, key, raw, "since", "2024-05-13"), _provider(path, key, raw), open_weight)


def _set_aside(path: Path, key: str, raw: Any) -> SetAside:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {key} must be a table with source, pattern, until and reason")
    _no_unknown_keys(path, key, raw, _SET_ASIDE_KEYS)
    for name in ("source", "pattern", "reason"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise ConfigError(f"{path}: {key}.{name} must be a non-empty string, got {raw.get(name)!r}")
    _check_pattern(path, key, raw["pattern"])
    until = _date(path, key, raw, "until", "2024-07-01")
    return SetAside(raw["source"], raw["pattern"], until, raw["reason"].strip(), _provider(path, key, raw))


def _date(path: Path, key: str, raw: dict[str, Any], name: str, example: str) -> date:
    value = raw.get(name)
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ConfigError(f"{path}: {key}.{name} must be a TOML date such as {example}, got {value!r}")
    return value


def _provider(path: Path, key: str, raw: dict[str, Any]) -> str | None:
    """The optional seller a member or entry is limited to, in lower case as stored."""
    provider = raw.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise ConfigError(f"{path}: {key}.provider must be a provider name, got {provider!r}")
    return provider.lower() if provider else None


def _check_pattern(path: Path, key: str, pattern: str) -> None:
    # Names are compared normalised, so a pattern in any other spelling could never match.
    if normalise_model(pattern) != pattern:
        raise ConfigError(
            f"{path}: {key}.pattern {pattern!r} can never match a normalised model name; write {normalise_model(pattern)!r}"
        )


def _no_unknown_keys(path: Path, key: str, raw: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ConfigError(f"{path}: {key}.{extra[0]} is not a known key (expected {', '.join(sorted(allowed))})")
