"""Slack's inbound side: a Bolt `AsyncApp` with one listener, the `/deflation` slash command.

HTTP mode: Slack POSTs to `/slack/events`; Bolt checks `X-Slack-Signature` (HMAC-SHA256 of
`v0:{timestamp}:{body}` with the signing secret) and refuses a timestamp more than five minutes
off with 401, before any listener runs. Socket Mode (when `SLACK_APP_TOKEN` is set): the same
app over a WebSocket that the bot opens, so no public URL is needed and nothing is signed.
`SocketMode` asks `apps.connections.open` (through the same `SLACK_API_URL` as every other
call, with the app-level token) for the WebSocket URL in the background, so a Slack that is
down or a wrong token never holds up the HTTP server, the jobs or a shut-down; a token Slack
refuses stops the attempts and is reported by `/healthz`. Once connected, slack_sdk's client
keeps the connection: it pings, and moves to a fresh URL when Slack sends `disconnect`.

The listener acks at once with an empty body (Slack's 3-second deadline), then answers through
the command's `response_url` (`SlackAdapter.respond`): charts and the slow commands run after
the ack. Errors are shown only to the person who typed the command; other answers to the channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
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
        # Socket Mode needs no secret; without one `bot.web` serves no /slack/events at all.
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


#: apps.connections.open errors that no retry mends: the app-level token is wrong or revoked.
TOKEN_ERRORS = frozenset({
    "not_authed", "invalid_auth", "not_allowed_token_type", "token_revoked", "token_expired",
    "account_inactive", "missing_scope", "forbidden_team",
})


class SocketMode:
    """Slack Socket Mode for `app`, connected in the background. Make it inside the running
    event loop (slack_sdk's client binds to it); `start()` begins connecting, `close()` ends it."""

    def __init__(self, app: AsyncApp, app_token: str, *, retry_delays: tuple[float, ...] = (1, 2, 5, 10, 30)):
        # The handler's Web API client is the app's: the bot token's, at SLACK_API_URL; the app
        # token goes only to apps.connections.open.
        self.handler = AsyncSocketModeHandler(app, app_token)
        self.retry_delays = retry_delays
        self.state = "connecting"
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        client = self.handler.client
        attempt = 0
        while True:
            try:
                client.wss_uri = await client.issue_new_wss_url()
                break
            except SlackApiError as exc:
                error = str(exc.response.get("error") or exc.response.status_code)
                if error in TOKEN_ERRORS:
                    self.state = f"failed: {error}"
                    log.error("Slack Socket Mode is off: apps.connections.open refused SLACK_APP_TOKEN (%s). "
                              "Set an app-level token with connections:write and restart.", error)
                    return
                reason = error
            except Exception as exc:  # Slack unreachable: try again
                reason = f"{type(exc).__name__}: {exc}"
            delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
            attempt += 1
            self.state = f"connecting (last error: {reason})"
            log.warning("Slack Socket Mode: no connection yet (%s); trying again in %ss", reason, delay)
            await asyncio.sleep(delay)
        await self.handler.connect_async()
        self.state = "connected"
        log.info("Slack Socket Mode connected")

    async def status(self) -> str:
        """For /healthz: "connected", "reconnecting", "connecting …" or "failed: ERROR"."""
        if self.state == "connected" and not await self.handler.client.is_connected():
            return "reconnecting"
        return self.state

    async def close(self) -> None:
        """Stop connecting, close the WebSocket (a normal close frame) and the client's session."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.handler.close_async()
        self.state = "closed"
