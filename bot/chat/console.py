"""The terminal as a chat platform: prints each message as a Rich panel, to stdout or appended
to a file. Channel addresses are `console:` (stdout) or `console:NAME` (the name is shown).

Idempotency: every message is headed by its idempotency key; a send whose key is already in the
output file (or, on stdout, already sent by this process) is acknowledged without printing
again, so a delivery retried after a crash between printing and recording appears once.
"""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.cards import Card
from bot.chat.base import Delivery

_COLOURS = {"info": "blue", "good": "green", "warning": "yellow", "critical": "red"}
#: How each message starts; the key follows, so a file can be searched for it.
HEADER = "=== message "


class ConsoleAdapter:
    platform = "console"
    #: A terminal has no message size limit worth splitting for.
    max_text: int | None = None

    def __init__(self, console: Console | None = None, path: Path | None = None, width: int = 100):
        self.console = console
        self.path = path
        self.width = width
        self._sent: set[str] = set()

    async def send(self, channel: str, cards: list[Card], *, idempotency_key: str) -> Delivery:
        try:
            if idempotency_key in self._sent or self._in_file(idempotency_key):
                return Delivery(ok=True, message_id=idempotency_key)
            text = f"{HEADER}{idempotency_key} to console:{channel}\n" + "".join(render(card, self.width) for card in cards)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(text)
            else:
                (self.console or Console()).out(text.rstrip("\n"), highlight=False)
        except OSError as exc:
            return Delivery(ok=False, error=f"cannot write {self.path}: {exc}")
        self._sent.add(idempotency_key)
        return Delivery(ok=True, message_id=idempotency_key)

    def _in_file(self, key: str) -> bool:
        if self.path is None or not self.path.exists():
            return False
        with self.path.open(encoding="utf-8") as found:
            return any(line.startswith(f"{HEADER}{key} ") for line in found)


def render(card: Card, width: int = 100) -> str:
    """A card as a bordered panel of plain text (no colour codes), ready to print or store."""
    parts: list = [Text(line) for line in card.lines]
    if card.fields:
        grid = Table.grid(padding=(0, 2))
        for label, value in card.fields:
            grid.add_row(Text(label, style="bold"), Text(value))
        parts.append(grid)
    if card.table:
        table = Table(*card.table.header)
        for row in card.table.rows:
            table.add_row(*row)
        parts.append(table)
    parts += [Text(f"{label}: {url}") for label, url in card.links]
    if card.image:
        parts.append(Text(f"[image {card.image_name}, {len(card.image):,} bytes]"))
    if card.footer:
        parts.append(Text(card.footer, style="dim"))
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(
        Panel(Group(*parts), title=Text(card.title), title_align="left", border_style=_COLOURS[card.severity])
    )
    return buffer.getvalue()
