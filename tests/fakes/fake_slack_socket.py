"""Slack's Socket Mode side on loopback: the WebSocket server an app dials when it has no
public URL, paired with `FakeSlack`'s `apps.connections.open`.

The protocol, as Slack documents it and as slack_sdk speaks it:

1. The app POSTs `apps.connections.open` with its app-level token (`xapp-…`) in the
   Authorization header and gets `{"ok": true, "url": "wss://…/link/?ticket=…&app_id=…"}`; each
   URL's ticket is good for one connection.
2. On connecting, Slack sends `{"type": "hello", "num_connections": …, "debug_info": …,
   "connection_info": {"app_id": …}}`.
3. Each slash command arrives as an envelope: `{"envelope_id": …, "type": "slash_commands",
   "payload": {token, team_id, team_domain, channel_id, channel_name, user_id, user_name,
   command, text, api_app_id, is_enterprise_install, response_url, trigger_id},
   "accepts_response_payload": true}`; the app acks it within 3 seconds by sending
   `{"envelope_id": …}` back (with an optional `payload`, the immediate reply).
4. Slack asks the app to move to a fresh connection with `{"type": "disconnect", "reason":
   "refresh_requested", …}` (every few hours), or `warning` ahead of that.

Here the server is aiohttp's, in a thread with its own event loop; `FakeSlack.socket_mode()`
attaches one. A test pushes envelopes with `slash_command` and reads `acks`, `connections` and
`received`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class Connection:
    """One WebSocket the app opened, as the server saw it."""

    ticket: str
    opened_at: float
    ws: web.WebSocketResponse = field(repr=False)
    closed_at: float | None = None
    close_code: int | None = None  # the close frame's code
    closed_by_server: bool = False  # the fake hung up (stop()), not the app

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass
class Ack:
    envelope_id: str
    at: float  # time.monotonic()
    payload: Any = None
    connection: int = 0  # index into `connections`


@dataclass
class Envelope:
    envelope_id: str
    sent_at: float
    body: dict[str, Any]
    connection: int


class FakeSlackSocket:
    def __init__(self, app_token: str = "xapp-1-A0DEFLATION-1-test", app_id: str = "A0DEFLATION") -> None:
        self.app_token = app_token
        self.app_id = app_id
        self.tickets: dict[str, bool] = {}  # ticket -> used
        self.connections: list[Connection] = []
        self.envelopes: dict[str, Envelope] = {}
        self.acks: dict[str, Ack] = {}
        self.received: list[Any] = []  # every text frame from the app, decoded
        self.refused: list[str] = []  # why a connection attempt was turned away
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle --

    def start(self) -> FakeSlackSocket:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> FakeSlackSocket:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        for connection in list(self.connections):
            if connection.open:
                connection.closed_by_server = True
                await connection.ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what apps.connections.open hands out --

    def issue_url(self) -> str:
        """A fresh one-connection URL, as `apps.connections.open` returns it."""
        ticket = uuid.uuid4().hex
        with self.lock:
            self.tickets[ticket] = False
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- the WebSocket --

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self.lock:
            fresh = self.tickets.get(ticket) is False
            if fresh:
                self.tickets[ticket] = True
            else:
                self.refused.append(f"ticket {ticket!r} is unknown or used")
        if not fresh:
            return web.Response(status=401, text="invalid or used ticket")
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings with pongs
        await ws.prepare(request)
        with self.lock:
            index = len(self.connections)
            connection = Connection(ticket, time.monotonic(), ws)
            self.connections.append(connection)
            live = sum(1 for c in self.connections if c.open)
        await ws.send_str(json.dumps({
            "type": "hello",
            "num_connections": live,
            "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }))
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                body = json.loads(message.data)
            except ValueError:
                body = {"__unparsable__": message.data}
            with self.lock:
                self.received.append(body)
                envelope_id = body.get("envelope_id") if isinstance(body, dict) else None
                if envelope_id in self.envelopes and envelope_id not in self.acks:
                    self.acks[envelope_id] = Ack(envelope_id, time.monotonic(), body.get("payload"), index)
        with self.lock:
            connection.closed_at = time.monotonic()
            connection.close_code = ws.close_code
        return ws

    # -- what a test does --

    def live(self) -> list[int]:
        """Indexes of the connections still open."""
        with self.lock:
            return [i for i, c in enumerate(self.connections) if c.open]

    def send(self, body: dict[str, Any], connection: int | None = None) -> int:
        """Send a frame on `connection` (default: the newest open one); returns its index."""
        with self.lock:
            live = [i for i, c in enumerate(self.connections) if c.open]
            if not live:
                raise AssertionError("no Socket Mode connection is open")
            index = live[-1] if connection is None else connection
            ws = self.connections[index].ws
        asyncio.run_coroutine_threadsafe(ws.send_str(json.dumps(body)), self._loop).result(5)
        return index

    def slash_command(
        self,
        text: str,
        *,
        response_url: str,
        channel_id: str = "C0SOCKET",
        user_id: str = "U0ALICE",
        command: str = "/deflation",
        team_id: str = "T0001",
    ) -> str:
        """Deliver a slash command as Slack does over Socket Mode; returns its envelope id."""
        envelope_id = str(uuid.uuid4())
        number = next(self._ids)
        body = {
            "envelope_id": envelope_id,
            "payload": {
                "token": "deprecated-verification-token",
                "team_id": team_id,
                "team_domain": "deflation-test",
                "channel_id": channel_id,
                "channel_name": "prices",
                "user_id": user_id,
                "user_name": "alice",
                "command": command,
                "text": text,
                "api_app_id": self.app_id,
                "is_enterprise_install": "false",
                "response_url": response_url,
                "trigger_id": f"{number}.{number}.fake",
            },
            "type": "slash_commands",
            "accepts_response_payload": True,
        }
        with self.lock:
            self.envelopes[envelope_id] = Envelope(envelope_id, time.monotonic(), body, -1)
        index = self.send(body)
        with self.lock:
            self.envelopes[envelope_id].connection = index
        return envelope_id

    def request_refresh(self, reason: str = "refresh_requested") -> None:
        """Ask the app to reconnect on a new URL, as Slack does every few hours."""
        self.send({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}})

    def ack_delay(self, envelope_id: str) -> float | None:
        """Seconds from sending the envelope to its ack, or None while unacked."""
        with self.lock:
            ack, envelope = self.acks.get(envelope_id), self.envelopes.get(envelope_id)
        return None if ack is None or envelope is None else ack.at - envelope.sent_at
