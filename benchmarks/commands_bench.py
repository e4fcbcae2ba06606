"""Slash-command reply time through the full HTTP path, on the ten-year database (`synth`).

The bot runs as `deflation-watch run` in its own process. Each command is a signed Slack
request to `/slack/events`, as Slack sends it; the time runs from sending it until Slack (the
fake Web API of tests/fakes, in this process) has the whole answer: the ack, the reply posted to
the command's `response_url`, and for `trend` its chart uploaded to the channel. That is what
the person who typed it waits for. (Slack rather than Discord because Slack answers every
command the same way, after the ack; Discord answers quick commands inside the HTTP response
but slow ones, `cheapest` and `trend`, through a later webhook edit, so its HTTP time would
measure different things for different commands.)

Steady state: each distinct command text is asked once first (not timed: the process loads
its modules, and the answer's shape is learned), then `rounds` rounds of every text in random
order are timed; p50 and p99 per command. After a change: a poll written by another process
(as `deflation-watch poll` would) changes one price, so the next answer of each command must
see it; that first answer after each of `changes` such polls is timed too, reported apart.
"""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import synth
from benchmarks.harness import Result, at_most, percentile, reported
from benchmarks.running import BotProcess, SlackUser
from bot import pipeline
from bot.sources import SOURCES
from bot.tiers import load_tiers
from storage import open_db, polls
from tests.fakes import FakeSlack

COMMANDS = ("price", "history", "cheapest", "trend")
GOAL_MS = 50
#: Names people type, of which those listed now in the database are asked.
WANTED = ("gpt-4o", "o3", "claude 3.5 sonnet", "llama 3.3 70b instruct", "gpt-4o-mini", "gemini-2.5-pro",
          "deepseek-chat", "claude-sonnet-4", "gpt-4.1", "mistral-large")  # fmt: skip


def texts(db_path: Path, names: int) -> dict[str, list[str]]:
    """The command texts asked, per command: real model names and every tier."""
    db = open_db(db_path)
    try:
        listed = synth.real_names(db, WANTED)[:names]
    finally:
        db.close()
    tiers = list(load_tiers())
    return {
        "price": [f"price {name}" for name in listed],
        "history": [f"history {name}" for name in listed],
        "cheapest": ["cheapest", *(f"cheapest {tier}" for tier in tiers)],
        "trend": ["trend", *(f"trend {tier}" for tier in tiers), f"trend {tiers[0]} 2y", f"trend {tiers[-1]} all",
                  *(f"trend {name} 90d" for name in listed[:2])],
    }


def reply_times(db_path: Path, rounds: int, names: int, changes: int, seed: int = 8) -> list[Result]:
    asked = texts(db_path, names)
    rng = random.Random(seed)
    times: dict[str, list[float]] = defaultdict(list)
    acks: list[float] = []
    after: dict[str, list[float]] = defaultdict(list)
    refused: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        db = synth.copy(db_path, Path(tmp) / "bot.db")
        with BotProcess(db, slack, Path(tmp)) as bot:
            bot.settle()
            user = SlackUser(bot, slack)
            try:
                for command, variants in asked.items():  # warm-up: learn each answer's shape
                    for text in list(variants):
                        _, _, body = user.ask(text)
                        if body.get("response_type") != "in_channel":  # an error card: nothing to time
                            refused.append(text)
                            variants.remove(text)
                    if not variants:
                        raise RuntimeError(f"every {command} command was refused: {refused}")
                for _ in range(rounds):
                    order = [(command, text) for command, variants in asked.items() for text in variants]
                    rng.shuffle(order)
                    for command, text in order:
                        acked, took, _ = user.ask(text)
                        times[command].append(took)
                        acks.append(acked)
                for step in range(changes):
                    _change_a_price(db, step)
                    for command in COMMANDS:
                        after[command].append(user.ask(asked[command][0])[1])
            finally:
                user.close()
    params = {"database": db_path.name, "made": synth.describe(db_path), "rounds": rounds, "texts": asked, "refused": refused}
    results = []
    for command in COMMANDS:
        samples = [t * 1000 for t in times[command]]
        results.append(reported(f"{command}: reply p50", percentile(samples, 50), "ms", samples=len(samples)))
        results.append(at_most(f"{command}: reply p99", percentile(samples, 99), "ms", GOAL_MS, samples=len(samples), **params))
    results.append(reported("slash-command ack p99", percentile([a * 1000 for a in acks], 99), "ms", samples=len(acks)))
    if changes:
        for command in COMMANDS:
            samples = [t * 1000 for t in after[command]]
            results.append(reported(f"{command}: first reply after a price change, max", max(samples), "ms",
                                    text=asked[command][0], changes=changes))
    return results


def _change_a_price(db_path: Path, step: int) -> None:
    """A poll by another process that changes one LiteLLM price, as `deflation-watch poll` would."""
    db = open_db(db_path)
    try:
        rows = synth.current(db, "litellm")
        provider, model, inp, out, cache = rows[step % len(rows)]
        rows[step % len(rows)] = (provider, model, synth._sig(inp * 0.9 if inp else 1.0), out, cache)
        now = datetime.now(UTC)
        report = pipeline.ingest(db, SOURCES["litellm"], polls.Poll("litellm", now, now, now, payload=synth.payload("litellm", rows)))
        if report.changes != 1:
            raise RuntimeError(f"the price change made {report.changes} changes")
    finally:
        db.close()
