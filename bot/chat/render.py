"""Helpers the platform adapters share: fitting text into a platform's length limits without
dropping any of it, and stable short digests of an idempotency key.

Splitting works on the raw text and measures the *escaped* length, so an escape sequence
(`&amp;`, `\\*`) is never cut in half and a piece never grows past the limit once escaped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from bot.cards import Table

Escape = Callable[[str], str]


def _same(text: str) -> str:
    return text


def chunk(text: str, limit: int, escape: Escape = _same) -> list[str]:
    """Split `text` into escaped pieces of at most `limit` characters each.

    Breaks at line ends first, then at spaces, and inside a word only when the word alone is
    longer than the limit. The line break or space a split happens at is dropped; nothing else
    is. An empty text gives no pieces.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if not text:
        return []
    lines: list[str] = []
    for line in text.split("\n"):
        escaped = escape(line)
        if len(escaped) <= limit:
            lines.append(escaped)
        else:
            lines += _split_line(line, limit, escape)
    return pack(lines, limit, "\n")


def pack(pieces: Iterable[str], limit: int, sep: str = "\n") -> list[str]:
    """Join pieces (each already at most `limit` long) greedily with `sep` into as few strings
    of at most `limit` characters as their order allows."""
    out: list[str] = []
    current: str | None = None
    for piece in pieces:
        if len(piece) > limit:
            raise ValueError(f"a piece of {len(piece)} characters is over the limit of {limit}")
        if current is None:
            current = piece
        elif len(current) + len(sep) + len(piece) <= limit:
            current += sep + piece
        else:
            out.append(current)
            current = piece
    if current is not None:
        out.append(current)
    return out


def _split_line(line: str, limit: int, escape: Escape) -> list[str]:
    """A line too long for one piece: pieces of whole words, words cut only when they must be."""
    words: list[str] = []
    for word in line.split(" "):
        escaped = escape(word)
        if len(escaped) <= limit:
            words.append(escaped)
            continue
        # Cut the word character by character, so each cut lands between escape sequences.
        current = ""
        for char in word:
            piece = escape(char)
            if len(current) + len(piece) > limit:
                words.append(current)
                current = ""
            current += piece
        if current:
            words.append(current)
    return pack(words, limit, " ")


def digest(*parts: object, length: int = 25) -> str:
    """A stable lowercase hex digest of `parts`, `length` characters long (Discord's nonce cap
    is 25): the same delivery and part always give the same value, across processes."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def table_text(table: Table) -> str:
    """A table as aligned monospace columns."""
    rows = [table.header, *table.rows]
    widths = [max((len(row[i]) for row in rows if i < len(row)), default=0) for i in range(len(table.header))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row)).rstrip()
        for row in rows
    )
