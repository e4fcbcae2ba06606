"""Slack's inbound side: a Bolt `AsyncApp` with one listener, the `/deflation` slash command.

HTTP mode: Slack POSTs to `/slack/events`; Bolt checks `X-Slack-Signature` (HMAC-SHA256 of
`v0:{timestamp}:{body}` with the signing secret) and refuses a timestamp more than five minutes
off with 401, before any listener runs. Socket Mode (when `SLACK_APP_TOKEN` is set): the same
app over a WebSocket that the bot opens, so no public URL is needed and nothing is signed.

The listener acks at once with an empty body (Slack's 3-second deadline), then answers through
the command's `response_url` (`SlackAdapter.respond`): charts and the slow commands run after
the ack. Errors are shown only to the person who typed the command; other answers to the channel.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import Response

from bot.cards import Card
from bot.chat.slack import SLACK_API_URL, SlackAdapter

log = logging.getLogger(__name__)

COMMAND = "/deflation"

#: (text, user, channel) -> the answer; user and channel are addresses like "slack:U0123".
Answer = Callable[[str, str, str], Awaitable[Card]]
Spawn = Callable[[Coroutine[Any, Any, Any]], Any]


def build_app(
    *,
    token: str,
    signing_secret: str | None,
    adapter: SlackAdapter,
    answer: Answer,
    spawn: Spawn,
    api_url: str | None = None,
    is_error: Callable[[Card], bool] = lambda card: False,
) -> AsyncApp:
    """The Bolt app. `spawn` runs the reply after the ack (and lets shut-down wait for it)."""
    client = AsyncWebClient(token=token, base_url=(api_url or SLACK_API_URL).rstrip("/") + "/")
    app = AsyncApp(
        client=client,
        # Socket Mode needs no secret; an empty one makes every HTTP request fail verification.
        signing_secret=signing_secret or "",
        process_before_response=False,
        logger=logging.getLogger("slack_bolt"),
    )

    async def reply(body: dict[str, Any]) -> None:
        channel = body.get("channel_id") or ""
        card = await answer(body.get("text") or "", f"slack:{body.get('user_id', '')}", f"slack:{channel}")
        response_url = body.get("response_url")
        if not response_url:
            log.warning("a /deflation command came without a response_url; its answer is dropped")
            return
        sent = await adapter.respond(response_url, [card], in_channel=not is_error(card), channel=channel or None)
        if not sent.ok:
            log.warning("answering /deflation in %s failed: %s", channel, sent.error)

    @app.command(COMMAND)
    async def deflation(ack: Callable[..., Awaitable[Any]], body: dict[str, Any]) -> None:
        await ack()
        spawn(reply(body))

    return app


def http_endpoint(app: AsyncApp) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint for `POST /slack/events`."""
    handler = AsyncSlackRequestHandler(app)

    async def endpoint(request: Request) -> Response:
        return await handler.handle(request)

    return endpoint


def socket_mode(app: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """A Socket Mode connection for `app`; `await connect_async()` starts it, `close_async()` ends it."""
    return AsyncSocketModeHandler(app, app_token)
