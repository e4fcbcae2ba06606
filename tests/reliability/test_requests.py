"""Forged, stale, unsigned and oversized requests, sent to the real app over loopback HTTP, are
refused (401, 413; 415 for a verified request of the wrong content type) before anything parses
them or touches the database: no command runs, the fake platforms get no call, the database file
is byte-identical, and Bolt (for Slack) or the JSON parser (for Discord) never sees the body."""

from __future__ import annotations

import hmac
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from nacl.signing import SigningKey

import slack_sdk.signature
from bot import commands, web
from bot.chat import discord_app
from tests.chat.bot_server import BotServer, both_platforms, quiet_settings, wait_for
from tests.fakes import discord_headers, slack_headers
from tests.fakes.fake_slack import slack_signature

SECRET = "requests-signing-secret-0123456789"
KEY = SigningKey(bytes(range(32)))
OTHER_KEY = SigningKey(b"\x07" * 32)
APP_ID = "1100000000000000001"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def bot(tmp_path, fake_slack, fake_discord):
    env = both_platforms(fake_slack, fake_discord, SECRET, KEY, APP_ID)
    with BotServer(quiet_settings(tmp_path), env) as server:
        yield server


def slash(fake_slack, text: str = "subscribe", hook: str = "T0001/1/abc") -> bytes:
    return urlencode({
        "team_id": "T0001", "channel_id": "C0SLACK", "user_id": "U0ALICE", "command": "/deflation", "text": text,
        "api_app_id": "A0001", "response_url": fake_slack.response_url(hook), "trigger_id": "1.2.3",
    }).encode()


def interaction(kind: int = 2, sub: str = "subscribe") -> bytes:
    payload = {"type": kind, "id": "1300000000000000001", "application_id": APP_ID, "token": "itoken", "version": 1}
    if kind == 2:
        payload |= {
            "channel_id": "1500000000000000002", "member": {"user": {"id": "1700000000000000004"}},
            "data": {"id": "1", "name": "deflation", "type": 1, "options": [{"type": 1, "name": sub, "options": []}]},
        }
    return json.dumps(payload).encode()


def now() -> int:
    return int(time.time())


def slack_signed(body: bytes, *, secret: str = SECRET, stamp: int | str | None = None, signature: str | None = None) -> dict[str, str]:
    stamp = now() if stamp is None else stamp
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": signature or slack_signature(secret, stamp, body)}


def database_bytes(path: Path) -> bytes:
    """The database and its write-ahead log, as bytes: any write shows."""
    return b"".join(p.read_bytes() if p.exists() else b"-" for p in (path, Path(f"{path}-wal")))


# (name, route, body, headers, content type, expected status): each a way a request can be bad.
def bad_requests(fake_slack) -> list[tuple[str, str, bytes, dict, str, int]]:
    s, d = "/slack/events", "/discord/interactions"
    body = slash(fake_slack)
    good = slack_signature(SECRET, now(), body)
    ping, command = interaction(kind=1), interaction()
    stamp = str(now())
    real = discord_headers(KEY, command, timestamp=stamp)["X-Signature-Ed25519"]
    big = b"text=" + b"x" * (web.MAX_BODY + 1)
    return [
        ("slack unsigned", s, body, {}, FORM, 401),
        ("slack signature without timestamp", s, body, {"X-Slack-Signature": good}, FORM, 401),
        ("slack timestamp without signature", s, body, {"X-Slack-Request-Timestamp": str(now())}, FORM, 401),
        ("slack empty signature", s, body, slack_signed(body, signature="v0="), FORM, 401),
        ("slack wrong version prefix", s, body, slack_signed(body, signature="v1=" + good[3:]), FORM, 401),
        ("slack no version prefix", s, body, slack_signed(body, signature=good[3:]), FORM, 401),
        ("slack bad hex", s, body, slack_signed(body, signature="v0=" + "zz" * 32), FORM, 401),
        ("slack truncated signature", s, body, slack_signed(body, signature=good[:-2]), FORM, 401),
        ("slack uppercase hex", s, body, slack_signed(body, signature="v0=" + good[3:].upper()), FORM, 401),
        ("slack wrong secret", s, body, slack_signed(body, secret="not-the-secret"), FORM, 401),
        ("slack timestamp 6 min old", s, body, slack_signed(body, stamp=now() - 360), FORM, 401),
        ("slack timestamp 6 min ahead", s, body, slack_signed(body, stamp=now() + 360), FORM, 401),
        ("slack non-numeric timestamp", s, body, slack_signed(body, stamp="12e9"), FORM, 401),
        ("slack superscript-digit timestamp", s, body, {"X-Slack-Request-Timestamp": "17000000\u00b2".encode("latin-1"), "X-Slack-Signature": good}, FORM, 401),
        ("slack negative timestamp", s, body, slack_signed(body, stamp="-1"), FORM, 401),
        ("slack timestamp header swapped after signing", s, body, {"X-Slack-Request-Timestamp": str(now() - 1), "X-Slack-Signature": good}, FORM, 401),
        ("slack body tampered after signing", s, body.replace(b"subscribe", b"unsubscribe"), slack_headers(SECRET, body), FORM, 401),
        ("slack body extended after signing", s, body + b"&user_id=U0ADMIN", slack_headers(SECRET, body), FORM, 401),
        ("slack Discord-signed", s, body, discord_headers(KEY, body), FORM, 401),
        ("slack unsigned, wrong content type", s, body, {}, "text/plain", 401),
        ("slack signed, wrong content type", s, body, slack_headers(SECRET, body), "text/plain", 415),
        ("slack oversized, signed", s, big, slack_headers(SECRET, big), FORM, 413),
        ("discord unsigned", d, command, {}, "application/json", 401),
        ("discord PING unsigned", d, ping, {}, "application/json", 401),
        ("discord PING wrong key", d, ping, discord_headers(OTHER_KEY, ping), "application/json", 401),
        ("discord bad signature", d, command, {"X-Signature-Ed25519": "00" * 64, "X-Signature-Timestamp": stamp}, "application/json", 401),
        ("discord short signature", d, command, {"X-Signature-Ed25519": real[:64], "X-Signature-Timestamp": stamp}, "application/json", 401),
        ("discord non-hex signature", d, command, {"X-Signature-Ed25519": "zz" * 64, "X-Signature-Timestamp": stamp}, "application/json", 401),
        ("discord wrong key", d, command, discord_headers(OTHER_KEY, command), "application/json", 401),
        ("discord tampered timestamp", d, command, {"X-Signature-Ed25519": real, "X-Signature-Timestamp": str(int(stamp) + 1)}, "application/json", 401),
        ("discord tampered body", d, command.replace(b"subscribe", b"unsubscribe"), {"X-Signature-Ed25519": real, "X-Signature-Timestamp": stamp}, "application/json", 401),
        ("discord timestamp 6 min old", d, command, discord_headers(KEY, command, timestamp=str(now() - 360)), "application/json", 401),
        ("discord timestamp 6 min ahead", d, command, discord_headers(KEY, command, timestamp=str(now() + 360)), "application/json", 401),
        ("discord non-numeric timestamp", d, command, discord_headers(KEY, command, timestamp="soon"), "application/json", 401),
        ("discord superscript-digit timestamp", d, command, {"X-Signature-Ed25519": real, "X-Signature-Timestamp": "\u00b2".encode("latin-1")}, "application/json", 401),
        ("discord Slack-signed", d, command, slack_headers(SECRET, command), "application/json", 401),
        ("discord signed, wrong content type", d, command, discord_headers(KEY, command), FORM, 415),
        ("discord oversized, signed", d, big, discord_headers(KEY, big), "application/json", 413),
    ]


class Spy:
    def __init__(self) -> None:
        self.calls = 0

    def wrap(self, function):  # noqa: ANN001, ANN201
        def spied(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            self.calls += 1
            return function(*args, **kwargs)

        return spied


def test_bad_requests_are_refused_before_anything_reads_them(bot, fake_slack, fake_discord, monkeypatch):
    ran, bolt, parsed = Spy(), Spy(), Spy()
    monkeypatch.setattr(commands, "answer", ran.wrap(commands.answer))
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler

    handle = AsyncSlackRequestHandler.handle

    async def bolt_handle(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        bolt.calls += 1
        return await handle(self, *args, **kwargs)

    monkeypatch.setattr(AsyncSlackRequestHandler, "handle", bolt_handle)

    class Json:
        loads = staticmethod(parsed.wrap(json.loads))

    monkeypatch.setattr(discord_app, "json", Json)
    cases = bad_requests(fake_slack)
    assert len(cases) >= 20 and len({name for name, *_ in cases}) == len(cases)
    before = database_bytes(bot.settings.db)
    for name, route, body, headers, kind, expected in cases:
        response = bot.post(route, body, headers, kind)
        assert response.status_code == expected, f"{name}: {response.status_code} {response.text}"
    time.sleep(0.5)  # a reply, had anything run, would be on its way by now
    assert (ran.calls, bolt.calls, parsed.calls) == (0, 0, 0)
    assert fake_slack.calls == [] and fake_discord.calls == []
    assert database_bytes(bot.settings.db) == before

    # The same requests, properly signed, do run: the refusals above were for the faults alone.
    body = slash(fake_slack, "help")
    assert bot.post("/slack/events", body, slack_headers(SECRET, body), FORM).status_code == 200
    wait_for(lambda: fake_slack.responses.get("T0001/1/abc"), what="the reply")
    assert bolt.calls == 1 and ran.calls == 1
    ping = interaction(kind=1)
    assert bot.post("/discord/interactions", ping, discord_headers(KEY, ping), "application/json").json() == {"type": 1}


def raw_request(url: str, head: str, chunks: list[bytes]) -> tuple[bytes, int]:
    """Send `head` and then `chunks` one by one until the server answers; return the answer and
    how many chunks were sent before it did."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        sent = 0
        sock.settimeout(0.2)
        for chunk in chunks:
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                answer = b""
            if answer:
                return answer, sent
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += 1
        sock.settimeout(10)
        return sock.recv(65536), sent


@pytest.mark.parametrize("route", ["/slack/events", "/discord/interactions"])
def test_an_oversized_body_is_refused_before_it_is_read_in_full(bot, fake_slack, fake_discord, route):
    before = database_bytes(bot.settings.db)
    # Declared too large: 413 at once, with only a first kilobyte of ten megabytes sent.
    head = (f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\n\r\n")
    answer, sent = raw_request(bot.url, head, [b"x" * 1024] * 100)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert sent < 100
    # Chunked, no length declared: read up to the cap, then 413 before the last chunk is sent.
    head = f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"y" * 16384
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 50 + [b"0\r\n\r\n"]
    answer, sent = raw_request(bot.url, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert sent < len(chunks) - 1
    assert fake_slack.calls == [] and fake_discord.calls == []
    assert database_bytes(bot.settings.db) == before


def test_slack_signatures_are_compared_in_constant_time(bot, fake_slack, monkeypatch):
    """The check is slack_sdk's SignatureVerifier, which compares with hmac.compare_digest."""
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a, b):  # noqa: ANN001, ANN202
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(slack_sdk.signature.hmac, "compare_digest", spy)
    body = slash(fake_slack)
    forged = slack_signed(body, secret="not-the-secret")
    assert bot.post("/slack/events", body, forged, FORM).status_code == 401
    assert compared == [(slack_signature(SECRET, forged["X-Slack-Request-Timestamp"], body), forged["X-Slack-Signature"])]
    endpoint = web.slack_endpoint(SECRET, None)  # type: ignore[arg-type]
    assert isinstance(endpoint.verifier, slack_sdk.signature.SignatureVerifier)


def test_a_valid_slack_request_replayed_after_five_minutes_is_refused(bot, fake_slack, monkeypatch):
    body = slash(fake_slack, "help")
    headers = slack_headers(SECRET, body)
    assert bot.post("/slack/events", body, headers, FORM).status_code == 200
    wait_for(lambda: fake_slack.responses.get("T0001/1/abc"), what="the reply")
    before = database_bytes(bot.settings.db)
    calls = len(fake_slack.calls)
    later = time.time() + 301
    monkeypatch.setattr(slack_sdk.signature, "time", lambda: later)  # the verifier's clock, five minutes on
    assert bot.post("/slack/events", body, headers, FORM).status_code == 401
    time.sleep(0.3)
    assert len(fake_slack.calls) == calls and fake_slack.responses["T0001/1/abc"] and len(fake_slack.responses["T0001/1/abc"]) == 1
    assert database_bytes(bot.settings.db) == before


def test_a_valid_discord_request_replayed_after_five_minutes_is_refused():
    body = interaction()
    headers = discord_headers(KEY, body, timestamp="1700000000")
    key = KEY.verify_key.encode().hex()
    assert discord_app.verified(key, headers, body, 1700000000 + 299)
    assert not discord_app.verified(key, headers, body, 1700000000 + 301)
