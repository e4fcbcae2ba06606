"""The cost-curve commands (trend, cheapest, margin, digest) through Typer's runner, on a real
database holding the shipped price history. Every figure the digest states is checked against
the `--json` output of the command that computes it."""

from __future__ import annotations

import json
import math
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import bot.cli_curve  # noqa: F401  (registers the commands on the app)
from bot import pipeline
from bot.cli import app
from storage import open_db, prices
from tests.test_charts import png_size

runner = CliRunner()
AS_OF = "2026-11-23"
POINT_KEYS = {"date", "usd_per_mtok", "model", "provider", "source", "open_weight"}


@pytest.fixture(scope="module")
def history_db(tmp_path_factory) -> Path:
    """A fresh database with the shipped real history loaded, shared by the tests here (read only)."""
    path = tmp_path_factory.mktemp("curve") / "history.db"
    db = open_db(path)
    assert pipeline.load_history(db) > 5000
    db.close()
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def run_json(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refit(points: list[dict]) -> float:
    """The annual decline of the points, fitted here with numpy: days since the first, ln price."""
    days = np.array([(date.fromisoformat(p["date"]) - date.fromisoformat(points[0]["date"])).days for p in points], float)
    slope = np.polyfit(days, np.log([p["usd_per_mtok"] for p in points]), 1)[0]
    return 1 - math.exp(365 * slope)


# trend


@pytest.mark.parametrize(("window", "window_days"), [("all", None), ("365d", 365), ("52w", 364)])
def test_trend_rate_is_the_fit_of_its_own_points(history_db, window, window_days):
    result = run_json("trend", "--tier", "gpt-4-class", "--window", window, "--as-of", AS_OF, "--db", history_db)
    assert {"points", "annual_decline", "fold_per_year", "window_days", "n_points"} <= set(result)
    assert result["window_days"] == window_days and result["n_points"] == len(result["points"])
    assert all(set(point) == POINT_KEYS for point in result["points"])
    assert result["points"][-1]["date"] == AS_OF
    assert abs(result["annual_decline"] - refit(result["points"])) < 1e-9
    assert abs(result["fold_per_year"] - 1 / (1 - result["annual_decline"])) < 1e-9


def test_trend_since_the_first_price_of_the_gpt_4_class_floor(history_db):
    result = run_json("trend", "--window", "all", "--as-of", AS_OF, "--db", history_db)  # the default tier
    assert result["tier"] == "gpt-4-class" and result["start"] == "2024-02-01"
    assert 0.8 < result["annual_decline"] < 0.9  # 86 %/yr on the shipped history
    first, last = result["points"][0], result["points"][-1]
    assert first["usd_per_mtok"] == 15.0 and first["open_weight"] is False
    assert last["provider"] == "deepinfra" and last["open_weight"] is True
    # The outlier guard and the tiers file keep LiteLLM's mistaken Vertex and Gemini prices out.
    assert not any("vertex_ai" in point["model"] for point in result["points"])
    assert min(p["usd_per_mtok"] for p in result["points"] if p["date"] < "2024-07-20") == 3.75


def test_trend_of_a_model(history_db):
    result = run_json("trend", "--model", "gpt-4o", "--provider", "openai", "--window", "all", "--as-of", AS_OF, "--db", history_db)
    assert result["model"] == "gpt-4o" and result["tier"] is None
    assert set(result["points"][0]) == {"date", "usd_per_mtok", "n_sources"}
    assert abs(result["annual_decline"] - refit(result["points"])) < 1e-9


def test_trend_prints_the_rate_the_verdict_and_the_floors(history_db):
    result = invoke("trend", "--window", "all", "--as-of", AS_OF, "--db", history_db)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "gpt-4-class floor, since its first price, to 2026-11-23: 86 %/yr (7.4×)" in text
    assert "running at 86 %/yr: faster than the 70 % thesis, slower than 10× a year" in text
    assert "cerebras/llama3.1-70b" in text


def test_trend_refuses_too_few_points_in_one_line(history_db):
    result = invoke("trend", "--window", "10d", "--as-of", AS_OF, "--db", history_db)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: Not enough data to fit a decline between 2026-11-13 and 2026-11-23: 11 daily prices over a "
        "10-day span; need at least 3 prices over 30 days."
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tier", "gpt-5-class"), "unknown tier 'gpt-5-class'; the tiers are frontier, gpt-4-class, small-fast"),
        (("--window", "3x"), "--window: '3x' is not a duration"),
        (("--window", "12h"), "--window must be whole days such as 365d or 90d, or all; got '12h'"),
        (("--tier", "frontier", "--model", "o3"), "give --tier or --model, not both"),
        (("--provider", "openai",), "--provider narrows a --model"),
        (("--as-of", "23/11/2026"), "--as-of must be a date such as 2026-11-23"),
    ],
)
def test_trend_usage_errors_exit_2(history_db, args, message):
    result = invoke("trend", *args, "--db", history_db)
    assert result.exit_code == 2 and message in result.stderr


def test_trend_of_an_unknown_model_suggests_names(history_db):
    result = invoke("trend", "--model", "gpt-4p", "--db", history_db)
    assert result.exit_code == 1 and "No model named 'gpt-4p' is stored. Did you mean:" in result.stderr


# cheapest


def test_cheapest_floor_is_the_trend_on_the_same_day(history_db):
    floor = run_json("cheapest", "gpt-4-class", "--as-of", AS_OF, "--db", history_db)
    assert set(floor) == {"tier", "as_of", "floor", "next", "open_weight_floor", "proprietary_floor", "set_aside"}
    assert floor["as_of"] == "2026-11-23T00:00:00+00:00"
    point = run_json("trend", "--as-of", AS_OF, "--db", history_db)["points"][-1]
    assert {key: floor["floor"][key] for key in POINT_KEYS - {"date"}} == {key: point[key] for key in POINT_KEYS - {"date"}}
    names = [row["name"] for row in [floor["floor"], *floor["next"]]]
    assert len(names) == 6 and len(set(names)) == 6
    prices_ = [row["usd_per_mtok"] for row in [floor["floor"], *floor["next"]]]
    assert prices_ == sorted(prices_)
    assert floor["open_weight_floor"]["open_weight"] is True and floor["proprietary_floor"]["open_weight"] is False
    assert floor["floor"]["usd_per_mtok"] == (3 * floor["floor"]["input_mtok"] + floor["floor"]["output_mtok"]) / 4


def test_cheapest_sets_aside_litellms_vertex_claude_3_opus(history_db):
    """April 2024: LiteLLM listed Vertex's claude-3-opus at $1.50/$7.50 while Anthropic and Bedrock charged $15/$75."""
    result = run_json("cheapest", "--as-of", "2024-05-01", "--db", history_db)
    assert result["floor"]["usd_per_mtok"] == 15.0
    assert [row["model"] for row in result["set_aside"]] == ["vertex_ai/claude-3-opus@20240229"]
    shown = " ".join(invoke("cheapest", "--as-of", "2024-05-01", "--db", history_db).stdout.split())
    assert "set aside by the outlier guard: vertex_ai/claude-3-opus@20240229" in shown


def test_cheapest_prints_a_table(history_db):
    result = invoke("cheapest", "small-fast", "--top", "2", "--as-of", AS_OF, "--db", history_db)
    assert result.exit_code == 0, result.output
    assert "Cheapest small-fast models at 2026-11-23 00:00 UTC" in result.stdout
    assert "floor" in result.stdout and "$0.0163" in result.stdout and "open-weight floor:" in result.stdout


def test_cheapest_of_an_unknown_tier(history_db):
    result = invoke("cheapest", "mid", "--db", history_db)
    assert result.exit_code == 2 and "unknown tier 'mid'" in result.stderr


def test_a_tiers_file_from_the_config(history_db, tmp_path):
    tiers = tmp_path / "tiers.toml"
    tiers.write_text('[tiers.opus]\ndescription = "d"\nmembers = [{ pattern = "claude-3-opus*", since = 2024-03-04 }]\n')
    cfg = tmp_path / "dw.toml"
    cfg.write_text(f'tiers = "{tiers}"\n')
    result = run_json("cheapest", "opus", "--as-of", "2024-05-01", "--config", cfg, "--db", history_db)
    assert result["floor"]["usd_per_mtok"] == 30.0
    broken = tmp_path / "broken.toml"
    broken.write_text('tiers = "nowhere.toml"\n')
    refused = invoke("cheapest", "opus", "--config", broken, "--db", history_db)
    assert refused.exit_code == 2 and "cannot read the tiers file" in refused.stderr


# margin


def costs(result: dict, rate: float) -> list[float]:
    [scenario] = [s for s in result["scenarios"] if s["rate"] == rate]
    return [year["cost"] for year in scenario["years"]]


def test_margin_reproduces_the_article():
    assert costs(run_json("margin", "40", "14", "--rate", "0.7", "--years", "2"), 0.7) == [14, 4.2, 1.26]
    assert costs(run_json("margin", "40", "14", "--rate", "0.3", "--years", "2"), 0.3) == [14, 9.8, 6.86]
    drop = run_json("margin", "40", "14", "--drop", "0.9", "--months", "24", "--years", "2")
    assert round(drop["scenarios"][0]["rate"] * 100, 1) == 68.4
    assert abs(costs(drop, drop["scenarios"][0]["rate"])[2] - 1.4) < 1e-9  # 90 % off 14 after 24 months
    shown = " ".join(invoke("margin", "40", "14", "--drop", "0.9", "--months", "24").stdout.split())
    assert "a 90 % drop over 24 months is 68.4 %/yr" in shown


def test_margin_without_a_rate_shows_the_plan_and_the_thesis_side_by_side():
    result = run_json("margin", "40", "14")
    assert [s["rate"] for s in result["scenarios"]] == [0.3, 0.7]
    assert result["years"] == 3 and result["clawback"] == 0.3
    year_1 = result["scenarios"][1]["years"][1]
    assert year_1 == {"year": 1, "cost": 4.2, "seat_price": 37.06, "gross_margin": pytest.approx((37.06 - 4.2) / 37.06)}
    shown = invoke("margin", "40", "14").stdout
    assert "@ 30 %/yr" in shown and "@ 70 %/yr" in shown and "$4.20" in shown and "88.7 %" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-40", "14"), "PRICE must be positive, got -40"),
        (("40", "-1"), "COST must not be negative, got -1"),
        (("40", "50"), "COST (50) is above PRICE (40)"),
        (("40", "14", "--rate", "1"), "--rate must be at least 0 and below 1 (0.7 = 70 %/yr), got 1"),
        (("40", "14", "--rate", "-0.1"), "--rate must be at least 0 and below 1"),
        (("40", "14", "--clawback", "1.5"), "--clawback must be between 0 and 1"),
        (("40", "fourteen"), "COST must be a number, got 'fourteen'"),
        (("40", "14", "--years", "-1"), "--years must be between 0 and 50"),
        (("40", "14", "--drop", "0.9"), "give --drop with --months"),
        (("40", "14", "--drop", "1", "--months", "24"), "--drop must be at least 0 and below 1"),
    ],
)
def test_margin_refuses_bad_inputs_with_exit_2(args, message):
    result = invoke("margin", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"error: {message}"] or message in result.stderr


# digest


@pytest.fixture(scope="module")
def digest_run(history_db, tmp_path_factory):
    chart = tmp_path_factory.mktemp("digest") / "chart.png"
    result = runner.invoke(app, ["digest", "--as-of", AS_OF, "--chart", str(chart), "--db", str(history_db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), chart


def test_digest_floors_are_the_cheapest_json(history_db, digest_run):
    data, _ = digest_run
    assert data["title"] == "Deflation Watch — week to 2026-11-23"
    as_of = date.fromisoformat(AS_OF)
    for tier in data["tiers"]:
        for key, days in (("floor", 0), ("floor_7_days_ago", 7), ("floor_30_days_ago", 30)):
            when = (as_of - timedelta(days=days)).isoformat()
            assert tier[key] == run_json("cheapest", tier["tier"], "--as-of", when, "--db", history_db)["floor"], (tier["tier"], key)
        if tier["floor_7_days_ago"]:
            assert tier["change_7_days"] == tier["floor"]["usd_per_mtok"] / tier["floor_7_days_ago"]["usd_per_mtok"] - 1


def test_digest_rates_are_the_trend_json(history_db, digest_run):
    data, _ = digest_run
    for tier in data["tiers"]:
        for key, window in (("trailing_year", "365d"), ("since_first_price", "all")):
            trend = run_json("trend", "--tier", tier["tier"], "--window", window, "--as-of", AS_OF, "--db", history_db)
            del trend["points"]
            stated = dict(tier[key])
            assert stated.pop("verdict").startswith(("running at", "flat", "rising"))
            assert stated == trend


def test_digest_open_weight_gap_is_the_cheapest_json(history_db, digest_run):
    data, _ = digest_run
    cheapest = run_json("cheapest", "gpt-4-class", "--as-of", AS_OF, "--db", history_db)
    gap = data["open_weight_gap"]
    assert gap["open_weight_floor"] == cheapest["open_weight_floor"] and gap["proprietary_floor"] == cheapest["proprietary_floor"]
    assert gap["proprietary_over_open"] == cheapest["proprietary_floor"]["usd_per_mtok"] / cheapest["open_weight_floor"]["usd_per_mtok"]


def test_digest_chart_is_a_1600_by_900_png(digest_run):
    data, chart = digest_run
    assert png_size(chart.read_bytes()) == (1600, 900)
    assert data["chart_file"] == str(chart) and data["chart"]["base"].startswith("2024-01-31")


def test_digest_prints_what_its_json_says_and_no_placeholder(history_db, tmp_path, digest_run):
    data, _ = digest_run
    result = invoke("digest", "--as-of", AS_OF, "--db", history_db)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # as read, whatever the terminal's width
    assert (tmp_path / "deflation-watch-digest-2026-11-23.png").is_file()  # the default chart path, in the cwd
    assert "chart: deflation-watch-digest-2026-11-23.png" in text
    gpt4 = next(t for t in data["tiers"] if t["tier"] == "gpt-4-class")
    since = gpt4["since_first_price"]
    assert f"Since {since['start']}: running at {round(since['annual_decline'] * 100)} %/yr" in text
    assert since["label"] in text and "floor $0.0585/Mtok, llama-3.3-70b-instruct-turbo from deepinfra" in text
    assert "faster than the 70 % thesis, slower than 10× a year" in text
    assert "is 2.1× cheaper than the cheapest proprietary one, gpt-5-nano" in text
    assert "No price cuts in the week." in text and "No new models in the week." in text
    assert "litellm 1,296 models, no good live poll yet, newest price change 2025-09-01" in text
    for absent in ("TODO", "TBD", "nan", "None", "null"):  # no placeholder, no missing value shown raw
        assert not re.search(rf"\b{absent}\b", text, re.IGNORECASE), absent


def test_digest_of_a_week_with_the_o3_cut(history_db):
    """The week to 2025-06-14 holds OpenAI's 80 % cut of o3 (LiteLLM, 2025-06-11)."""
    data = run_json("digest", "--as-of", "2025-06-14", "--chart", "week.png", "--db", history_db)
    o3 = next(cut for cut in data["cuts"] if cut["name"] == "o3" and cut["provider"] == "openai")
    db = open_db(history_db)
    rows = prices.history(db, ["o3"], source="litellm", provider="openai")
    db.close()
    after = next(row for row in rows if row["valid_from"] == o3["date"].replace("+00:00", "Z"))
    before = next(row for row in rows if row["valid_to"] == after["valid_from"])
    assert (o3["old_input_mtok"], o3["old_output_mtok"]) == (float(before["input_mtok"]), float(before["output_mtok"]))
    assert (o3["input_mtok"], o3["output_mtok"]) == (float(after["input_mtok"]), float(after["output_mtok"])) == (2.0, 8.0)
    assert o3["change"] == pytest.approx(-0.8)
    assert data["price_changes"]["cuts"] >= len(data["cuts"]) > 0


def test_the_commands_are_on_python_dash_m_bot():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=True)
    for command in ("trend", "cheapest", "margin", "digest"):
        assert command in result.stdout
