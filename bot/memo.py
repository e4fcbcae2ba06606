"""Values derived from database tables, kept in memory until those tables change.

A `Memo` holds one value for the whole process, shared by every connection and thread, with the
*fingerprint* of the tables it was made from: a cheap query whose answer moves whenever they
change (row counts, the highest row id, a checksum of the columns that are updated in place).
The fingerprint starts with the database file (path and inode), so a process that opens
another database (tests do, many) never gets the first one's value; an in-memory database is
never memoised. A connection that has seen no commit by anyone since it last checked (SQLite's `data_version`,
and its own `total_changes`) gets the value without any query; one that has checks the
fingerprint, so a poll that changed nothing of these tables (most polls) keeps the value, and
a change from any process (`deflation-watch poll`, `reparse`) is seen on the next call.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import sqlite_utils

T = TypeVar("T")


def connection_state(db: sqlite_utils.Database) -> tuple[int, int]:
    """Moves when anyone commits (another connection: `data_version`; this one: `total_changes`)."""
    conn = db.conn
    return conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes


class Memo(Generic[T]):
    """`get(db)`: `compute(db)`, recomputed only when `fingerprint` answers differently."""

    def __init__(self, fingerprint: str, compute: Callable[[sqlite_utils.Database], T]):
        self.fingerprint_sql = fingerprint
        self.compute = compute
        self.generation = 0  # moves each time the value is recomputed
        self._print: Hashable | None = None
        self._value: T | None = None
        self._seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # db -> (state, generation)
        self._lock = threading.RLock()

    def fingerprint(self, db: sqlite_utils.Database) -> tuple | None:
        """The file and the tables' answer; None for a database that is not a file."""
        path = next((row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"), "")
        if not path:
            return None
        try:
            inode = os.stat(path).st_ino
        except OSError:
            return None
        return (path, inode, *db.execute(self.fingerprint_sql).fetchone())

    def get(self, db: sqlite_utils.Database) -> T:
        with self._lock:
            state = connection_state(db)  # read before the fingerprint: a commit after it is seen next time
            if self._seen.get(db) == (state, self.generation) and self._print is not None:
                return self._value  # type: ignore[return-value]
            now = self.fingerprint(db)
            if now is None:
                return self.compute(db)
            if now != self._print:
                self._value, self._print = None, None  # never hold the old value and the new at once
                for _ in range(3):
                    value = self.compute(db)
                    after = self.fingerprint(db)
                    if after == now:
                        break
                    now = after  # someone committed while it was read: read it again
                else:
                    return value  # the tables keep changing: answer, but keep nothing
                self._value, self._print = value, now
                self.generation += 1
            self._seen[db] = (state, self.generation)
            return self._value  # type: ignore[return-value]

    @property
    def current(self) -> T | None:
        """The value kept now, if any (without checking the database)."""
        return self._value

    def forget(self) -> None:
        """Drop the value: the next `get` computes it again."""
        with self._lock:
            self._value, self._print = None, None
            self.generation += 1
            self._seen.clear()
