"""What every chat adapter offers the delivery loop: send one card to one channel, and say
how it went instead of raising (a failed send is recorded and retried, never fatal)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.cards import Card


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one send. `permanent` failures (unknown channel, bad token) are not
    retried; others are, no sooner than `retry_after` seconds when the platform says so."""

    ok: bool
    message_id: str | None = None
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None


class Adapter(Protocol):
    #: The platform's name as it appears in a channel address (`slack`, `discord`, `console`).
    platform: str

    async def send(self, channel: str, cards: list[Card], *, idempotency_key: str) -> Delivery:
        """Post `cards` as one message (or the fewest the platform's limits allow) to
        `channel`. `idempotency_key` is stable per delivery, so a re-send after a crash can be
        recognised (and skipped) instead of shown twice."""
        ...
