"""Price series, tier floors and annualised rates of decline, from stored price history.

The input is storage's `intervals` frame: one row per listing (source, provider, model key) per
price, valid from `valid_from` until `valid_to` (NaT while current), with `input_mtok`,
`output_mtok` and `cache_read_mtok` in USD per million tokens, `open_weight` and `flag`.

Everything here returns a *step series*: a DataFrame sorted by `date` (aware UTC) whose
`usd_per_mtok` holds from its row's date until the next row's. A row with NaN marks the start
of a stretch with no price (every listing ended). Only real prices enter a series: flagged rows
(`free`, `sentinel`), rows missing either price, and zero prices are dropped, because a free
tier or a placeholder is not a price anyone can build on (and ln 0 has no place in a fit).
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
import sqlite_utils

from bot.errors import NotEnoughDataError, UnknownModelError
from bot.memo import Memo
from bot.naming import normalise_model
from bot.tiers import Tier
from storage import prices

DAY = pd.Timedelta(days=1)
YEAR_DAYS = 365
#: A fit needs at least this many daily points spanning at least this many days.
MIN_POINTS = 3
MIN_SPAN_DAYS = 30
#: The constant declines drawn behind tier curves: 30 %/yr, 70 %/yr and 90 %/yr (10×).
REFERENCE_RATES = (0.3, 0.7, 0.9)

#: The outlier guard of tier floors (see `tier_series`): a listing under 1/OUTLIER_FACTOR of
#: the median of at least OUTLIER_MIN_OTHERS other listings of the same model is set aside.
OUTLIER_FACTOR = 5
OUTLIER_MIN_OTHERS = 2
TIER_COLUMNS = ["date", "usd_per_mtok", "model", "provider", "source", "open_weight"]

_OPEN = np.iinfo(np.int64).max  # the end of an interval that is still current, in ns


def blended(input_mtok, output_mtok):
    """One price per model: (3 × input + 1 × output) / 4, Epoch AI's 3:1 blend.

    Typical workloads read about three tokens for every one they write, so this is closer to
    what a bill looks like than either price alone. Works on numbers, Decimals and Series;
    an unknown (NaN) price gives an unknown blend.
    """
    return (3 * input_mtok + output_mtok) / 4


def model_series(
    intervals: pd.DataFrame,
    model: str,
    provider: str | None = None,
    source: str | None = None,
    how: Literal["consensus", "per_source"] = "consensus",
) -> pd.DataFrame:
    """One model's blended price over time, matched by normalised name across sources.

    `per_source` gives each source's own series (columns date, source, usd_per_mtok); when a
    source lists the model several times (several sellers, or `gpt-4o` beside `openai/gpt-4o`)
    its value is the median of those listings. `consensus` (columns date, usd_per_mtok,
    n_sources) is the median across sources at every moment any of them changes, so one source
    with a stale or mistyped price cannot move it while two others agree. Pass `provider` to
    compare like with like: without it, resellers' prices join the median.
    """
    if how not in ("consensus", "per_source"):
        raise ValueError(f"how must be 'consensus' or 'per_source', got {how!r}")
    rows = _named(intervals)
    names = rows["name"]
    wanted = normalise_model(model)
    keep = names == wanted
    if provider is not None:
        keep &= rows["provider"].str.lower() == provider.lower()
    if source is not None:
        keep &= rows["source"] == source
    if not keep.any():
        raise UnknownModelError(model, difflib.get_close_matches(wanted, sorted(set(names)), n=3))
    rows = rows[keep]
    times, active = _active(rows["valid_from"], rows["valid_to"])
    prices = np.where(active, rows["usd_per_mtok"].to_numpy(float), np.nan)
    by_source = pd.DataFrame(prices.T, index=rows["source"].to_numpy()).groupby(level=0).median().T
    by_source.index = times
    if how == "per_source":
        long = by_source.rename_axis(index="date", columns="source")
        long = long.melt(ignore_index=False, value_name="usd_per_mtok").reset_index()
        long = long.sort_values(["source", "date"], kind="stable")
        return _changes(long, ["usd_per_mtok"], by="source")[["date", "source", "usd_per_mtok"]]
    consensus = pd.DataFrame({
        "date": times,
        "usd_per_mtok": by_source.median(axis=1).to_numpy(),
        "n_sources": by_source.notna().sum(axis=1).to_numpy(),
    })
    return _changes(consensus, ["usd_per_mtok", "n_sources"])


def tier_series(intervals: pd.DataFrame, tier: Tier) -> pd.DataFrame:
    """The cheapest blended price among a tier's members over time, and who charged it.

    Columns date, usd_per_mtok, model (the source's own key), provider, source, open_weight
    (from the tier file: see `bot.tiers`). A listing counts only from the day its model joined
    the tier, so the floor never falls because a model is re-labelled after the fact. Free,
    zero and flagged prices never count: a free tier or a placeholder is not a floor anyone can
    buy at. Ties go to the first source, provider and model in alphabetical order, so the
    attribution is stable from run to run.

    Outlier guard: at each moment, a listing priced under 1/OUTLIER_FACTOR (a fifth) of the
    median of the other listings of the same normalised model then, when there are at least
    OUTLIER_MIN_OTHERS (two) of them, is not a floor candidate. A proprietary model is resold
    at its maker's list price, so a listing ten times below every other seller is a typo
    upstream, not a price: LiteLLM listed Vertex's claude-3-opus at $1.50/$7.50 for six weeks of
    2024 while Anthropic and Bedrock charged $15/$75. Hosts of an open-weight model set their
    own prices (Together charged $0.88 for Llama 3.3 70B Turbo while DeepInfra charged $0.06),
    so there a listing is compared only with the same host's other listings (in other sources,
    or under other spellings): that still catches genai-prices' $0.014/$0.028 for DeepSeek's
    own deepseek-chat in mid-2025, ten times below what LiteLLM had for the same host. A model
    with fewer than two comparable listings cannot be checked this way and counts.
    """
    return _derived(intervals, ("tier_series", tier), lambda: _tier_series(intervals, tier)).copy(deep=False)


def _tier_series(intervals: pd.DataFrame, tier: Tier) -> pd.DataFrame:
    listings = _tier_listings(intervals, tier)
    members, references = listings.members, listings.references
    if members.empty:
        return pd.DataFrame(columns=TIER_COLUMNS)
    times = np.unique(np.concatenate([listings.start, listings.end, _ns(references["valid_from"]), _ns(references["valid_to"])]))
    times = times[times != _OPEN]
    candidate = _candidates(listings, times)
    # Rows are cheapest first, so the first candidate at each moment is the floor.
    floor = members.iloc[candidate.argmax(axis=1)].reset_index(drop=True)[TIER_COLUMNS[1:]]
    floor = floor.astype({"open_weight": object})
    floor.loc[~candidate.any(axis=1), TIER_COLUMNS[1:]] = None
    floor.insert(0, "date", pd.to_datetime(times, utc=True))
    return _changes(floor, ["usd_per_mtok", "model", "provider", "source"])


def tier_listings_at(intervals: pd.DataFrame, tier: Tier, when: date | datetime) -> pd.DataFrame:
    """Every listing of a tier's members priced at `when`, cheapest first (the order, and the
    outlier guard, of `tier_series`, so the first row without `outlier` is its floor then).

    Columns usd_per_mtok, input_mtok, output_mtok, model, name (normalised), provider, source,
    open_weight, since (when the listing's price took effect), outlier.
    """
    listings = _tier_listings(intervals, tier)
    members = listings.members
    at = np.array([as_utc(when).as_unit("ns").value])
    candidate = _candidates(listings, at)[0]
    held = (listings.start <= at[0]) & (at[0] < listings.end)
    listed = members[held].assign(since=members["valid_from"][held], outlier=~candidate[held])
    columns = ["usd_per_mtok", "input_mtok", "output_mtok", "model", "name", "provider", "source", "open_weight", "since", "outlier"]
    return listed[columns].reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class _Listings:
    """What `_tier_listings` works out once per tier and price history: the members and the
    references (see there), the members' validity as ns (`start`, `end`: _OPEN while current),
    and, per model name with enough listings for the outlier guard, what its members are
    compared with: (references' from, to and price; the members checked, by position; one
    row per checked member of which references are comparable to it)."""

    members: pd.DataFrame
    references: pd.DataFrame
    start: np.ndarray
    end: np.ndarray
    checks: tuple[tuple[np.ndarray, ...], ...]


def _tier_listings(intervals: pd.DataFrame, tier: Tier) -> _Listings:
    return _derived(intervals, ("tier_listings", tier), lambda: _list_tier(intervals, tier))


def _list_tier(intervals: pd.DataFrame, tier: Tier) -> _Listings:
    """The tier's priced listings from the day each joined (`start`), cheapest first, with the
    tier file's open-weight flag; and every priced listing of the same models with its real
    validity, which the outlier guard compares against. `listing` identifies an interval in both.
    Prices the tier file sets aside (`[[set_aside]]`) are in neither."""
    rows = _named(intervals)
    # Only names some member's pattern matches can be members or references: the others (most
    # of a long history) never reach the per-listing work below.
    names = rows["name"].unique()
    rows = rows[rows["name"].isin([name for name in names if tier.could_match(name)])]
    if tier.set_aside:
        listings = list(zip(rows["source"], rows["provider"], rows["model"]))
        until = {key: max((e.until for e in tier.set_aside if e.matches(*key)), default=None) for key in set(listings)}
        cutoff = pd.Series(pd.to_datetime([until[key] for key in listings], utc=True), index=rows.index)
        rows = rows[~(rows["valid_from"] < cutoff)]
    rows = rows.assign(listing=np.arange(len(rows)))
    keys = list(zip(rows["provider"], rows["model"]))
    matching = {key: tier.matching(key[1], key[0]) for key in set(keys)}
    since = pd.to_datetime([min((m.since for m in matching[key]), default=None) for key in keys], utc=True)
    since = pd.Series(since, index=rows.index).dt.as_unit("ns")
    rows = rows.assign(
        start=rows["valid_from"].where(rows["valid_from"] >= since, since),
        open_weight=[any(m.open_weight for m in matching[key]) for key in keys],
    )
    is_member = rows["start"].notna() & (rows["valid_to"].isna() | (rows["valid_to"] > rows["start"]))
    members = rows[is_member].sort_values(["usd_per_mtok", "source", "provider", "model"], kind="stable").reset_index(drop=True)
    references = rows[rows["name"].isin(set(members["name"]))].reset_index(drop=True)
    return _Listings(members, references, _ns(members["start"]), _ns(members["valid_to"]), _checks(members, references))


def _checks(members: pd.DataFrame, references: pd.DataFrame) -> tuple:
    """What the outlier guard compares each member with (see `_Listings`)."""
    listing, open_weight = members["listing"].to_numpy(), members["open_weight"].to_numpy()
    provider = members["provider"].str.lower().to_numpy()
    ref_names = references["name"].to_numpy()
    ref_from, ref_to = _ns(references["valid_from"]), _ns(references["valid_to"])
    ref_price, ref_listing = references["usd_per_mtok"].to_numpy(float), references["listing"].to_numpy()
    ref_provider = references["provider"].str.lower().to_numpy()
    checks = []
    for name, positions in members.groupby("name").indices.items():
        same = ref_names == name
        if same.sum() <= OUTLIER_MIN_OTHERS:
            continue  # too few listings of this model for any to have enough others
        checked, masks = [], []
        for i in positions:
            comparable = ref_listing[same] != listing[i]
            if open_weight[i]:  # hosts set their own prices: compare with this host only
                comparable &= ref_provider[same] == provider[i]
            if comparable.sum() >= OUTLIER_MIN_OTHERS:
                checked.append(i)
                masks.append(comparable)
        if checked:
            checks.append((ref_from[same], ref_to[same], ref_price[same], np.array(checked), np.array(masks)))
    return tuple(checks)


#: How many values `_candidates` sorts at once (times × members × references of one model).
_CHUNK = 1 << 20


def _candidates(listings: _Listings, times: np.ndarray) -> np.ndarray:
    """Which member listings can be the floor at each time (times × members): held then, and
    not an outlier against its comparable listings of the same model (see `tier_series`)."""
    held = (listings.start[None, :] <= times[:, None]) & (times[:, None] < listings.end[None, :])
    outlier = np.zeros_like(held)
    price = listings.members["usd_per_mtok"].to_numpy(float)
    for ref_from, ref_to, ref_price, checked, masks in listings.checks:
        live = held[:, checked].any(axis=0)
        if not live.any():
            continue  # none of these members is listed then: nothing to guard
        checked, masks = checked[live], masks[live]
        quoted = np.where((ref_from[None, :] <= times[:, None]) & (times[:, None] < ref_to[None, :]), ref_price[None, :], np.nan)
        # Every checked member at once: the references it is compared with, NaN for the others.
        step = max(1, _CHUNK // masks.size)
        for first in range(0, len(times), step):
            rows = slice(first, first + step)
            compared = np.where(masks[None, :, :], quoted[rows, None, :], np.nan)
            median, count = _row_medians(compared.reshape(-1, masks.shape[1]))
            median, count = median.reshape(-1, len(checked)), count.reshape(-1, len(checked))
            outlier[rows, checked] = (count >= OUTLIER_MIN_OTHERS) & (price[checked][None, :] * OUTLIER_FACTOR < median)
    return held & ~outlier


@dataclass(frozen=True, eq=False)
class Decline:
    """A fitted exponential rate of decline and the points it was fitted to."""

    annual_decline: float  # fraction per year: 0.7 means prices fall 70 %/yr
    fold_per_year: float  # how many times cheaper each year: 3.33 for 70 %/yr
    slope_per_day: float  # d ln(price) / d day, negative when prices fall
    n_points: int
    window_days: int | None  # None: the whole series
    start: pd.Timestamp  # first and last fitted day (UTC midnight)
    end: pd.Timestamp
    points: pd.DataFrame  # date, usd_per_mtok: exactly the points fitted


def annual_decline(points: pd.DataFrame, window_days: int | None = 365, as_of: datetime | None = None) -> Decline:
    """Fit ln(price) = a + slope × day by least squares; rate = 1 − exp(365 × slope).

    `points` is a step series (date, usd_per_mtok). It is sampled once a day, at UTC midnight,
    from the start of the window to `as_of` (default: the series' last date), and the fit is
    over those daily samples, so a price counts for as long as it held rather than once per
    change. Pass the clock's now as `as_of` to count a price that has not moved since.
    Raises NotEnoughDataError below 3 points or a 30-day span.
    """
    steps = points.sort_values("date", kind="stable")
    if steps.empty:
        raise NotEnoughDataError("Not enough data to fit a decline: the series has no prices.")
    end = as_utc(as_of) if as_of is not None else steps["date"].iloc[-1]
    start = steps["date"].iloc[0]
    if window_days is not None:
        start = max(start, end - window_days * DAY)
    days = pd.date_range(start.ceil("D"), end.floor("D"), freq="D")
    sample = pd.DataFrame({"date": days, "usd_per_mtok": _value_at(steps, days)}).dropna().reset_index(drop=True)
    span = (sample["date"].iloc[-1] - sample["date"].iloc[0]).days if len(sample) else 0
    if len(sample) < MIN_POINTS or span < MIN_SPAN_DAYS:
        raise NotEnoughDataError(
            f"Not enough data to fit a decline between {start:%Y-%m-%d} and {end:%Y-%m-%d}: "
            f"{len(sample)} daily prices over a {span}-day span; need at least {MIN_POINTS} prices "
            f"over {MIN_SPAN_DAYS} days."
        )
    if (sample["usd_per_mtok"] <= 0).any():
        raise ValueError("annual_decline needs positive prices; drop free and zero prices first")
    x = ((sample["date"] - sample["date"].iloc[0]) / DAY).to_numpy(float)
    y = np.log(sample["usd_per_mtok"].to_numpy(float))
    x = x - x.mean()
    slope = float(x @ (y - y.mean()) / (x @ x))
    return Decline(
        annual_decline=1 - float(np.exp(YEAR_DAYS * slope)),
        fold_per_year=float(np.exp(-YEAR_DAYS * slope)),
        slope_per_day=slope,
        n_points=len(sample),
        window_days=window_days,
        start=sample["date"].iloc[0],
        end=sample["date"].iloc[-1],
        points=sample,
    )


def indexed(
    series_by_name: dict[str, pd.DataFrame], base_date: date | datetime | None = None
) -> dict[str, pd.DataFrame]:
    """Each step series as an index (date, index) equal to 100 at `base_date`, starting there.

    The default base is the first date on which every series has a price, so all curves start
    together at 100 and their ratios read directly as "how many times cheaper".
    """
    firsts = {name: steps.dropna(subset=["usd_per_mtok"])["date"].min() for name, steps in series_by_name.items()}
    for name, first in firsts.items():
        if pd.isna(first):
            raise NotEnoughDataError(f"Cannot index {name!r}: it has no prices.")
    if not firsts:
        return {}
    base = as_utc(base_date) if base_date is not None else max(firsts.values())
    curves = {}
    for name, steps in series_by_name.items():
        steps = steps.sort_values("date", kind="stable")
        base_value = _value_at(steps, pd.DatetimeIndex([base]))[0]
        if not base_value > 0:
            raise NotEnoughDataError(f"Cannot index {name!r} to {base:%Y-%m-%d}: it has no price that day.")
        later = steps[steps["date"] > base]
        curves[name] = pd.DataFrame(
            {
                "date": [base, *later["date"]],
                "index": [100.0, *(later["usd_per_mtok"].to_numpy(float) / base_value * 100)],
            }
        )
    return curves


def reference_curve(rate: float, start: date | datetime, end: date | datetime, freq: str = "D") -> pd.DataFrame:
    """A constant decline of `rate` per year as an index (date, index) from 100 at `start`."""
    if not rate < 1:
        raise ValueError(f"a decline rate must be below 1 (100 %/yr), got {rate!r}")
    start, end = as_utc(start), as_utc(end)
    dates = pd.date_range(start, end, freq=freq).union(pd.DatetimeIndex([start, end]))
    years = ((dates - start) / DAY).to_numpy(float) / YEAR_DAYS
    return pd.DataFrame({"date": dates, "index": 100 * (1 - rate) ** years})


def reference_curves(start: date | datetime, end: date | datetime, freq: str = "D") -> dict[str, pd.DataFrame]:
    """The REFERENCE_RATES curves, keyed by their `rate_label`, ready for `charts.tier_chart`."""
    return {rate_label(rate): reference_curve(rate, start, end, freq) for rate in REFERENCE_RATES}


def rate_label(rate: float) -> str:
    """`0.7` -> `70 %/yr (3.3×)`: the rate and how many times cheaper per year it means."""
    return f"{rate * 100:.0f} %/yr ({1 / (1 - rate):.2g}×)"


#: How the references are named in words: the 2024 business plan's 30 %/yr, the seed
#: article's ~70 %/yr, and the 10× a year others quote.
REFERENCE_NAMES = {0.3: "the 30 % plan", 0.7: "the 70 % thesis", 0.9: "10× a year"}


def rate_verdict(rate: float) -> str:
    """`0.64` -> `running at 64 %/yr: faster than the 30 % plan, slower than the 70 % thesis`.

    Compared at the shown precision (whole percent), so 70 % reads "in line with", never
    "faster than" a 70 % it prints as equal.
    """
    shown = round(rate * 100)
    head = f"running at {shown} %/yr" if shown > 0 else "flat (0 %/yr)" if shown == 0 else f"rising {-shown} %/yr"
    below = [name for ref, name in REFERENCE_NAMES.items() if shown < round(ref * 100)]
    equal = [name for ref, name in REFERENCE_NAMES.items() if shown == round(ref * 100)]
    above = [name for ref, name in REFERENCE_NAMES.items() if shown > round(ref * 100)]
    parts = ([f"faster than {above[-1]}"] if above else []) + ([f"in line with {equal[0]}"] if equal else [])
    parts += [f"slower than {below[0]}"] if below and not equal else []
    return f"{head}: {', '.join(parts)}"


# The frame, and answers as plain values (what `--json` prints and the digest states)


def load_intervals(db: sqlite_utils.Database) -> pd.DataFrame:
    """Storage's price intervals as the frame every function here takes (see the module doc).

    Times are aware UTC (`valid_to` NaT while current), prices floats in USD per million
    tokens, `open_weight` True, False or None, `flag` a string or None.

    The frame is read once and kept, for every connection and thread of the process, until the
    price history changes (`bot.memo`: a poll that changed no price keeps it; a poll, reparse or
    backfill by any process that did is seen on the next call). What is worked out from it per
    tier (`tier_series`, and the listings behind `cheapest`) is kept with it, for as long as
    callers pass the frame this returns unchanged. Each caller gets its own copy, copy-on-write,
    so a caller that changes its frame changes nothing for the others.
    """
    frame = _INTERVALS.get(db)
    issued = frame.copy(deep=False)
    issued.attrs[_ISSUED] = id(frame)
    return issued


def _read_intervals(db: sqlite_utils.Database) -> pd.DataFrame:
    # The frame this replaces, and all worked out from it, go first, so that two histories
    # and their tier listings are never held at once.
    with _DERIVED_LOCK:
        _DERIVED.update(base=None, values={}, buffers=None)
    models, cursor = prices.interval_table(db)
    model_ids = np.array([m[0] for m in models], dtype=np.int64)
    shared: dict[str, str] = {}  # one string object per distinct source, provider and model
    texts = [np.array([shared.setdefault(m[i], m[i]) for m in models], dtype=object) for i in (1, 2, 3)]
    open_weight = np.array([None if m[4] is None else bool(m[4]) for m in models], dtype=object)
    del models, shared
    # In chunks, into arrays: years of intervals never exist as one Python object per cell.
    chunks = []
    while rows := cursor.fetchmany(_CHUNK_ROWS):
        ids, starts, ends, inp, out, cache, flags = zip(*rows)
        chunks.append((
            np.array(ids, dtype=np.int64), _ns_seconds(starts), _ns_seconds(ends),
            np.array(inp, dtype=float), np.array(out, dtype=float), np.array(cache, dtype=float), np.array(flags, dtype=object),
        ))
    columns = [np.concatenate(parts) for parts in zip(*chunks)] if chunks else [
        np.array([], dtype=kind) for kind in (np.int64, np.int64, np.int64, float, float, float, object)]
    where = np.searchsorted(model_ids, columns[0])
    known = where < len(model_ids)
    known[known] = model_ids[where[known]] == columns[0][known]
    if not known.all():  # an interval of no stored model, which `prices.intervals` leaves out too
        columns, where = [column[known] for column in columns], where[known]
    return pd.DataFrame({
        "source": pd.Series(texts[0][where], dtype=str),
        "provider": pd.Series(texts[1][where], dtype=str),
        "model": pd.Series(texts[2][where], dtype=str),
        **{name: pd.Series(pd.DatetimeIndex(columns[i].view("datetime64[ns]")).tz_localize("UTC")) for i, name in ((1, "valid_from"), (2, "valid_to"))},
        **{name: pd.Series(columns[i]) for i, name in ((3, "input_mtok"), (4, "output_mtok"), (5, "cache_read_mtok"))},
        "open_weight": pd.Series(open_weight[where], dtype=object),
        "flag": pd.Series(columns[6], dtype=object),
    })


#: Intervals read from SQLite at a time.
_CHUNK_ROWS = 4096


def _ns_seconds(seconds: tuple) -> np.ndarray:
    """Unix seconds (None: missing) as int64 ns, NaT's value for missing."""
    return np.array([_NAT if s is None else s * 1_000_000_000 for s in seconds], dtype=np.int64)


_NAT = np.iinfo(np.int64).min


#: What moves when the frame would: storage inserts intervals, closes open ones and deletes a
#: source's whole history (a reparse), and updates models' metadata in place; the sums catch a
#: price edited in place too.
_FINGERPRINT = """SELECT p.*, m.* FROM
    (SELECT COUNT(*), MAX(id), TOTAL(input_mtok), TOTAL(output_mtok), TOTAL(cache_read_mtok),
            COUNT(valid_to), MAX(valid_to), MAX(valid_from), TOTAL(length(flag)) FROM prices) AS p,
    (SELECT COUNT(*), MAX(id), TOTAL(id * (COALESCE(open_weight, -1) + 2)) FROM models) AS m"""
_INTERVALS: Memo[pd.DataFrame] = Memo(_FINGERPRINT, _read_intervals)
#: The `attrs` key a frame from `load_intervals` carries: which kept frame it is a copy of.
_ISSUED = "deflation_watch.intervals"
_DERIVED: dict[str, Any] = {"base": None, "values": {}, "buffers": None}
#: How many values are kept with one price history at most (tier series, `trend` answers...).
MAX_KEPT = 128
_DERIVED_LOCK = threading.Lock()
_T = TypeVar("_T")


def warm(db: sqlite_utils.Database, tiers: Iterable[Tier]) -> None:
    """Read the price history and work out each tier's listings and floor series now, so the
    commands and the digest that ask next find them kept (the scheduler calls this after a
    poll cycle that changed prices, in its own worker thread)."""
    frame = load_intervals(db)
    for tier in tiers:
        _tier_listings(frame, tier)
        tier_series(frame, tier)


def forget() -> None:
    """Drop the kept frame and everything worked out from it (the next call reads SQLite)."""
    _INTERVALS.forget()
    with _DERIVED_LOCK:
        _DERIVED.update(base=None, values={}, buffers=None)


def kept(intervals: pd.DataFrame, key: Hashable, make: Callable[[], _T]) -> _T:
    """`make()`, worked out once per price history: kept with the frame `intervals` is an
    unchanged copy of (from `load_intervals`) and dropped when the history changes; for any
    other frame, worked out each time. `key` must say everything else the value depends on."""
    return _derived(intervals, ("kept", key), make)


def _derived(intervals: pd.DataFrame, key: Hashable, make: Callable[[], _T]) -> _T:
    """`make()`, kept with the frame `intervals` is an unchanged copy of (see `load_intervals`);
    any other frame (built by hand, filtered, edited) is worked out afresh each time."""
    base = _INTERVALS.current
    if base is None or intervals.attrs.get(_ISSUED) != id(base):
        return make()
    try:
        hash(key)
    except TypeError:
        return make()
    with _DERIVED_LOCK:
        if _DERIVED["base"] is not base:
            _DERIVED.update(base=base, values={}, buffers=_buffers(base))
        buffers = _DERIVED["buffers"]
    if buffers is None or _buffers(intervals) != buffers:
        return make()
    with _DERIVED_LOCK:
        found = _DERIVED["values"].get(key) if _DERIVED["base"] is base else None
    if found is None:
        found = make()
        with _DERIVED_LOCK:
            if _DERIVED["base"] is base:
                values = _DERIVED["values"]
                while len(values) >= MAX_KEPT:  # the oldest first: many distinct questions cannot fill memory
                    del values[next(iter(values))]
                values[key] = found
    return found


def _buffers(frame: pd.DataFrame) -> tuple | None:
    """Where each column's values live: the same for a copy-on-write copy until it is written."""
    found = []
    for name in prices.INTERVAL_COLUMNS:
        values = getattr(frame[name].array, "_ndarray", None) if name in frame else None
        if not isinstance(values, np.ndarray):
            return None
        interface = values.__array_interface__
        found.append((interface["data"][0], interface["shape"], interface["strides"]))
    return tuple(found)


def rows_at(steps: pd.DataFrame, when: pd.Series | pd.DatetimeIndex) -> pd.DataFrame:
    """The row of a step series in force at each moment of `when` (all missing before its first)."""
    dates = pd.DatetimeIndex(steps["date"]).as_unit("ns").asi8
    at = np.searchsorted(dates, pd.DatetimeIndex(when).as_unit("ns").asi8, side="right") - 1
    held = steps.iloc[np.maximum(at, 0)].reset_index(drop=True).astype(object)
    held[at < 0] = None
    return held


def price_changes(intervals: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Real price changes of listings that took effect in (start, end], biggest cut first.

    Columns date, source, provider, model, name, old_usd, usd_per_mtok (blended), change (a
    fraction: −0.5 halves the price), old_input_mtok, old_output_mtok, input_mtok, output_mtok.
    A change is an interval that starts where the same listing's previous one ended, both
    real prices (module doc) with different blends; a model that returns after a gap, or
    moves from free to paid, is not a price change. The same move shown by several sources (same
    provider, model name and prices) is listed once, from the first source to show it.
    """
    rows = intervals.sort_values(["source", "provider", "model", "valid_from"], kind="stable").reset_index(drop=True)
    usd = blended(rows["input_mtok"], rows["output_mtok"])
    real = (rows["flag"].isna() & (usd > 0)).astype(float)
    same = (rows[["source", "provider", "model"]] == rows[["source", "provider", "model"]].shift()).all(axis=1)
    before = rows.shift().assign(usd=usd.shift(), real=real.shift())
    changed = (
        same & (before["valid_to"] == rows["valid_from"]) & (real == 1) & (before["real"] == 1)
        & (usd != before["usd"]) & (rows["valid_from"] > as_utc(start)) & (rows["valid_from"] <= as_utc(end))
    )
    found = pd.DataFrame({
        "date": rows["valid_from"], "source": rows["source"], "provider": rows["provider"], "model": rows["model"],
        "name": rows["model"].map(normalise_model), "old_usd": before["usd"], "usd_per_mtok": usd,
        "change": usd / before["usd"] - 1,
        "old_input_mtok": before["input_mtok"], "old_output_mtok": before["output_mtok"],
        "input_mtok": rows["input_mtok"], "output_mtok": rows["output_mtok"],
    })[changed]
    found = found.sort_values(["date", "source"], kind="stable")
    found = found.drop_duplicates(subset=["provider", "name", "old_usd", "usd_per_mtok"])
    return found.sort_values(["change", "date", "source", "provider", "model"], kind="stable").reset_index(drop=True)


def new_models(intervals: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Models first seen in (start, end]: normalised names with no listing, in any source, before.

    Columns name, first_seen, listings (how many listings by `end`), and the cheapest real
    price at `end` with who charged it: usd_per_mtok (NaN when only free or placeholder prices
    are known), input_mtok, output_mtok, provider, source, model. Oldest first, then by name.
    """
    start, end = as_utc(start), as_utc(end)
    names = intervals["model"].map(normalise_model)
    first = intervals["valid_from"].groupby(names).min()
    fresh = first[(first > start) & (first <= end)]
    rows = intervals[names.isin(fresh.index) & (intervals["valid_from"] <= end)]
    rows = rows.assign(name=names[rows.index], usd_per_mtok=blended(rows["input_mtok"], rows["output_mtok"]))
    listings = rows.drop_duplicates(["name", "source", "provider", "model"]).groupby("name").size()
    now = rows[(rows["valid_to"].isna() | (rows["valid_to"] > end)) & rows["flag"].isna() & (rows["usd_per_mtok"] > 0)]
    cheapest = now.sort_values(["usd_per_mtok", "source", "provider", "model"], kind="stable").drop_duplicates("name")
    columns = ["usd_per_mtok", "input_mtok", "output_mtok", "provider", "source", "model"]
    found = pd.DataFrame({"name": fresh.index, "first_seen": fresh.to_numpy()})
    found = found.assign(listings=found["name"].map(listings)).merge(cheapest[["name", *columns]], on="name", how="left")
    return found.sort_values(["first_seen", "name"], kind="stable").reset_index(drop=True)


def trend(
    intervals: pd.DataFrame,
    as_of: datetime,
    *,
    tier: Tier | None = None,
    model: str | None = None,
    provider: str | None = None,
    window_days: int | None = 365,
) -> dict[str, Any]:
    """The fit of a tier's floor (or a model's consensus price) as plain values for `--json`.

    Keys: tier, model, provider (the one asked for; the others None), as_of, window_days
    (None: since the first price), start and end (first and last fitted day), n_points,
    annual_decline (a fraction: 0.7 is 70 %/yr), fold_per_year, slope_per_day, label, and
    points: the daily prices fitted, each with date and usd_per_mtok, and for a tier the
    model, provider, source and open_weight of the floor that day, for a model n_sources.
    Refitting `points` gives back `annual_decline` exactly.
    """
    if (tier is None) == (model is None):
        raise ValueError("trend needs a tier or a model, not both")
    series = tier_series(intervals, tier) if tier is not None else model_series(intervals, model, provider=provider)
    fit = annual_decline(series, window_days, as_of)
    held = rows_at(series, fit.points["date"])
    extra = ["model", "provider", "source", "open_weight"] if tier is not None else ["n_sources"]
    columns = {key: [plain(value) for value in held[key].tolist()] for key in extra}  # not row by row: a year is 365
    points = [
        {"date": f"{day:%Y-%m-%d}", "usd_per_mtok": float(price), **{key: columns[key][i] for key in extra}}
        for i, (day, price) in enumerate(zip(fit.points["date"], fit.points["usd_per_mtok"]))
    ]
    return {
        "tier": tier.name if tier is not None else None,
        "model": model,
        "provider": provider,
        "as_of": as_utc(as_of).isoformat(),
        "window_days": window_days,
        "start": f"{fit.start:%Y-%m-%d}",
        "end": f"{fit.end:%Y-%m-%d}",
        "n_points": fit.n_points,
        "annual_decline": fit.annual_decline,
        "fold_per_year": fit.fold_per_year,
        "slope_per_day": fit.slope_per_day,
        "label": rate_label(fit.annual_decline),
        "points": points,
    }


def cheapest(intervals: pd.DataFrame, tier: Tier, as_of: datetime, top: int = 5) -> dict[str, Any]:
    """A tier's floor at `as_of` and the cheapest of its other models, as plain values.

    Keys: tier, as_of; floor (None when no member is priced), the listing `tier_series` gives
    for that moment; next, up to `top` other models (normalised names) by their cheapest
    listing; open_weight_floor and proprietary_floor, the cheapest listing of each kind (open
    weight as the tier file says); set_aside, listings cheaper than the floor that the outlier
    guard left out. Each listing: model (the source's key), name, provider, source,
    usd_per_mtok (blended), input_mtok, output_mtok, open_weight, since.
    """
    listed = tier_listings_at(intervals, tier, as_of)
    candidates = listed[~listed["outlier"]]
    floor = candidates.iloc[0] if len(candidates) else None
    others = candidates.drop_duplicates("name")
    if floor is not None:
        others = others[others["name"] != floor["name"]]
    open_weight = candidates[candidates["open_weight"]]
    proprietary = candidates[~candidates["open_weight"]]
    set_aside = listed[listed["outlier"]]
    if floor is not None:
        set_aside = set_aside[set_aside["usd_per_mtok"] < floor["usd_per_mtok"]]
    return {
        "tier": tier.name,
        "as_of": as_utc(as_of).isoformat(),
        "floor": _listing(floor),
        "next": [_listing(row) for _, row in others.head(top).iterrows()],
        "open_weight_floor": _listing(open_weight.iloc[0] if len(open_weight) else None),
        "proprietary_floor": _listing(proprietary.iloc[0] if len(proprietary) else None),
        "set_aside": [_listing(row) for _, row in set_aside.iterrows()],
    }


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts: times as ISO text, missing values as None."""
    return [{key: plain(value) for key, value in row.items()} for _, row in frame.iterrows()]


def _listing(row: pd.Series | None) -> dict[str, Any] | None:
    if row is None:
        return None
    keys = ("model", "name", "provider", "source", "usd_per_mtok", "input_mtok", "output_mtok", "open_weight")
    return {**{key: plain(row[key]) for key in keys}, "since": as_utc(row["since"]).isoformat()}


def plain(value: Any) -> Any:
    """A frame's cell as a JSON value: numpy numbers as Python ones, missing as None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return as_utc(value).isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _named(intervals: pd.DataFrame) -> pd.DataFrame:
    """`_priced` rows with each model's normalised `name`; kept with the frame (do not change it)."""

    def make() -> pd.DataFrame:
        rows = _priced(intervals)
        return rows.assign(name=rows["model"].map(normalise_model))

    return _derived(intervals, ("named",), make)


def _priced(intervals: pd.DataFrame) -> pd.DataFrame:
    """The rows that are real prices (see the module doc), with their blended `usd_per_mtok`."""
    rows = intervals.assign(usd_per_mtok=blended(intervals["input_mtok"], intervals["output_mtok"]))
    return rows[rows["flag"].isna() & (rows["usd_per_mtok"] > 0)].reset_index(drop=True)


def _active(starts: pd.Series, ends: pd.Series) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Every moment an interval starts or ends, and which intervals hold then (times × rows)."""
    start, end = _ns(starts), _ns(ends)
    times = np.unique(np.concatenate([start, end[end != _OPEN]]))
    return pd.to_datetime(times, utc=True), _held(starts, ends, times)


def _held(starts: pd.Series, ends: pd.Series, times: np.ndarray) -> np.ndarray:
    """Which intervals hold at each of `times` (ns since the epoch): times × rows."""
    start, end = _ns(starts), _ns(ends)
    return (start[None, :] <= times[:, None]) & (times[:, None] < end[None, :])


def _row_medians(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The median of each row's non-NaN values (NaN for none) and how many there are: what
    np.nanmedian gives, without its per-call cost in a loop over thousands of listings."""
    count = (~np.isnan(values)).sum(axis=1)
    if values.shape[1] == 0:
        return np.full(len(values), np.nan), count
    ordered = np.sort(values, axis=1)  # NaN sorts last
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[:, None] // 2, axis=1)[:, 0]
    high = np.take_along_axis(ordered, count[:, None] // 2, axis=1)[:, 0] if values.shape[1] > 1 else low
    return np.where(count > 0, (low + high) / 2, np.nan), count


def _ns(moments: pd.Series) -> np.ndarray:
    """Aware times as int64 ns since the epoch; a missing end (still current) is _OPEN."""
    values = pd.DatetimeIndex(moments).as_unit("ns").asi8.copy()
    values[pd.isna(moments).to_numpy()] = _OPEN
    return values


def _value_at(steps: pd.DataFrame, when: pd.DatetimeIndex) -> np.ndarray:
    """The step series' value at each moment: the last row at or before it, NaN before the first."""
    dates = pd.DatetimeIndex(steps["date"]).as_unit("ns").asi8
    at = np.searchsorted(dates, pd.DatetimeIndex(when).as_unit("ns").asi8, side="right") - 1
    values = steps["usd_per_mtok"].to_numpy(float)
    return np.where(at >= 0, values[np.maximum(at, 0)], np.nan)


def _changes(frame: pd.DataFrame, columns: list[str], by: str | None = None) -> pd.DataFrame:
    """Only the rows where `columns` change (NaN equal to NaN), from each group's first price."""
    values = frame[columns]
    previous = values.groupby(frame[by]).shift() if by else values.shift()
    same = ((values == previous) | (values.isna() & previous.isna())).all(axis=1)
    priced = frame["usd_per_mtok"].notna()
    started = priced.groupby(frame[by]).cummax() if by else priced.cummax()
    return frame[started & ~same].reset_index(drop=True)


def as_utc(moment: date | datetime) -> pd.Timestamp:
    """An aware UTC Timestamp; a naive value or a date is taken to be UTC already."""
    moment = pd.Timestamp(moment)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
