"""Replay as a backtest on real history: LiteLLM (2024-01 to 2025-09) and genai-prices
(2025-06 to 2026-07) replayed into one database, their alerts written as JSON lines and checked
against the snapshots themselves."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bot.cli_alerts  # noqa: F401  (registers the alert commands)
from bot.cli import app
from bot.pipeline import snapshot_time, snapshots
from bot.sources import SOURCES
from storage import open_db

runner = CliRunner()
SERIES = ("litellm", "genai-prices")
KEYS = ["kind", "observed_at", "source", "provider", "model", "field", "old_mtok", "new_mtok", "pct_change", "status"]


@pytest.fixture(scope="module")
def backtest(shared_data, tmp_path_factory):
    """Both series replayed once into one database; (database path, alerts by source)."""
    folder = tmp_path_factory.mktemp("backtest")
    db = folder / "backtest.db"
    found = {}
    for source in SERIES:
        out = folder / f"{source}.jsonl"
        result = runner.invoke(app, ["replay", str(shared_data / "replay" / source), "--source", source, "--db", str(db), "--alerts-jsonl", str(out)])
        assert result.exit_code == 0, result.output
        assert "Alerts from this replay" in result.stdout and "pending dropped:" in result.stdout and "suspect polls:" in result.stdout
        found[source] = [json.loads(line) for line in out.read_text().splitlines()]
    return db, found


def test_o3_june_2025_output_cut_is_a_confirmed_price_cut(backtest):
    _, found = backtest
    [cut] = [a for a in found["litellm"] if a["model"] == "o3" and a["field"] == "output_mtok"]
    assert {key: cut[key] for key in KEYS} == {
        "kind": "price_cut",
        "observed_at": "2025-06-11T00:36:50Z",
        "source": "litellm",
        "provider": "openai",
        "model": "o3",
        "field": "output_mtok",
        "old_mtok": 40,
        "new_mtok": 8,
        "pct_change": -80,
        "status": "confirmed",
    }
    assert list(cut)[: len(KEYS)] == KEYS


def _catalogs(directory: Path, source: str, wanted: set[int]) -> tuple[list[str], dict[int, dict]]:
    files = snapshots(directory)
    times = [f"{snapshot_time(path):%Y-%m-%dT%H:%M:%SZ}" for path in files]
    parsed = {}
    for index in sorted(wanted):
        at = snapshot_time(files[index])
        catalog = SOURCES[source].parse(gzip.decompress(files[index].read_bytes()), at)
        parsed[index] = {(quote.provider, quote.model): quote for quote in catalog.quotes}
    return times, parsed


@pytest.mark.parametrize("source", SERIES)
def test_every_alert_is_a_real_difference_between_consecutive_snapshots(backtest, shared_data, source):
    _, found = backtest
    rows = found[source]
    assert len(rows) > 100
    directory = shared_data / "replay" / source
    times = [f"{snapshot_time(path):%Y-%m-%dT%H:%M:%SZ}" for path in snapshots(directory)]
    at = {row["observed_at"]: times.index(row["observed_at"]) for row in rows}
    times, catalogs = _catalogs(directory, source, {i - back for i in at.values() for back in (0, 1, 2) if i - back >= 0})
    for row in rows:
        index = at[row["observed_at"]]
        key = (row["provider"], row["model"])
        now, before = catalogs[index], catalogs[index - 1]
        if row["kind"] in ("price_cut", "price_hike"):
            old, new = getattr(before[key], row["field"]), getattr(now[key], row["field"])
            assert (float(old), float(new)) == (row["old_mtok"], row["new_mtok"]), row
            assert (new < old) == (row["kind"] == "price_cut"), row
            assert row["pct_change"] == pytest.approx(float((new - old) / old * 100), abs=0.005)
            assert abs(Decimal(str(row["pct_change"]))) >= 10
        elif row["kind"] == "new_model":
            assert key in now and all(key not in catalogs[i] for i in (index - 1, index - 2) if i in catalogs), row
        elif row["kind"] == "model_removed":
            assert key not in now and key not in before and key in catalogs[index - 2], row
        else:
            pytest.fail(f"unexpected alert kind in a replay: {row}")


def test_replaying_again_adds_no_alert(backtest, shared_data):
    db_path, found = backtest
    db = open_db(db_path)
    before = db["alerts"].count
    db.close()
    assert before == sum(len(rows) for rows in found.values())  # nothing was dropped
    for source in SERIES:
        result = runner.invoke(app, ["replay", str(shared_data / "replay" / source), "--source", source, "--db", str(db_path)])
        assert "0 snapshots replayed" in result.stdout
    db = open_db(db_path)
    assert db["alerts"].count == before
    db.close()
