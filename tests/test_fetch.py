"""HTTP fetching against a real loopback server: validators, caps, and one-line errors."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from bot.config import HttpSettings
from bot.errors import FetchError
from bot.fetch import fetch, make_client


def get(url: str, *, max_bytes: int = 1_000_000, timeout: float = 5.0, **validators):
    async def run():
        async with make_client(HttpSettings(timeout=timeout, user_agent="dw-test/1 (ops@example.org)")) as client:
            return await fetch(client, url, max_bytes=max_bytes, **validators)

    return asyncio.run(run())


def test_ok_sends_user_agent_and_keeps_validators(source_server):
    url = source_server.serve("/p.json", b'{"a": 1}', headers={"Last-Modified": "Wed, 01 Oct 2025 00:00:00 GMT"})
    fetched = get(url)
    assert (fetched.status, fetched.body) == (200, b'{"a": 1}')
    assert fetched.etag and fetched.last_modified == "Wed, 01 Oct 2025 00:00:00 GMT"
    assert source_server.requests[0].headers["User-Agent"] == "dw-test/1 (ops@example.org)"


def test_unchanged_upstream_answers_304(source_server):
    url = source_server.serve("/p.json", b'{"a": 1}')
    first = get(url)
    second = get(url, etag=first.etag)
    assert (second.status, second.body) == (304, None)
    assert source_server.requests[-1].headers["If-None-Match"] == first.etag


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"status": 503}, "HTTP 503 from http://127.0.0.1"),
        ({"status": 404}, "HTTP 404 from"),
        ({"delay": 1.5}, "timed out fetching"),
        ({"body": b"x" * 2000}, "over the 1000-byte cap"),
        ({"body": gzip.compress(b"0" * 50_000), "headers": {"Content-Encoding": "gzip"}}, "over the 1000-byte cap"),
        ({"status": 302, "headers": {"Location": "/p.json"}}, "redirects fetching"),
    ],
    ids=["503", "404", "timeout", "too-large", "gzip-bomb", "redirect-loop"],
)
def test_failures_are_one_line_errors(source_server, options, message):
    url = source_server.serve("/p.json", **{"body": b"{}", **options})
    with pytest.raises(FetchError, match=message) as caught:
        get(url, max_bytes=1000, timeout=0.5)
    assert "\n" not in str(caught.value)


def test_connection_refused_is_a_fetch_error():
    with pytest.raises(FetchError, match="127.0.0.1:9"):
        get("http://127.0.0.1:9/none.json")
