"""Detectors: one module per rule, run in this order on every ingested poll (live or replayed),
inside the poll's own transaction. Each module's docstring states its rule and its guards.

`price_move` runs before `pending` so that a move which reverts or replaces a held one is seen
as such before the held one could be confirmed.
"""

from __future__ import annotations

from bot.detectors import model_removed, new_model, pending, price_move, source_health, source_suspect
from bot.detectors.base import Context, Finding, Resolution, match_key

DETECTORS = (price_move, pending, new_model, model_removed, source_suspect, source_health)

__all__ = ["DETECTORS", "Context", "Finding", "Resolution", "match_key"]
