"""What a detector sees and what it says.

A detector is a module with `detect(ctx) -> Iterable[Finding | Resolution]`. It reads the poll
through `Context` (the changes storage worked out, the source's state before the poll) and
proposes new alerts (`ctx.finding(...)`, a `storage.alerts.NewAlert` of this poll) or settles
pending ones (`Resolution`). It writes nothing: the
caller (`bot.alerting`) stores, groups and routes what it yields, one item at a time and in
registry order, inside the poll's own transaction.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlite_utils

from bot.config import AlertSettings
from bot.naming import normalise_model
from bot.quotes import PRICE_FIELDS
from storage import alerts, polls
from storage.prices import Change

#: A new alert as a detector proposes it (see `Context.finding`).
Finding = alerts.NewAlert

#: Poll statuses that carried a catalog this poll was compared with.
CATALOG = ("ok", "suspect")
#: Provider spellings that name the same seller in different sources (LiteLLM `gemini`,
#: OpenRouter `mistralai`, `x-ai`, `meta-llama`), so one move matches across them.
PROVIDER_ALIASES = {"gemini": "google", "mistralai": "mistral", "x-ai": "xai", "meta-llama": "meta"}


@functools.lru_cache(maxsize=1 << 16)
def _normalised(model: str) -> str:
    return normalise_model(model)


def match_key(provider: str, model: str) -> str:
    """`provider/normalised-model`: how the same model is recognised across sources."""
    provider = provider.strip().lower()
    return f"{PROVIDER_ALIASES.get(provider, provider)}/{_normalised(model)}"


@dataclass(frozen=True, slots=True)
class Resolution:
    """A pending alert confirmed or dropped, and why."""

    alert_id: int
    status: str
    reason: str


@dataclass(slots=True)
class _Listing:
    key: tuple[str, str]
    listed: bool  # in the source's latest good catalog


class Context:
    """One poll of one source as the detectors see it, after storage wrote its changes."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        *,
        source: str,
        poll_id: int,
        observed_at: datetime,
        status: str,
        changes: Sequence[Change],
        settings: AlertSettings,
        threshold_pct: Decimal,
        health: str,
    ):
        self.db = db
        self.source = source
        self.poll_id = poll_id
        self.observed_at = observed_at
        self.status = status
        self.changes = changes
        self.settings = settings
        #: The smallest move stored as an alert: the global threshold, or a subscription's lower one.
        self.threshold_pct = threshold_pct
        #: The source's state before this poll: ok, stale (an open stale episode) or suspect
        #: (its last poll with a catalog was a partial one).
        self.health = health
        earlier_live = polls.find(db, source, ("ok", "not_modified", "suspect"), before=poll_id)
        #: The first catalog of a source is a baseline, not news; so is the first live catalog
        #: after a backfill, which catches up on an unknown stretch of time in one step.
        self.baseline = earlier_live is None and status in CATALOG
        first_live = polls.find(db, source, CATALOG, earliest=True)
        self.first_live_at: str | None = first_live["observed_at"] if first_live else None
        previous = polls.find(db, source, ("ok", "not_modified", "suspect", "backfill"), before=poll_id)
        self.previous_catalog_at: str | None = previous["observed_at"] if previous else None
        self._listings: dict[str, list[_Listing]] | None = None

    def finding(self, kind: str, **fields: Any) -> Finding:
        """A new alert of this poll. `new_value` completes the dedupe key: the new price for a
        move, the time an episode began for a source alert; a model alert gets its match key."""
        model = fields.get("model", "")
        key = match_key(fields.get("provider", ""), model) if model else None
        return Finding(kind, self.source, self.observed_at, self.poll_id, match_key=key, **fields)

    def changes_of(self, kind: str) -> list[Change]:
        return [change for change in self.changes if change.kind == kind]

    def first_price_at(self, provider: str, model: str) -> str | None:
        """When the earliest stored price of a model starts (upstream dates can predate the poll)."""
        row = self.db.execute(
            """SELECT MIN(p.valid_from) FROM prices p JOIN models m ON m.id = p.model_id
               WHERE m.source = ? AND m.provider = ? AND m.model = ?""",
            [self.source, provider, model],
        ).fetchone()
        return row[0] if row else None

    def current_price(self, provider: str, model: str, price_field: str) -> tuple[bool, Decimal | None]:
        """Whether the model is listed now, and its current price for `price_field`."""
        if price_field not in PRICE_FIELDS:  # a column name in the SQL below: only the known ones
            raise ValueError(f"not a price field: {price_field!r}")
        row = self.db.execute(
            f"""SELECT m.missing_polls = 0 AND m.removed_at IS NULL, p.{price_field}
                FROM models m LEFT JOIN prices p ON p.model_id = m.id AND p.valid_to IS NULL
                WHERE m.source = ? AND m.provider = ? AND m.model = ?""",
            [self.source, provider, model],
        ).fetchone()
        if row is None:
            return False, None
        return bool(row[0]), None if row[1] is None else Decimal(repr(row[1]))

    def other_key(self, provider: str, model: str, *, listed: bool) -> tuple[str, str] | None:
        """Another key of this source for the same model, listed now (`listed`) or absent now.

        The same model is the same key under another provider (LiteLLM's earliest files have
        no provider field, so `gpt-4` moved from `unknown` to `openai`) or the same normalised
        name under the same provider (genai-prices renamed OpenRouter's `claude-opus-4` to
        `anthropic/claude-opus-4` in 2026-06). A key replaced by another is a rename: neither
        its disappearance nor its successor's appearance is news.
        """
        listings = self._listing_index()
        for candidate in (*listings.get(f"key:{model}", ()), *listings.get(f"name:{provider}/{_normalised(model)}", ())):
            if candidate.key != (provider, model) and candidate.listed == listed:
                return candidate.key
        return None

    def _listing_index(self) -> dict[str, list[_Listing]]:
        if self._listings is None:
            index: dict[str, list[_Listing]] = defaultdict(list)
            rows = self.db.execute(
                "SELECT provider, model, missing_polls = 0 AND removed_at IS NULL FROM models WHERE source = ?", [self.source]
            )
            for provider, model, listed in rows:
                listing = _Listing((provider, model), bool(listed))
                index[f"key:{model}"].append(listing)
                index[f"name:{provider}/{_normalised(model)}"].append(listing)
            self._listings = index
        return self._listings
