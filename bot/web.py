"""The running bot's HTTP routes (Starlette):

    POST /slack/events            Slack slash commands (HTTP mode: SLACK_SIGNING_SECRET), verified by Bolt
    POST /discord/interactions    Discord interactions, Ed25519-verified
    GET  /healthz                 200 when healthy, 503 when not, with a JSON report
    GET  /metrics                 Prometheus text format

A platform that is not configured has no route (404), so nothing unverified is ever run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import commands
from bot.chat import discord_app, slack_app

if TYPE_CHECKING:
    from bot.app import Bot


def make_app(bot: Bot) -> Starlette:
    async def healthz(request: Request) -> Response:
        healthy, report = await bot.health()
        return JSONResponse(report, status_code=200 if healthy else 503)

    async def metrics(request: Request) -> Response:
        body, kind = bot.metrics.render()
        return Response(body, media_type=kind)

    routes = [Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
    if bot.slack_app is not None and bot.env.slack_signing_secret:  # Socket Mode alone takes no HTTP
        routes.append(Route("/slack/events", slack_app.http_endpoint(bot.slack_app), methods=["POST"]))
    if bot.env.discord_public_key and bot.discord is not None:
        endpoint = discord_app.interactions_endpoint(
            public_key=bot.env.discord_public_key,
            adapter=bot.discord,
            answer=bot.answer,
            spawn=bot.spawn,
            is_slow=commands.is_slow,
            is_error=commands.is_error,
        )
        routes.append(Route("/discord/interactions", endpoint, methods=["POST"]))
    return Starlette(routes=routes)
