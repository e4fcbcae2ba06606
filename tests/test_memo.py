"""What is kept in memory between commands (`bot.memo`, the price-history frame and what is
worked out from it, model names, tier files) is dropped exactly when its source changes, and
never handed to the wrong database or to a caller that changed its copy."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from bot import analytics, commands, lookup
from bot.config import load
from bot.memo import Memo
from bot.tiers import Member, Tier, load_tiers
from storage import open_db, polls, prices

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TIER = Tier("test", "a test tier", (Member(("gpt-4o",), date(2024, 5, 13)),))


class Quote:
    def __init__(self, model: str, inp: float, out: float, provider: str = "openai"):
        self.provider, self.model = provider, model
        self.display_name = self.context_window = self.open_weight = self.flag = self.since = None
        self.earlier = ()
        self.input_mtok, self.output_mtok, self.cache_read_mtok = inp, out, None


def poll(db, at: datetime, quotes: list[Quote], source: str = "litellm") -> prices.Outcome:
    from decimal import Decimal

    for q in quotes:
        q.input_mtok, q.output_mtok = Decimal(str(q.input_mtok)), Decimal(str(q.output_mtok))
    return prices.record(db, polls.Poll(source, at, at, at), quotes)


def listing(db, at: datetime, inp: float = 2.5, extra: tuple[str, ...] = ()) -> prices.Outcome:
    return poll(db, at, [Quote("gpt-4o", inp, 10.0), Quote("azure/gpt-4o", 2.5, 10.0, "azure"),
                         Quote("openai/gpt-4o", 2.5, 10.0, "openrouter"), *(Quote(m, 1.0, 2.0) for m in extra)])


@pytest.fixture(autouse=True)
def _forget():
    analytics.forget()
    yield
    analytics.forget()


def test_a_memo_is_kept_until_another_connection_changes_its_tables(tmp_path):
    path = tmp_path / "memo.db"
    db, other = open_db(path), open_db(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.conn.commit()
    computed = []
    memo = Memo("SELECT COUNT(*), MAX(id) FROM t", lambda d: computed.append(1) or d.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    assert memo.get(db) == 0 and memo.get(db) == 0 and len(computed) == 1
    other.execute("CREATE TABLE unrelated (x)")  # a commit that leaves t alone: checked, kept
    other.conn.commit()
    assert memo.get(db) == 0 and len(computed) == 1
    other.execute("INSERT INTO t (v) VALUES ('a')")
    other.conn.commit()
    assert memo.get(db) == 1 and len(computed) == 2
    assert memo.get(other) == 1 and len(computed) == 2  # shared by every connection


def test_a_memo_never_answers_for_another_database_or_one_in_memory(tmp_path):
    first, second = open_db(tmp_path / "a.db"), open_db(tmp_path / "b.db")
    for db, value in ((first, "a"), (second, "b")):
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES (?)", [value])
        db.conn.commit()
    memo = Memo("SELECT COUNT(*) FROM t", lambda d: d.execute("SELECT v FROM t").fetchone()[0])
    assert (memo.get(first), memo.get(second), memo.get(first)) == ("a", "b", "a")
    memory = open_db(":memory:")
    memory.execute("CREATE TABLE t (v TEXT)")
    memory.execute("INSERT INTO t VALUES ('m')")
    assert memo.get(memory) == "m" and memo.current == "a"


def test_the_frame_survives_a_poll_that_changed_no_price_and_not_one_that_did(tmp_path):
    db, poller = open_db(tmp_path / "bot.db"), open_db(tmp_path / "bot.db")
    listing(poller, NOW - timedelta(days=400))
    frame = analytics.load_intervals(db)
    kept = analytics._INTERVALS.current
    series = analytics.tier_series(frame, TIER)
    listing(poller, NOW - timedelta(days=1))  # same prices: a poll row, no interval
    assert analytics.load_intervals(db).equals(frame) and analytics._INTERVALS.current is kept
    listing(poller, NOW, inp=1.25)  # gpt-4o's input halves
    again = analytics.load_intervals(db)
    assert analytics._INTERVALS.current is not kept and len(again) == len(frame) + 1
    assert analytics.tier_series(again, TIER)["usd_per_mtok"].iloc[-1] < series["usd_per_mtok"].iloc[-1]


def test_a_copy_that_was_filtered_or_edited_is_worked_out_afresh(fresh_db):
    listing(fresh_db, NOW - timedelta(days=400))
    listing(fresh_db, NOW - timedelta(days=100), inp=2.0)
    frame = analytics.load_intervals(fresh_db)
    whole = analytics.tier_series(frame, TIER)
    only_openai = frame[frame["provider"] == "openai"]
    assert analytics.tier_series(only_openai, TIER).equals(analytics._tier_series(only_openai, TIER))
    edited = analytics.load_intervals(fresh_db)
    edited.loc[:, "input_mtok"] = 0.5  # copy-on-write: the kept frame is untouched
    assert analytics.tier_series(edited, TIER)["usd_per_mtok"].iloc[-1] != whole["usd_per_mtok"].iloc[-1]
    assert analytics.tier_series(analytics.load_intervals(fresh_db), TIER).equals(whole)
    assert (analytics.load_intervals(fresh_db)["input_mtok"] != 0.5).all()


def test_kept_values_are_dropped_with_the_price_history(fresh_db):
    listing(fresh_db, NOW - timedelta(days=400))
    made = []
    value = analytics.kept(analytics.load_intervals(fresh_db), "k", lambda: made.append(1) or len(made))
    assert analytics.kept(analytics.load_intervals(fresh_db), "k", lambda: 99) == value == 1
    listing(fresh_db, NOW, inp=1.0)
    assert analytics.kept(analytics.load_intervals(fresh_db), "k", lambda: 2) == 2
    assert analytics.kept(pd.DataFrame(), "k", lambda: 3) == 3  # a frame not from load_intervals


def test_a_model_listed_by_another_process_is_found_at_once(tmp_path):
    db, poller = open_db(tmp_path / "bot.db"), open_db(tmp_path / "bot.db")
    listing(poller, NOW - timedelta(days=2))
    assert lookup.resolve(db, "gpt-4o")
    with pytest.raises(Exception, match="o3"):
        lookup.resolve(db, "o3")
    listing(poller, NOW, extra=("o3",))
    assert lookup.resolve(db, "o3") == ["o3"]


def test_a_trend_answer_follows_a_price_change_the_same_day(tmp_path):
    db, poller = open_db(tmp_path / "bot.db"), open_db(tmp_path / "bot.db")
    for days in range(400, 0, -50):
        poll(poller, NOW - timedelta(days=days), [Quote("o3", days / 100, 8.0)])
    settings = load(environ={"DEFLATION_WATCH_DB": str(tmp_path / "bot.db")})
    context = commands.Context(db, settings, clock=lambda: NOW)
    first = commands.answer("trend o3", context)
    assert commands.answer("trend o3", context).fields == first.fields
    poll(poller, NOW - timedelta(days=2), [Quote("o3", 0.01, 1.0)])  # a cut two days ago: in the daily fit
    assert commands.answer("trend o3", context).fields != first.fields


def test_a_tiers_file_is_read_again_once_it_changes(tmp_path):
    path = tmp_path / "tiers.toml"
    text = '[tiers.a]\ndescription = "A"\nmembers = [{ pattern = "gpt-4o", since = 2024-05-13 }]\n'
    path.write_text(text)
    assert list(load_tiers(path)) == ["a"]
    assert load_tiers(path)["a"] is load_tiers(path)["a"]
    path.write_text(text.replace("tiers.a", "tiers.bb"))
    assert list(load_tiers(path)) == ["bb"]


def test_a_reparse_that_rewrites_a_source_is_seen(tmp_path):
    db = open_db(tmp_path / "bot.db")
    listing(db, NOW - timedelta(days=10))
    before = analytics.load_intervals(db)
    raw = sqlite3.connect(tmp_path / "bot.db")
    raw.execute("UPDATE prices SET input_mtok = 7 WHERE id = 1")  # an edit in place by another process
    raw.commit()
    raw.close()
    assert (analytics.load_intervals(db)["input_mtok"] == 7).sum() == 1 != (before["input_mtok"] == 7).sum()


def test_a_poll_that_changes_prices_leaves_the_analytics_worked_out(tmp_path, source_server, monkeypatch):
    import asyncio
    import json

    from bot.metrics import Metrics
    from bot.scheduler import Jobs
    from bot.sources import SOURCES

    row = {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}
    source_server.serve("/litellm.json", json.dumps({"gpt-4o": row, "o3": row}).encode())
    environ = {f"DEFLATION_WATCH_SOURCES__{name.upper().replace('-', '_')}__ENABLED": "false" for name in SOURCES if name != "litellm"}
    settings = load(environ={**environ, "DEFLATION_WATCH_SOURCES__LITELLM__URL": source_server.url("/litellm.json"),
                             "DEFLATION_WATCH_BACKFILL": "false"}, db=tmp_path / "bot.db")
    db = open_db(settings.db)
    jobs = Jobs(settings, db, {}, Metrics())

    async def one_poll() -> None:
        try:
            (report,) = await jobs.poll("litellm")
            assert report.changes == 2
        finally:
            await jobs.drain(5)

    asyncio.run(one_poll())

    def worked_out_again(*args: object) -> None:
        raise AssertionError("worked out again after the poll had done it")

    monkeypatch.setattr(analytics, "_tier_series", worked_out_again)
    monkeypatch.setattr(analytics, "_list_tier", worked_out_again)
    monkeypatch.setattr(analytics._INTERVALS, "compute", worked_out_again)
    frame = analytics.load_intervals(db)
    for tier in load_tiers().values():
        analytics.tier_series(frame, tier)
    context = commands.Context(db, settings)
    assert "gpt-4o" in str(commands.answer("cheapest gpt-4-class", context))


def test_the_frame_is_what_the_plain_interval_rows_say(fresh_db):
    from bot import pipeline

    pipeline.load_history(fresh_db)
    rows = prices.intervals(fresh_db)
    columns = dict(zip(prices.INTERVAL_COLUMNS, zip(*rows)))
    expected = pd.DataFrame({
        **{name: pd.Series(columns[name], dtype=str) for name in ("source", "provider", "model")},
        **{name: pd.to_datetime(pd.Series(columns[name], dtype=object), utc=True).dt.as_unit("ns") for name in ("valid_from", "valid_to")},
        **{name: pd.Series(columns[name], dtype=float) for name in ("input_mtok", "output_mtok", "cache_read_mtok")},
        "open_weight": pd.Series([None if v is None else bool(v) for v in columns["open_weight"]], dtype=object),
        "flag": pd.Series(columns["flag"], dtype=object),
    })
    frame = analytics.load_intervals(fresh_db)
    assert len(frame) > 9000 and frame.equals(expected) and frame.dtypes.equals(expected.dtypes)
