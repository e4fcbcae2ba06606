"""What the chat adapter tests send and read back: cards (small, and over every limit), a real tiny
PNG, and helpers that pull the text out of Slack blocks and Discord embeds."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import zlib

from bot.cards import Card, Table


def run(coroutine):
    return asyncio.run(coroutine)


def png(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny PNG: what charts.py hands the adapters, without matplotlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def small_card(**changes) -> Card:
    card = Card(
        title="GPT-4o input price cut 50%",
        lines=["openai cut gpt-4o input from $5.00 to $2.50 per million tokens."],
        fields=[("Input", "$2.50 / Mtok"), ("Output", "$10.00 / Mtok")],
        footer="Source: genai-prices",
    )
    for name, value in changes.items():
        setattr(card, name, value)
    return card


def long_card(image: bytes | None = None) -> Card:
    """A card over every limit of both platforms. Each piece of content carries a unique token
    (`L0001`, `F0001`, `R0001`, …) so a test can check that all of it arrived."""
    return Card(
        title="T-start " + " ".join(f"title{i:03d}" for i in range(60)) + " T-end",  # ~500 characters
        lines=[f"L{i:04d} " + "price & <data> " * 8 for i in range(400)]  # ~50 000 characters
        + ["W0001" + "x" * 9000],  # one word longer than any limit
        fields=[(f"F{i:04d}", f"V{i:04d} $1.00 → $0.50") for i in range(60)]
        + [("F-long", "G0001 " + "long value " * 500)],  # too long to be a field anywhere
        table=Table(("model", "provider", "input"), tuple((f"R{i:04d}", "openai", "$2.50") for i in range(600))),
        links=[(f"K{i:03d}", f"https://example.invalid/model/{i}?a=1&b=2") for i in range(40)],
        footer="Z-start " + "footer words " * 300 + " Z-end",
        image=image,
    )


def tokens(card: Card) -> list[str]:
    """Every unique token of `long_card`, in order."""
    found = [card.title.split()[0], card.title.split()[-1], "W0001" + "x" * 9000, "G0001"]
    found += [line.split()[0] for line in card.lines[:-1]]
    found += [label for label, _ in card.fields[:-1]] + [value.split()[0] for _, value in card.fields[:-1]]
    found += [row[0] for row in card.table.rows] + [label for label, _ in card.links] + ["Z-start", "Z-end"]
    return found


def free_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


def block_texts(blocks: list[dict]) -> list[str]:
    texts = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
        texts += [e["text"] for e in block.get("elements", [])]
    return texts


def embed_texts(embeds: list[dict]) -> str:
    parts = []
    for embed in embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']}\n{f['value']}" for f in embed.get("fields", [])]
        parts.append(embed.get("footer", {}).get("text", ""))
    return "\n".join(parts)


def unescape_slack(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def unescape_discord(text: str) -> str:
    return re.sub(r"\\([\\*_~`|\[\]<#>-])", r"\1", text)


def squash(text: str) -> str:
    return "".join(text.replace("```", "").split())
