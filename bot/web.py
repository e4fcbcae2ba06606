"""The running bot's HTTP routes (Starlette):

    POST /slack/events            Slack slash commands (HTTP mode: SLACK_SIGNING_SECRET)
    POST /discord/interactions    Discord interactions, Ed25519-verified
    GET  /healthz                 200 when healthy, 503 when not, with a JSON report
    GET  /metrics                 Prometheus text format

A platform that is not configured has no route (404), so nothing unverified is ever run.

Every request body is capped (`MAX_BODY`): a `Content-Length` over the cap is refused with 413
before a byte of the body is read, and a chunked body is read only up to the cap, then refused.
Slack's signature (HMAC-SHA256 of `v0:timestamp:body`, compared in constant time by slack_sdk's
`SignatureVerifier`, five-minute window) is checked here on the raw bytes, before Bolt parses
anything; Discord's Ed25519 signature is checked by `bot.chat.discord_app` the same way. Only a
verified request is parsed; a verified one of the wrong content type is refused with 415.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import commands
from bot.chat import discord_app, slack_app

if TYPE_CHECKING:
    from bot.app import Bot

#: The largest request body taken, in bytes. A slash command is well under 4 KiB; Discord's
#: interactions (with resolved members and channels) under 16 KiB.
MAX_BODY = 64 * 1024
#: The content types each platform sends.
SLACK_TYPES = ("application/x-www-form-urlencoded", "application/json")
DISCORD_TYPES = ("application/json",)


class BodyLimit:
    """ASGI middleware: refuse a body over `limit` bytes with 413, reading at most `limit` + one
    chunk of it; the app downstream gets the body already read, so it never reads more."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > self.limit):
            await _too_large(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, given = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = PlainTextResponse(f"request body over {MAX_BODY} bytes", status_code=413, headers={"Connection": "close"})
    await response(scope, receive, send)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def slack_endpoint(signing_secret: str, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """`POST /slack/events`: the signature and its timestamp checked on the raw body
    (constant-time, `verifier.is_valid_request`), then the content type, then Bolt."""
    verifier = SignatureVerifier(signing_secret)

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        if not slack_verified(verifier, request.headers, body):
            return Response("invalid request signature", status_code=401)
        if content_type(request) not in SLACK_TYPES:
            return Response("unsupported content type", status_code=415)
        return await handler(request)

    endpoint.verifier = verifier  # type: ignore[attr-defined]  # for the tests
    return endpoint


def slack_verified(verifier: SignatureVerifier, headers: Any, body: bytes) -> bool:
    """Whether a request carries Slack's `v0=` signature of this body, made within five minutes.
    A malformed timestamp or signature is simply not valid."""
    stamp, signature = headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature")
    if not stamp or not signature or not (stamp.isascii() and stamp.isdigit()) or not signature.startswith("v0="):
        return False
    return verifier.is_valid(body=body, timestamp=stamp, signature=signature)


def make_app(bot: Bot) -> Starlette:
    async def healthz(request: Request) -> Response:
        healthy, report = await bot.health()
        return JSONResponse(report, status_code=200 if healthy else 503)

    async def metrics(request: Request) -> Response:
        body, kind = bot.metrics.render()
        return Response(body, media_type=kind)

    routes = [Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
    signing_secret = bot.env.reveal("slack_signing_secret")
    if bot.slack_app is not None and signing_secret:  # Socket Mode alone takes no HTTP
        endpoint = slack_endpoint(signing_secret, slack_app.http_endpoint(bot.slack_app))
        routes.append(Route("/slack/events", endpoint, methods=["POST"]))
    if bot.env.discord_public_key and bot.discord is not None:
        discord = discord_app.interactions_endpoint(
            public_key=bot.env.discord_public_key,
            adapter=bot.discord,
            answer=bot.answer,
            spawn=bot.spawn,
            is_slow=commands.is_slow,
            is_error=commands.is_error,
        )

        routes.append(Route("/discord/interactions", discord, methods=["POST"]))
    app = Starlette(routes=routes)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    return app

