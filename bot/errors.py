"""The project's exceptions, one tree so callers can catch at the right depth.

DeflationWatchError
├── ConfigError        a config file or environment value is wrong; the message names the key
├── SourceError        a source could not be fetched or its payload is unusable
│   ├── FetchError     transport or HTTP failure (timeout, status, size cap, redirect)
│   └── PayloadError   the payload's shape is not what the source documents
├── StorageError       the database refused a read or write (`storage_error` maps sqlite3's)
│   ├── DatabaseBusyError  another process held the write lock past the busy timeout
│   └── DatabaseFullError  no room left: the disk, or the database's size limit, is full
├── UnknownModelError  a model name matches nothing stored; carries the closest names
├── InputError         a value a person entered is refused (number, unit, date); nothing stored
│   └── ImportRowsError  rows of an imported file are refused; carries every line's problem
└── NotEnoughDataError too few prices, or too short a span, to fit or index a series
"""

import sqlite3


class DeflationWatchError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(DeflationWatchError):
    pass


class SourceError(DeflationWatchError):
    pass


class FetchError(SourceError):
    """`status`: the HTTP status when the upstream answered with an error; `retry_after`:
    seconds it asked us to wait (a 429 or 503 with Retry-After)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PayloadError(SourceError):
    pass


class StorageError(DeflationWatchError):
    pass


class DatabaseBusyError(StorageError):
    pass


class DatabaseFullError(StorageError):
    pass


def storage_error(exc: sqlite3.Error) -> StorageError:
    """One clear line for a failure SQLite reports, by its result code."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseBusyError(f"the database is busy: another process held its write lock too long ({exc}); nothing was written, try again")
    if primary == sqlite3.SQLITE_FULL:
        return DatabaseFullError(
            f"the database is full ({exc}): no room left on its disk, or its size limit reached; nothing was written, "
            "what is stored can still be read, and writing resumes once there is room"
        )
    if primary == sqlite3.SQLITE_READONLY:
        return StorageError(f"the database cannot be written ({exc}): check the file's and its folder's permissions")
    return StorageError(f"database error: {exc}")


class UnknownModelError(DeflationWatchError):
    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"No model named {name!r} is stored.{hint}")


class InputError(DeflationWatchError):
    """A reading, date or name a person typed is refused; the message says what to type."""


class ImportRowsError(InputError):
    def __init__(self, path: str, problems: list[tuple[int, str]]):
        self.problems = problems  # (line number, problem), in file order
        lines = "; ".join(f"line {line}: {problem}" for line, problem in problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: nothing imported, {len(problems)} bad row(s): {lines}{more}")


class NotEnoughDataError(DeflationWatchError):
    """Raised instead of reporting a trend that a handful of prices cannot support."""
