"""Resident memory of `deflation-watch run` over a long stretch of polls and commands.

The bot runs as its own process on a copy of the ten-year database (`synth`), its five sources
pointed at the loopback source server (tests/source_server.py), each polled every second. Each
source serves its current catalog in its own format, with no ETag (so every poll downloads and
parses it all) and one price changed every few of its polls, so detectors, alerts and the
analytics after a cycle with changes run too. Meanwhile, signed Slack commands (`price`,
`history`, `cheapest`, `trend`, in turn) go to it one at a time. An operation is a poll (an
upstream request the source server saw) or a command (an answer that reached Slack).

Warm-up first, unmeasured: `warm_up` polls and as many commands. A fresh process grows for a
while before it holds steady, and none of that is a leak: it reads the ten-year price history
and works out every tier's listings, loads pandas and matplotlib and its fonts for the first
chart, fills SQLite's page cache on each of its long-lived connections (2 MB each), and
glibc's two arenas grow to what the largest poll or `trend` needs. Probed inside the bot
(gc, tracemalloc, mallinfo2), a 1 000/1 000 run held the same number of Python objects (about
170 000), of allocated blocks (about 860 000) and of bytes in use by malloc (about 53 MB) from
its 50th operation on; tracemalloc found nothing kept between operations 500 and 1 000 but the
poll then in flight; the arenas stopped growing after about 300 operations; and where the polls
ran alone, RSS was flat (about 195 MB). `WARM_UP` is those 300 operations.

Then `polls` polls and `commands` commands, interleaved: a command is asked whenever the
commands are behind the polls' share, so the mix of work is the same from the first sample to
the last. (Asked as fast as they answer, the 1 000 commands were done in the first 40 seconds
and the polls went on alone for three more minutes; the second half of the samples then
compared a stretch with commands to one without, whose RSS sits a few MB higher because a
parsed 3 000-model catalog is in memory nearly all the time at five polls a second. A
least-squares fit read that step between two workloads as +1.6 MB per 1 000 operations.)

VmRSS is read from /proc/PID/status every `READ_EVERY` seconds from the end of the warm-up,
and every `every` operations the median of the reads since the last sample is one sample: a
read that lands while a catalog is parsed or the price history re-read (10-15 MB more for a
moment) does not swing the fit, and the highest single read is reported as the peak. Goal: RSS
at the end (the last sample) no more than 200 MB, and no growth trend: the least-squares slope
of RSS over every sample after the warm-up under `SLOPE_LIMIT` MB per 1 000 operations (its
standard error is reported with it).
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

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
#: Polls, and as many commands, before the first sample (see the module doc for why).
WARM_UP = 300
#: Seconds between two reads of VmRSS.
READ_EVERY = 0.05
WHY_WARM_UP = ("a fresh process reads the price history, loads pandas, matplotlib and fonts, fills SQLite's page "
               "caches and grows glibc's arenas to its largest poll or trend: in a probed 1 000/1 000 run Python "
               "objects were flat from op 50 and the arenas from op 300; growth is measured after that")


def resident_memory(db_path: Path, polls: int, commands: int, every: int, warm_up: int = WARM_UP) -> list[Result]:
    asked = texts(db_path, 4)
    rotation = itertools.cycle([text for group in zip(*asked.values()) for text in group])
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        db = synth.copy(db_path, Path(tmp) / "bot.db")
        server = SourceServer().start()
        try:
            catalogs = _catalogs(db)
            for name, rows in catalogs.items():
                server.serve(f"/{name}.json", synth.payload(name, rows), etag=False)
            sources = {name: (server.url(f"/{name}.json"), "1s") for name in catalogs}
            with BotProcess(db, slack, Path(tmp), sources=sources) as bot:
                user = SlackUser(bot, slack)
                try:
                    start = bot.rss_mb()
                    work = _Workload(server, catalogs, user, rotation)
                    work.run(warm_up, warm_up)
                    began = work.polled()
                    with _Reads(bot) as reads:
                        samples = work.run(polls, commands, every, reads.window)
                    polled = work.polled() - began
                finally:
                    user.close()
        finally:
            server.stop()
    ops = np.array([s[0] for s in samples], dtype=float)
    rss = np.array([s[1] for s in samples])
    slope, error = _slope(ops, rss)
    end = float(rss[-1])
    params = {"polls": polled, "commands": commands, "warm_up": {"polls": warm_up, "commands": warm_up},
              "samples": len(samples), "sample_every": every, "read_every_s": READ_EVERY, "reads": len(reads.taken)}
    return [
        at_most("bot RSS after polls and commands", end, "MB", LIMIT_MB, peak_mb=round(max(reads.taken), 1), **params),
        Result("bot RSS growth after warm-up", round(slope, 4), "MB/1000 ops", f"< {SLOPE_LIMIT:g} MB/1000 ops and RSS <= {LIMIT_MB} MB",
               end <= LIMIT_MB and slope < SLOPE_LIMIT,
               {"standard_error": round(error, 4), **params, "why_warm_up": WHY_WARM_UP,
                "rss_mb": [round(float(r), 1) for r in rss], "ops": [int(o) for o in ops]}),
        reported("bot RSS at start", start, "MB"),
        reported("bot RSS after warm-up", float(rss[0]), "MB"),
    ]


class _Workload:
    """The polls the bot makes by itself (counted at the source server, whose catalogs move a
    price every `CHANGE_EVERY` polls of a source) and the commands asked here, in step."""

    def __init__(self, server: SourceServer, catalogs: dict[str, list[tuple]], user: SlackUser, rotation: Iterator[str]):
        self.server, self.catalogs, self.user, self.rotation = server, catalogs, user, rotation
        self.served = dict.fromkeys(catalogs, 0)
        self.asked = 0

    def polled(self) -> int:
        """Polls so far; moves a price in each catalog whose source has had its share."""
        seen = list(self.server.requests)
        counts = Counter(request.path for request in seen)
        for name, rows in self.catalogs.items():
            if counts[f"/{name}.json"] // CHANGE_EVERY > self.served[name]:
                self.served[name] += 1
                _move_a_price(rows, self.served[name])
                self.server.serve(f"/{name}.json", synth.payload(name, rows), etag=False)
        return len(seen)

    def run(self, polls: int, commands: int, every: int = 0, sample: Callable[[], float] | None = None) -> list[tuple[int, float]]:
        """Until `polls` more polls and `commands` more commands are done, a command asked
        whenever the commands are behind the polls' share; (operations, `sample()`) every
        `every` operations and at the end."""
        polls_before, asked_before = self.polled(), self.asked
        samples: list[tuple[int, float]] = []
        next_sample = 0
        while True:
            polled, asked = self.polled() - polls_before, self.asked - asked_before
            if sample is not None and polled + asked >= next_sample:
                samples.append((polled + asked, sample()))
                next_sample += every
            if polled >= polls and asked >= commands:
                break
            if asked < commands and asked * polls <= polled * commands:
                self.user.ask(next(self.rotation))
                self.asked += 1
            else:
                time.sleep(0.02)
        if sample is not None:
            samples.append((self.polled() - polls_before + self.asked - asked_before, sample()))
        return samples


class _Reads:
    """The bot's RSS, read every `READ_EVERY` seconds by a thread while in the `with` block."""

    def __init__(self, bot: BotProcess):
        self.bot = bot
        self.taken: list[float] = []
        self._mark = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="rss-reads", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _read(self) -> None:
        while not self._stop.wait(READ_EVERY):
            self.taken.append(self.bot.rss_mb())

    def window(self) -> float:
        """The median of the reads since the last call (a read now, when there was none)."""
        taken, self._mark = self.taken[self._mark:], len(self.taken)
        return statistics.median(taken) if taken else self.bot.rss_mb()


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
