"""A chat adapter whose process dies mid-send, for the tests of what a restart does then."""

from __future__ import annotations

import asyncio
import threading
import time


class DiesMidSend:
    """The bot process dies while its request is on the wire: the platform holds the request a
    moment and then makes the post, but the bot never learns the outcome."""

    def __init__(self, adapter, fake, route: str):
        self.adapter, self.platform = adapter, adapter.platform
        self.held = fake.delay(1.0, times=1, route=route)
        self.orphan: threading.Thread | None = None

    async def send(self, channel, cards, *, idempotency_key):
        request = self.adapter.send(channel, cards, idempotency_key=idempotency_key)
        self.orphan = threading.Thread(target=asyncio.run, args=(request,))
        self.orphan.start()
        deadline = time.monotonic() + 10
        while self.held.times and time.monotonic() < deadline:  # until the platform has the request
            time.sleep(0.01)
        raise SystemExit("killed with a post on the wire")
