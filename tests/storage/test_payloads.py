"""Payloads are kept exactly, once per content, as small deltas of their predecessor."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest

from storage import payloads

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def catalogue(version: int, models: int = 2000) -> bytes:
    return json.dumps({f"model-{i}": {"input": i * 0.001, "output": i * 0.002 + (version if i == 7 else 0)} for i in range(models)}).encode()


def body_size(db, digest: str) -> int:
    return db.execute("SELECT length(body) FROM payloads WHERE hash = ?", [digest]).fetchone()[0]


def test_round_trip_and_deduplication(fresh_db):
    first = payloads.keep(fresh_db, catalogue(0), T0)
    assert payloads.keep(fresh_db, catalogue(0), T0, base=first) == first
    assert fresh_db["payloads"].count == 1
    assert payloads.load(fresh_db, first) == catalogue(0)


def test_a_nearly_identical_payload_is_stored_as_a_small_delta(fresh_db):
    first = payloads.keep(fresh_db, catalogue(0), T0)
    second = payloads.keep(fresh_db, catalogue(1), T0, base=first)
    assert payloads.load(fresh_db, second) == catalogue(1)
    assert body_size(fresh_db, second) < body_size(fresh_db, first) / 20


def test_delta_chains_are_cut_by_keyframes(fresh_db):
    digest = payloads.keep(fresh_db, catalogue(0), T0)
    kinds = []
    for version in range(1, 2 * payloads.MAX_CHAIN + 1):
        digest = payloads.keep(fresh_db, catalogue(version), T0, base=digest)
        body = fresh_db.execute("SELECT body FROM payloads WHERE hash = ?", [digest]).fetchone()[0]
        kinds.append(body[:1])
        assert payloads.load(fresh_db, digest) == catalogue(version)
    assert kinds.count(b"K") == 2
    depths = [body[1] for body, in fresh_db.execute("SELECT body FROM payloads") if body[:1] == b"D"]
    assert max(depths) == payloads.MAX_CHAIN - 1


def test_missing_payload(fresh_db):
    with pytest.raises(KeyError, match="no stored payload"):
        payloads.load(fresh_db, "0" * 64)


def test_real_replay_series_stays_small(fresh_db, shared_data):
    files = sorted((shared_data / "replay" / "litellm").glob("*.json.gz"))
    digest = None
    raw_total = 0
    for path in files:
        raw = gzip.decompress(path.read_bytes())
        raw_total += len(raw)
        digest = payloads.keep(fresh_db, raw, T0, base=digest)
        assert payloads.load(fresh_db, digest) == raw
    stored = fresh_db.execute("SELECT SUM(length(body)) FROM payloads").fetchone()[0]
    assert stored < 200_000 < raw_total / 100
