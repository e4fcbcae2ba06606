"""The running bot's commands, registered on `bot.cli.app`: `run` (the long-lived process),
`ask` (any chat command, answered in the terminal) and `discord register`."""

from __future__ import annotations

import asyncio
import getpass
import os
from pathlib import Path
from typing import Annotated, Optional

import httpx
import typer

from bot import commands
from bot.chat.console import render
from bot.cli import ConfigOpt, DbOpt, _fail, _session, app, configure_logging, console, err
from bot.config import load
from bot.errors import ConfigError, DeflationWatchError


@app.command()
def run(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 3000,
    console_file: Annotated[Optional[Path], typer.Option("--console-file", help="Append console: messages to this file instead of printing them.")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Run the bot: Slack and Discord commands, polls, alerts and the weekly digest, until SIGTERM.  Example: deflation-watch run --port 3000"""
    from bot.app import ChatEnv, serve  # uvicorn, Bolt and APScheduler: only for this command

    try:
        settings = load(config_file, db=db_path)
        env = ChatEnv.from_environ(os.environ)
    except ConfigError as exc:
        _fail(f"config: {exc}", 2)
    # Text at info unless --log-format/--log-level or log_format/log_level say otherwise; the
    # per-request and per-job chatter of httpx and APScheduler stays at warning.
    configure_logging(settings, default_level="info")
    platforms = [name for name, on in (("Slack", env.slack), ("Discord", env.discord)) if on] or ["the terminal only"]
    err.print(f"deflation-watch: serving {', '.join(platforms)} on http://{host}:{port}", highlight=False)
    raise typer.Exit(asyncio.run(serve(settings, env, host, port, console_file=console_file)))


@app.command()
def ask(
    text: Annotated[str, typer.Argument(help="A chat command, e.g. \"price gpt-4o\" or \"help\".")],
    channel: Annotated[str, typer.Option("--channel", help="The channel it is asked in, for subscribe and friends: slack:C123, discord:456 or console:.")] = "console:",
    chart: Annotated[Optional[Path], typer.Option("--chart", help="Write the answer's chart, if it has one, to this PNG file.")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Answer any chat command here, as the bot would in a channel.  Example: deflation-watch ask "price gpt-4o\""""
    if ":" not in channel:
        _fail(f"--channel must be an address like slack:C123, discord:456 or console:, got {channel!r}", 2)
    with _session(config_file, db_path) as (settings, db):
        context = commands.Context(db, settings, user=f"console:{getpass.getuser()}", channel=channel, trusted=True)
        card = commands.answer(text, context)
    console.out(render(card, console.width or 100).rstrip("\n"), highlight=False)
    if card.image is not None and chart is not None:
        chart.write_bytes(card.image)
        err.print(f"chart: {chart}", highlight=False)
    if commands.is_error(card):
        raise typer.Exit(1)


discord = typer.Typer(help="Discord set-up.", no_args_is_help=True)
app.add_typer(discord, name="discord")


@discord.command("register")
def register(
    guild: Annotated[Optional[str], typer.Option("--guild", help="Register in this server only (shows at once); default: globally.")] = None,
) -> None:
    """Register the /deflation slash command with Discord (needs DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN or DISCORD_BOT_TOKEN_FILE).  Example: deflation-watch discord register --guild 123456789012345678"""
    from bot.chat.discord import register_commands

    from bot import secrets

    try:
        secret = secrets.read("DISCORD_BOT_TOKEN")
    except ConfigError as exc:
        _fail(str(exc), 2)
    application, token = os.environ.get("DISCORD_APPLICATION_ID"), secret.reveal() if secret is not None else None
    if not application or not token:
        _fail("set DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN (from the Discord developer portal) first", 2)

    async def put() -> list[dict]:
        async with httpx.AsyncClient(timeout=30.0) as client:
            return await register_commands(client, application, token, guild_id=guild, api_url=os.environ.get("DISCORD_API_URL") or None)

    try:
        stored = asyncio.run(put())
    except ConfigError as exc:
        _fail(str(exc), 2)
    except DeflationWatchError as exc:
        _fail(str(exc))
    names = ", ".join(f"/{command['name']}" for command in stored)
    console.print(f"registered {names} {'in guild ' + guild if guild else 'globally (may take a while to show everywhere)'}", highlight=False)
