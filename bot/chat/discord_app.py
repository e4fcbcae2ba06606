"""Discord's inbound side: the interactions endpoint, `POST /discord/interactions`.

Every request is checked before anything else reads it: the Ed25519 signature of
`X-Signature-Timestamp` + raw body against the application's public key, and a timestamp no
more than five minutes off (so a captured request cannot be replayed later). Anything else is
401 and nothing is parsed, run or stored. A PING is answered PONG; `/deflation` subcommands
become command text (`command_text`) for the command layer.

Discord wants the first response within 3 seconds. A command that is quick answers in the HTTP
response itself (type 4). One that may be slow (a chart, the whole history), or that is not done
within `answer_within` seconds, or whose answer needs several messages or an attachment, is
answered "thinking…" (type 5, deferred) and then filled in through the interaction webhook
(`DiscordAdapter.edit_original`, valid for 15 minutes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.cards import Card
from bot.chat.discord import DiscordAdapter, command_text, deferred, message_response, pong, verify_discord_signature

log = logging.getLogger(__name__)

PING, APPLICATION_COMMAND = 1, 2
#: Requests signed longer ago (or further ahead) than this, in seconds, are refused as replays.
MAX_SKEW = 300
COMMAND = "deflation"

#: (text, user, channel) -> the answer; user and channel are addresses like "discord:8123".
Answer = Callable[[str, str, str], Awaitable[Card]]
Spawn = Callable[[Coroutine[Any, Any, Any]], Any]


def verified(public_key: str, headers: Any, body: bytes, now: float) -> bool:
    """Whether the request is Discord's, signed within MAX_SKEW seconds of `now`."""
    signature, stamp = headers.get("X-Signature-Ed25519"), headers.get("X-Signature-Timestamp")
    if not signature or not stamp or not (stamp.isascii() and stamp.isdigit()) or abs(now - int(stamp)) > MAX_SKEW:
        return False
    return verify_discord_signature(public_key, signature, stamp, body)


def interactions_endpoint(
    *,
    public_key: str,
    adapter: DiscordAdapter,
    answer: Answer,
    spawn: Spawn,
    is_slow: Callable[[str], bool] = lambda text: False,
    is_error: Callable[[Card], bool] = lambda card: False,
    answer_within: float = 2.0,
    clock: Callable[[], float] = time.time,
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint. `answer_within` (seconds) leaves a margin inside Discord's 3."""

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        if not verified(public_key, request.headers, body, clock()):
            return Response("invalid request signature", status_code=401)
        if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
            return Response("unsupported content type", status_code=415)
        try:
            interaction = json.loads(body)
        except ValueError:
            return Response("the body is not JSON", status_code=400)
        kind = interaction.get("type")
        if kind == PING:
            return JSONResponse(pong())
        data = interaction.get("data") or {}
        if kind != APPLICATION_COMMAND or data.get("name") != COMMAND:
            return Response("unknown interaction", status_code=400)
        text = command_text(data)
        user = ((interaction.get("member") or {}).get("user") or interaction.get("user") or {}).get("id", "")
        work = asyncio.ensure_future(answer(text, f"discord:{user}", f"discord:{interaction.get('channel_id', '')}"))
        token = interaction.get("token", "")
        if not is_slow(text):
            try:
                card = await asyncio.wait_for(asyncio.shield(work), answer_within)
            except asyncio.TimeoutError:
                pass
            else:
                response = message_response([card], ephemeral=is_error(card))
                if response is not None:
                    return JSONResponse(response)
                spawn(_fill_in(adapter, token, work, settle=FILL_IN_SETTLE))
                return JSONResponse(deferred())
        spawn(_fill_in(adapter, token, work))
        return JSONResponse(deferred())

    return endpoint


#: Seconds to let Discord take the deferred response before editing it, when the answer is
#: ready at once (it needed several messages or an attachment, not time).
FILL_IN_SETTLE = 0.5


async def _fill_in(adapter: DiscordAdapter, token: str, work: Awaitable[Card], settle: float = 0.0) -> None:
    card = await work
    await asyncio.sleep(settle)
    sent = await adapter.edit_original(token, [card])
    if not sent.ok:
        log.warning("filling in a deferred /deflation answer failed: %s", sent.error)
