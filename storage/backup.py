"""Backing up and restoring the database file while the bot may be running.

`backup` copies the live database with SQLite's online backup API in one step, which reads one
consistent snapshot (in WAL mode writers go on meanwhile): a backup holds whole polls only,
never half of one. The copy is written beside the target, checked with `PRAGMA
integrity_check`, made a single self-contained file, and only then renamed into place.

`restore` checks a backup (integrity, schema version, the tables it must have) before it
replaces anything, refuses to replace a database another process has open unless forced,
keeps a backup of what it replaces, and writes through the backup API too, so a process that
has the file open sees the old or the new database, never a mixture. Opening the restored
database applies any migration it lacks, so a backup from an older version restores as well.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from storage import BUSY_TIMEOUT_MS, open_db
from storage.migrations import MIGRATIONS

#: Tables every Deflation Watch database has, whatever its version.
REQUIRED_TABLES = ("payloads", "polls", "models", "prices")


class BackupError(Exception):
    """A backup or restore refused or failed; the message says why and names the file."""


@dataclass(frozen=True, slots=True)
class Summary:
    path: Path
    bytes: int
    schema_version: int
    polls: int
    last_poll_at: str | None  # observed_at of the newest poll, ISO 8601 UTC


def backup(database: str | Path, target: str | Path) -> Summary:
    """Write a consistent copy of `database` to `target` (replaced if it exists)."""
    database, target = Path(database), Path(target)
    if not database.is_file():
        raise BackupError(f"{database} does not exist: nothing to back up")
    if target.resolve() == database.resolve():
        raise BackupError(f"{target} is the database itself; back up to another file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        with _connect(database) as source, _connect(partial) as copy:
            source.backup(copy)  # one step: one read transaction, one snapshot
            copy.execute("PRAGMA journal_mode = DELETE")  # a single file, no -wal beside it
            _check(copy, partial)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"backing up {database} to {target} failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return summary(target)


def restore(backup_file: str | Path, database: str | Path, *, force: bool = False, now: datetime | None = None) -> tuple[Summary, Path | None]:
    """Replace `database` with the checked contents of `backup_file`. Returns the restored
    database's summary and where the replaced one was kept (None when there was none)."""
    backup_file, database = Path(backup_file), Path(database)
    if not backup_file.is_file():
        raise BackupError(f"{backup_file} does not exist")
    if database.exists() and backup_file.resolve() == database.resolve():
        raise BackupError(f"{backup_file} is the database itself")
    with _connect(backup_file) as candidate:
        _check(candidate, backup_file)
    kept = None
    if database.exists():
        if in_use(database) and not force:
            raise BackupError(
                f"{database} is open in another process (is the bot running?): stop it first, or pass --force to restore under it"
            )
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        kept = database.with_name(f"{database.stem}.before-restore-{stamp}{database.suffix}")
        try:
            backup(database, kept)
        except BackupError:  # a damaged database (often why one restores) is kept as it is
            for suffix in ("", "-wal"):
                if Path(f"{database}{suffix}").exists():
                    shutil.copy2(f"{database}{suffix}", f"{kept}{suffix}")
    try:
        with _connect(backup_file) as source, _connect(database) as live:
            source.backup(live)
    except sqlite3.Error as exc:
        raise BackupError(f"restoring {backup_file} into {database} failed: {exc}" + (f"; the previous database is kept as {kept}" if kept else "")) from None
    open_db(database).close()  # WAL on again, and the migrations a backup from an older version lacks
    with _connect(database) as restored:
        _check(restored, database)
    return summary(database), kept


def in_use(database: str | Path) -> bool:
    """Whether another connection has the database open. In WAL mode every open connection
    holds a shared lock on the file, so an exclusive lock cannot be had while one exists."""
    probe = sqlite3.connect(f"{Path(database).resolve().as_uri()}?mode=rw", uri=True, timeout=0, isolation_level=None)
    try:
        probe.execute("PRAGMA locking_mode = EXCLUSIVE")
        probe.execute("BEGIN EXCLUSIVE")
        probe.execute("COMMIT")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()


def summary(path: str | Path) -> Summary:
    path = Path(path)
    with _connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        polls, last = conn.execute("SELECT COUNT(*), MAX(observed_at) FROM polls").fetchone()
    return Summary(path, path.stat().st_size, version, polls, last)


def _check(conn: sqlite3.Connection, path: Path) -> None:
    """Raise BackupError unless `conn` holds an intact Deflation Watch database this version can open."""
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from None
    if result != ["ok"]:
        raise BackupError(f"{path} fails its integrity check: {'; '.join(result[:5])}")
    missing = [table for table in REQUIRED_TABLES if table not in tables]
    if missing:
        raise BackupError(f"{path} is not a Deflation Watch database: it has no {', '.join(missing)} table")
    if version > len(MIGRATIONS):
        raise BackupError(f"{path} has schema version {version}, newer than this Deflation Watch knows ({len(MIGRATIONS)}): upgrade first")


class _connect:
    """A plain sqlite3 connection with the busy timeout, closed on exit (sqlite3's own context
    manager only commits)."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
