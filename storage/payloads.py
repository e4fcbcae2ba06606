"""Raw payloads, compressed and deduplicated by content hash, so history can be re-derived
after a parser fix (`deflation-watch reparse`) without asking the upstream again."""

from __future__ import annotations

import hashlib
import zlib
from datetime import datetime

import sqlite_utils

from storage.times import iso


def content_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def keep(db: sqlite_utils.Database, payload: bytes, seen_at: datetime) -> str:
    """Store `payload` unless an identical one is stored already; return its hash."""
    digest = content_hash(payload)
    db.execute(
        "INSERT OR IGNORE INTO payloads (hash, size, body, first_seen) VALUES (?, ?, ?, ?)",
        [digest, len(payload), zlib.compress(payload, 9), iso(seen_at)],
    )
    return digest


def load(db: sqlite_utils.Database, digest: str) -> bytes:
    row = db.execute("SELECT body FROM payloads WHERE hash = ?", [digest]).fetchone()
    if row is None:
        raise KeyError(f"no stored payload with hash {digest}")
    return zlib.decompress(row[0])
