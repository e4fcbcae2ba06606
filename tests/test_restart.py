"""Crash safety end to end, with real processes: a deliverer killed (SIGKILL) after the alert
was stored and while it was delivering it; after a restart the alert is posted exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.chat.console import HEADER

pytestmark = pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc to see where the process waits")


def litellm_payload(o3_input: float, o3_output: float) -> bytes:
    rows = {f"model-{i}": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "litellm_provider": "openai", "mode": "chat"} for i in range(5)}
    rows["o3"] = {"input_cost_per_token": o3_input, "output_cost_per_token": o3_output, "litellm_provider": "openai", "mode": "chat"}
    return json.dumps(rows).encode()


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, check=check, timeout=120)


def outbox_state(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT state, attempts FROM outbox").fetchall()


def wait_until_blocked(pid: int, timeout: float = 30.0) -> None:
    """Until the process waits to open the console FIFO: it is inside the adapter's send."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/wchan").read_text().strip() in ("wait_for_partner", "fifo_open"):
            return
        time.sleep(0.05)
    raise AssertionError("the deliverer never reached the send")


def test_killed_while_delivering_then_delivered_once_after_restart(tmp_path, source_server):
    db = tmp_path / "dw.db"
    cfg = tmp_path / "dw.toml"
    lines = [f'db = "{db}"', "backfill = false", "[alerts]", 'group_wait = "1s"', 'in_flight = "8s"']
    for name in ("openrouter", "genai-prices", "llm-prices", "models-dev", "bundled"):
        lines += [f"[sources.{name}]", "enabled = false"]
    lines += ["[sources.litellm]", f'url = "{source_server.url("/litellm.json")}"']
    cfg.write_text("\n".join(lines) + "\n")

    source_server.serve("/litellm.json", litellm_payload(1e-05, 4e-05))
    run("poll", "--config", str(cfg))
    run("subscribe", "console:", "--config", str(cfg))
    source_server.serve("/litellm.json", litellm_payload(2e-06, 8e-06))
    run("poll", "--config", str(cfg))
    # o3 input and output, and the frontier and GPT-4-class floors o3 now sets (bot.tier_floor): one batch
    assert outbox_state(db) == [("pending", 0)] * 4

    fifo = tmp_path / "console.out"
    os.mkfifo(fifo)
    deliverer = subprocess.Popen(
        [sys.executable, "-m", "bot", "deliver", "--every", "1s", "--console-file", str(fifo), "--config", str(cfg)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_blocked(deliverer.pid)
        deliverer.send_signal(signal.SIGKILL)
        deliverer.wait(timeout=10)
    finally:
        if deliverer.poll() is None:
            deliverer.kill()
    assert deliverer.returncode == -signal.SIGKILL
    killed_at = time.monotonic()
    assert outbox_state(db) == [("pending", 0)] * 4

    fifo.unlink()
    out = tmp_path / "console.txt"
    # The killed attempt may still be landing: for `in_flight` after it began, nothing goes out.
    early = run("deliver", "--once", "--console-file", str(out), "--config", str(cfg))
    assert time.monotonic() - killed_at < 8, "too slow to see the in-flight wait"
    assert early.stderr == "" and not out.exists()
    time.sleep(max(0.0, killed_at + 8.1 - time.monotonic()))
    first = run("deliver", "--once", "--console-file", str(out), "--config", str(cfg))
    assert "sent (4 alerts)" in first.stderr
    second = run("deliver", "--once", "--console-file", str(out), "--config", str(cfg))
    assert second.stderr == ""
    text = out.read_text()
    assert text.count(HEADER) == 1
    assert "▼ o3 (openai): input $10 → $2 (-80%); output $40 → $8 (-80%) per Mtok · litellm" in text
    assert "Frontier floor is now $3.5/Mtok (o3, openai, proprietary)" in text
    assert "GPT-4-class floor is now $3.5/Mtok (o3, openai, proprietary)" in text
    assert outbox_state(db) == [("sent", 1)] * 4
