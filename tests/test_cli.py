"""The command line, run through Typer's runner against a real database file and a loopback
source server: poll, history, replay, reparse, export and backfill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.sources import SOURCES
from storage import open_db

runner = CliRunner()

#: Real payloads (trimmed) per source, for the loopback server.
PAYLOADS = {
    "openrouter": "openrouter/models-2025-02-08.json",
    "litellm": "litellm/prices-2025-09-01.json",
    "genai-prices": "genai-prices/v2-data-2026-08-21.json",
    "llm-prices": "llm-prices/current-v1-2026-08-05.json",
    "models-dev": "models-dev/api-2026-05-21.json",
}


def write_config(tmp_path: Path, server, *, broken: tuple[str, ...] = ()) -> Path:
    lines = []
    for name in SOURCES:
        if name not in PAYLOADS:
            lines.append(f"[sources.{name}]\nenabled = false\n")
            continue
        path = f"/{name}.json"
        lines.append(f'[sources.{name}]\nurl = "{server.url(path)}"\n')
    path = tmp_path / "dw.toml"
    path.write_text(f'db = "{tmp_path / "dw.db"}"\nbackfill = false\n' + "\n".join(lines))
    return path


def serve_all(server, fixtures: Path, *, broken: tuple[str, ...] = ()) -> None:
    for name, file in PAYLOADS.items():
        if name in broken:
            server.serve(f"/{name}.json", b"upstream down", status=503)
        else:
            server.serve(f"/{name}.json", (fixtures / file).read_bytes())


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def counts(db_path: Path) -> dict[str, int]:
    db = open_db(db_path)
    try:
        return {name: db[name].count for name in ("polls", "models", "prices")}
    finally:
        db.close()


def test_poll_all_sources_then_a_second_identical_poll_adds_no_prices(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    first = invoke("poll", "--config", cfg, "--json")
    assert first.exit_code == 0, first.output
    reports = {r["source"]: r for r in json.loads(first.stdout)}
    assert set(reports) == set(PAYLOADS)
    assert all(r["status"] == "ok" and r["models_seen"] > 0 for r in reports.values())
    after_first = counts(tmp_path / "dw.db")
    # The server now answers 304 for every source: each poll writes its row and nothing else
    # (genai-prices dates its prices, so its stored payload is read again, finding no change).
    second = invoke("poll", "--config", cfg, "--json")
    assert {(r["status"], r["changes"]) for r in json.loads(second.stdout)} == {("not_modified", 0)}
    assert counts(tmp_path / "dw.db") == {**after_first, "polls": after_first["polls"] + len(PAYLOADS)}
    conditional = [r for r in source_server.requests if "If-None-Match" in r.headers]
    assert len(conditional) == len(PAYLOADS) and all(r.status == 304 for r in conditional)


def test_identical_200_poll_adds_no_price_rows(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    for route in source_server.routes.values():
        route.etag = False  # an upstream without validators sends the whole body again
    cfg = write_config(tmp_path, source_server)
    invoke("poll", "--config", cfg, "--source", "litellm")
    before = counts(tmp_path / "dw.db")
    result = invoke("poll", "--config", cfg, "--source", "litellm", "--json")
    [report] = json.loads(result.stdout)
    assert (report["status"], report["changes"]) == ("ok", 0)
    assert counts(tmp_path / "dw.db") == {**before, "polls": before["polls"] + 1}


def test_a_failing_source_is_isolated(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures, broken=("litellm",))
    cfg = write_config(tmp_path, source_server)
    result = invoke("poll", "--config", cfg)
    assert result.exit_code == 0
    assert f"litellm: HTTP 503 from {source_server.url('/litellm.json')}" in result.stderr
    db = open_db(tmp_path / "dw.db")
    status = dict(db.execute("SELECT source, status FROM polls").fetchall())
    assert status == {"openrouter": "ok", "litellm": "failed", "genai-prices": "ok", "llm-prices": "ok", "models-dev": "ok"}
    assert db.execute("SELECT error FROM polls WHERE source = 'litellm'").fetchone()[0].startswith("HTTP 503")
    assert db.execute("SELECT COUNT(*) FROM models WHERE source = 'litellm'").fetchone()[0] == 0


def test_all_sources_failing_exits_1(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures, broken=tuple(PAYLOADS))
    result = invoke("poll", "--config", write_config(tmp_path, source_server))
    assert result.exit_code == 1
    assert result.stderr.count("HTTP 503") == len(PAYLOADS)


def test_malformed_payload_is_a_failed_poll_and_changes_nothing(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    invoke("poll", "--config", cfg, "--source", "litellm")
    before = counts(tmp_path / "dw.db")
    source_server.serve("/litellm.json", b"<html><body>Rate limited</body></html>")
    result = invoke("poll", "--config", cfg, "--source", "litellm")
    assert result.exit_code == 1
    assert "litellm: litellm: payload is not JSON" in result.stderr
    assert counts(tmp_path / "dw.db") == {**before, "polls": before["polls"] + 1}


def test_history_json_has_exactly_the_documented_keys(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    invoke("poll", "--config", cfg)
    result = invoke("history", "gpt-4o", "--config", cfg, "--source", "openrouter", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert list(row) == ["source", "provider", "model", "valid_from", "valid_to", "input_mtok", "output_mtok", "cache_read_mtok"]
    assert (row["provider"], row["model"], row["output_mtok"], row["valid_to"]) == ("openai", "openai/gpt-4o", 10, None)


def test_unknown_model_suggests_and_writes_nothing(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    invoke("poll", "--config", cfg)
    before = counts(tmp_path / "dw.db")
    result = invoke("history", "gpt-4p", "--config", cfg)
    assert result.exit_code == 1
    assert "No model named 'gpt-4p' is stored. Did you mean:" in result.stderr
    assert "gpt-4" in result.stderr
    assert counts(tmp_path / "dw.db") == before


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sources.litellm]\nevery = 'often'\n")
    result = invoke("poll", "--config", cfg)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: config: sources.litellm.every must be a duration such as \"6h\" or \"1d\", got 'often'"
    ]


def test_db_flag_wins_over_environment(tmp_path, monkeypatch, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    monkeypatch.setenv("DEFLATION_WATCH_DB", str(tmp_path / "env.db"))
    invoke("poll", "--config", cfg, "--source", "llm-prices", "--db", tmp_path / "flag.db")
    assert (tmp_path / "flag.db").exists() and not (tmp_path / "env.db").exists()


@pytest.mark.parametrize("source", ["litellm"])
def test_replay_litellm_shows_the_o3_june_2025_cut(tmp_path, shared_data, source):
    db = tmp_path / "replay.db"
    result = invoke("replay", shared_data / "replay" / source, "--source", source, "--db", db)
    assert result.exit_code == 0, result.output
    assert "101 snapshots replayed" in result.stdout
    history = json.loads(invoke("history", "o3", "--source", "litellm", "--db", db, "--json").stdout)
    o3 = [row for row in history if row["model"] == "o3"]
    outputs = [row["output_mtok"] for row in o3]
    assert 40 in outputs and outputs[-1] == 8
    cut = next(row for row in o3 if row["output_mtok"] == 8)
    before = o3[o3.index(cut) - 1]
    assert before["output_mtok"] == 40 and before["valid_to"] == cut["valid_from"]
    assert cut["valid_from"].startswith("2025-06")
    # Replaying the same folder again adds nothing.
    size = counts(db)
    again = invoke("replay", shared_data / "replay" / source, "--source", source, "--db", db)
    assert "0 snapshots replayed (101 already held)" in again.stdout
    assert counts(db) == size


def test_reparse_rebuilds_the_same_history(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    invoke("poll", "--config", cfg)
    before = json.loads(invoke("history", "gpt-4o", "--config", cfg, "--json").stdout)
    result = invoke("reparse", "--source", "openrouter", "--config", cfg)
    assert result.exit_code == 0, result.output
    assert "rebuilt from 1 stored payloads" in result.stdout
    assert json.loads(invoke("history", "gpt-4o", "--config", cfg, "--json").stdout) == before


def test_export_then_backfill_into_a_fresh_database(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    invoke("poll", "--config", cfg)
    out = tmp_path / "history.json.gz"
    assert invoke("export", out, "--config", cfg).exit_code == 0
    fresh = tmp_path / "fresh.db"
    loaded = invoke("backfill", out, "--db", fresh)
    assert loaded.exit_code == 0, loaded.output
    original = json.loads(invoke("history", "gpt-4o", "--config", cfg, "--json").stdout)
    assert json.loads(invoke("history", "gpt-4o", "--db", fresh, "--json").stdout) == original
    assert "loaded 0 price intervals" in invoke("backfill", out, "--db", fresh).stdout
    # The loaded sources can be rebuilt from the stored document.
    assert invoke("reparse", "--source", "litellm", "--db", fresh).exit_code == 0
    assert json.loads(invoke("history", "gpt-4o", "--db", fresh, "--json").stdout) == original


def test_first_poll_of_a_new_database_starts_from_the_shipped_history(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    cfg.write_text(cfg.read_text().replace("backfill = false", "backfill = true"))
    first = invoke("poll", "--config", cfg, "--source", "llm-prices")
    assert "new database: loaded" in first.stderr
    history = json.loads(invoke("history", "o3", "--source", "litellm", "--config", cfg, "--json").stdout)
    assert [row["output_mtok"] for row in history if row["model"] == "o3"] == [40, 8]
    assert "new database" not in invoke("poll", "--config", cfg, "--source", "llm-prices").stderr


def test_python_dash_m_bot_is_the_same_command():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=True)
    for command in ("poll", "history", "replay", "reparse", "export", "backfill", "demo"):
        assert command in result.stdout


@pytest.mark.parametrize("command", [["poll", "--source"], ["replay", ".", "--source"], ["reparse", "--source"]])
def test_unknown_source_is_refused(command):
    result = invoke(*command, "nope")
    assert result.exit_code == 2
    assert "unknown source 'nope'; known sources are openrouter, litellm" in result.stderr
