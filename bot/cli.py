"""The `deflation-watch` command. Each command loads settings, calls one pipeline function and
prints a Rich table (or `--json`); project errors become one clear line and a non-zero exit."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from bot import config, logs, lookup, pipeline, secrets
from bot.clock import utcnow
from bot.errors import ConfigError, DeflationWatchError, storage_error
from bot.fetch import make_client
from bot.sources import SOURCES
from storage import archive, open_db, prices

app = typer.Typer(help="Deflation Watch: how fast the price of LLM inference is falling.", no_args_is_help=True, add_completion=False)
# Wide enough for a price table when output goes to a pipe or a log, where Rich would assume 80.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML config file (else $DEFLATION_WATCH_CONFIG, else ./deflation-watch.toml).")]
DbOpt = Annotated[Optional[Path], typer.Option("--db", help="SQLite database (else $DEFLATION_WATCH_DB, else `db` in the config).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]

#: `--log-format` and `--log-level`, given before the command; they win over the config.
_logging: dict[str, str | None] = {"format": None, "level": None}


@app.callback()
def _options(
    log_format: Annotated[Optional[str], typer.Option("--log-format", help="Logs on stderr as text or json (one object a line, with poll, alert and delivery ids); else `log_format` in the config.")] = None,
    log_level: Annotated[Optional[str], typer.Option("--log-level", help="debug, info, warning or error; else `log_level` in the config (default: warning, info with json; `run` logs info).")] = None,
) -> None:
    """Deflation Watch: how fast the price of LLM inference is falling."""
    secrets.register_environment()  # first: even a config error quoting a pasted token masks it
    if log_format is not None and log_format not in config.LOG_FORMATS:
        _fail(f"--log-format must be one of {', '.join(config.LOG_FORMATS)}, got {log_format!r}", 2)
    if log_level is not None and log_level.lower() not in config.LOG_LEVELS:
        _fail(f"--log-level must be one of {', '.join(config.LOG_LEVELS)}, got {log_level!r}", 2)
    _logging.update(format=log_format, level=log_level and log_level.lower())


def configure_logging(settings: config.Settings, default_level: str | None = None) -> None:
    """Logging as the flags, else the config, say; JSON logs default to info. With neither
    (and no `default_level`, as for one-off commands) Python's own default stays: warnings
    and errors on stderr. Known secrets are masked either way."""
    format = _logging["format"] or settings.log_format
    level = _logging["level"] or settings.log_level or ("info" if format == "json" else default_level)
    if level is None:
        secrets.register_environment()
        logs.install_redaction()
        return
    logs.setup(format, level)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {escape(secrets.redact(message))}", highlight=False)
    raise typer.Exit(code)


def _check_sources(names: Iterable[str]) -> None:
    for name in names:
        if name not in SOURCES:
            _fail(f"unknown source {name!r}; known sources are {', '.join(SOURCES)}", 2)


@contextmanager
def _session(config_file: Path | None, db_path: Path | None) -> Iterator[tuple[config.Settings, Any]]:
    """Settings and an open database, with the project's errors turned into one line."""
    try:
        settings = config.load(config_file, db=db_path)
    except ConfigError as exc:
        _fail(f"config: {exc}", 2)
    configure_logging(settings)
    try:
        db = open_db(settings.db)
    except sqlite3.Error as exc:
        _fail(f"{settings.db}: {storage_error(exc)}")
    try:
        yield settings, db
    except DeflationWatchError as exc:
        _fail(str(exc))
    except sqlite3.Error as exc:  # busy past the timeout, a full disk: one line, not a traceback
        _fail(str(storage_error(exc)))
    finally:
        db.close()


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"${value:,f}"


def _plain(value: Any) -> Any:
    """JSON for Decimals (as numbers) and datetimes (as ISO text)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _print_json(data: Any) -> None:
    sys.stdout.write(secrets.redact(json.dumps(data, default=_plain, indent=2)) + "\n")


def _poll_table(reports: list[pipeline.PollReport]) -> Table:
    table = Table(title="Poll", title_justify="left")
    for column in ("source", "status", "models", "changes", "skipped", "seconds"):
        table.add_column(column, justify="left" if column in ("source", "status") else "right")
    for report in reports:
        style = "red" if not report.ok else "yellow" if report.status == "suspect" else None
        table.add_row(
            report.source,
            report.status,
            "—" if report.models_seen is None else str(report.models_seen),
            str(report.changes),
            str(report.skipped),
            f"{report.seconds:.1f}",
            style=style,
        )
    return table


def _print_failures(reports: list[pipeline.PollReport]) -> None:
    for report in reports:
        if report.error:
            err.print(f"{report.source}: {secrets.redact(report.error)}", highlight=False, markup=False)


@app.command()
def poll(
    source: Annotated[Optional[list[str]], typer.Option("--source", help="Poll only this source (repeatable).")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Poll the enabled sources once, concurrently.  Example: deflation-watch poll --source litellm"""
    _check_sources(source or ())
    with _session(config_file, db_path) as (settings, db):
        loaded = pipeline.first_run(db, settings)
        if loaded:
            err.print(f"new database: loaded {loaded:,} price intervals of shipped history first")
        reports = asyncio.run(_poll(db, settings, source))
    if as_json:
        _print_json([report.as_dict() for report in reports])
    else:
        console.print(_poll_table(reports))
        _print_failures(reports)
    if not any(report.ok for report in reports):
        raise typer.Exit(1)


async def _poll(db: Any, settings: config.Settings, names: list[str] | None) -> list[pipeline.PollReport]:
    async with make_client(settings.http) as client:
        return await pipeline.poll_once(db, client, settings, names)


def _interval_json(row: dict) -> dict:
    return {key: row[key] for key in ("source", "provider", "model", "valid_from", "valid_to", "input_mtok", "output_mtok", "cache_read_mtok")}


@app.command()
def history(
    model: Annotated[str, typer.Argument(help="Model name, e.g. gpt-4o or openai/o3.")],
    source: Annotated[Optional[str], typer.Option("--source", help="Only this source.")] = None,
    provider: Annotated[Optional[str], typer.Option("--provider", help="Only this provider.")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A model's price intervals, oldest first.  Example: deflation-watch history o3 --source litellm --json"""
    with _session(config_file, db_path) as (settings, db):
        rows = prices.history(db, lookup.resolve(db, model), source=source, provider=provider)
        if not rows:
            raise DeflationWatchError(f"{model} has no prices from {' and '.join(filter(None, (source, provider)))}")
    if as_json:
        _print_json([_interval_json(row) for row in rows])
        return
    console.print(history_table(model, rows))


def history_table(model: str, rows: list[dict]) -> Table:
    table = Table(title=f"Price history of {model} (USD per million tokens)", title_justify="left")
    for column in ("source", "provider", "model", "from", "to", "input", "output", "cache read"):
        table.add_column(column, justify="right" if column in ("input", "output", "cache read") else "left")
    for row in rows:
        table.add_row(
            row["source"],
            row["provider"],
            row["model"],
            row["valid_from"][:10],
            (row["valid_to"] or "now")[:10],
            _money(row["input_mtok"]),
            _money(row["output_mtok"]),
            _money(row["cache_read_mtok"]),
            style="dim" if row["flag"] else None,
        )
    return table


@app.command()
def replay(
    directory: Annotated[Path, typer.Argument(help="A folder of snapshots named like 2025-06-10T120000Z.json(.gz).", exists=True, file_okay=False)],
    source: Annotated[str, typer.Option("--source", help="Which source's format the snapshots are in.")],
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    alerts_jsonl: Annotated[Optional[Path], typer.Option("--alerts-jsonl", help="Write the alerts the replay raised here, one JSON object a line.")] = None,
) -> None:
    """Load a folder of snapshots as history, oldest first, running the detectors as a backtest.  Example: deflation-watch replay ../shared/data/replay/litellm --source litellm --alerts-jsonl alerts.jsonl"""
    from bot.cli_alerts import report_replay  # the alert commands live in their own module

    _check_sources([source])
    with _session(config_file, db_path) as (settings, db):
        files = pipeline.snapshots(directory)
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(f"replaying {source}", total=len(files))
            reports = pipeline.replay(db, directory, source, on_file=lambda path, report: progress.update(task, completed=files.index(path) + 1), settings=settings)
        summary = report_replay(db, reports, alerts_jsonl)
    failed = [report for report in reports if not report.ok]
    console.print(
        f"{source}: {len(reports)} snapshots replayed ({len(files) - len(reports)} already held), "
        f"{sum(r.changes for r in reports)} changes, {len(failed)} failed, "
        f"{sum(r.status == 'suspect' for r in reports)} suspect"
    )
    console.print(summary)
    _print_failures(failed)


@app.command()
def reparse(
    source: Annotated[str, typer.Option("--source", help="The source whose history to rebuild.")],
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Rebuild a source's price history from its stored payloads (after a parser fix)."""
    _check_sources([source])
    with _session(config_file, db_path) as (settings, db):
        rebuilt = pipeline.reparse(db, source)
    console.print(f"{source}: rebuilt from {rebuilt.payloads} stored payloads: {rebuilt.intervals} price intervals")


@app.command()
def export(
    output: Annotated[Path, typer.Argument(help="File to write (.json or .json.gz).")],
    source: Annotated[Optional[list[str]], typer.Option("--source", help="Only this source (repeatable).")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Write the price history as one compact JSON document (what the package ships)."""
    with _session(config_file, db_path) as (settings, db):
        document = archive.export(db, source, now=utcnow())
    body = json.dumps(document, separators=(",", ":")).encode()
    output.write_bytes(gzip.compress(body, 9, mtime=0) if output.suffix == ".gz" else body)
    console.print(f"wrote {len(document['models'])} models to {output} ({output.stat().st_size:,} bytes)")


@app.command()
def backfill(
    file: Annotated[Optional[Path], typer.Argument(help="A document written by `export` (default: the history shipped with the package).")] = None,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
) -> None:
    """Load a price history document into the sources the database does not have yet."""
    with _session(config_file, db_path) as (settings, db):
        added = pipeline.load_history(db, file)
    console.print(f"loaded {added:,} price intervals")


def main() -> None:
    logs.install_redaction()  # before any command runs: no log line shows a known secret
    from bot import cli_backup  # noqa: F401  (register backup and restore)
    from bot import cli_alerts, cli_curve, cli_indicators, cli_run, demo  # noqa: F401  (register the alert, cost-curve, indicator, bot and demo commands)

    app()
