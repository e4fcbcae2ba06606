"""`deflation-watch run` as a real process for the benchmarks, and a Slack client that talks to
it as Slack does: signed slash commands to `/slack/events`, answers caught by the fake Slack
Web API (tests/fakes) that the bot's `response_url` replies and chart uploads go to."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bot.sources import SOURCES
from tests.fakes import FakeSlack, slack_headers

SECRET = "bench-signing-secret"
#: How long a first answer must stay quiet before it is taken to be complete.
QUIET = 0.3
#: The calls to Slack an answer is made of (Bolt's own auth.test, now and then, is not one).
ANSWER_ROUTES = ("response_url", "files.getUploadURLExternal", "upload", "files.completeUploadExternal")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BotProcess:
    """`python -m bot run` on a free port with the given database, answering Slack at `slack`;
    `sources` maps the sources to poll to (url, every); the others are disabled."""

    def __init__(self, db: Path, slack: FakeSlack, workdir: Path, sources: dict[str, tuple[str, str]] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        sources = sources or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DEFLATION_WATCH_", "SLACK_", "DISCORD_"))}
        for name in SOURCES:
            key = f"DEFLATION_WATCH_SOURCES__{name.upper().replace('-', '_')}"
            if name in sources:
                env[f"{key}__URL"], env[f"{key}__EVERY"] = sources[name]
            else:
                env[f"{key}__ENABLED"] = "false"
        env |= {
            "DEFLATION_WATCH_DB": str(db),
            "DEFLATION_WATCH_BACKFILL": "false",
            "DEFLATION_WATCH_SCHEDULE__DIGEST": "",
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        self.log = workdir / "bot.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
            )

    def __enter__(self) -> BotProcess:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code in (200, 503):
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the bot did not start serving:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settle(self, window: float = 0.5, busy: float = 0.1, timeout: float = 300) -> None:
        """Wait until the start-up jobs are done (the indicators check reads the whole price
        history): until the process uses under `busy` of a core over `window` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(window)
            if self.cpu_seconds() - before < busy * window:
                return
        raise RuntimeError("the bot stayed busy")

    def rss_mb(self) -> float:
        """Resident memory now, from /proc/PID/status (VmRSS), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")


class SlackUser:
    """Types `/deflation TEXT` in a channel, one command at a time, and times each until its
    whole answer has reached Slack: the ack, then every `response_url` post and chart upload."""

    def __init__(self, bot: BotProcess, slack: FakeSlack, channel: str = "C0BENCH"):
        self.bot, self.slack, self.channel = bot, slack, channel
        self.client = httpx.Client(base_url=bot.base, timeout=30)
        self._hooks = itertools.count(1)
        self._calls: dict[str, int] = {}  # text -> how many calls to Slack its answer makes

    def close(self) -> None:
        self.client.close()

    def ask(self, text: str) -> tuple[float, float, dict]:
        """(ack seconds, reply seconds, the first response_url body) for one command."""
        hook = f"T0001/{next(self._hooks)}/bench"
        body = urlencode({
            "command": "/deflation", "text": text, "channel_id": self.channel, "user_id": "U0BENCH",
            "team_id": "T0001", "response_url": self.slack.response_url(hook),
        }).encode()
        with self.slack.lock:
            before = len(self.slack.calls)
        began = time.monotonic()
        answer = self.client.post("/slack/events", content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", **slack_headers(SECRET, body)})
        acked = time.monotonic() - began
        if answer.status_code != 200:
            raise RuntimeError(f"/deflation {text}: HTTP {answer.status_code} {answer.text[:200]}")
        expected = self._calls.get(text)
        deadline = began + 60
        while True:
            with self.slack.lock:
                calls = [call for call in self.slack.calls[before:] if call.route in ANSWER_ROUTES]
            replied = hook in self.slack.responses
            if expected is not None and len(calls) >= expected:
                break
            if expected is None and replied and time.monotonic() - calls[-1].at >= QUIET:
                self._calls[text] = len(calls)  # the first time: wait until the answer goes quiet
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"/deflation {text}: no complete answer within 60 s ({len(calls)} calls)")
            time.sleep(0.0005)
        return acked, calls[-1].at - began, self.slack.responses[hook][0]
