"""The floor each capability tier is measured from: the last one announced, or the silent
baseline of the first check. `tier_floor` alerts compare today's floor with this row."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlite_utils

from storage.times import iso


def get(db: sqlite_utils.Database, tier: str) -> dict | None:
    row = next(db.query("SELECT * FROM tier_floors WHERE tier = ?", [tier]), None)
    return row and {**row, "usd_per_mtok": Decimal(row["usd_per_mtok"])}


def known(db: sqlite_utils.Database) -> bool:
    """Whether any tier has a floor yet (before that, every check is a baseline)."""
    return db.execute("SELECT 1 FROM tier_floors LIMIT 1").fetchone() is not None


def put(db: sqlite_utils.Database, tier: str, provider: str, model: str, usd_per_mtok: Decimal, alert_id: int | None, now: datetime) -> None:
    db.execute(
        """INSERT INTO tier_floors (tier, provider, model, usd_per_mtok, alert_id, updated_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (tier) DO UPDATE SET provider = excluded.provider, model = excluded.model,
               usd_per_mtok = excluded.usd_per_mtok, alert_id = excluded.alert_id, updated_at = excluded.updated_at""",
        [tier, provider, model, format(usd_per_mtok, "f"), alert_id, iso(now)],
    )
