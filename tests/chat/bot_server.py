"""The running bot's HTTP side in a background thread on loopback, for tests that talk to it as
Slack and Discord do."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx

from bot.app import Bot, ChatEnv, Server, serve
from bot.config import Settings, load
from bot.sources import SOURCES


def quiet_settings(tmp_path: Path, **environ: str) -> Settings:
    """Settings with no source polled and no backfill: the bot only answers."""
    env = {"DEFLATION_WATCH_DB": str(tmp_path / "bot.db"), "DEFLATION_WATCH_BACKFILL": "false"}
    env |= {f"DEFLATION_WATCH_SOURCES__{name.upper().replace('-', '_')}__ENABLED": "false" for name in SOURCES}
    return load(environ=env | environ)


def both_platforms(fake_slack, fake_discord, signing_secret: str, key, application_id: str = "1100000000000000001") -> ChatEnv:  # noqa: ANN001
    """Slack in HTTP mode (signed with `signing_secret`) and a Discord bot whose interactions
    are signed with `key` (a nacl SigningKey), both at the fakes."""
    return ChatEnv(
        slack_bot_token=fake_slack.token, slack_signing_secret=signing_secret, slack_api_url=fake_slack.api_url,
        discord_public_key=key.verify_key.encode().hex(), discord_application_id=application_id,
        discord_bot_token=fake_discord.bot_token, discord_api_url=fake_discord.api_url,
    )


class BotServer:
    def __init__(self, settings: Settings, env: ChatEnv):
        self.settings, self.env = settings, env
        self.bot: Bot | None = None
        self.server: Server | None = None
        self.exit_code: int | None = None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        def started(bot: Bot, server: Server) -> None:
            self.bot, self.server = bot, server

        self.exit_code = asyncio.run(serve(self.settings, self.env, sockets=[self.sock], started=started))

    def __enter__(self) -> BotServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code in (200, 503):
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("the bot did not start serving")

    def __exit__(self, *exc_info: object) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive(), "the bot did not stop"

    def post(self, path: str, body: bytes, headers: dict[str, str], content_type: str) -> httpx.Response:
        return httpx.post(self.url + path, content=body, headers={"Content-Type": content_type, **headers}, timeout=10)


def wait_for(condition, timeout: float = 15.0, what: str = "the condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
