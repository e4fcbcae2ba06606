"""The composition root of `deflation-watch run`: one process that serves Slack and Discord,
polls the sources, delivers alerts and posts the weekly digest.

`ChatEnv` reads the chat platforms' credentials from the environment; `Bot` wires the database,
the adapters, the command runner, the scheduler (`bot.scheduler`) and the HTTP routes
(`bot.web`); `serve` runs it under uvicorn until SIGTERM or SIGINT, then stops taking work,
lets the jobs and replies in flight finish, and returns 0.

Threads: the event loop serves HTTP, Socket Mode, delivery and the scheduler. Commands run in
two worker threads (one for quick commands, one for slow ones, so a digest never holds up a
`price`), each with its own SQLite connection; polls and digests in the scheduler's own worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
import uvicorn

from bot import commands, heap, pipeline, secrets
from bot.cards import Card
from bot.chat import slack_app
from bot.chat.base import Adapter
from bot.chat.console import ConsoleAdapter
from bot.chat.discord import DiscordAdapter
from bot.chat.slack import SlackAdapter
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.errors import ConfigError
from bot.metrics import Metrics
from bot.scheduler import Jobs, build_scheduler
from bot.secrets import Secret
from storage import open_db

log = logging.getLogger(__name__)

#: Seconds `stop()` waits for jobs and replies in flight before giving up on them.
DRAIN_TIMEOUT = 60.0
#: A Discord channel webhook: …/webhooks/{id}/{token}, maybe with a query (thread_id=…).
#: The ChatEnv fields that hold secrets: read with `bot.secrets.read`, so NAME_FILE works too.
SECRET_FIELDS = frozenset(name.lower() for name in secrets.SECRET_ENV)
_WEBHOOK_URL = re.compile(r"https?://[^/\s]+(/[^\s?]*)?/webhooks/\d+/[^/\s?]+/?(\?\S*)?")


@dataclass(frozen=True, slots=True)
class ChatEnv:
    """The chat platforms' settings, from their conventional environment variables. The tokens,
    the signing secret and the webhook URL are `bot.secrets.Secret`s (shown as `***`); each may
    also be given in a file named by `NAME_FILE` (Docker secrets, systemd credentials)."""

    slack_bot_token: Secret | None = None
    slack_signing_secret: Secret | None = None
    slack_app_token: Secret | None = None
    slack_api_url: str | None = None
    discord_public_key: str | None = None
    discord_application_id: str | None = None
    discord_bot_token: Secret | None = None
    discord_webhook_url: Secret | None = None
    discord_api_url: str | None = None

    def __post_init__(self) -> None:
        # A plain string (tests, callers building one by hand) becomes a Secret too.
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Secret(value.strip(), name.upper()) if value.strip() else None)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ChatEnv:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name in SECRET_FIELDS:
                values[name] = secrets.read(name.upper(), environ=environ)
            else:
                values[name] = (environ.get(name.upper()) or "").strip() or None
        env = cls(**values)
        env.check()
        return env

    def reveal(self, name: str) -> str | None:
        """The value of the secret field `name`, for the code that sends it."""
        value = getattr(self, name)
        return value.reveal() if value is not None else None

    def check(self) -> None:
        """Combinations that cannot work fail at start-up, naming the variable to set."""
        if self.slack_bot_token and not (self.slack_signing_secret or self.slack_app_token):
            raise ConfigError("SLACK_BOT_TOKEN is set: set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode) too")
        if (self.slack_signing_secret or self.slack_app_token) and not self.slack_bot_token:
            raise ConfigError("Slack is half configured: set SLACK_BOT_TOKEN (the xoxb- bot token) too")
        if self.slack_app_token and not self.slack_app_token.reveal().startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        if self.discord_public_key:
            try:
                if len(bytes.fromhex(self.discord_public_key)) != 32:
                    raise ValueError
            except ValueError:
                raise ConfigError("DISCORD_PUBLIC_KEY must be the application's public key: 64 hex digits") from None
            if not self.discord_application_id:
                raise ConfigError("DISCORD_PUBLIC_KEY is set: set DISCORD_APPLICATION_ID too, to answer interactions")
        if self.discord_webhook_url and not _WEBHOOK_URL.fullmatch(self.discord_webhook_url.reveal()):
            raise ConfigError("DISCORD_WEBHOOK_URL must be a channel webhook's URL: https://discord.com/api/webhooks/ID/TOKEN")

    @property
    def slack(self) -> bool:
        return bool(self.slack_bot_token)

    @property
    def discord(self) -> bool:
        return bool(self.discord_public_key or self.discord_bot_token or self.discord_webhook_url)


class Bot:
    def __init__(self, settings: Settings, env: ChatEnv, *, clock: Clock = utcnow, console_file: Path | None = None):
        self.settings = settings
        self.env = env
        self.clock = clock
        self.metrics = Metrics()
        self.db: sqlite_utils.Database = open_db(settings.db)
        self.slack = SlackAdapter(env.reveal("slack_bot_token") or "", api_url=env.slack_api_url) if env.slack_bot_token else None
        self.discord = (
            DiscordAdapter(env.reveal("discord_bot_token"), env.reveal("discord_webhook_url"), env.discord_api_url, env.discord_application_id)
            if env.discord else None
        )
        # With no chat platform, alerts and digests for `console:` channels are printed here.
        self.adapters: dict[str, Adapter] = {"console": ConsoleAdapter(path=console_file)}
        if self.slack:
            self.adapters["slack"] = self.slack
        if self.discord and (env.discord_bot_token or env.discord_webhook_url):
            self.adapters["discord"] = self.discord
        self.jobs = Jobs(settings, self.db, self.adapters, self.metrics, clock=clock)
        self.scheduler = build_scheduler(settings, self.jobs, clock)
        self._quick = ThreadPoolExecutor(1, thread_name_prefix="deflation-watch-command")
        self._slow = ThreadPoolExecutor(1, thread_name_prefix="deflation-watch-slow-command")
        self._local = threading.local()
        self._tasks: set[asyncio.Task] = set()
        self.slack_app = None
        if self.slack:
            self.slack_app = slack_app.build_app(
                token=env.reveal("slack_bot_token") or "", signing_secret=env.reveal("slack_signing_secret"), adapter=self.slack,
                answer=self.answer, spawn=self.spawn, api_url=env.slack_api_url, is_error=commands.is_error,
            )
        self.socket_mode: slack_app.SocketMode | None = None  # made in start(): its client binds to the running loop
        self.started = time.monotonic()
        self.running = False

    # -- commands --

    async def answer(self, text: str, user: str, channel: str) -> Card:
        """Run one chat command off the event loop and time it; never raises."""
        began = time.monotonic()
        pool = self._slow if commands.is_slow(text) else self._quick
        try:
            card = await asyncio.get_running_loop().run_in_executor(pool, self._answer_in_thread, text, user, channel)
        except Exception:
            log.exception("command %r failed outside the command layer", text)
            card = commands.error_card("Something went wrong on our side; it has been logged. Try again later.")
        if pool is self._slow:
            with contextlib.suppress(RuntimeError):  # shutting down: the pool takes no more work
                pool.submit(heap.trim)  # after the answer, not before it: the heap it used goes back
        name = text.split()[0].lower() if text.split() else "help"
        self.metrics.commands.labels(user.partition(":")[0], name if name in commands.COMMANDS else "unknown").observe(time.monotonic() - began)
        return card

    def _thread_db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_db(self.settings.db)
        return db

    def _answer_in_thread(self, text: str, user: str, channel: str) -> Card:
        context = commands.Context(self._thread_db(), self.settings, self.clock, user=user, channel=channel)
        return commands.answer(text, context)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run a reply after the platform has had its quick answer; `stop()` waits for it."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)

        def done(finished: asyncio.Task) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("a chat reply failed", exc_info=finished.exception())

        task.add_done_callback(done)
        return task

    # -- health --

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, report): the database answers, the scheduler runs, and not every enabled
        source has gone without a good poll for longer than it may (`stale_after`, or three
        of its intervals if that is longer; counted from start-up for a source never polled).
        Slack Socket Mode, when configured, is reported too: not connected is `degraded`."""
        loop = asyncio.get_running_loop()
        try:
            summary = await asyncio.wait_for(loop.run_in_executor(self._quick, self._poll_summary), 5.0)
            database = "ok"
        except Exception as exc:
            summary, database = {}, f"unreachable: {type(exc).__name__}: {exc}"
        now = self.clock()
        uptime = time.monotonic() - self.started
        sources = {}
        for name in self.settings.enabled_sources():
            allowed = max(self.settings.alerts.stale_after, 3 * self.settings.sources[name].every).total_seconds()
            last = (summary.get(name) or {}).get("last_good_at")
            age = (now - _parse(last)).total_seconds() if last else None
            sources[name] = {
                "last_good_poll": last,
                "age_seconds": None if age is None else round(age),
                "stale": (age if age is not None else uptime) > allowed,
            }
        stale = [name for name, source in sources.items() if source["stale"]]
        healthy = database == "ok" and self.running and not (sources and len(stale) == len(sources))
        report: dict[str, Any] = {"database": database, "scheduler": "running" if self.running else "stopped", "sources": sources}
        socket_down = False
        if self.socket_mode is not None:
            report["slack_socket_mode"] = await self.socket_mode.status()
            socket_down = report["slack_socket_mode"] != "connected"
        status = "unhealthy" if not healthy else "degraded" if stale or socket_down else "ok"
        return healthy, {"status": status, **report}

    def _poll_summary(self) -> dict[str, dict]:
        from storage import polls

        db = self._thread_db()
        db.execute("SELECT 1").fetchone()
        return {row["source"]: row for row in polls.summary(db)}

    # -- lifecycle --

    async def start(self) -> None:
        """Load the shipped history into a new database, then start the jobs and Socket Mode."""
        loaded = await asyncio.get_running_loop().run_in_executor(self._quick, lambda: pipeline.first_run(self._thread_db(), self.settings, self.clock))
        if loaded:
            log.info("new database: loaded %s price intervals of shipped history", loaded)
        self.scheduler.start()
        self.running = True
        if self.slack_app is not None and self.env.slack_app_token:
            self.socket_mode = slack_app.SocketMode(self.slack_app, self.env.reveal("slack_app_token") or "")
            self.socket_mode.start()  # in the background: HTTP and the jobs do not wait for Slack

    async def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Take no new work, let what is in flight finish (up to `timeout` seconds), close."""
        self.running = False
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.socket_mode is not None:
            await self.socket_mode.close()
        deadline = time.monotonic() + timeout
        if not await self.jobs.drain(timeout):
            log.warning("jobs still running after %ss; stopping anyway", timeout)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
            if pending:
                log.warning("%d chat replies still running; stopping anyway", len(pending))
        for pool in (self._quick, self._slow):
            pool.submit(self._close_thread_db)
            pool.shutdown(wait=True)
        if self.discord is not None:
            await self.discord.aclose()
        self.db.close()

    def _close_thread_db(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _parse(text: str) -> Any:
    from storage.times import parse_iso

    return parse_iso(text)


def build(settings: Settings, env: ChatEnv, *, clock: Clock = utcnow, console_file: Path | None = None) -> tuple[Bot, Any]:
    """The bot and its ASGI app."""
    from bot.web import make_app

    bot = Bot(settings, env, clock=clock, console_file=console_file)
    return bot, make_app(bot)


class Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after a graceful shut-down, so the process would die by
    the signal; here the signal only asks the server to stop, and `serve` returns 0. Off the
    main thread (tests) signals are left alone: set `should_exit` instead."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()

        def stop(sig: signal.Signals) -> None:
            log.info("%s: stopping: no new work, finishing what is in flight", sig.name)
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


async def serve(
    settings: Settings,
    env: ChatEnv,
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    console_file: Path | None = None,
    sockets: list[socket.socket] | None = None,
    started: Callable[[Bot, Server], None] | None = None,
) -> int:
    """Run the bot until a signal (or `server.should_exit`); return the exit code. `sockets`,
    when given, are listened on instead of host:port; `started` is called once it serves."""
    heap.limit_arenas()  # before the worker threads exist
    bot, app = build(settings, env, console_file=console_file)
    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False))
    try:
        await bot.start()
        if started is not None:
            asyncio.get_running_loop().call_soon(started, bot, server)
        await server.serve(sockets=sockets)
    finally:
        await bot.stop()
    return 0
