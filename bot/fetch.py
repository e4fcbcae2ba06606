"""HTTP for every source: one shared AsyncClient, time and size caps, conditional requests,
and redirects followed here, one hop at a time, so each hop can be checked.

An unchanged upstream costs one `304 Not Modified` when it gives an ETag or Last-Modified.
Every failure becomes a `FetchError` whose message is one line naming the URL; a 429 or 503
that says when to come back carries that wait as `FetchError.retry_after`.

Outbound safety: source URLs come only from the configuration. A redirect may lead only to
http(s), and, unless the configured URL is itself on loopback (a local mirror, the tests), not
to a loopback, private, link-local or otherwise non-public address (cloud metadata services
live at 169.254.169.254): a public upstream cannot turn the bot against its own network. The
check resolves the redirect's host before following it; a name that resolves differently a
moment later (DNS rebinding) is not caught, which is acceptable for the few fixed upstreams.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import httpx

from bot.errors import FetchError

if TYPE_CHECKING:  # only an annotation: bot.config imports sources that import this module
    from bot.config import HttpSettings

MAX_REDIRECTS = 5
#: Statuses whose Retry-After says when to ask again (RFC 9110, section 10.2.3).
RETRY_STATUSES = (429, 503)
#: The longest Retry-After honoured (seconds); a longer one, or a date further out, counts as this.
MAX_RETRY_AFTER = 24 * 3600.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int  # 200, or 304 when the upstream says our copy is current
    body: bytes | None
    etag: str | None
    last_modified: str | None


def make_client(http: HttpSettings) -> httpx.AsyncClient:
    """The one client: pooled connections, a descriptive User-Agent. It follows no redirect
    by itself: `fetch` follows them, checking every hop."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(http.timeout),
        headers={"User-Agent": http.user_agent, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=False,
    )


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
    headers: Mapping[str, str] | None = None,
    deadline: float | None = None,
) -> Fetched:
    """GET `url`, conditionally when validators are known; refuse bodies over `max_bytes`
    (counted after decompression, so a gzip bomb stops at the cap) and requests, redirects and
    body included, that take longer than `deadline` seconds (the client's timeout bounds each
    read, not the whole: an upstream dripping a byte a second would otherwise never end).
    `headers` are sent with this request only, over the client's own (SEC wants its own
    User-Agent, for one)."""
    headers = dict(headers or {})
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    shown = _shown(url)
    try:
        async with asyncio.timeout(deadline):
            return await _follow(client, client.build_request("GET", url, headers=headers), max_bytes, (etag, last_modified))
    except TimeoutError:
        raise FetchError(f"took over {deadline:g} s fetching {shown}") from None
    except httpx.TimeoutException:
        raise FetchError(f"timed out fetching {shown}") from None
    except httpx.DecodingError as exc:
        raise FetchError(f"could not decode the body from {shown}: {exc}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__} fetching {shown}: {exc or 'connection failed'}") from None
    except httpx.InvalidURL as exc:  # a Location header httpx cannot read (not an HTTPError)
        raise FetchError(f"unreadable redirect fetching {shown}: {exc}") from None


async def _follow(client: httpx.AsyncClient, request: httpx.Request, max_bytes: int, validators: tuple[str | None, str | None]) -> Fetched:
    origin = request.url
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if response.next_request is None:
                return await _read(response, max_bytes, validators)
            await check_redirect(origin, response.next_request.url)
            request = response.next_request
        finally:
            await response.aclose()
    raise FetchError(f"more than {MAX_REDIRECTS} redirects fetching {_shown(origin)}")


async def _read(response: httpx.Response, max_bytes: int, validators: tuple[str | None, str | None]) -> Fetched:
    url = _shown(response.request.url)
    if response.status_code == 304:
        if not any(validators):  # nothing was asked conditionally: this 304 vouches for nothing
            raise FetchError(f"HTTP 304 from {url} to a request that sent no ETag or Last-Modified", status=304)
        return Fetched(304, None, *validators)
    if response.status_code != 200:
        wait = retry_after(response) if response.status_code in RETRY_STATUSES else None
        hint = f" (Retry-After {wait:g} s)" if wait is not None else ""
        raise FetchError(f"HTTP {response.status_code} from {url}{hint}", status=response.status_code, retry_after=wait)
    declared = response.headers.get("Content-Length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"body of {declared} bytes from {url} is over the {max_bytes}-byte cap")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"body from {url} is over the {max_bytes}-byte cap")
    return Fetched(200, bytes(body), response.headers.get("ETag"), response.headers.get("Last-Modified"))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the upstream asks us to wait, from Retry-After as seconds or as an HTTP date
    (measured against the response's own Date, so our clock's skew does not matter); None
    when absent or unreadable; at most `MAX_RETRY_AFTER`."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # "²".isdigit() too, but float() refuses it
        seconds = float(value)
    else:
        when = _http_date(value)
        if when is None:
            return None
        seconds = max((when - (_http_date(response.headers.get("Date", "")) or datetime.now(UTC))).total_seconds(), 0.0)
    return min(seconds, MAX_RETRY_AFTER)


def _http_date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def check_redirect(origin: httpx.URL, target: httpx.URL) -> None:
    """Raise FetchError unless a redirect from `origin` to `target` may be followed."""
    if target.scheme not in ("http", "https"):
        raise FetchError(f"redirect from {_shown(origin)} to a {target.scheme or 'relative'}: URL refused; only http(s) is followed")
    if _loopback(origin.host):
        return  # the configured URL is a local mirror (or a test server): its redirects are trusted
    for address in await resolve(target.host, target.port or (443 if target.scheme == "https" else 80)):
        if not address.is_global or address.is_multicast:
            raise FetchError(
                f"redirect from {_shown(origin)} to {_shown(target)} refused: {target.host} is a {_kind(address)} address ({address})"
            )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` stands for: itself when it is an address; nothing when the name
    does not resolve (the request then fails on its own)."""
    literal = _address(host)
    if literal is not None:
        return [literal]
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found = (_address(str(info[4][0]).partition("%")[0]) for info in infos)
    return [address for address in found if address is not None]


def _address(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _loopback(host: str) -> bool:
    address = _address(host)
    return address.is_loopback if address is not None else host.lower() == "localhost"


def _kind(address: IPAddress) -> str:
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "non-public"


def _shown(url: str | httpx.URL) -> str:
    """The URL for a message, without any user:password part."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else str(parsed)
