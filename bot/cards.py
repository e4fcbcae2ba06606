"""The platform-neutral message: commands, alerts and digests produce a `Card`; each chat
adapter (Slack, Discord, terminal) renders it within its own limits. Nothing here knows any
platform's types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["info", "good", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of plain strings under a header; adapters lay it out as monospace or fields."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(slots=True)
class Card:
    """One message. `lines` are short paragraphs of plain text (no markup: adapters escape it);
    `fields` are label/value pairs; `image` is a PNG shown with the message."""

    title: str
    lines: list[str] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    table: Table | None = None
    severity: Severity = "info"
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, url)
    footer: str | None = None
    image: bytes | None = None
    image_name: str = "chart.png"

    def text(self) -> str:
        """A plain-text rendering: the notification fallback and what tests read."""
        parts = [self.title, *self.lines]
        parts += [f"{label}: {value}" for label, value in self.fields]
        if self.table:
            parts.append("  ".join(self.table.header))
            parts += ["  ".join(row) for row in self.table.rows]
        parts += [f"{label}: {url}" for label, url in self.links]
        if self.footer:
            parts.append(self.footer)
        return "\n".join(parts)
