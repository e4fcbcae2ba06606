"""Keep the running bot's resident memory near what it holds, not what it once touched.

A poll parses a catalog of thousands of models, and `cheapest`, `trend` and the digest work
over years of price intervals: each leaves megabytes of freed heap behind. glibc keeps freed
memory for reuse, in one arena per thread that allocated it, so the process's resident size
grows to the sum of each thread's busiest moment and stays there. Two calls fix that: fewer
arenas (`limit_arenas`, once at start-up, before the worker threads exist) and handing free
pages back after the heavy work (`trim`, about a millisecond). Elsewhere than glibc both do
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: mallopt's M_ARENA_MAX, from glibc's malloc.h.
M_ARENA_MAX = -8
#: Arenas for the whole process: the event loop and the worker threads share them.
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Let glibc make at most `arenas` malloc arenas; True when it took the setting."""
    return bool(_LIBC is not None and _LIBC.mallopt(M_ARENA_MAX, arenas))


def trim() -> None:
    """Give the free pages of every arena back to the operating system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
