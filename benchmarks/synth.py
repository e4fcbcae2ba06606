"""A ten-year price database, synthesised in seconds from the real snapshot series.

What the command, digest and memory benchmarks run against: `years` of 6-hourly polls of five
sources, each listing `models` models at the end, written with plain SQL into the real schema
(`storage.open_db`), and cached under `.bench-cache/` keyed by everything it is made from.

How it is made, per source:

- **Who is listed.** The source's newest real snapshot gives real listings (their keys, sellers
  and current prices), so `gpt-4o`, `o3`, `claude-3.5-sonnet` or `llama-3.3-70b-instruct` are
  there under every source's own spelling and the tiers have their real members. Where the
  snapshot has fewer than `models` priced listings, synthetic ones fill up (names of invented
  model families that no tier matches, sellers and prices drawn from the real listings of the
  same source); where it has more (models.dev), the tier members are kept and the rest sampled.
- **When each arrived.** A real listing arrives when it first appears in the real series; one
  already in the first snapshot, and every synthetic one, arrives at a uniformly random poll
  (a tier member no earlier than the day it joined the tier).
- **How often prices change, and by how much.** Measured on the real series (`measure`):
  price changes per listing-year between consecutive snapshots in which the listing appears,
  and the (input ratio, output ratio) of every real change, ratios beyond 20× either way left
  out (unit slips). Each listing gets its own rate, the source's rate times a Gamma(0.5, 2)
  draw (mean 1: most listings never change, a few change often, as in the real series); its
  changes are a Poisson number at uniform polls of its lifetime, each a ratio pair drawn from
  the real ones. The history is written backwards from the current price.
- **Removals.** Extra synthetic listings were removed before the end: as many as the removal
  rate measured on the real series (listings that leave for good per listing-year) gives over
  the lifetime of the current ones, with the rate capped at that of the longest series
  (LiteLLM, 19 months), since the short ones (models.dev: 4 months) mostly show one-off
  clean-ups a ten-year rate would multiply.
- **Polls.** A row for every 6-hourly poll of every source (14 600 each over ten years): `ok`
  with its models seen and changes where a price changed, `not_modified` (304) otherwise for
  sources with ETags (`failed` for 1 in 200 of those) and `ok` with no change for OpenRouter,
  which has none. The last poll of each source carries a payload, the source's current catalog
  in its own format (`payload`), so a live poll of that catalog changes nothing.

Not made: alerts, subscriptions, digest records (no command measured here reads them).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
import shutil
import sqlite3
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from bot.naming import normalise_model
from bot.sources import SOURCES
from bot.tiers import load_tiers
from storage import open_db, payloads
from storage.migrations import MIGRATIONS
from storage.times import iso

#: Bump when the way the database is made changes, so cached copies are rebuilt.
VERSION = 2
CACHE = Path(__file__).resolve().parent.parent / ".bench-cache"
SOURCE_NAMES = ("openrouter", "litellm", "genai-prices", "llm-prices", "models-dev")
#: Sources whose upstream answers conditional requests: a poll with no change is a 304.
WITH_ETAG = {"litellm", "genai-prices", "llm-prices", "models-dev"}
MAX_RATIO = 20.0
#: The longest real series, whose removal rate caps the others' (see the module doc).
LONGEST = "litellm"
_DATED = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2})(\d{2})(\d{2})Z)?")
#: Invented model families for synthetic listings: no tier pattern matches them.
FAMILIES = ("aurora", "halcyon", "meridian", "tessera", "solace", "vantage", "quillon", "corvid",
            "lumen", "ferrow", "oriel", "castell", "brisa", "nimbo", "kestrel", "sable")  # fmt: skip
SIZES = ("1b", "3b", "7b", "8b", "13b", "22b", "34b", "70b", "123b", "405b", "mini", "pro", "lite", "max")


@dataclass(frozen=True, slots=True)
class Spec:
    """The parameters of a synthetic database; the cache key is made from these."""

    years: int = 10
    models: int = 3000  # listings per source at the end
    every_hours: int = 6
    seed: int = 8
    end: str = ""  # ISO date (UTC midnight) of the last poll; "" for today

    @property
    def end_at(self) -> datetime:
        day = date.fromisoformat(self.end) if self.end else datetime.now(UTC).date()
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    @property
    def polls(self) -> int:
        return self.years * 365 * 24 // self.every_hours


@dataclass(slots=True)
class Listing:
    provider: str
    model: str
    prices: tuple[float | None, float | None, float | None]  # input, output, cache read: USD/Mtok
    flag: str | None = None
    arrives: int = 0  # poll index
    removed: int | None = None  # poll index, None while listed
    real: bool = False


@dataclass(slots=True)
class Measured:
    """What one real series says about a source."""

    years: float = 0.0
    rate: float = 0.0  # price changes per listing-year
    removal: float = 0.0  # listings leaving for good per listing-year
    ratios: list[tuple[float, float]] = field(default_factory=list)  # (input, output) of each change
    current: list[Listing] = field(default_factory=list)  # the newest snapshot's priced listings
    first_seen: dict[tuple[str, str], datetime] = field(default_factory=dict)
    first_at: datetime | None = None


def file_time(path: Path) -> datetime:
    match = _DATED.search(path.name)
    if match is None:
        raise ValueError(f"{path.name}: no date in the name")
    day, hh, mm, ss = match.groups()
    return datetime.fromisoformat(f"{day}T{hh or '00'}:{mm or '00'}:{ss or '00'}+00:00")


def _read(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


def measure(source: str, files: list[Path]) -> Measured:
    """Change and removal rates, change ratios and the newest listings of one real series."""
    parse = SOURCES[source].parse
    files = sorted(files, key=file_time)
    found = Measured()
    previous: dict[tuple[str, str], tuple] = {}
    last_seen: dict[tuple[str, str], datetime] = {}
    changes, exposure, before = 0, 0.0, None
    for path in files:
        at = file_time(path)
        quotes = parse(_read(path), at).quotes
        found.first_at = found.first_at or at
        now = {}
        for q in quotes:
            key = (q.provider, q.model)
            now[key] = (q.input_mtok, q.output_mtok, q.cache_read_mtok, q.flag)
            found.first_seen.setdefault(key, at)
            last_seen[key] = at
        if before is not None:
            both = previous.keys() & now.keys()
            exposure += len(both) * (at - before).total_seconds() / (365 * 86400)
            for key in both:
                old, new = previous[key], now[key]
                if old[:2] == new[:2]:
                    continue
                changes += 1
                if old[0] and new[0] and old[1] and new[1] and not old[3] and not new[3]:
                    pair = (float(new[0] / old[0]), float(new[1] / old[1]))
                    if all(1 / MAX_RATIO <= r <= MAX_RATIO for r in pair):
                        found.ratios.append(pair)
        previous, before = now, at
        if path is files[-1]:
            found.current = [
                Listing(q.provider, q.model, tuple(None if p is None else float(p) for p in (q.input_mtok, q.output_mtok, q.cache_read_mtok)), q.flag, real=True)
                for q in quotes
            ]
    found.years = (file_time(files[-1]) - file_time(files[0])).total_seconds() / (365 * 86400)
    gone = sum(1 for at in last_seen.values() if at < file_time(files[-1]))
    found.rate = changes / exposure if exposure else 0.0
    found.removal = gone / exposure if exposure else 0.0
    return found


def series_key(series: dict[str, list[Path]]) -> list:
    return sorted((name, sorted((p.name, p.stat().st_size) for p in files)) for name, files in series.items())


def cached(spec: Spec, series: dict[str, list[Path]]) -> Path:
    """The database for `spec` made from `series` (source -> real snapshot files), built into
    `.bench-cache/` the first time. Copy it before writing to it."""
    key = json.dumps([VERSION, len(MIGRATIONS), asdict(spec) | {"end": spec.end_at.date().isoformat()}, series_key(series)])
    path = CACHE / f"prices-{spec.years}y-{spec.models}m-{hashlib.sha256(key.encode()).hexdigest()[:12]}.db"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        for stale in CACHE.glob(f"prices-{spec.years}y-{spec.models}m-*"):  # made from older inputs
            stale.unlink()
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        made = build(spec, series, partial)
        path.with_suffix(".json").write_text(json.dumps(made, indent=1) + "\n")
        partial.rename(path)
    return path


def describe(path: Path) -> dict:
    """What `build` said it made, for a benchmark's parameters."""
    try:
        return json.loads(path.with_suffix(".json").read_text())
    except OSError:
        return {}


def copy(path: Path, to: Path) -> Path:
    """A private copy of a cached database (the bot writes polls and migrations to it)."""
    shutil.copyfile(path, to)
    return to


def build(spec: Spec, series: dict[str, list[Path]], path: Path) -> dict[str, int]:
    """Write the database to `path`; return what it holds and the rates it was made with."""
    rng = np.random.default_rng(spec.seed)
    end = spec.end_at
    n = spec.polls
    start = end - timedelta(hours=spec.every_hours * (n - 1))
    times = [iso(start + timedelta(hours=spec.every_hours * k)) for k in range(n)]
    measured = {name: measure(name, files) for name, files in series.items()}
    cap = measured[LONGEST].removal if LONGEST in measured else max(m.removal for m in measured.values())
    pooled = [pair for m in measured.values() for pair in m.ratios]
    tiers = load_tiers()
    names = _synthetic_names(rng, spec.models * len(series))
    listings = {
        name: _listings(rng, spec, name, m, min(m.removal, cap), start, names, tiers)
        for name, m in measured.items()
    }

    db = open_db(path)
    conn: sqlite3.Connection = db.conn
    db.execute("PRAGMA foreign_keys = OFF")  # every reference is written in order below
    conn.execute("BEGIN")
    order = [name for name in SOURCE_NAMES if name in listings]
    poll_id = {(name, k): k * len(order) + i + 1 for k in range(n) for i, name in enumerate(order)}
    counts = Counter()
    polls_rows, model_rows, price_rows = [], [], []
    model_id = 0
    for name in order:
        m = measured[name]
        rate = m.rate if m.ratios else measured[LONGEST].rate
        ratios = m.ratios if len(m.ratios) >= 20 else pooled
        changed_at: Counter[int] = Counter()
        listed = np.zeros(n + 1, dtype=np.int64)
        for listing in listings[name]:
            model_id += 1
            last = listing.removed if listing.removed is not None else n
            listed[listing.arrives] += 1
            listed[last] -= 1
            if listing.arrives:
                changed_at[listing.arrives] += 1  # a new model is one of its poll's changes
            model_rows.append((
                model_id, name, listing.provider, listing.model, times[listing.arrives],
                0 if listing.removed is None else 2,
                None if listing.removed is None else times[listing.removed],
                None if listing.removed is None else times[listing.removed],
            ))
            for begins, ends, (inp, out, cache) in _history(rng, listing, last, rate, ratios, spec):
                price_rows.append((model_id, times[begins], None if ends is None else times[ends], inp, out, cache,
                                   listing.flag, poll_id[name, begins]))
                if begins != listing.arrives:
                    changed_at[begins] += 1
            if listing.removed is not None:
                changed_at[listing.removed] += 1
        seen = np.cumsum(listed)[:n]
        etag = name in WITH_ETAG
        for k in range(n):
            changes = changed_at.get(k, 0)
            status, http, models_seen = "ok", 200, int(seen[k])
            if k and not changes and etag:
                status, http, models_seen = "not_modified", 304, None
                if rng.random() < 0.005:
                    status, http = "failed", 503
            polls_rows.append((
                poll_id[name, k], name, times[k], times[k], times[k], status, http, models_seen, changes,
                "HTTP 503 Service Unavailable" if status == "failed" else None,
            ))
        counts[f"{name} listed now"] = int(seen[-1])
        counts[f"{name} price changes per listing-year"] = round(rate, 3)
        counts[f"{name} removals per listing-year"] = round(min(m.removal, cap), 3)
        counts[f"{name} real listings"] = sum(1 for listing in listings[name] if listing.real)
    conn.executemany(
        """INSERT INTO polls (id, source, started_at, finished_at, observed_at, status, http_status, models_seen, changes, error)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        sorted(polls_rows),
    )
    conn.executemany(
        """INSERT INTO models (id, source, provider, model, first_seen, missing_polls, missing_since, removed_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        model_rows,
    )
    conn.executemany(
        """INSERT INTO prices (model_id, valid_from, valid_to, input_mtok, output_mtok, cache_read_mtok, flag, poll_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        sorted(price_rows, key=lambda row: (row[1], row[0])),
    )
    conn.execute("COMMIT")
    db.execute("PRAGMA foreign_keys = ON")
    for name in order:  # the last poll of each source carries its current catalog
        body = payload(name, current(db, name))
        digest = payloads.keep(db, body, end)
        conn.execute(
            "UPDATE polls SET payload_hash = ?, status = 'ok', http_status = 200, models_seen = ? WHERE id = ?",
            [digest, counts[f"{name} listed now"], poll_id[name, n - 1]],
        )
    conn.commit()
    counts.update({"models": len(model_rows), "intervals": len(price_rows), "polls": len(polls_rows)})
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return dict(counts)


def _synthetic_names(rng: np.random.Generator, count: int) -> list[str]:
    """Invented model names; sources draw from one pool, so some are listed by several."""
    out = []
    for i in range(count):
        family, size = FAMILIES[int(rng.integers(len(FAMILIES)))], SIZES[int(rng.integers(len(SIZES)))]
        out.append(f"{family}-{1 + i % 7}.{i // 7 % 10}-{size}-{i:05d}")
    return out


def _listings(rng, spec: Spec, source: str, m: Measured, removal: float, start: datetime, names: list[str], tiers: dict) -> list[Listing]:
    n = spec.polls
    priced = [x for x in m.current if x.prices[0] is not None and x.prices[1] is not None]
    in_tier = [any(t.matching(x.model, x.provider) for t in tiers.values()) for x in priced]
    members = [x for x, member in zip(priced, in_tier) if member]
    others = [x for x, member in zip(priced, in_tier) if not member]
    if len(priced) > spec.models:
        keep = rng.permutation(len(others))[: max(0, spec.models - len(members))]
        priced = members[: spec.models] + [others[int(i)] for i in sorted(keep)]
    chosen = []
    for listing in priced:
        joined = min((mb.since for t in tiers.values() for mb in t.matching(listing.model, listing.provider)), default=None)
        first = m.first_seen[(listing.provider, listing.model)]
        if first > m.first_at:
            listing.arrives = _index(first, start, spec)
        else:
            low = _index(datetime(joined.year, joined.month, joined.day, tzinfo=UTC), start, spec) if joined else 0
            listing.arrives = int(rng.integers(low, max(low + 1, _index(first, start, spec) + 1)))
        listing.arrives = min(max(listing.arrives, 0), n - 1)
        chosen.append(listing)
    providers = [x.provider for x in priced] or ["acme"]
    slash = source == "openrouter"  # its keys are provider/model
    pool = rng.permutation(len(names))
    filled = 0
    while len(chosen) < spec.models:
        chosen.append(_synthetic(rng, names[int(pool[filled])], providers, priced, slash, n))
        filled += 1
    exposure = sum(n - x.arrives for x in chosen) * spec.every_hours / (365 * 24)
    for _ in range(int(round(removal * exposure))):
        listing = _synthetic(rng, names[int(pool[filled % len(pool)])] + "-old", providers, priced, slash, n - 1)
        listing.removed = int(rng.integers(listing.arrives + 1, n))
        chosen.append(listing)
        filled += 1
    return chosen


def _synthetic(rng, name: str, providers: list[str], priced: list[Listing], slash: bool, before: int) -> Listing:
    provider = providers[int(rng.integers(len(providers)))]
    like = priced[int(rng.integers(len(priced)))]
    return Listing(provider, f"{provider}/{name}" if slash else name, like.prices, like.flag, int(rng.integers(0, before)))


def _index(moment: datetime, start: datetime, spec: Spec) -> int:
    return math.ceil((moment - start).total_seconds() / (spec.every_hours * 3600))


def _history(rng, listing: Listing, last: int, rate: float, ratios: list, spec: Spec):
    """(first poll, end poll or None, prices) of each interval, oldest first."""
    span = last - listing.arrives
    own = rate * rng.gamma(0.5, 2.0)
    count = 0 if listing.flag or span < 2 else int(rng.poisson(own * span * spec.every_hours / (365 * 24)))
    when = sorted(set(int(k) for k in rng.integers(listing.arrives + 1, last, size=count))) if count else []
    prices = listing.prices
    intervals = []
    end = None if listing.removed is None else listing.removed
    for begins in reversed(when):
        intervals.append((begins, end, prices))
        r_in, r_out = ratios[int(rng.integers(len(ratios)))]
        before = (_sig(prices[0] / r_in), _sig(prices[1] / r_out), None if prices[2] is None else _sig(prices[2] / r_in))
        if before[:2] == prices[:2]:
            intervals.pop()
            continue
        prices, end = before, begins
    intervals.append((listing.arrives, end, prices))
    return reversed(intervals)


def _sig(value: float) -> float:
    """Four significant digits, as list prices are written ($0.15, $2.5, $0.0375)."""
    return float(f"{value:.4g}")


# -- the current catalog as each source publishes it --


def current(db, source: str) -> list[tuple]:
    """(provider, model, input, output, cache read) of every listing the source lists now."""
    return db.execute(
        """SELECT m.provider, m.model, p.input_mtok, p.output_mtok, p.cache_read_mtok
           FROM models m JOIN prices p ON p.model_id = m.id AND p.valid_to IS NULL
           WHERE m.source = ? AND m.removed_at IS NULL ORDER BY m.id""",
        [source],
    ).fetchall()


def _per_token(value: float | None) -> float | None:
    return None if value is None else float(Decimal(repr(value)).scaleb(-6))


def _per_token_text(value: float | None) -> str | None:
    return None if value is None else format(Decimal(repr(value)).scaleb(-6).normalize(), "f")


def payload(source: str, rows: list[tuple]) -> bytes:
    """`rows` (as `current` gives them) in `source`'s own format, so that its parser reads
    back exactly the stored prices."""
    if source == "litellm":
        doc: object = {
            model: {"litellm_provider": provider, "mode": "chat", "input_cost_per_token": _per_token(inp),
                    "output_cost_per_token": _per_token(out), **({"cache_read_input_token_cost": _per_token(cache)} if cache is not None else {})}
            for provider, model, inp, out, cache in rows
        }
    elif source == "openrouter":
        doc = {"data": [
            {"id": model, "pricing": {"prompt": _per_token_text(inp), "completion": _per_token_text(out),
                                      **({"input_cache_read": _per_token_text(cache)} if cache is not None else {})}}
            for provider, model, inp, out, cache in rows
        ]}
    elif source == "llm-prices":
        doc = {"updated_at": "2026-01-01", "prices": [
            {"id": model, "vendor": provider, "input": inp, "output": out, "input_cached": cache}
            for provider, model, inp, out, cache in rows
        ]}
    elif source == "models-dev":
        grouped: dict[str, dict] = defaultdict(dict)
        for provider, model, inp, out, cache in rows:
            grouped[provider][model] = {"id": model, "cost": {"input": inp, "output": out, **({"cache_read": cache} if cache is not None else {})}}
        doc = {provider: {"id": provider, "models": models} for provider, models in grouped.items()}
    elif source == "genai-prices":
        grouped = defaultdict(list)
        for provider, model, inp, out, cache in rows:
            grouped[provider].append({"id": model, "prices": {"input_mtok": inp, "output_mtok": out,
                                                              **({"cache_read_mtok": cache} if cache is not None else {})}})
        doc = [{"id": provider, "models": models} for provider, models in grouped.items()]
    else:
        raise ValueError(f"no payload format for {source}")
    return json.dumps(doc, separators=(",", ":")).encode()


def real_names(db, wanted: tuple[str, ...]) -> list[str]:
    """The names in `wanted` that some source lists now (by normalised name)."""
    listed = {normalise_model(row[0]) for row in db.execute(
        "SELECT DISTINCT m.model FROM models m WHERE m.removed_at IS NULL")}
    return [name for name in wanted if normalise_model("-".join(name.split())) in listed]
