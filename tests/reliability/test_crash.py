"""Crash safety: `deflation-watch run` (a real process) is killed with SIGKILL at random moments
of polling, detection and delivery, at least 50 times, over a scripted sequence of catalogs in
which each step cuts one model's input price by 30 %. It is restarted after every kill. At the
end one clean run drains what is left, and then:

- every cut the catalogs imply is one alert, delivered exactly once to each subscribed channel
  (Slack over HTTP, Discord with a bot token): the fakes hold no second copy of any delivery —
  the Slack adapter finds its own metadata in the channel history, Discord honours the nonce;
- `PRAGMA integrity_check` is ok and foreign keys hold;
- no poll is half-stored: every poll with a catalog has exactly its price changes, no model has
  overlapping intervals, and every model has exactly one open interval.

The seed of the kill times is printed (and taken from `CRASH_SEED` to replay a failure).
Marked long: `make test-long` runs it, CI runs it too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from tests.chat.bot_server import wait_for
from tests.test_run import bot_environ, free_port

pytestmark = pytest.mark.long

KILLS = 52
STEPS = 13  # one cut per step: a new catalog every KILLS // STEPS kills
MODELS = [f"crash-model-{i:02d}" for i in range(STEPS)]
SLACK_CHANNEL = "C0CRASH"
DISCORD_CHANNEL = "1300000000000000001"
CHANNELS = [f"slack:{SLACK_CHANNEL}", f"discord:{DISCORD_CHANNEL}"]
BASE_INPUT, CUT = 1e-05, 0.7  # USD per token; each cut leaves 70 %


def catalog(step: int) -> bytes:
    """The LiteLLM catalog after `step` cuts: models 0 .. step-1 have their input cut by 30 %."""
    rows = {
        model: {"input_cost_per_token": BASE_INPUT * (CUT if i < step else 1), "output_cost_per_token": 4e-05,
                "litellm_provider": "openai", "mode": "chat"}
        for i, model in enumerate(MODELS)
    }
    return json.dumps(rows).encode()


def test_sigkill_at_random_points_loses_and_repeats_no_alert(tmp_path, source_server, fake_slack, fake_discord):
    seed = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash test seed: {seed} (replay with CRASH_SEED={seed})")
    rng = random.Random(seed)
    started = time.monotonic()

    environ = bot_environ(
        tmp_path, source_server, fake_slack,
        DISCORD_BOT_TOKEN=fake_discord.bot_token, DISCORD_API_URL=fake_discord.api_url,
        DEFLATION_WATCH_ALERTS__RETRY_AFTER="1s",  # a failed send is retried soon
        # A send cut short by a kill is retried once a post held on the wire (0.8 s) has landed.
        DEFLATION_WATCH_ALERTS__IN_FLIGHT="3s",
        DEFLATION_WATCH_ALERTS__TOP_MOVES="50",  # every move named in its message
        DEFLATION_WATCH_SCHEDULE__DIGEST="",  # alerts only: the digest has its own restart test
    )
    db_path = tmp_path / "bot.db"
    logs = tmp_path / "logs"
    logs.mkdir()
    runs = iter(range(10_000))

    def start() -> tuple[subprocess.Popen, str]:
        port = free_port()
        log = (logs / f"run-{next(runs):03d}.log").open("w")
        process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)],
                                   env=environ, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        return process, f"http://127.0.0.1:{port}"

    def stop_cleanly(process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, "a clean stop exits 0"

    # The baseline: one clean run polls the untouched catalog, before any channel subscribes.
    source_server.serve("/litellm.json", catalog(0))
    bot, base = start()
    try:
        wait_for(lambda: _polled(base), timeout=60, what="the first poll")
    finally:
        stop_cleanly(bot)
    for channel in CHANNELS:
        done = subprocess.run([sys.executable, "-m", "bot", "ask", "--channel", channel, "subscribe"],
                              env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "Subscribed this channel" in done.stdout, done.stdout + done.stderr

    step, kills, mid_send, delays, seen = 0, 0, 0, [], []
    while kills < KILLS:
        if kills % (KILLS // STEPS) == 0 and step < STEPS:
            step += 1
            # The fetch takes a moment, so some kills land inside it.
            source_server.serve("/litellm.json", catalog(step), delay=rng.choice([0.0, 0.1, 0.3]))
        # The run after each new catalog (its cut is on the way to the channels), and the third
        # after it if a delivery is pending, is killed while a post is on the wire: the platform
        # holds the request 0.8 s and then posts it, after the bot is gone.
        armed = []
        phase = kills % (KILLS // STEPS)
        if phase == 1 or (phase == 3 and _pending(db_path)):
            armed = [_arm(fake_slack, "chat.postMessage"), _arm(fake_discord, "create_message")]
        bot, base = start()
        wait_for(lambda: _answers(base) or bot.poll() is not None, timeout=60, what="the bot to start")
        assert bot.poll() is None, f"the bot exited by itself after a kill: see {logs}"
        if armed and _wait(lambda: any(step.times == 0 for step in armed), 4.0):
            mid_send += 1
        else:
            delay = rng.uniform(0.0, 1.5)
            delays.append(delay)
            time.sleep(delay)
        bot.send_signal(signal.SIGKILL)
        bot.wait(30)
        kills += 1
        seen.append(_progress(db_path))

    # The last run is left alone until everything the catalogs imply has gone out.
    bot, base = start()
    try:
        wait_for(lambda: _drained(db_path), timeout=120, what="every alert to be delivered")
        time.sleep(3)  # more polls and delivery rounds: nothing else may arrive
    finally:
        stop_cleanly(bot)
    elapsed = time.monotonic() - started

    with sqlite3.connect(db_path) as db:
        # Every cut is one alert, and it went to each channel exactly once.
        cuts = db.execute("SELECT id, model FROM alerts WHERE kind = 'price_cut' ORDER BY id").fetchall()
        assert sorted(model for _, model in cuts) == MODELS, cuts
        others = db.execute("SELECT kind, model FROM alerts WHERE kind != 'price_cut'").fetchall()
        assert others == [], others
        rows = db.execute("SELECT alert_id, channel, state, batch, message_id FROM outbox ORDER BY id").fetchall()
        assert sorted((a, c) for a, c, *_ in rows) == sorted((a, c) for a, _ in cuts for c in CHANNELS)
        assert {state for _, _, state, _, _ in rows} == {"sent"}, rows
        batches = {channel: {(batch, message) for _, c, _, batch, message in rows if c == channel} for channel in CHANNELS}

        # Not half-stored: integrity, each poll with a catalog has its changes, intervals tile.
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        polls = db.execute("SELECT id, status, changes, payload_hash, finished_at FROM polls ORDER BY id").fetchall()
        for poll_id, status, changes, payload_hash, finished_at in polls:
            if payload_hash is not None:
                stored = db.execute("SELECT COUNT(*) FROM prices WHERE poll_id = ?", [poll_id]).fetchone()[0]
                assert stored == changes, f"poll {poll_id} ({status}) says {changes} changes, {stored} are stored"
                assert db.execute("SELECT 1 FROM payloads WHERE hash = ?", [payload_hash]).fetchone()
            assert finished_at is not None, f"poll {poll_id} is stored unfinished"
        for (model_id,) in db.execute("SELECT id FROM models").fetchall():
            intervals = db.execute("SELECT valid_from, valid_to FROM prices WHERE model_id = ? ORDER BY valid_from, id", [model_id]).fetchall()
            assert sum(end is None for _, end in intervals) == 1, intervals
            assert intervals[-1][1] is None, intervals
            for (start, end), (next_start, _) in zip(intervals, intervals[1:], strict=False):
                assert start <= end <= next_start, f"model {model_id} intervals overlap: {intervals}"
        open_prices = dict(db.execute(
            "SELECT m.model, p.input_mtok FROM prices p JOIN models m ON m.id = p.model_id WHERE p.valid_to IS NULL").fetchall())
        assert open_prices == {model: pytest.approx(BASE_INPUT * CUT * 1e6) for model in MODELS}
        poll_count = len(polls)

    # Slack: one message per batch, each delivery's metadata key once, each model named once.
    slack = fake_slack.messages(SLACK_CHANNEL)
    keys = [(m["metadata"]["event_payload"]["key"], m["metadata"]["event_payload"]["part"]) for m in slack]
    assert len(keys) == len(set(keys)), f"a Slack delivery was shown twice: {keys}"
    assert sorted(m["ts"] for m in slack) == sorted(message for _, message in batches[f"slack:{SLACK_CHANNEL}"])
    _named_once(MODELS, [json.dumps(m["blocks"]) for m in slack])

    # Discord: one message per batch (a re-sent nonce returns the first message), each model once.
    discord = fake_discord.messages.get(DISCORD_CHANNEL, [])
    assert sorted(m["id"] for m in discord) == sorted(message for _, message in batches[f"discord:{DISCORD_CHANNEL}"])
    _named_once(MODELS, [json.dumps(m["embeds"]) for m in discord])

    resent = len(fake_slack.calls_to("chat.postMessage")) - len(slack) + len(fake_discord.calls_to("create_message")) - len(discord)
    print(f"crash test: {kills} SIGKILLs ({mid_send} with a post on the wire, the rest {min(delays):.2f}-{max(delays):.2f} s "
          f"after start-up), {poll_count} polls, "
          f"{len(cuts)} alerts, {len(slack)} Slack and {len(discord)} Discord messages, {resent} sends repeated "
          f"and absorbed, in {elapsed:.0f} s; progress between kills: {_phases(seen)}")
    assert kills >= 50
    assert mid_send >= 5, "too few kills landed inside a send to test the idempotency markers"


def _named_once(models: list[str], texts: list[str]) -> None:
    for model in models:
        count = sum(model in text for text in texts)
        assert count == 1, f"{model} is in {count} messages of the channel"


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code in (200, 503)
    except httpx.TransportError:
        return False


def _polled(base: str) -> bool:
    try:
        report = httpx.get(base + "/healthz", timeout=2).json()
    except (httpx.TransportError, ValueError):
        return False
    return report["sources"]["litellm"]["last_good_poll"] is not None


def _progress(db_path) -> tuple[int, int, int]:
    """(polls, alerts, outbox rows sent) so far: what the run before a kill got done."""
    with sqlite3.connect(db_path) as db:
        return tuple(db.execute(
            "SELECT (SELECT COUNT(*) FROM polls), (SELECT COUNT(*) FROM alerts), (SELECT COUNT(*) FROM outbox WHERE state = 'sent')"
        ).fetchone())


def _phases(seen: list[tuple[int, int, int]]) -> str:
    """How many runs got a poll, an alert and a delivery done before their kill."""
    pairs = list(zip(seen, seen[1:], strict=False))
    polled = sum(b[0] > a[0] for a, b in pairs)
    alerted = sum(b[1] > a[1] for a, b in pairs)
    delivered = sum(b[2] > a[2] for a, b in pairs)
    return f"{polled} runs stored a poll, {alerted} raised an alert, {delivered} recorded a delivery"


def _drained(db_path) -> bool:
    with sqlite3.connect(db_path) as db:
        cuts = db.execute("SELECT COUNT(*) FROM alerts WHERE kind = 'price_cut'").fetchone()[0]
        waiting = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        sent = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'sent'").fetchone()[0]
    return cuts == len(MODELS) and waiting == 0 and sent == len(MODELS) * len(CHANNELS)


def _pending(db_path) -> bool:
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0] > 0


def _arm(fake, route: str):
    """Hold the next request to `route` for 0.8 s, then serve it (unless one is held already);
    return the scripted step, whose `times` drops to 0 when a request reaches it."""
    with fake.lock:
        fake._script[:] = [step for step in fake._script if step.times > 0]
        waiting = [step for step in fake._script if step.delay and step.route == route]
    if waiting:
        return waiting[0]
    return fake.delay(0.8, times=1, route=route)


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False
