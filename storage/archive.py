"""Price history in and out as one compact JSON document: `export` writes it, `load` fills a
fresh database with it. This is how a new install starts with a curve from 2024 on."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from datetime import datetime

import sqlite_utils

from storage import payloads, polls, transaction
from storage.times import iso

FORMAT = 1
#: Status of the poll row that records a source loaded from a history document.
BACKFILL = "backfill"


def export(db: sqlite_utils.Database, sources: Iterable[str] | None = None, now: datetime | None = None) -> dict:
    """Every model of the given sources with its intervals as compact rows
    `[valid_from, valid_to, input_mtok, output_mtok, cache_read_mtok, flag]`."""
    names = list(sources) if sources else [row[0] for row in db.execute("SELECT DISTINCT source FROM models ORDER BY source")]
    models = []
    for name in names:
        rows = db.execute(
            """SELECT m.id, m.provider, m.model, m.display_name, m.context_window, m.open_weight, m.removed_at
               FROM models m WHERE m.source = ? ORDER BY m.provider, m.model""",
            [name],
        ).fetchall()
        for model_id, provider, model, display_name, context_window, open_weight, removed_at in rows:
            intervals = db.execute(
                """SELECT valid_from, valid_to, input_mtok, output_mtok, cache_read_mtok, flag
                   FROM prices WHERE model_id = ? ORDER BY valid_from, id""",
                [model_id],
            ).fetchall()
            models.append(
                {
                    "source": name,
                    "provider": provider,
                    "model": model,
                    "display_name": display_name,
                    "context_window": context_window,
                    "open_weight": None if open_weight is None else bool(open_weight),
                    "removed_at": removed_at,
                    "intervals": [list(interval) for interval in intervals],
                }
            )
    return {"format": FORMAT, "exported_at": iso(now) if now else None, "sources": names, "models": models}


def decode(raw: bytes) -> dict:
    """Read a document as written by `export` (gzipped or not) and check its format."""
    document = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a price history document of format {FORMAT}")
    return document


def load(db: sqlite_utils.Database, raw: bytes, at: datetime) -> int:
    """Add the document's history for every source the database has no models of yet (so
    loading twice, or over live data, changes nothing); return the intervals added.

    The document itself is kept as a payload, referenced by one `backfill` poll per source
    loaded, so `reparse` can rebuild those sources from it."""
    document = decode(raw)
    added = 0
    with transaction(db):
        present = {row[0] for row in db.execute("SELECT DISTINCT source FROM models")}
        fresh = [name for name in document["sources"] if name not in present]
        if not fresh:
            return 0
        digest = payloads.keep(db, raw, at)
        for name in fresh:
            count, models = insert_source(db, document, name)
            polls.insert(
                db,
                polls.Poll(source=name, started_at=at, finished_at=at, observed_at=at, status=BACKFILL),
                models_seen=models,
                changes=0,
                payload_hash=digest,
            )
            added += count
    return added


def insert_source(db: sqlite_utils.Database, document: dict, source: str) -> tuple[int, int]:
    """Insert one source's models and intervals from `document`; return (intervals, models)."""
    intervals = models = 0
    for item in document["models"]:
        if item["source"] != source or not item["intervals"]:
            continue
        cursor = db.execute(
            """INSERT INTO models (source, provider, model, display_name, context_window, open_weight, first_seen, removed_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                source,
                item["provider"],
                item["model"],
                item["display_name"],
                item["context_window"],
                None if item["open_weight"] is None else int(item["open_weight"]),
                item["intervals"][0][0],
                item["removed_at"],
            ],
        )
        db.conn.executemany(
            """INSERT INTO prices (model_id, valid_from, valid_to, input_mtok, output_mtok, cache_read_mtok, flag)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [[cursor.lastrowid, *interval] for interval in item["intervals"]],
        )
        intervals += len(item["intervals"])
        models += 1
    return intervals, models
