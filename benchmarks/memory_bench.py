"""Resident memory of `deflation-watch run` over a long stretch of polls and commands.

The bot runs as its own process on a copy of the ten-year database (`synth`), its five sources
pointed at the loopback source server (tests/source_server.py), each polled every second. Each
source serves its current catalog in its own format, with no ETag (so every poll downloads and
parses it all) and one price changed every few of its polls, so detectors, alerts and the
analytics after a cycle with changes run too. Meanwhile, signed Slack commands (`price`,
`history`, `cheapest`, `trend`, in turn) go to it one at a time.

Every `every` operations (a poll is an upstream request the source server saw; a command, an
answer that reached Slack) VmRSS is read from /proc/PID/status. Goal: RSS at the end no more
than 200 MB, and no growth trend: the least-squares slope of RSS over the second half of the
samples under `SLOPE_LIMIT` MB per 1 000 operations.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks import synth
from benchmarks.commands_bench import texts
from benchmarks.harness import Result, at_most, reported
from benchmarks.running import BotProcess, SlackUser
from storage import open_db
from tests.fakes import FakeSlack
from tests.source_server import SourceServer

LIMIT_MB = 200
#: MB per 1 000 operations: what counts as "no growth".
SLOPE_LIMIT = 1.0
#: A source's served catalog changes one price every this many of its polls.
CHANGE_EVERY = 10


def resident_memory(db_path: Path, polls: int, commands: int, every: int) -> list[Result]:
    asked = texts(db_path, 4)
    rotation = itertools.cycle([text for group in zip(*asked.values()) for text in group])
    samples: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        db = synth.copy(db_path, Path(tmp) / "bot.db")
        server = SourceServer().start()
        try:
            catalogs = _catalogs(db)
            for name, rows in catalogs.items():
                server.serve(f"/{name}.json", synth.payload(name, rows), etag=False)
            served = {name: 0 for name in catalogs}
            sources = {name: (server.url(f"/{name}.json"), "1s") for name in catalogs}
            with BotProcess(db, slack, Path(tmp), sources=sources) as bot:
                user = SlackUser(bot, slack)
                try:
                    asked_n, next_sample = 0, 0
                    while True:
                        seen = list(server.requests)
                        polled = len(seen)
                        counts = Counter(request.path for request in seen)
                        for name in catalogs:  # one price moves every CHANGE_EVERY polls of a source
                            if counts[f"/{name}.json"] // CHANGE_EVERY > served[name]:
                                served[name] += 1
                                _move_a_price(catalogs[name], served[name])
                                server.serve(f"/{name}.json", synth.payload(name, catalogs[name]), etag=False)
                        done = polled + asked_n
                        if done >= next_sample:
                            samples.append((done, bot.rss_mb()))
                            next_sample += every
                        if polled >= polls and asked_n >= commands:
                            break
                        if asked_n < commands:
                            user.ask(next(rotation))
                            asked_n += 1
                        else:
                            time.sleep(0.05)
                    samples.append((len(server.requests) + asked_n, bot.rss_mb()))
                finally:
                    user.close()
        finally:
            server.stop()
    ops = np.array([s[0] for s in samples], dtype=float)
    rss = np.array([s[1] for s in samples])
    half = rss[len(rss) // 2:], ops[len(ops) // 2:]
    slope, error = _slope(half[1], half[0])
    params = {"polls": int(len(server.requests)), "commands": commands, "samples": len(samples), "sample_every": every}
    end = float(rss[-1])
    met = end <= LIMIT_MB and slope < SLOPE_LIMIT
    return [
        at_most("bot RSS after polls and commands", end, "MB", LIMIT_MB, peak_mb=round(float(rss.max()), 1), **params),
        Result("bot RSS growth, second half", round(slope, 4), "MB/1000 ops", f"< {SLOPE_LIMIT:g} MB/1000 ops and RSS <= {LIMIT_MB} MB",
                met, {"standard_error": round(error, 4), "rss_mb": [round(float(r), 1) for r in rss], "ops": [int(o) for o in ops]}),
        reported("bot RSS at start", float(rss[0]), "MB"),
    ]


def _catalogs(db_path: Path) -> dict[str, list[tuple]]:
    db = open_db(db_path)
    try:
        return {name: synth.current(db, name) for name in synth.SOURCE_NAMES}
    finally:
        db.close()


def _move_a_price(rows: list[tuple], step: int) -> None:
    """Cut one priced listing's input price by 10 %."""
    for offset in range(len(rows)):
        index = (step * 37 + offset) % len(rows)
        provider, model, inp, out, cache = rows[index]
        if inp:
            rows[index] = (provider, model, synth._sig(inp * 0.9), out, cache)
            return


def _slope(ops: np.ndarray, rss: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of RSS on operations and its standard error, in MB per 1 000."""
    if len(ops) < 3 or np.ptp(ops) == 0:
        return 0.0, 0.0
    fit, cov = np.polyfit(ops, rss, 1, cov=True)
    return float(fit[0] * 1000), float(np.sqrt(cov[0, 0]) * 1000)
