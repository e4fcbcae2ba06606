"""The indicator commands in chat (the command layer's cards) and in the terminal (Typer's runner):
`signals` shows all six, admins alone write, bad input is refused whole, CSV imports all or nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

import bot.cli_indicators  # noqa: F401  (registers the indicator commands)
import bot.indicator_commands  # noqa: F401  (registers the chat commands)
from bot import commands, config, indicator_entry, indicators
from bot.cli import app
from bot.errors import ImportRowsError, InputError
from storage import open_db
from storage import indicators as store

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
runner = CliRunner()


def fingerprint(db) -> str:
    dump = "\n".join(db.conn.iterdump())
    return hashlib.sha256(dump.encode()).hexdigest()


@pytest.fixture
def settings():
    return dataclasses.replace(config.load(environ={}), admins=("slack:UADMIN",))


def chat(db, settings, text: str, user: str = "slack:UADMIN"):
    context = commands.Context(db, settings, clock=lambda: NOW, user=user, channel="slack:C1")
    return commands.answer(text, context)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- signals: all six, with a definition line each ------------------------------------------------


def test_signals_in_chat_is_one_card_with_every_indicator_and_its_definition(fresh_db, settings):
    card = chat(fresh_db, settings, "signals")
    assert card.title == "Watch indicators"
    assert [row[0] for row in card.table.rows] == list(indicators.INDICATORS)
    assert card.lines == [f"{ind.name}: {ind.definition}" for ind in indicators.INDICATORS.values()]
    assert card.table.header == ("indicator", "latest", "as of", "trend", "threshold", "status", "next print")
    rows = {row[0]: row for row in card.table.rows}
    assert rows["hyperscaler-inference-mix"][4] == "≥ 60 % by 2027-06-30"
    assert rows["annualised-decline"][4] == "≥ 70 %/yr; ≤ 30 %/yr"
    assert rows["saas-gm-guide-downs"][1:3] == ("0", "2026Q4")
    assert commands.COMMANDS["signals"].handler is bot.indicator_commands._signals


def test_signals_in_the_terminal_and_as_json(tmp_path):
    db = tmp_path / "dw.db"
    shown = invoke("signals", "--db", db)
    assert shown.exit_code == 0, shown.output
    for ind in indicators.INDICATORS.values():
        assert ind.name in shown.stdout
        assert " ".join(ind.definition.split()[:5]) in " ".join(shown.stdout.replace("│", " ").split())
    data = json.loads(invoke("signals", "--db", db, "--json").stdout)
    assert [item["name"] for item in data] == list(indicators.INDICATORS)
    assert all(item["definition"] and item["unit"] and "state" in item and "next_print" in item for item in data)
    mix = data[0]
    assert mix["thresholds"] == [{"key": "above-60", "direction": "above", "level": 60.0, "by": "2027-06-30", "trajectory": True}]
    assert mix["latest"] is None and mix["state"] == "no readings"


# --- writes: admins only, checked whole --------------------------------------------------------------


def test_an_admin_records_a_reading_and_sees_it(fresh_db, settings):
    card = chat(fresh_db, settings, 'indicator set hyperscaler-inference-mix 48% 2026Q3 "MSFT FY26 Q1 call"')
    assert card.title == "Recorded", card.text()
    assert card.lines[0] == "hyperscaler-inference-mix: 48 % for 2026Q3, entered by slack:UADMIN (MSFT FY26 Q1 call)."
    (reading,) = store.readings(fresh_db, "hyperscaler-inference-mix")
    assert (reading.as_of.isoformat(), reading.period, reading.source, reading.entered_by) == ("2026-09-30", "2026Q3", "chat", "slack:UADMIN")
    assert chat(fresh_db, settings, "indicator set hyperscaler-inference-mix 49 2026Q3").title == "Corrected"

    shown = chat(fresh_db, settings, "indicator hyperscaler-inference-mix")
    assert shown.title == "hyperscaler-inference-mix: Inference share of hyperscaler AI revenue"
    assert dict(shown.fields)["Latest"] == "49 % (2026Q3)"
    assert shown.table.rows == (("2026Q3", "49 %", "chat", "slack:UADMIN", ""),)


def test_a_guide_down_event_and_the_reported_margin_context(fresh_db, settings):
    card = chat(fresh_db, settings, "indicator event saas-gm-guide-downs ACME 70-75 65–70% 2026-11-05 investor day")
    assert card.title == "Recorded", card.text()
    assert "ACME lowered its long-term gross-margin guide from 70–75 % to 65–70 % on 2026-11-05" in card.lines[0]
    shown = chat(fresh_db, settings, "indicator saas-gm-guide-downs")
    assert shown.table.rows[0][:5] == ("2026-11-05", "2026Q4", "ACME", "70–75 %", "65–70 %")
    assert any(line.startswith("Context, reported gross margin (GAAP gross profit / revenue as filed with the SEC, not guidance)") for line in shown.lines)


@pytest.mark.parametrize(
    "text",
    [
        "indicator set hyperscaler-inference-mix 48",
        "indicator event saas-gm-guide-downs ACME 70-75 65-70",
        "indicator delete hyperscaler-inference-mix 2026Q3",
    ],
)
def test_writes_from_anyone_but_an_admin_are_refused_and_store_nothing(fresh_db, settings, text):
    before = fingerprint(fresh_db)
    card = chat(fresh_db, settings, text, user="slack:USOMEONE")
    assert card.title == "Sorry"
    assert card.lines == ["Only this bot's admins can record or delete indicator readings and events. Ask one of them."]
    assert fingerprint(fresh_db) == before
    assert chat(fresh_db, settings, "indicator hyperscaler-inference-mix", user="slack:USOMEONE").title != "Sorry"  # reading is open


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("indicator set hyperscaler-inference-mix lots", "takes a number in %, like 48.5; got `lots`"),
        ("indicator set hyperscaler-inference-mix 48bn", "is measured in %; `48bn` is in another unit"),
        ("indicator set hyperscaler-inference-mix $48", "is measured in %; `$48` is in another unit"),
        ("indicator set hyperscaler-inference-mix 148", "must be from 0 to 100 %; got `148`"),
        ("indicator set hyperscaler-inference-mix -3", "must be from 0 to 100 %"),
        ("indicator set hyperscaler-inference-mix 48 2026-13-01", "`2026-13-01` is not a date"),
        ("indicator set hyperscaler-inference-mix 48 2026-12-01", "2026-12-01 is after today (2026-11-20)"),
        ("indicator set hyperscaler-inference-mix 48 2026Q4", "2026Q4 ends on 2026-12-31, which is after today"),
        ("indicator set hyperscaler-inference-mix 48 1999-12-31", "before 2000-01-01"),
        ("indicator set hyperscaler-inference-mx 48", "There is no indicator `hyperscaler-inference-mx`. Did you mean `hyperscaler-inference-mix`?"),
        ("indicator set hyperscaler-capex 600", "is not entered by hand: deflation-watch poll-sec"),
        ("indicator set annualised-decline 70", "is not entered by hand"),
        ("indicator set saas-gm-guide-downs 3", "is a count of events; add one with `indicator event"),
        ("indicator event hyperscaler-inference-mix ACME 70 60", "takes readings, not events"),
        ("indicator event saas-gm-guide-downs ACME 65-70 70-75", "is not below the old one 65-70: that is not a guide-down"),
        ("indicator event saas-gm-guide-downs ACME 70-75 abc", "The new guide must be a percentage or a range"),
        ("indicator event saas-gm-guide-downs ACME 75-70 60", "must run low to high within 0–100 %"),
        ("indicator event saas-gm-guide-downs ACME NaN 60", "must run low to high within 0–100 %"),
        ("indicator event saas-gm-guide-downs ACME 70", "Give the company, the old guide and the new one"),
        ("indicator event saas-gm-guide-downs ACME 75 70 2026-02-30", "`2026-02-30` is not a date"),
        ("indicator set", "Usage: `indicator NAME"),
        ("indicator delete", "Usage: `indicator NAME"),
        ("indicator delete open-weight-token-share", "Give the day to delete, like `indicator delete open-weight-token-share 2026-11-05`"),
        ("indicator delete open-weight-token-share 2026-06-30 2026-07-31", "Give the day to delete"),
        ("indicator delete saas-gm-guide-downs 2026-11-05", "Give the day and the company to delete"),
        ("indicator delete open-weight-token-share 2026-06-31", "`2026-06-31` is not a date"),
        ("indicator delete open-weight-token-share 2026-12-01", "2026-12-01 is after today"),
        ("indicator delete open-weight-token-share 2026-06-30", "No reading of open-weight-token-share for 2026-06-30 is stored; it has none at all."),
        ("indicator delete saas-gm-guide-downs 2026-11-05 ACME", "No guide-down by ACME on 2026-11-05 is stored; it has none at all."),
        ("indicator delete hyperscaler-capex 2026Q2", "hyperscaler-capex is not entered by hand (deflation-watch poll-sec"),
        ("indicator delete annualised-decline 2026-06-30", "is not entered by hand"),
    ],
)
def test_a_bad_value_unit_or_date_is_refused_with_a_clear_reply_and_nothing_stored(fresh_db, settings, text, reply):
    before = fingerprint(fresh_db)
    card = chat(fresh_db, settings, text)
    assert card.title == "Sorry" and reply in card.lines[0], card.lines
    assert fingerprint(fresh_db) == before


def test_an_admin_deletes_a_mistyped_reading_and_its_signal_falls_back(fresh_db, settings):
    chat(fresh_db, settings, "indicator set open-weight-token-share 20 2026-03-31")
    typo = chat(fresh_db, settings, "indicator set open-weight-token-share 26.5 2026Q2 rankings")  # meant 16.5
    assert "Signals: 1 raised" in typo.text()
    assert len(store.open_signals(fresh_db, "open-weight-token-share")) == 1

    card = chat(fresh_db, settings, "indicator delete open-weight-token-share 2026Q2")
    assert card.title == "Deleted", card.text()
    assert card.lines == [
        "Deleted open-weight-token-share: 26.5 % for 2026Q2, entered by slack:UADMIN (rankings).",
        "Signals: 0 raised, 1 fell back, 0 deliveries queued.",
    ]
    assert [(r.value, r.as_of.isoformat()) for r in store.readings(fresh_db, "open-weight-token-share")] == [(20, "2026-03-31")]
    assert store.open_signals(fresh_db, "open-weight-token-share") == []
    assert dict(chat(fresh_db, settings, "indicator open-weight-token-share").fields)["Latest"] == "20 % (2026-03-31)"


def test_deleting_a_guide_down_recounts_its_quarter(fresh_db, settings):
    for company, day in (("ACME", "2026-10-02"), ('"Beta Corp"', "2026-10-20"), ("GAMMA", "2026-11-05")):
        assert chat(fresh_db, settings, f"indicator event saas-gm-guide-downs {company} 75 70 {day}").title == "Recorded"
    assert len(store.open_signals(fresh_db, "saas-gm-guide-downs")) == 1  # three in 2026Q4
    card = chat(fresh_db, settings, "indicator delete saas-gm-guide-downs 2026-10-20 beta corp")
    assert card.lines[0] == ("Deleted saas-gm-guide-downs: Beta Corp lowered its long-term gross-margin guide from 75 % to 70 % "
                             "on 2026-10-20, entered by slack:UADMIN.")
    assert "1 fell back" in card.lines[1]
    assert [e.company for e in store.events(fresh_db, "saas-gm-guide-downs")] == ["ACME", "GAMMA"]
    assert store.open_signals(fresh_db, "saas-gm-guide-downs") == []


def test_deleting_what_is_not_there_names_what_is_and_changes_nothing(fresh_db, settings):
    chat(fresh_db, settings, "indicator set hyperscaler-inference-mix 44 2026Q2")
    chat(fresh_db, settings, "indicator set hyperscaler-inference-mix 48 2026Q3")
    chat(fresh_db, settings, "indicator event saas-gm-guide-downs ACME 75 70 2026-10-02")
    before = fingerprint(fresh_db)
    card = chat(fresh_db, settings, "indicator delete hyperscaler-inference-mix 2026-09-29")
    assert card.title == "Sorry"
    assert card.lines == ["No reading of hyperscaler-inference-mix for 2026-09-29 is stored. The latest: 2026-06-30, 2026-09-30."]
    card = chat(fresh_db, settings, "indicator delete saas-gm-guide-downs 2026-10-02 ACMEE")
    assert card.lines == ["No guide-down by ACMEE on 2026-10-02 is stored. The latest: 2026-10-02 ACME."]
    assert fingerprint(fresh_db) == before


def test_importing_a_file_from_chat_is_refused_politely(fresh_db, settings):
    card = chat(fresh_db, settings, "indicator import /etc/passwd")
    assert card.title == "Sorry"
    assert "works from the terminal on the bot's host" in card.lines[0] and "deflation-watch indicator import FILE.csv" in card.lines[0]


def test_unknown_indicator_in_chat_lists_them(fresh_db, settings):
    card = chat(fresh_db, settings, "indicator nope")
    assert card.title == "Sorry" and "The indicators are: hyperscaler-inference-mix" in card.lines[0]


# --- the terminal: the same words, the operator as who entered it ---------------------------------


def test_terminal_set_event_show_and_json(tmp_path, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    db = tmp_path / "dw.db"
    done = invoke("indicator", "set", "open-weight-token-share", "17.5", "2025-06-30", "OpenRouter", "rankings", "--db", db)
    assert done.exit_code == 0, done.output
    assert "entered by console:alice (OpenRouter rankings)" in done.stdout
    assert invoke("indicator", "event", "saas-gm-guide-downs", "ACME", "72", "68", "2025-05-01", "--db", db).exit_code == 0
    data = json.loads(invoke("indicator", "open-weight-token-share", "--db", db, "--json").stdout)
    assert data["latest"] == {"value": 17.5, "as_of": "2025-06-30", "period": None}
    assert data["entries"][0]["entered_by"] == "console:alice" and data["entries"][0]["source"] == "terminal"
    events = json.loads(invoke("indicator", "saas-gm-guide-downs", "--db", db, "--json").stdout)["events"]
    assert [(e["company"], e["old_guide"], e["new_guide"], e["quarter"]) for e in events] == [("ACME", "72 %", "68 %", "2025Q2")]
    bad = invoke("indicator", "set", "open-weight-token-share", "17.5bn", "--db", db)
    assert bad.exit_code == 1 and "is measured in %" in bad.stderr
    gone = invoke("indicator", "delete", "saas-gm-guide-downs", "2025-05-01", "ACME", "--db", db)
    assert gone.exit_code == 0, gone.output
    assert "Deleted saas-gm-guide-downs: ACME lowered" in " ".join(gone.stdout.split())
    assert json.loads(invoke("indicator", "saas-gm-guide-downs", "--db", db, "--json").stdout)["events"] == []
    again = invoke("indicator", "delete", "saas-gm-guide-downs", "2025-05-01", "ACME", "--db", db)
    assert again.exit_code == 1 and "No guide-down by ACME on 2025-05-01 is stored" in again.stderr
    assert "hyperscaler-inference-mix" in invoke("indicator", "--help").stdout


def test_poll_sec_without_a_user_agent_says_how_to_set_one(tmp_path):
    result = invoke("poll-sec", "--db", tmp_path / "dw.db")
    assert result.exit_code == 1
    assert "user_agent is not set" in result.stderr and "DEFLATION_WATCH_SOURCES__SEC_EDGAR__USER_AGENT" in " ".join(result.stderr.split())


# --- CSV import: line numbers, all or nothing -------------------------------------------------------

GOOD = """indicator,as_of,value,company,old,new,note
hyperscaler-inference-mix,2025Q2,40,,,,MSFT call
hyperscaler-inference-mix,2025-09-30,42.5,,,,
saas-gm-guide-downs,2025-08-01,,ACME,70-75,65-70,investor day
"""


def test_a_good_file_is_imported_in_one_go(tmp_path, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    db = tmp_path / "dw.db"
    (tmp_path / "good.csv").write_text(GOOD)
    result = invoke("indicator", "import", tmp_path / "good.csv", "--db", db)
    assert result.exit_code == 0, result.output
    assert "3 rows imported (3 new, 0 corrections)" in result.stdout
    opened = open_db(db)
    readings = store.readings(opened, "hyperscaler-inference-mix")
    assert [(r.value, r.period, r.source, r.note, r.entered_by) for r in readings] == [
        (40, "2025Q2", "csv", "MSFT call", "console:alice"), (42.5, None, "csv", None, "console:alice"),
    ]
    assert [e.company for e in store.events(opened, "saas-gm-guide-downs")] == ["ACME"]
    opened.close()
    again = invoke("indicator", "import", tmp_path / "good.csv", "--db", db)
    assert "3 rows imported (0 new, 3 corrections)" in again.stdout


BAD = """indicator,as_of,value,company,old,new,note
hyperscaler-inference-mix,2025Q2,40,,,,fine

hyperscaler-inference-mix,2025-09-31,42,,,,
open-weight-token-share,2025-06-30,12 bn,,,,
hyperscaler-inference-mix,2025-06-30,41,,,,same day as line 2
saas-gm-guide-downs,2025-08-01,,ACME,65,70,
nope,2025-01-01,1,,,,
hyperscaler-inference-mix,2025-12-31
open-weight-token-share,,15,,,,
"""


def test_malformed_rows_are_reported_by_line_and_nothing_is_half_imported(tmp_path, fresh_db, settings):
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    before = fingerprint(fresh_db)
    with pytest.raises(ImportRowsError) as info:
        indicator_entry.import_csv(fresh_db, path, settings, entered_by="console:alice", now=NOW)
    problems = dict(info.value.problems)
    assert list(problems) == [4, 5, 6, 7, 8, 9, 10]  # line 3 is blank; line 2 is good but not stored
    assert "`2025-09-31` is not a date" in problems[4]
    assert "is measured in %; `12 bn` is in another unit" in problems[5]
    assert problems[6] == "the same hyperscaler-inference-mix 2025-06-30 as line 2"
    assert "not a guide-down" in problems[7]
    assert "There is no indicator `nope`" in problems[8]
    assert problems[9] == "2 fields where the header has 7"
    assert "as_of is empty" in problems[10]
    assert fingerprint(fresh_db) == before
    assert str(info.value).startswith(f"{path}: nothing imported, 7 bad row(s): line 4: ")


def test_the_terminal_reports_bad_lines_and_stores_nothing(tmp_path):
    db = tmp_path / "dw.db"
    (tmp_path / "bad.csv").write_text(BAD)
    result = invoke("indicator", "import", tmp_path / "bad.csv", "--db", db)
    assert result.exit_code == 1 and "nothing imported, 7 bad row(s)" in result.stderr and "line 5:" in result.stderr
    opened = open_db(db)
    assert opened.execute("SELECT COUNT(*) FROM indicator_readings").fetchone() == (0,)
    opened.close()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("indicator,as_of,value,colour\n", "line 1: unknown column(s) 'colour'"),
        ("indicator,value\nx,1\n", "line 1: missing column(s) as_of"),
        ("indicator,as_of,value\n", "has no rows under its header"),
    ],
)
def test_a_bad_header_is_refused(tmp_path, fresh_db, settings, text, problem):
    path = tmp_path / "h.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        indicator_entry.import_csv(fresh_db, path, settings, entered_by="x", now=NOW)


def test_discord_passes_the_indicator_words_through_whole():
    from bot.chat.discord import SUB_COMMAND, command_text

    data = {"options": [{"type": SUB_COMMAND, "name": "indicator", "options": [
        {"name": "words", "value": 'set hyperscaler-inference-mix 48 2026Q3 "MSFT FY26 Q1 call"'},
    ]}]}
    text = command_text(data)
    assert text == 'indicator set hyperscaler-inference-mix 48 2026Q3 "MSFT FY26 Q1 call"'
    assert commands.parse(text).args == ("set", "hyperscaler-inference-mix", "48", "2026Q3", "MSFT FY26 Q1 call")
