"""The alert commands through Typer's runner, on real database files: alerts, subscribe,
silence, deliver; and a live poll right after the shipped-history backfill announcing nothing."""

from __future__ import annotations

import json
from datetime import timedelta

from typer.testing import CliRunner

import bot.cli_alerts  # noqa: F401  (registers the alert commands)
from bot.cli import app
from storage import open_db
from tests.detectors.builders import T0, Feed, catalog, q
from tests.test_cli import serve_all, write_config

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def history_db(path):
    db = open_db(path)
    feed = Feed(db, "litellm")
    feed.poll([*catalog(5), q("o3", "10", "40")])
    feed.poll([*catalog(5), q("o3", "2", "8"), q("gpt-5", "1.25", "10")], at=T0 + timedelta(days=2))
    db.close()
    return path


def test_a_live_poll_right_after_the_backfill_announces_nothing(tmp_path, source_server, fixtures):
    serve_all(source_server, fixtures)
    cfg = write_config(tmp_path, source_server)
    cfg.write_text(cfg.read_text().replace("backfill = false", "backfill = true"))
    assert "new database: loaded" in invoke("poll", "--config", cfg).stderr
    assert json.loads(invoke("alerts", "--config", cfg, "--json").stdout) == []
    # The next cycle (every upstream answers 304 now) has nothing to say either.
    invoke("poll", "--config", cfg)
    assert json.loads(invoke("alerts", "--config", cfg, "--json").stdout) == []


def test_alerts_lists_filters_and_prints_json(tmp_path):
    db = history_db(tmp_path / "a.db")
    everything = json.loads(invoke("alerts", "--db", db, "--json").stdout)
    assert [(a["kind"], a["model"], a["field"]) for a in everything] == [
        ("price_cut", "o3", "input_mtok"), ("price_cut", "o3", "output_mtok"), ("new_model", "gpt-5", None)
    ]
    cuts = json.loads(invoke("alerts", "--db", db, "--kind", "price_cut", "--since", "2025-06-02", "--json").stdout)
    assert len(cuts) == 2 and cuts[1]["old_mtok"] == 40 and cuts[1]["pct_change"] == -80
    assert json.loads(invoke("alerts", "--db", db, "--since", "2025-06-04", "--json").stdout) == []
    table = invoke("alerts", "--db", db)
    assert table.exit_code == 0 and "o3" in table.stdout and "-80%" in table.stdout and "$40" in table.stdout
    assert invoke("alerts", "--db", db, "--kind", "cheaper").exit_code == 2
    assert "not a date" in invoke("alerts", "--db", db, "--since", "last week").stderr


def test_subscriptions_and_silences_round_trip(tmp_path):
    db = tmp_path / "s.db"
    assert invoke("subscribe", "slack:C1", "--provider", "OpenAI", "--model", "o3*", "--min-pct", "20", "--by", "ana", "--db", db).exit_code == 0
    assert invoke("subscribe", "nowhere", "--db", db).exit_code == 2
    [sub] = json.loads(invoke("subscriptions", "--db", db, "--json").stdout)
    assert (sub["channel"], sub["providers"], sub["models"], sub["min_pct"], sub["kinds"]) == ("slack:C1", ["openai"], ["o3*"], 20.0, None)
    made = invoke("silence", "openrouter/*", "--for", "2d", "--by", "ana", "--reason", "bulk reprice", "--db", db)
    assert made.exit_code == 0 and "silence #1: openrouter/* in every channel" in made.stdout
    [silence] = json.loads(invoke("silences", "--db", db, "--json").stdout)
    assert (silence["pattern"], silence["channel"], silence["created_by"], silence["reason"]) == ("openrouter/*", None, "ana", "bulk reprice")
    one = invoke("silence", "o3*", "--for", "1h", "--by", "ana", "--reason", "noisy", "--channel", "slack:C1", "--db", db)
    assert one.exit_code == 0 and "silence #2: o3* in slack:C1" in one.stdout
    assert [s["channel"] for s in json.loads(invoke("silences", "--db", db, "--json").stdout)] == [None, "slack:C1"]
    assert invoke("unsilence", "2", "--db", db).exit_code == 0
    assert invoke("silence", "x", "--for", "soon", "--by", "a", "--reason", "b", "--db", db).exit_code == 2
    assert invoke("unsilence", "1", "--db", db).exit_code == 0
    assert json.loads(invoke("silences", "--db", db, "--json").stdout) == []
    assert len(json.loads(invoke("silences", "--all", "--db", db, "--json").stdout)) == 2
    assert invoke("unsubscribe", str(sub["id"]), "--db", db).exit_code == 0
    assert invoke("unsubscribe", str(sub["id"]), "--db", db).exit_code == 1


def test_deliver_once_posts_due_messages_to_the_console_file(tmp_path):
    db_path = tmp_path / "d.db"
    invoke("subscribe", "console:", "--db", db_path)
    history_db(db_path)  # polled in 2025: long due now
    out = tmp_path / "out.txt"
    result = invoke("deliver", "--once", "--console-file", out, "--db", db_path)
    assert result.exit_code == 0, result.output
    assert "batch 1 → console: sent (3 alerts)" in result.stderr
    text = out.read_text()
    assert "1 price cut, 1 new model" in text
    assert "▼ o3 (openai): input $10 → $2 (-80%); output $40 → $8 (-80%) per Mtok · litellm" in text
    assert invoke("deliver", "--once", "--console-file", out, "--db", db_path).stderr == ""
