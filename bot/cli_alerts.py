"""The alert commands of `deflation-watch`, registered on `bot.cli.app`: list alerts, deliver the
outbox, manage subscriptions and silences; and the alert report of `replay --alerts-jsonl`."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from bot import alerting, delivery, pipeline
from bot.alert_cards import FIELD_NAMES, model_label, money
from bot.chat.console import ConsoleAdapter
from bot.cli import ConfigOpt, DbOpt, JsonOpt, _fail, _print_json, _session, app, console, err
from bot.clock import utcnow
from bot.durations import parse_duration
from storage import alerts, subscriptions, transaction
from storage.times import iso

KindOpt = Annotated[Optional[list[str]], typer.Option("--kind", help=f"Only this kind (repeatable): {', '.join(alerts.KINDS)}.")]


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"--since {text!r} is not a date; write it like 2025-06-01 or 2025-06-01T12:00Z", 2)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_kinds(kinds: list[str] | None) -> None:
    for kind in kinds or ():
        if kind not in alerts.KINDS:
            _fail(f"unknown alert kind {kind!r}; kinds are {', '.join(alerts.KINDS)}", 2)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:+g}%"


def _note(row: dict) -> str:
    notes = []
    if row["reason"]:
        notes.append(row["reason"])
    if row["group_id"]:
        notes.append(f"same as #{row['group_id']}")
    if row["silence_id"]:
        notes.append(f"silenced by #{row['silence_id']}")
    if row["inhibited_by"]:
        notes.append(f"inhibited by {row['inhibited_by']}")
    return ", ".join(notes)


def alerts_table(rows: list[dict], title: str = "Alerts") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("#", "observed", "kind", "status", "source", "model", "field", "old", "new", "change", "sources", "note"):
        table.add_column(column, justify="right" if column in ("#", "old", "new", "change") else "left")
    for row in rows:
        price = row["kind"] in alerts.PRICE_KINDS
        table.add_row(
            str(row["id"]),
            row["observed_at"][:16].replace("T", " "),
            row["kind"],
            row["status"],
            row["source"],
            model_label(row) if row["model"] else "",
            FIELD_NAMES.get(row["field"], ""),
            money(row["old_mtok"]) if price else "",
            money(row["new_mtok"]) if price else "",
            _pct(row["pct_change"]),
            ", ".join(row["sources"]),
            _note(row),
            style="dim" if row["status"] == "dropped" or row["silence_id"] or row["inhibited_by"] or row["group_id"] else None,
        )
    return table


@app.command("alerts")
def list_alerts(
    since: Annotated[Optional[str], typer.Option("--since", help="Only alerts observed on or after this date (UTC).")] = None,
    kind: KindOpt = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Only alerts from this source.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the latest N.")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored alerts, oldest first.  Example: deflation-watch alerts --since 2025-06-01 --kind price_cut"""
    _check_kinds(kind)
    moment = _since(since)
    with _session(config_file, db_path) as (settings, db):
        rows = alerts.query(db, since=moment, kinds=kind, source=source, limit=limit)
    if as_json:
        _print_json([alerting.as_json(row) for row in rows])
        return
    console.print(alerts_table(rows))


def report_replay(db: Any, reports: list[pipeline.PollReport], jsonl: Path | None) -> Group:
    """After a replay: write its alerts (confirmed and still pending) as JSON lines to `jsonl`,
    and return the summary table (alerts by kind and status, pending dropped, suspect polls)."""
    rows = alerts.query(db, poll_ids=[report.outcome.poll_id for report in reports if report.outcome])
    if jsonl is not None:
        with jsonl.open("w", encoding="utf-8") as out:
            for row in rows:
                if row["status"] != "dropped":
                    out.write(json.dumps(alerting.as_json(row), ensure_ascii=False) + "\n")
    counts = Counter((row["kind"], row["status"]) for row in rows)
    table = Table(title="Alerts from this replay", title_justify="left")
    for column in ("kind", "confirmed", "pending", "dropped"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind in alerts.KINDS:
        if any(counts[kind, status] for status in alerts.STATUSES):
            table.add_row(kind, *(str(counts[kind, status]) for status in ("confirmed", "pending", "dropped")))
    table.add_section()
    table.add_row("total", *(str(sum(n for (_, status), n in counts.items() if status == s)) for s in ("confirmed", "pending", "dropped")))
    line = (
        f"pending dropped: {sum(n for (_, status), n in counts.items() if status == 'dropped')} · "
        f"suspect polls: {sum(report.status == 'suspect' for report in reports)}"
        + (f" · {sum(n for (_, status), n in counts.items() if status != 'dropped')} alerts written to {jsonl}" if jsonl else "")
    )
    return Group(table, Text(line))


@app.command()
def deliver(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due now, then exit.")] = False,
    every: Annotated[str, typer.Option("--every", help="How often to look for due messages.")] = "5s",
    console_file: Annotated[Optional[Path], typer.Option("--console-file", help="Append console: messages to this file instead of printing them.")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Send due alert messages from the outbox (console: channels here).  Example: deflation-watch deliver --once"""
    try:
        pause = parse_duration(every).total_seconds()
    except ValueError as exc:
        _fail(str(exc), 2)
    adapters = {"console": ConsoleAdapter(console, console_file)}
    with _session(config_file, db_path) as (settings, db):
        while True:
            for report in asyncio.run(delivery.deliver_due(db, adapters, utcnow, settings=settings.alerts)):
                err.print(f"batch {report.batch} → {report.channel} {report.state} ({report.alerts} alerts){f': {report.error}' if report.error else ''}", highlight=False, markup=False)
            if once:
                break
            time.sleep(pause)


def _write(config_file: Path | None, db_path: Path | None, change: Callable[[Any], Any]) -> Any:
    """Make one change in one transaction; a bad argument (ValueError) is one line and exit 2."""
    with _session(config_file, db_path) as (settings, db):
        try:
            with transaction(db):
                return change(db)
        except ValueError as exc:
            _fail(str(exc), 2)


@app.command()
def subscribe(
    channel: Annotated[str, typer.Argument(help="Channel address: slack:C123, discord:456 or console:.")],
    provider: Annotated[Optional[list[str]], typer.Option("--provider", help="Only this provider (repeatable).")] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", help="Only models matching this glob, e.g. 'openai/o3*' (repeatable).")] = None,
    kind: KindOpt = None,
    min_pct: Annotated[Optional[float], typer.Option("--min-pct", help="Smallest price move in percent (default: alerts.threshold_pct).")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who asked for it.")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Send alerts to a channel, optionally filtered.  Example: deflation-watch subscribe slack:C123 --provider openai --min-pct 20"""
    _check_kinds(kind)
    if min_pct is not None and not 0 < min_pct < 100:
        _fail(f"--min-pct must be between 0 and 100, got {min_pct}", 2)
    found = _write(config_file, db_path, lambda db: subscriptions.subscribe(
        db, channel, utcnow(), providers=provider, models=model, kinds=kind,
        min_pct=None if min_pct is None else Decimal(repr(min_pct)), created_by=by,
    ))
    console.print(f"subscription #{found}: {channel}")


@app.command()
def unsubscribe(
    subscription: Annotated[int, typer.Argument(help="Subscription number (see `subscriptions`).")],
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Remove a subscription.  Example: deflation-watch unsubscribe 3"""
    if not _write(config_file, db_path, lambda db: subscriptions.unsubscribe(db, subscription)):
        _fail(f"no subscription #{subscription}")
    console.print(f"subscription #{subscription} removed")


@app.command("subscriptions")
def list_subscriptions(config_file: ConfigOpt = None, db_path: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List subscriptions and their filters."""
    with _session(config_file, db_path) as (settings, db):
        found = subscriptions.subscriptions(db)
        threshold = settings.alerts.threshold_pct
    rows = [
        {"id": s.id, "channel": s.channel, "providers": s.providers, "models": s.models, "kinds": s.kinds,
         "min_pct": float(s.min_pct) if s.min_pct is not None else None, "created_by": s.created_by, "created_at": iso(s.created_at)}
        for s in found
    ]
    _show(rows, as_json, "Subscriptions", ("#", "channel", "providers", "models", "kinds", "min %", "by"), lambda row: (
        str(row["id"]), row["channel"], *(", ".join(row[key]) if row[key] else "all" for key in ("providers", "models", "kinds")),
        f"{row['min_pct'] if row['min_pct'] is not None else threshold:g}", row["created_by"] or "",
    ))


def _show(rows: list[dict], as_json: bool, title: str, columns: tuple[str, ...], cells: Any) -> None:
    """Print rows as JSON, or as a table with `cells(row)` under `columns`."""
    if as_json:
        _print_json(rows)
        return
    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)


@app.command()
def silence(
    pattern: Annotated[str, typer.Argument(help="Glob over provider/model, the model key, the source or the kind, e.g. 'openrouter/*'.")],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 6h or 2d.")],
    by: Annotated[str, typer.Option("--by", help="Who sets it.")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")],
    channel: Annotated[str | None, typer.Option("--channel", help="Only in this channel (slack:C0123, discord:4567); default: every channel.")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Stop delivering matching alerts for a while, in every channel or one (they are still stored, marked).  Example: deflation-watch silence 'models-dev' --for 1d --by ana --reason 'bulk reprice'"""
    try:
        span = parse_duration(duration)
    except ValueError as exc:
        _fail(str(exc), 2)
    now = utcnow()
    found = _write(config_file, db_path, lambda db: subscriptions.silence(
        db, pattern, now, until=now + span, created_by=by, reason=reason, channel=channel))
    console.print(f"silence #{found}: {pattern} in {channel or 'every channel'} until {iso(now + span)}")


@app.command()
def unsilence(
    silence_id: Annotated[int, typer.Argument(help="Silence number (see `silences`).")],
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """End a silence now.  Example: deflation-watch unsilence 2"""
    if not _write(config_file, db_path, lambda db: subscriptions.expire(db, silence_id, utcnow())):
        _fail(f"no active silence #{silence_id}")
    console.print(f"silence #{silence_id} ended")


@app.command("silences")
def list_silences(
    everything: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List silences (active ones unless --all)."""
    with _session(config_file, db_path) as (settings, db):
        found = subscriptions.silences(db, active_at=None if everything else utcnow())
    rows = [
        {"id": s.id, "pattern": s.pattern, "channel": s.channel, "starts_at": iso(s.starts_at), "expires_at": iso(s.expires_at),
         "created_by": s.created_by, "reason": s.reason}
        for s in found
    ]
    _show(rows, as_json, "Silences", ("#", "pattern", "where", "from", "until", "by", "reason"), lambda row: (
        str(row["id"]), row["pattern"], row["channel"] or "every channel", row["starts_at"], row["expires_at"], row["created_by"], row["reason"],
    ))
