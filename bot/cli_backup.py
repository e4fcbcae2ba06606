"""`deflation-watch backup` and `restore`, registered on `bot.cli.app`: a consistent copy of the
database while the bot runs, and a checked restore that keeps what it replaces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from bot import config
from bot.cli import ConfigOpt, DbOpt, JsonOpt, _fail, _print_json, app, console
from bot.errors import ConfigError
from storage import backup as backups

T = TypeVar("T")


def _carry_out(config_file: Path | None, db_path: Path | None, action: Callable[[Path], T]) -> tuple[Path, T]:
    """The configured database and what `action` made of it. Settings only, no session:
    unlike the other commands these must not hold the database open themselves."""
    try:
        database = config.load(config_file, db=db_path).db
    except ConfigError as exc:
        _fail(f"config: {exc}", 2)
    try:
        return database, action(database)
    except backups.BackupError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable: _fail exits")


def _described(summary: backups.Summary) -> str:
    last = f", the last at {summary.last_poll_at}" if summary.last_poll_at else ""
    return f"{summary.bytes:,} bytes, schema version {summary.schema_version}, {summary.polls:,} polls{last}"


def _json(summary: backups.Summary, **extra: object) -> dict:
    return {**{key: str(value) if isinstance(value, Path) else value for key, value in asdict(summary).items()}, **extra}


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the copy (replaced if it exists).")],
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy the database to FILE, consistently, even while the bot is writing (SQLite's online backup); the copy is integrity-checked before it is kept.  Example: deflation-watch backup /backups/deflation-watch-$(date +%F).db"""
    database, summary = _carry_out(config_file, db_path, lambda database: backups.backup(database, file))
    if as_json:
        _print_json(_json(summary, database=str(database)))
        return
    console.print(f"backed up {database} to {file}: {_described(summary)}", highlight=False)


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A backup written by `deflation-watch backup` (or any copy of the database).")],
    force: Annotated[bool, typer.Option("--force", help="Restore even while another process (the bot) has the database open.")] = False,
    config_file: ConfigOpt = None,
    db_path: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the database with FILE after checking it (integrity, schema version); the database it replaces is kept beside it. Stop the bot first, or pass --force.  Example: deflation-watch restore /backups/deflation-watch-2026-01-05.db"""
    database, (summary, kept) = _carry_out(config_file, db_path, lambda database: backups.restore(file, database, force=force))
    if as_json:
        _print_json(_json(summary, backup=str(file), kept=str(kept) if kept else None))
        return
    console.print(f"restored {file} into {database}: {_described(summary)}", highlight=False)
    if kept:
        console.print(f"the database it replaced is kept as {kept}", highlight=False)
