"""`deflation-watch demo`: the bot's main job, offline, on real data, in the terminal.

A fresh database gets the shipped history, one poll of the `bundled` source (prices inside
installed packages), and one try of each live source with a short timeout; then it prints
what it holds. With no internet each live source fails with one line and the rest goes on.
Last, the detectors run over the shipped history (`bot.backtest`) and the demo shows the
alerts it produces, grouped into the messages a subscribed channel would have received.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from bot import backtest, config, delivery, lookup, pipeline
from bot.alert_cards import count_phrase
from bot.chat.console import render as render_card
from bot.cli import _poll_table, _print_failures, app, console, history_table
from bot.cli_curve import show_digest
from bot.clock import utcnow
from bot.fetch import make_client
from storage import alerts, archive, open_db, prices

#: Models whose history the demo prints: one per era of the curve.
SHOWCASE = (("gpt-4o", "openai"), ("o3", "openai"), ("claude-3-5-sonnet-20240620", "anthropic"))
#: Messages of the history backtest printed in full (the rest are counted).
SHOWN_MESSAGES = 3
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
    show_history_alerts(path.with_name("backtest.db"), settings)
    show_curve(path, settings)


def show_curve(path: Path, settings: config.Settings) -> None:
    """End on the cost curve: the digest of the week to now, its chart written beside the database."""
    db = open_db(path)
    console.rule("The weekly digest")
    show_digest(db, settings, path.with_name(f"deflation-watch-digest-{utcnow():%Y-%m-%d}.png"))
    db.close()


def show_history_alerts(path: Path, settings: config.Settings) -> None:
    """Run the detectors over the shipped history (in a database of their own) and show the
    alerts it produces as they would be posted: counts, then the latest messages with moves."""
    if path.exists():
        path.unlink()
    db = open_db(path)
    console.rule("Alerts the shipped history produces")
    document = archive.decode(resources.files("bot.data").joinpath(pipeline.SHIPPED_HISTORY).read_bytes())
    batches = backtest.run(db, document, settings.alerts)
    rows = alerts.query(db)
    console.print(f"{len(rows):,} alerts in {len(batches):,} messages ({count_phrase(Counter(row['kind'] for row in rows))})")
    console.print(alerts_by_source(rows))
    with_moves = [b for b in batches if any(row["kind"] in alerts.PRICE_KINDS for row in alerts.query(db, ids=b.alert_ids))]
    console.print(f"The last {min(SHOWN_MESSAGES, len(with_moves))} messages with price moves, as a channel subscribed to everything gets them:")
    for batch in with_moves[-SHOWN_MESSAGES:]:
        console.out(render_card(delivery.card_for(db, batch, settings.alerts), width=min(console.width, 110)), end="", highlight=False)
    db.close()


def alerts_by_source(rows: list[dict]) -> Table:
    counts = Counter((row["source"], row["kind"]) for row in rows)
    kinds = [kind for kind in alerts.KINDS if any(k == kind for _, k in counts)]
    table = Table(title="Alerts by source and kind", title_justify="left")
    table.add_column("source")
    for kind in kinds:
        table.add_column(kind, justify="right")
    for source in sorted({source for source, _ in counts}):
        table.add_row(source, *(str(counts[source, kind]) for kind in kinds))
    return table


async def _demo_poll(db, settings: config.Settings, live: list[str]) -> list[pipeline.PollReport]:
    async with make_client(settings.http) as client:
        return await pipeline.poll_once(db, client, settings, ["bundled", *live])
