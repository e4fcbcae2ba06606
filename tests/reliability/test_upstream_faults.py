"""Upstream faults, each served by the loopback source server after a good baseline poll.

Every case checks the same three things: the poll row says clearly what went wrong (or has the
status the data deserves: `suspect` for a partial catalog, pending alerts for an implausible
move), no alert is raised or queued that the data does not support, and the price history is
unchanged. A few control cases (a real cut, a redirect a loopback mirror may make) show that the
harness does see alerts and successes, so the silence of the others means something.
"""

from __future__ import annotations

import asyncio
import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest

from bot import pipeline
from bot.config import HttpSettings, Settings, SourceSettings
from bot.fetch import MAX_RETRY_AFTER, make_client
from storage import open_db, subscriptions, transaction
from tests.reliability.catalogs import LIVE, Row, render, rows, unit
from tests.source_server import SourceServer

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MAX_BYTES = 64 * 1024
TIMEOUT = 0.4  # seconds per read: the timeout cases wait this long
DEADLINE = 1.0  # seconds for a whole request: the drip case runs into it
#: The cases about time run with the tight limits above; the rest with the defaults, so a slow
#: moment of a loaded machine can never read as a fault they are not about.
TIMED = ("timeout", "slow-drip-past-the-deadline")


@dataclass(frozen=True)
class Fault:
    name: str
    source: str
    route: Callable[[str], dict[str, Any]]  # the served route's options, given the source
    status: str  # the poll row's status; "held": ok, with every new price alert pending
    error: str | None = None  # a regular expression the poll row's error matches
    alerts: tuple[str, ...] = ()  # kinds of confirmed alerts the data supports (queued)
    retry: bool = False  # the upstream asked for a wait, which the next poll honours
    follow: Callable[[str], dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return f"{self.source}-{self.name}"


def good(source: str) -> bytes:
    return render(source, rows())


def body(make: Callable[[str], bytes], **options: Any) -> Callable[[str], dict[str, Any]]:
    return lambda source: {"body": make(source), **options}


def priced(price: Callable[[str, Decimal], Any]) -> Callable[[str], bytes]:
    return lambda source: render(source, rows(), price)


def scaled(factor: str, count: int = 20) -> Callable[[str], bytes]:
    return lambda source: render(source, [row.scaled(factor) if i < count else row for i, row in enumerate(rows())])


def duplicated(source: str) -> bytes:
    """Every model listed twice, the second time at half the price: the first listing counts."""
    catalog: list[Row] = []
    for row in rows():
        catalog += [row, row.scaled("0.5")]
    return render(source, catalog)


def wrong_shape(source: str) -> bytes:
    return b'[{"error": "not found"}]' if source != "genai-prices" else b'{"error": {"message": "Rate limit exceeded", "code": 429}}'


def deeply_nested(source: str) -> bytes:
    return b'{"data": ' * 5_000 + b"[]" + b"}" * 5_000


def gzip_bomb(source: str) -> bytes:
    return gzip.compress(b"[" + b" " * (40 * MAX_BYTES) + b"]", 9)


def padded(source: str) -> bytes:
    return good(source)[:-1] + b" " * (2 * MAX_BYTES) + good(source)[-1:]


def http_date(seconds: float) -> dict[str, str]:
    """Retry-After as a date; the server sends its own Date, against which it is measured."""
    return {"Retry-After": format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)}


NOT_JSON = r"payload is not JSON"
NO_PRICES = r"no usable priced models in the payload"
URL = r"http://127\.0\.0\.1:\d+/{source}\.json"
RETRY = r"; retry after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"

#: Faults of the payload: every source, each in its own format.
PAYLOAD_FAULTS = [
    ("empty-catalog", body(lambda s: render(s, [])), "failed", rf"{NO_PRICES}|the provider list is empty", ()),
    ("ten-percent-of-models", body(lambda s: render(s, rows()[:2])), "suspect", None, ("source_suspect",)),
    ("prices-not-numbers", body(priced(lambda s, p: "n/a")), "failed", rf"{NO_PRICES} \(skipped: (price is not a number|unreadable input_mtok): 20\)", ()),
    ("negative-prices", body(priced(lambda s, p: unit(s, -p))), "failed", NO_PRICES, ()),
    ("nan-prices", body(priced(lambda s, p: float("nan"))), "failed", NO_PRICES, ()),
    ("overflowing-prices", body(priced(lambda s, p: "1e400")), "failed", NO_PRICES, ()),
    ("boolean-prices", body(priced(lambda s, p: True)), "failed", NO_PRICES, ()),
    ("prices-a-million-times-over", body(scaled("1000000")), "held", None, ()),
    ("prices-a-million-times-under", body(scaled("0.000001")), "held", None, ()),
    ("duplicated-model-keys", body(duplicated), "ok", None, ()),
    ("json-of-the-wrong-shape", body(wrong_shape), "failed", r"expected a JSON (dict|list) at the top level", ()),
]

#: Faults of the transport and of HTTP: each on one source, the sources taken in turn.
TRANSPORT_FAULTS = [
    ("timeout", body(good, delay=1.0, etag=False), "failed", rf"^timed out fetching {URL}$", ()),
    ("slow-drip-past-the-deadline", body(good, drip=0.1, etag=False), "failed", rf"^took over {DEADLINE:g} s fetching {URL}$", ()),
    ("connection-reset", lambda s: {"reset": True}, "failed", rf"^(ReadError|RemoteProtocolError|ConnectError) fetching {URL}: ", ()),
    ("connection-cut-mid-body", body(good, cut=100, etag=False), "failed", rf"^RemoteProtocolError fetching {URL}: peer closed connection", ()),
    ("http-500", body(lambda s: b"Internal Server Error", status=500), "failed", rf"^HTTP 500 from {URL}$", ()),
    ("http-502-html", body(lambda s: b"<html><body>Bad gateway</body></html>", status=502), "failed", rf"^HTTP 502 from {URL}$", ()),
    ("http-503-retry-after", body(lambda s: b"maintenance", status=503, headers={"Retry-After": "120"}), "failed", rf"^HTTP 503 from {URL} \(Retry-After 120 s\){RETRY}", ()),
    ("http-429-retry-after-seconds", body(lambda s: b"slow down", status=429, headers={"Retry-After": "60"}), "failed", rf"^HTTP 429 from {URL} \(Retry-After 60 s\){RETRY}", ()),
    ("http-429-retry-after-date", lambda s: {"body": b"slow down", "status": 429, "headers": http_date(90)}, "failed", rf"^HTTP 429 from {URL} \(Retry-After (8[89]|9[01]) s\){RETRY}", ()),
    ("http-429-retry-after-a-year", body(lambda s: b"go away", status=429, headers={"Retry-After": str(365 * 86400)}), "failed", rf"^HTTP 429 from {URL} \(Retry-After {MAX_RETRY_AFTER:g} s\){RETRY}", ()),
    ("http-429-without-retry-after", body(lambda s: b"slow down", status=429), "failed", rf"^HTTP 429 from {URL}$", ()),
    ("http-404", body(lambda s: b"gone", status=404), "failed", rf"^HTTP 404 from {URL}$", ()),
    ("html-error-page-with-200", body(lambda s: b"<!DOCTYPE html><html><body><h1>Service unavailable</h1></body></html>"), "failed", rf"{NOT_JSON}.*starts '<!DOCTYPE html>", ()),
    ("empty-body", body(lambda s: b""), "failed", NOT_JSON, ()),
    ("truncated-json", body(lambda s: good(s)[: len(good(s)) // 2]), "failed", NOT_JSON, ()),
    ("binary-garbage", body(lambda s: bytes(range(256)) * 4), "failed", NOT_JSON, ()),
    ("json-null", body(lambda s: b"null"), "failed", r"expected a JSON (dict|list) at the top level, got NoneType", ()),
    ("deeply-nested-json", body(deeply_nested), "failed", r"nested too deeply", ()),
    ("body-over-the-size-cap", body(padded), "failed", rf"^body of \d+ bytes from {URL} is over the {MAX_BYTES}-byte cap$", ()),
    ("body-over-the-cap-without-length", body(padded, length=False), "failed", rf"^body from {URL} is over the {MAX_BYTES}-byte cap$", ()),
    ("gzip-bomb", body(gzip_bomb, headers={"Content-Encoding": "gzip"}), "failed", rf"^body from {URL} is over the {MAX_BYTES}-byte cap$", ()),
    ("gzip-that-is-not", body(good, etag=False, headers={"Content-Encoding": "gzip"}), "failed", rf"^could not decode the body from {URL}", ()),
    ("redirect-loop", lambda s: {"status": 302, "headers": {"Location": f"/{s}.json"}}, "failed", rf"^more than 5 redirects fetching {URL}$", ()),
    ("redirect-to-a-file-url", lambda s: {"status": 302, "headers": {"Location": "file:///etc/passwd"}}, "failed", rf"^redirect from {URL} to a file: URL refused; only http\(s\) is followed$", ()),
    ("redirect-to-ftp", lambda s: {"status": 301, "headers": {"Location": "ftp://127.0.0.1/prices.json"}}, "failed", rf"^redirect from {URL} to a ftp: URL refused", ()),
    ("rows-without-names", body(lambda s: render(s, [Row("", "", r.input_mtok, r.output_mtok) for r in rows()])), "failed", r"no usable priced models|provider", ()),
]

#: Controls: data the bot should act on, so the harness is seen to catch alerts and successes.
CONTROL = [
    ("control-real-cut", body(lambda s: render(s, [rows()[0].scaled("0.5"), *rows()[1:]])), "ok", None, ("price_cut",)),
    ("control-redirect-on-loopback", lambda s: {"status": 302, "headers": {"Location": f"/mirror/{s}.json"}}, "not_modified", None, ()),
]


def _cases() -> list[Fault]:
    cases = [Fault(name, source, route, status, error and error.replace("{source}", source), alerts) for source in LIVE for name, route, status, error, alerts in PAYLOAD_FAULTS]
    for i, (name, route, status, error, alerts) in enumerate(TRANSPORT_FAULTS):
        source = LIVE[i % len(LIVE)]
        cases.append(Fault(name, source, route, status, error and error.replace("{source}", source), alerts, retry=bool(error and RETRY in error)))
    for i, (name, route, status, error, alerts) in enumerate(CONTROL):
        cases.append(Fault(name, LIVE[(i + 2) % len(LIVE)], route, status, error, alerts))
    return cases


CASES = _cases()


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fingerprint(db) -> tuple[list, list]:
    """Every model's listing state and every price interval: the price history as shown."""
    models = db.execute("SELECT source, provider, model, removed_at, missing_since, missing_polls FROM models ORDER BY 1, 2, 3").fetchall()
    intervals = db.execute(
        """SELECT m.source, m.provider, m.model, p.valid_from, p.valid_to, p.input_mtok, p.output_mtok, p.cache_read_mtok, p.flag
           FROM prices p JOIN models m ON m.id = p.model_id ORDER BY 1, 2, 3, 4"""
    ).fetchall()
    return models, intervals


def settings_for(server, path, *, timed: bool) -> Settings:
    limits = {"timeout": TIMEOUT, "deadline": DEADLINE} if timed else {}
    return Settings(
        db=path,
        backfill=False,
        http=HttpSettings(**limits, max_bytes=MAX_BYTES, user_agent="dw-fault-test/1"),
        sources={name: SourceSettings(url=server.url(f"/{name}.json")) for name in LIVE},
    )


def poll(db, settings: Settings, source: str, clock: Clock) -> pipeline.PollReport:
    async def run() -> pipeline.PollReport:
        async with make_client(settings.http) as client:
            return await pipeline.poll_source(db, client, settings, source, clock)

    return asyncio.run(run())


def last_poll(db, source: str) -> dict:
    return next(db.query("SELECT * FROM polls WHERE source = ? ORDER BY id DESC LIMIT 1", [source]))


@pytest.fixture(scope="module")
def server():
    """One loopback server for the module (stopping one takes half a second); routes are
    replaced and requests forgotten for each case."""
    running = SourceServer().start()
    yield running
    running.stop()


@pytest.fixture
def source_server(server):
    server.routes.clear()
    server.requests.clear()
    return server


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_an_upstream_fault_is_a_clear_poll_row_and_changes_nothing(case: Fault, source_server, tmp_path):
    source = case.source
    db = open_db(tmp_path / "dw.db")
    settings = settings_for(source_server, tmp_path / "dw.db", timed=case.name in TIMED)
    clock = Clock(T0)
    source_server.serve(f"/{source}.json", good(source))
    source_server.serve(f"/mirror/{source}.json", good(source))
    assert poll(db, settings, source, clock).status == "ok"  # the baseline: a first catalog raises nothing
    with transaction(db):
        subscriptions.subscribe(db, "console:", T0, created_by="test")
    before = fingerprint(db)
    alerts_before = db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]

    source_server.serve(f"/{source}.json", **case.route(source))
    clock.now = T0 + timedelta(hours=6)
    report = poll(db, settings, source, clock)

    row = last_poll(db, source)
    expected = "ok" if case.status == "held" else case.status
    assert (row["status"], report.status) == (expected, expected), row["error"]
    if case.error:
        assert row["error"] and "\n" not in row["error"]
        assert re.search(case.error, row["error"]), row["error"]
        assert report.error == row["error"]
    new_alerts = list(db.query("SELECT kind, status FROM alerts WHERE id > ?", [alerts_before]))
    queued = [r["kind"] for r in db.query("SELECT a.kind FROM outbox o JOIN alerts a ON a.id = o.alert_id")]
    if case.status == "held":
        assert new_alerts and {a["status"] for a in new_alerts} == {"pending"}
        assert {a["kind"] for a in new_alerts} <= {"price_cut", "price_hike"}
        assert queued == []
        check_held_then_reverted(db, settings, source, clock, source_server, before)
        return
    assert sorted({a["kind"] for a in new_alerts if a["status"] == "confirmed"}) == sorted(case.alerts)
    assert {a["kind"] for a in new_alerts if a["status"] != "confirmed"} == set()
    assert sorted(set(queued)) == sorted(case.alerts)
    if case.name.startswith("control-real-cut"):
        return
    assert fingerprint(db) == before
    if case.name == "duplicated-model-keys":
        assert row["skipped"] == 20 and "duplicate key" in row["skipped_detail"]
    if case.retry:
        check_retry_after_is_honoured(db, settings, source, clock, source_server, row)
    elif case.status == "failed":
        # Without a Retry-After the next poll goes out as scheduled.
        clock.now += timedelta(minutes=1)
        rows_before = db["polls"].count
        assert poll(db, settings, source, clock).status != "deferred"
        assert db["polls"].count == rows_before + 1


def check_retry_after_is_honoured(db, settings, source, clock, server, row) -> None:
    """Before the time the upstream named, no request goes out and no row is written; after
    it, the source is polled again."""
    retry_at = datetime.fromisoformat(row["retry_at"].replace("Z", "+00:00"))
    assert row["error"].endswith(f"; retry after {row['retry_at']}")  # told to people too
    assert retry_at > clock.now
    rows_before, asked = db["polls"].count, len(server.requests)
    clock.now = retry_at - timedelta(seconds=1)
    report = poll(db, settings, source, clock)
    assert report.status == "deferred" and not report.ok and report.retry_at == retry_at
    assert (db["polls"].count, len(server.requests)) == (rows_before, asked)
    server.serve(f"/{source}.json", good(source))
    clock.now = retry_at
    assert poll(db, settings, source, clock).status == "not_modified"
    assert len(server.requests) == asked + 1


def check_held_then_reverted(db, settings, source, clock, server, before) -> None:
    """An implausible move is stored as the source published it but held: the next poll back
    at the old prices drops every held alert, and nothing was ever queued for a channel."""
    server.serve(f"/{source}.json", good(source))
    clock.now += timedelta(hours=6)
    poll(db, settings, source, clock)
    statuses = {(r["status"], r["reason"]) for r in db.query("SELECT status, reason FROM alerts WHERE kind IN ('price_cut', 'price_hike')")}
    assert statuses == {("dropped", "reverted")}
    assert db["outbox"].count == 0
    models, intervals = fingerprint(db)
    assert models == before[0]
    current = {(r[0], r[1], r[2]): r[5:] for r in intervals if r[4] is None}
    assert current == {(r[0], r[1], r[2]): r[5:] for r in before[1] if r[4] is None}


def test_there_are_at_least_forty_cases_over_every_live_source():
    assert len(CASES) >= 40
    assert {case.source for case in CASES} == set(LIVE)
