"""Structured logs: `--log-format json` (or `log_format = "json"`) gives one JSON object a line,
carrying the ids of the poll, the alert and the delivery each line is about."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

import bot.cli_alerts  # noqa: F401  (registers subscribe and deliver on the app)
from bot.cli import app
from storage import open_db
from tests.reliability.catalogs import render, rows

runner = CliRunner()


def config(tmp_path: Path, server) -> Path:
    path = tmp_path / "dw.toml"
    off = "".join(f"[sources.{name}]\nenabled = false\n" for name in ("openrouter", "genai-prices", "llm-prices", "models-dev", "bundled"))
    path.write_text(f'db = "{tmp_path / "dw.db"}"\nbackfill = false\n[alerts]\ngroup_wait = "1s"\n{off}[sources.litellm]\nurl = "{server.url("/litellm.json")}"\n')
    return path


def json_lines(stderr: str) -> list[dict]:
    """The log lines of a command's stderr (its own messages to people are plain text)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def invoke(*args: object, env: dict | None = None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == 0, result.output
    return result


def test_poll_alert_and_delivery_lines_carry_their_ids(tmp_path, source_server):
    cfg = config(tmp_path, source_server)
    source_server.serve("/litellm.json", render("litellm", rows()))
    first = json_lines(invoke("--log-format", "json", "poll", "--config", cfg).stderr)
    invoke("subscribe", "console:", "--config", cfg)
    source_server.serve("/litellm.json", render("litellm", [rows()[0].scaled("0.5"), *rows()[1:]]))
    second = json_lines(invoke("--log-format", "json", "poll", "--config", cfg).stderr)
    time.sleep(1.1)  # the batch's group_wait
    delivered = json_lines(invoke("--log-format", "json", "deliver", "--once", "--config", cfg).stderr)

    for line in first + second + delivered:
        assert {"ts", "level", "logger", "message"} <= set(line) and line["ts"].endswith("Z")
    db = open_db(tmp_path / "dw.db")
    poll_ids = [row[0] for row in db.execute("SELECT id FROM polls ORDER BY id")]
    alert_ids = [row[0] for row in db.execute("SELECT id FROM alerts ORDER BY id")]
    [batch] = [row[0] for row in db.execute("SELECT DISTINCT batch FROM outbox")]

    polled = [line for line in first + second if "poll_id" in line and line["logger"] == "bot.pipeline"]
    assert [(line["poll_id"], line["source"], line["status"]) for line in polled] == [(poll_ids[0], "litellm", "ok"), (poll_ids[1], "litellm", "ok")]
    assert polled[1]["alert_ids"] == alert_ids and len(alert_ids) == 2  # input and output cut
    raised = [line for line in second if "alert_id" in line]
    assert [(line["alert_id"], line["poll_id"], line["kind"]) for line in raised] == [(alert_id, poll_ids[1], "price_cut") for alert_id in alert_ids]
    [sent] = [line for line in delivered if "delivery_id" in line]
    assert (sent["delivery_id"], sent["channel"], sent["alert_ids"], sent["state"]) == (batch, "console:", alert_ids, "sent")


def test_the_config_can_ask_for_json_logs_and_the_flag_wins(tmp_path, source_server):
    cfg = config(tmp_path, source_server)
    source_server.serve("/litellm.json", b"down", status=503)
    result = runner.invoke(app, ["poll", "--config", str(cfg)], env={"DEFLATION_WATCH_LOG_FORMAT": "json"})
    [line] = [line for line in json_lines(result.stderr) if "poll_id" in line]
    assert (line["status"], line["level"]) == ("failed", "info") and "HTTP 503" in line["message"]
    result = runner.invoke(app, ["--log-format", "text", "--log-level", "info", "poll", "--config", str(cfg)], env={"DEFLATION_WATCH_LOG_FORMAT": "json"})
    assert json_lines(result.stderr) == [] and " INFO bot.pipeline: poll 2 of litellm: failed: HTTP 503" in result.stderr


def test_bad_logging_options_are_refused(tmp_path, source_server):
    result = runner.invoke(app, ["--log-format", "xml", "poll", "--config", str(config(tmp_path, source_server))])
    assert result.exit_code == 2 and "--log-format must be one of text, json, got 'xml'" in result.stderr
    result = runner.invoke(app, ["poll", "--config", str(config(tmp_path, source_server))], env={"DEFLATION_WATCH_LOG_LEVEL": "loud"})
    assert result.exit_code == 2 and "log_level must be one of debug, info, warning, error, got 'loud'" in result.stderr
