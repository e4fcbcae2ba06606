"""Raw payloads, compressed and deduplicated by content hash, so history can be re-derived
after a parser fix (`deflation-watch reparse`) without asking the upstream again.

Consecutive payloads of one source are nearly identical (a 600 KB catalogue in which a few
prices moved), so each is stored as a zstd delta against the source's previous payload: the
101 LiteLLM snapshots of 2024–2025 take about 50 KB instead of 2.3 MB as separate zlib
streams. A delta chain is cut every `MAX_CHAIN` payloads with a full frame, which bounds the
work of reading one back. A stored body starts with its frame type:

    b"K" + zstd(raw)                                  a keyframe
    b"D" + depth (1 byte) + base sha256 (32 bytes) + zstd(raw, dictionary = base raw)
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlite_utils
import zstandard

from storage.times import iso

LEVEL = 9  # 0.13 s for the whole LiteLLM replay at this level, within 10 % of level 19's size
MAX_CHAIN = 16
_KEY, _DELTA = b"K", b"D"


def content_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def keep(db: sqlite_utils.Database, payload: bytes, seen_at: datetime, base: str | None = None) -> str:
    """Store `payload` unless an identical one is stored already; return its hash. `base` is
    the hash of the same source's previous payload, which the new one is stored as a delta of."""
    digest = content_hash(payload)
    if db.execute("SELECT 1 FROM payloads WHERE hash = ?", [digest]).fetchone():
        return digest
    db.execute(
        "INSERT INTO payloads (hash, size, body, first_seen) VALUES (?, ?, ?, ?)",
        [digest, len(payload), _encode(db, payload, base), iso(seen_at)],
    )
    return digest


def _encode(db: sqlite_utils.Database, payload: bytes, base: str | None) -> bytes:
    row = db.execute("SELECT body FROM payloads WHERE hash = ?", [base]).fetchone() if base else None
    depth = row[0][1] if row and row[0][:1] == _DELTA else 0
    if row is None or depth + 1 >= MAX_CHAIN:
        return _KEY + zstandard.ZstdCompressor(level=LEVEL).compress(payload)
    dictionary = zstandard.ZstdCompressionDict(load(db, base), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    delta = zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary).compress(payload)
    return _DELTA + bytes([depth + 1]) + bytes.fromhex(base) + delta


def load(db: sqlite_utils.Database, digest: str) -> bytes:
    """The raw bytes of a stored payload (following its delta chain)."""
    row = db.execute("SELECT body FROM payloads WHERE hash = ?", [digest]).fetchone()
    if row is None:
        raise KeyError(f"no stored payload with hash {digest}")
    body = row[0]
    if body[:1] == _KEY:
        return zstandard.ZstdDecompressor().decompress(body[1:])
    base = load(db, body[2:34].hex())
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(body[34:])
