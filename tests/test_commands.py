"""The platform-neutral command layer: replies to good input, and short helpful refusals that
write nothing for bad input."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot import commands, config
from bot.quotes import Quote
from storage import polls, prices, subscriptions, transaction

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


# --- the channel commands -------------------------------------------------------------------


def test_subscribe_replaces_this_channels_subscription_and_unsubscribe_ends_it(db, context):
    from storage import digests, subscriptions

    card = commands.answer("subscribe kinds=cut,new providers=OpenAI models=gpt-4o*,o3* min=20% digest=no", context)
    assert card.title == "Subscribed this channel"
    (sub,) = subscriptions.subscriptions(db)
    assert (sub.channel, sub.kinds, sub.providers, sub.models, sub.min_pct, sub.created_by) == (
        "slack:C1", ("price_cut", "new_model"), ("openai",), ("gpt-4o*", "o3*"), Decimal("20"), "U1")
    assert digests.channels(db) == []
    commands.answer("subscribe digest=only", context)
    assert subscriptions.subscriptions(db) == [] and [c.channel for c in digests.channels(db)] == ["slack:C1"]
    shown = commands.answer("subscriptions", context)
    assert dict(shown.fields) == {"Alerts": "none", "Digest": "Mondays at 09:00 UTC"}
    assert commands.answer("unsubscribe", context).title == "Unsubscribed this channel"
    assert commands.answer("subscriptions", context).title == "Not subscribed"


def test_mute_mutes_and_unmute_lifts(db, context):
    card = commands.answer("mute gpt-4o* 1d repricing week", context)
    assert card.title == "Muted gpt-4o* for 1d" and ("Reason", "repricing week") in card.fields
    assert "held back in this channel until 2026-01-02 00:00 UTC; other channels still get them" in card.lines[0]
    listed = commands.answer("mutes", context)
    assert listed.table.rows == (("1", "gpt-4o*", "this channel", "2026-01-02 00:00 UTC", "U1", "repricing week"),)
    assert [(s.pattern, s.channel) for s in subscriptions.silences(db)] == [("gpt-4o*", "slack:C1")]
    assert commands.answer("unmute #1", context).title == "Unmuted #1"
    assert commands.answer("mutes", context).title == "No mutes"


def test_a_mute_belongs_to_its_channel_and_the_operators_silence_to_every_channel(db, context):
    elsewhere = dataclasses.replace(context, channel="discord:42")
    commands.answer("mute gpt-4o* 1d", context)
    with transaction(db):
        subscriptions.silence(db, "claude*", NOW, until=NOW + timedelta(days=2), created_by="ops", reason="upstream glitch")
    assert [row[:3] for row in commands.answer("mutes", context).table.rows] == [
        ("1", "gpt-4o*", "this channel"), ("2", "claude*", "every channel")]
    assert [row[:3] for row in commands.answer("mutes", elsewhere).table.rows] == [("2", "claude*", "every channel")]
    before = fingerprint(db)
    other = commands.answer("unmute 1", elsewhere)
    assert other.title == "Sorry" and other.lines == ["No mute #1 is in force in this channel. `mutes` lists them."]
    everywhere = commands.answer("unmute 2", context)
    assert everywhere.title == "Sorry" and "`deflation-watch unsilence 2`" in everywhere.lines[0]
    assert fingerprint(db) == before
    assert commands.answer("mute x 1d", dataclasses.replace(context, channel=None)).lines == ["This command works in a channel: run it there."]


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("subscribe foo=bar", "`foo` is not a filter"),
        ("subscribe openai", "Filters are key=value"),
        ("subscribe kinds=boom", "`boom` is not an alert kind"),
        ("subscribe min=200", "The minimum move is a percentage between 0 and 100"),
        ("subscribe min=lots", "The minimum move must be a number"),
        ("subscribe digest=maybe", "`digest` is yes, no or only"),
        ("unsubscribe now", "Usage: `unsubscribe`"),
        ("mute gpt-4o*", "Usage: `mute PATTERN DURATION [REASON]`"),
        ("mute gpt-4o* soon", "`soon` is not a duration"),
        ("mute gpt-4o* 1y", "`1y` is not a duration"),
        ("mute gpt-4o* 20w", "A mute lasts at most 90 days"),
        ("unmute seven", "A mute's id is a number"),
        ("unmute 99", "No mute #99 is in force"),
        ("cheapest gpt4", "There is no tier `gpt4`."),
        ("trend gpt-4o 0d", "No model named 'gpt-4o 0d' is stored."),
        ("trend gpt-4p 2y", "No model named 'gpt-4p' is stored. Did you mean: gpt-4o"),
        ("digest now", "Usage: `digest`"),
    ],
)
def test_channel_and_curve_mistakes_change_nothing(db, context, text, reply):
    before = fingerprint(db)
    card = commands.answer(text, context)
    assert commands.is_error(card) and reply in card.lines[0]
    assert fingerprint(db) == before


@pytest.mark.parametrize("text", ["subscribe", "unsubscribe", "mute gpt-4o* 1d", "unmute 1"])
def test_channel_changes_are_for_admins_when_admins_are_set(db, context, text):
    context.settings = config.load(environ={"DEFLATION_WATCH_ADMINS": '["slack:U2", "U3"]'})
    before = fingerprint(db)
    assert "Only this bot's admins" in commands.answer(text, context).lines[0]
    assert fingerprint(db) == before
    for admin in ("slack:U2", "slack:U3"):  # listed with or without the platform
        context.user = admin
        assert "Only this bot's admins" not in commands.answer(text, context).text()


def test_reading_commands_are_for_everyone_and_the_terminal_is_trusted(db, context):
    context.settings = config.load(environ={"DEFLATION_WATCH_ADMINS": '["U2"]'})
    assert not commands.is_error(commands.answer("subscriptions", context))
    assert not commands.is_error(commands.answer("mutes", context))
    context.trusted = True
    assert commands.answer("subscribe", context).title == "Subscribed this channel"


def test_channel_commands_need_a_channel(db, context):
    context.channel = None
    assert "works in a channel" in commands.answer("subscribe", context).lines[0]


def test_cheapest_and_trend_answer_from_the_curve_functions(context):
    cheapest = commands.answer("cheapest gpt-4-class", context)
    assert cheapest.table.rows[0][:4] == ("floor", "gpt-4o", "azure", "litellm")
    trend = commands.answer("trend gpt-4o all", context)
    assert trend.title.startswith("gpt-4o (median of the sources): ")
    assert trend.image.startswith(b"\x89PNG") and dict(trend.fields)["Price now"].startswith("$4.38")


def test_slow_commands_are_marked_for_the_adapters():
    assert commands.is_slow("digest") and commands.is_slow("trend gpt-4o") and commands.is_slow("cheapest")
    assert not commands.is_slow("price gpt-4o") and not commands.is_slow("nonsense")


def test_sources_reports_deliveries_given_up(db, context):
    from storage import digests, outbox, transaction
    from storage.times import iso

    with transaction(db):
        db.execute(
            "INSERT INTO alerts (kind, source, status, observed_at, created_at) VALUES ('source_stale', 'litellm', 'confirmed', ?, ?)",
            [iso(NOW), iso(NOW)],
        )
        outbox.enqueue(db, 1, "slack:C9", NOW - timedelta(days=1), timedelta(seconds=30))
        outbox.mark_failed(db, 1, "channel_not_found")
        digests.record(db, NOW - timedelta(days=2), "discord:7", "failed", NOW - timedelta(days=2), error="HTTP 403: Missing Access")
    fields = dict(commands.answer("sources", context).fields)
    assert fields["Deliveries given up"].splitlines() == [
        "slack:C9: channel_not_found (1 since 2025-12-25, last 2025-12-31T00:00)",
        "discord:7: HTTP 403: Missing Access (1 since 2025-12-25, last 2025-12-30T00:00)",
    ]
