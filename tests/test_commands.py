"""The platform-neutral command layer: replies to good input, and short helpful refusals that
write nothing for bad input."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot import commands, config
from bot.quotes import Quote
from storage import polls, prices

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def listing(model: str, provider: str, inp: str, out: str, at: datetime, source: str = "litellm") -> Quote:
    return Quote(source, provider, model, at, Decimal(inp), Decimal(out))


def poll(db, at: datetime, quotes: list[Quote], source: str = "litellm") -> None:
    prices.record(db, polls.Poll(source, at, at, at), quotes)


@pytest.fixture
def db(fresh_db):
    a_year_ago = NOW - timedelta(days=400)
    poll(fresh_db, a_year_ago, [listing("gpt-4o", "openai", "5", "15", a_year_ago), listing("azure/gpt-4o", "azure", "5", "15", a_year_ago)])
    later = NOW - timedelta(days=60)
    poll(fresh_db, later, [listing("gpt-4o", "openai", "2.5", "10", later), listing("azure/gpt-4o", "azure", "2.5", "10", later)])
    poll(fresh_db, later, [listing("openai/gpt-4o", "openai", "2.5", "10", later, "openrouter")], source="openrouter")
    return fresh_db


@pytest.fixture
def context(db):
    return commands.Context(db, config.load(environ={}), clock=lambda: NOW, user="U1", channel="slack:C1")


def fingerprint(db) -> str:
    """Everything stored, so a test can show a command changed nothing."""
    dump = "\n".join(db.conn.iterdump())
    return hashlib.sha256(dump.encode()).hexdigest()


def test_help_lists_every_command_with_an_example(context):
    card = commands.answer("help", context)
    assert [row[0].split()[0] for row in card.table.rows] == list(commands.COMMANDS)
    assert all(row[2] for row in card.table.rows)
    assert commands.answer("", context).title == card.title


def test_price_groups_listings_and_reports_changes(context):
    card = commands.answer("price gpt-4o", context)
    assert card.title == "gpt-4o: USD per million tokens"
    assert card.table.rows == (("$2.5", "$10", "—", "3", "azure, openai"),)
    fields = dict(card.fields)
    assert fields["Typical blended"] == "$4.375"  # (3 × 2.5 + 10) / 4
    assert fields["30-day change"] == "unchanged"
    assert fields["90-day change"] == "-41.7 %"  # from (3 × 5 + 15) / 4 = 7.5
    assert fields["Last change"] == "2025-11-02"


def test_history_lists_intervals(context):
    card = commands.answer("history gpt-4o", context)
    assert ("litellm", "openai", "gpt-4o", "2024-11-27", "2025-11-02", "$5", "$15") in card.table.rows
    assert ("litellm", "openai", "gpt-4o", "2025-11-02", "now", "$2.5", "$10") in card.table.rows


def test_margin_reproduces_the_article_at_30_and_70_percent(context):
    card = commands.answer("margin 40 14", context)
    assert card.table.header == ("year", "cost at 30 %/yr", "margin at 30 %/yr", "cost at 70 %/yr", "margin at 70 %/yr")
    assert [row[1] for row in card.table.rows[:3]] == ["$14.00", "$9.80", "$6.86"]
    assert [row[3] for row in card.table.rows[:3]] == ["$14.00", "$4.20", "$1.26"]
    assert card.table.rows[0][2] == "65.0 %"
    one_rate = commands.answer("margin $40 14 70% 2", context)
    assert [row[1] for row in one_rate.table.rows] == ["$14.00", "$4.20", "$1.26"]


def test_sources_shows_every_configured_source(context):
    card = commands.answer("sources", context)
    assert [row[0] for row in card.table.rows] == list(context.settings.sources)
    litellm = next(row for row in card.table.rows if row[0] == "litellm")
    assert litellm[2].startswith("2025-11-02") and litellm[3] == "2"


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("pricee gpt-4o", "There is no `pricee` command. Did you mean `price`?"),
        ("price", "Usage: `price MODEL`, for example `price gpt-4o`."),
        ("price gpt-4p", "No model named 'gpt-4p' is stored. Did you mean: gpt-4o"),
        ("history nothing-like-it", "No model named 'nothing-like-it' is stored."),
        ("margin 40", "Usage: `margin PRICE COST [RATE] [YEARS]`"),
        ("margin forty 14", "The seat price must be a number, like 40 or 0.7; got `forty`."),
        ("margin 40 14 0.7 2.5", "Years must be a whole number from 0 to 20; got 2.5."),
        ("margin 40 14 0.7 99", "Years must be a whole number from 0 to 20; got 99."),
        ("margin 0 14", "Seat price must be positive, got 0."),
        ("margin 40 14 NaN", "The annual decline must be a number"),
        ('price "gpt-4o', "A quote is not closed."),
        ("price " + "x" * 600, "commands are at most 500"),
        ("price " + "x" * 200, "too long; the limit is 120"),
        ("sources now", "Usage: `sources`"),
        ("""price "x'; DROP TABLE prices; --" """, "No model named \"x'; DROP TABLE prices; --\" is stored."),
    ],
)
def test_mistakes_get_a_short_reply_and_change_nothing(db, context, text, reply):
    before = fingerprint(db)
    card = commands.answer(text, context)
    assert card.severity == "warning" and card.title == "Sorry"
    assert reply in card.lines[0]
    assert "Traceback" not in card.text()
    assert fingerprint(db) == before


def test_a_bug_in_a_command_is_a_polite_card(context, monkeypatch, caplog):
    def broken(args, context):
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(commands.COMMANDS, "sources", commands.Spec("sources", "sources", "sources", "", broken))
    card = commands.answer("sources", context)
    assert card.lines == ["Something went wrong on our side; it has been logged. Try again later."]
    assert "boom" not in card.text() and "ZeroDivisionError" in caplog.text


def test_admin_check(context):
    context.require_admin()  # no admins configured: everyone may
    context.settings = config.load(environ={"DEFLATION_WATCH_ADMINS": '["U2"]'})
    with pytest.raises(commands.CommandError, match="Only this bot's admins"):
        context.require_admin()
    context.user = "U2"
    context.require_admin()
