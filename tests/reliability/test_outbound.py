"""Outbound safety: where a fetch may be led, and that nothing but the configuration says where
to fetch from.

Tests cannot reach a public address, so a public upstream is played by an `httpx.MockTransport`
whose requests are recorded: a refused redirect is one whose target never reached the transport.
Names are resolved through `bot.fetch.resolve`, which the tests replace to say what a name
stands for.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import ipaddress
from pathlib import Path

import httpx
import pytest

from bot import commands, fetch
from bot.config import HttpSettings, SourceSettings, load
from bot.errors import FetchError
from storage import open_db

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "https://prices.example.com/catalog.json"
CATALOG = b'{"data": []}'


def upstream(redirect_to: str | None, recorded: list[str]) -> httpx.MockTransport:
    """A public upstream: its catalog URL redirects to `redirect_to`; any other URL answers."""

    def handle(request: httpx.Request) -> httpx.Response:
        recorded.append(str(request.url))
        if str(request.url) == PUBLIC and redirect_to is not None:
            return httpx.Response(302, headers={"Location": redirect_to})
        return httpx.Response(200, content=CATALOG)

    return httpx.MockTransport(handle)


def get(url: str, transport: httpx.AsyncBaseTransport | None = None, **options) -> fetch.Fetched:
    async def run() -> fetch.Fetched:
        client = fetch.make_client(HttpSettings(timeout=2.0, user_agent="dw-test/1"))
        if transport is not None:
            client._transport = transport  # the client as made, talking to the mock upstream
        async with client:
            return await fetch.fetch(client, url, max_bytes=100_000, **options)

    return asyncio.run(run())


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What each host name resolves to, for the redirect check; unknown names resolve to nothing."""
    table: dict[str, str] = {"cdn.example.net": "93.184.216.34"}
    real = fetch.resolve

    async def resolve(host: str, port: int):
        if host in table:
            return [ipaddress.ip_address(table[host])]
        return await real(host, port) if fetch._address(host) or host == "localhost" else []

    monkeypatch.setattr(fetch, "resolve", resolve)
    return table


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("http://127.0.0.1:8080/admin", "loopback"),
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"),
        ("http://10.0.0.5/internal", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://0.0.0.0:3000/healthz", "unspecified"),
        ("http://localhost:3000/metrics", "loopback"),
        ("http://metadata.internal.example/", "private"),  # a name that resolves inside
    ],
)
def test_a_public_upstream_cannot_redirect_inside(names, target, kind):
    names["metadata.internal.example"] = "10.20.30.40"
    recorded: list[str] = []
    with pytest.raises(FetchError, match=rf"^redirect from {PUBLIC} to .* refused: .* is a {kind} address") as caught:
        get(PUBLIC, upstream(target, recorded))
    assert recorded == [PUBLIC]  # the internal address was never asked
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("file:///etc/passwd", r"to a file: URL refused; only http\(s\) is followed$"),
        ("ftp://ftp.example.com/prices.json", r"to a ftp: URL refused; only http\(s\) is followed$"),
        ("gopher://example.com/", r"to a gopher: URL refused; only http\(s\) is followed$"),
        ("data:text/plain,{}", r"^unreadable redirect fetching https://prices.example.com/catalog.json: "),
    ],
)
def test_no_redirect_leaves_http(names, target, message):
    recorded: list[str] = []
    with pytest.raises(FetchError, match=message):
        get(PUBLIC, upstream(target, recorded))
    assert recorded == [PUBLIC]


def test_a_public_upstream_may_redirect_to_another_public_host(names):
    recorded: list[str] = []
    fetched = get(PUBLIC, upstream("https://cdn.example.net/catalog.json", recorded))
    assert (fetched.status, fetched.body) == (200, CATALOG)
    assert recorded == [PUBLIC, "https://cdn.example.net/catalog.json"]


def test_a_loopback_upstream_may_redirect_on_loopback(source_server):
    """A configured loopback URL (a local mirror, the tests' server) is trusted with its own
    redirects, relative or to another loopback port."""
    source_server.serve("/catalog.json", CATALOG)
    source_server.serve("/old.json", status=301, headers={"Location": "/catalog.json"})
    source_server.serve("/elsewhere.json", status=302, headers={"Location": f"http://localhost:{source_server.httpd.server_address[1]}/old.json"})
    assert get(source_server.url("/elsewhere.json")).body == CATALOG
    assert [seen.path for seen in source_server.requests] == ["/elsewhere.json", "/old.json", "/catalog.json"]


def test_even_a_loopback_upstream_cannot_redirect_out_of_http(source_server):
    source_server.serve("/catalog.json", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchError, match="to a file: URL refused"):
        get(source_server.url("/catalog.json"))


def test_a_304_to_an_unconditional_request_vouches_for_nothing(source_server):
    """A 304 confirms the catalog we hold, and confirms pending alerts with it: one that answers
    a request with no validators (a broken cache in between) must not count as a good poll."""
    source_server.serve("/catalog.json", status=304)
    with pytest.raises(FetchError, match="HTTP 304 from .* to a request that sent no ETag or Last-Modified"):
        get(source_server.url("/catalog.json"))
    assert get(source_server.url("/catalog.json"), etag='"abc"').status == 304


def test_credentials_in_a_url_are_not_shown_in_errors(source_server):
    url = source_server.url("/gone.json").replace("http://", "http://reader:hunter2@")
    source_server.serve("/gone.json", status=404)
    with pytest.raises(FetchError) as caught:
        get(url)
    assert "hunter2" not in str(caught.value) and "/gone.json" in str(caught.value)


def test_the_client_follows_no_redirect_by_itself():
    """Only `fetch` follows redirects, hop by hop, with the checks above; a source handed the
    client that called it directly would get the redirect, not its target."""
    client = fetch.make_client(HttpSettings())
    assert client.follow_redirects is False
    asyncio.run(client.aclose())


# Source URLs come only from the configuration -------------------------------------------------

#: The modules that turn what a person types in chat (or the terminal) into answers.
COMMAND_LAYER = ("bot/commands.py", "bot/cards.py", "bot/lookup.py", "bot/chat", "bot/app.py", "bot/web.py", "bot/indicator_commands.py")


def _modules(paths: tuple[str, ...]) -> list[Path]:
    found = []
    for name in paths:
        path = ROOT / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return found


def test_the_command_layer_never_fetches_a_source_nor_touches_a_source_url():
    """No module of the command layer imports the fetcher or a source module, or names a
    source's `url`: a chat user has no way to point the bot at an address."""
    offending = []
    for path in _modules(COMMAND_LAYER):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and (node.module == "bot.fetch" or node.module.startswith("bot.sources")):
                offending.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.ImportFrom) and node.module == "bot" and any(alias.name in ("fetch", "sources") for alias in node.names):
                offending.append(f"{path.relative_to(ROOT)}:{node.lineno} imports bot.fetch or bot.sources")
            if isinstance(node, ast.Attribute) and node.attr == "url" and "sources" in ast.unparse(node.value):
                offending.append(f"{path.relative_to(ROOT)}:{node.lineno} reads {ast.unparse(node)}")
    assert offending == []


def test_settings_cannot_be_changed_once_loaded(tmp_path):
    settings = load(environ={}, db=tmp_path / "dw.db")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.sources["litellm"].url = "http://169.254.169.254/"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.sources["litellm"] = SourceSettings(url="http://169.254.169.254/")  # type: ignore[index]


def test_no_command_fetches_anything_whatever_its_arguments(tmp_path, monkeypatch):
    """Every registered command, given URLs and addresses as arguments, answers without a single
    HTTP request and leaves the source URLs as configured."""
    sent: list[str] = []

    async def no_network(self, request, **kwargs):
        sent.append(str(request.url))
        raise AssertionError(f"a command made a request to {request.url}")

    monkeypatch.setattr(httpx.AsyncClient, "send", no_network)
    monkeypatch.setattr(httpx.Client, "send", lambda self, request, **kwargs: sent.append(str(request.url)))
    settings = load(environ={}, db=tmp_path / "dw.db")
    urls = {name: source.url for name, source in settings.sources.items()}
    db = open_db(tmp_path / "dw.db")
    bad = ["http://169.254.169.254/latest/meta-data/", "url=http://127.0.0.1:3000/", "file:///etc/passwd", "--url", "http://10.0.0.1/"]
    for name in list(commands.COMMANDS):
        for args in (bad, ["litellm", *bad], ["sources.litellm.url", bad[0]]):
            card = commands.answer(" ".join([name, *args]), commands.Context(db, settings, user="slack:U1", channel="slack:C1"))
            assert card is not None
    assert sent == []
    assert {name: source.url for name, source in settings.sources.items()} == urls
    db.close()
