"""`deflation-watch demo`: the bot's main job, offline, on real data, in the terminal.

A fresh database gets the shipped history, one poll of the `bundled` source (prices inside
installed packages), and one try of each live source with a short timeout; then it prints
what it holds. With no internet each live source fails with one line and the rest goes on.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from bot import config, lookup, pipeline
from bot.cli import _poll_table, _print_failures, app, console, history_table
from bot.fetch import make_client
from storage import open_db, prices

#: Models whose history the demo prints: one per era of the curve.
SHOWCASE = (("gpt-4o", "openai"), ("o3", "openai"), ("claude-3-5-sonnet-20240620", "anthropic"))
#: Live sources get this long in the demo, so an offline machine is not kept waiting.
LIVE_TIMEOUT_S = 5.0


@app.command()
def demo(
    db_path: Annotated[Optional[Path], typer.Option("--db", help="Database to create (default: a new temporary file).")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="TOML config file.")] = None,
) -> None:
    """Run the main job offline on bundled real data and print what it found."""
    settings = config.load(config_file)
    path = db_path or Path(tempfile.mkdtemp(prefix="deflation-watch-")) / "demo.db"
    if path.exists():
        path.unlink()
    settings = replace(settings, db=path, http=replace(settings.http, timeout=LIVE_TIMEOUT_S))
    db = open_db(path)
    console.rule("Deflation Watch demo")
    console.print(f"database: {path}")
    console.print(f"shipped history: {pipeline.load_history(db):,} price intervals loaded")
    live = [name for name in settings.enabled_sources() if name != "bundled"]
    reports = asyncio.run(_demo_poll(db, settings, live))
    console.print(_poll_table(reports))
    _print_failures(reports)
    totals = prices.counts(db)
    console.print(f"holding {totals['models']:,} models from {totals['sources']} sources in {totals['intervals']:,} price intervals")
    for model, provider in SHOWCASE:
        rows = prices.history(db, lookup.resolve(db, model), provider=provider)
        if rows:
            console.print(history_table(model, rows))
    db.close()


async def _demo_poll(db, settings: config.Settings, live: list[str]) -> list[pipeline.PollReport]:
    async with make_client(settings.http) as client:
        return await pipeline.poll_once(db, client, settings, ["bundled", *live])
