"""HTTP for every source: one shared AsyncClient, time and size caps, conditional requests.

An unchanged upstream costs one `304 Not Modified` when it gives an ETag or Last-Modified.
Every failure becomes a `FetchError` whose message is one line naming the URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from bot.errors import FetchError

if TYPE_CHECKING:  # only an annotation: bot.config imports sources that import this module
    from bot.config import HttpSettings

MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int  # 200, or 304 when the upstream says our copy is current
    body: bytes | None
    etag: str | None
    last_modified: str | None


def make_client(http: HttpSettings) -> httpx.AsyncClient:
    """The one client: pooled connections, a descriptive User-Agent, bounded redirects."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(http.timeout),
        headers={"User-Agent": http.user_agent, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
    )


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """GET `url`, conditionally when validators are known; refuse bodies over `max_bytes`
    (counted after decompression, so a gzip bomb stops at the cap). `headers` are sent with
    this request only, over the client's own (SEC wants its own User-Agent, for one)."""
    headers = dict(headers or {})
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return Fetched(304, None, etag, last_modified)
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code} from {url}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"body of {declared} bytes from {url} is over the {max_bytes}-byte cap")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"body from {url} is over the {max_bytes}-byte cap")
            return Fetched(200, bytes(body), response.headers.get("ETag"), response.headers.get("Last-Modified"))
    except httpx.TimeoutException:
        raise FetchError(f"timed out fetching {url}") from None
    except httpx.TooManyRedirects:
        raise FetchError(f"more than {MAX_REDIRECTS} redirects fetching {url}") from None
    except httpx.DecodingError as exc:
        raise FetchError(f"could not decode the body from {url}: {exc}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__} fetching {url}: {exc or 'connection failed'}") from None
