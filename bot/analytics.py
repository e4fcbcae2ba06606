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
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import numpy as np
import pandas as pd

from bot.errors import NotEnoughDataError, UnknownModelError
from bot.naming import normalise_model
from bot.tiers import Tier

DAY = pd.Timedelta(days=1)
YEAR_DAYS = 365
#: A fit needs at least this many daily points spanning at least this many days.
MIN_POINTS = 3
MIN_SPAN_DAYS = 30
#: The constant declines drawn behind tier curves: 30 %/yr, 70 %/yr and 90 %/yr (10×).
REFERENCE_RATES = (0.3, 0.7, 0.9)

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
    rows = _priced(intervals)
    names = rows["model"].map(normalise_model)
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

    Columns date, usd_per_mtok, model (the source's own key), provider, source, open_weight.
    A listing counts only from the day its model joined the tier, so the floor never falls
    because a model is re-labelled after the fact. Free, zero and flagged prices never count:
    a free tier or a placeholder is not a floor anyone can buy at. Ties go to the first source,
    provider and model in alphabetical order, so the attribution is stable from run to run.
    """
    columns = ["date", "usd_per_mtok", "model", "provider", "source", "open_weight"]
    rows = _priced(intervals)
    keys = list(zip(rows["provider"], rows["model"]))
    joined = {key: tier.joined(key[1], key[0]) for key in set(keys)}
    since = pd.Series(pd.to_datetime([joined[key] for key in keys], utc=True), index=rows.index)
    rows = rows.assign(start=rows["valid_from"].where(rows["valid_from"] >= since, since))
    rows = rows[rows["start"].notna() & (rows["valid_to"].isna() | (rows["valid_to"] > rows["start"]))]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.sort_values(["usd_per_mtok", "source", "provider", "model"], kind="stable").reset_index(drop=True)
    times, active = _active(rows["start"], rows["valid_to"])
    # Rows are cheapest first, so the first active row at each moment is the floor.
    floor = rows.iloc[active.argmax(axis=1)].reset_index(drop=True).astype({"open_weight": object})
    floor.loc[~active.any(axis=1), ["usd_per_mtok", "model", "provider", "source", "open_weight"]] = None
    floor["date"] = times
    return _changes(floor[columns], ["usd_per_mtok", "model", "provider", "source"])


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
    end = _utc(as_of) if as_of is not None else steps["date"].iloc[-1]
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
    base = _utc(base_date) if base_date is not None else max(firsts.values())
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
    start, end = _utc(start), _utc(end)
    dates = pd.date_range(start, end, freq=freq).union(pd.DatetimeIndex([start, end]))
    years = ((dates - start) / DAY).to_numpy(float) / YEAR_DAYS
    return pd.DataFrame({"date": dates, "index": 100 * (1 - rate) ** years})


def reference_curves(start: date | datetime, end: date | datetime, freq: str = "D") -> dict[str, pd.DataFrame]:
    """The REFERENCE_RATES curves, keyed by their `rate_label`, ready for `charts.tier_chart`."""
    return {rate_label(rate): reference_curve(rate, start, end, freq) for rate in REFERENCE_RATES}


def rate_label(rate: float) -> str:
    """`0.7` -> `70 %/yr (3.3×)`: the rate and how many times cheaper per year it means."""
    return f"{rate * 100:.0f} %/yr ({1 / (1 - rate):.2g}×)"


def _priced(intervals: pd.DataFrame) -> pd.DataFrame:
    """The rows that are real prices (see the module doc), with their blended `usd_per_mtok`."""
    rows = intervals.assign(usd_per_mtok=blended(intervals["input_mtok"], intervals["output_mtok"]))
    return rows[rows["flag"].isna() & (rows["usd_per_mtok"] > 0)].reset_index(drop=True)


def _active(starts: pd.Series, ends: pd.Series) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Every moment an interval starts or ends, and which intervals hold then (times × rows)."""
    start = pd.DatetimeIndex(starts).as_unit("ns").asi8
    end = pd.DatetimeIndex(ends).as_unit("ns").asi8.copy()
    end[ends.isna().to_numpy()] = _OPEN
    times = np.unique(np.concatenate([start, end[end != _OPEN]]))
    active = (start[None, :] <= times[:, None]) & (times[:, None] < end[None, :])
    return pd.to_datetime(times, utc=True), active


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


def _utc(moment: date | datetime) -> pd.Timestamp:
    """An aware UTC Timestamp; a naive value or a date is taken to be UTC already."""
    moment = pd.Timestamp(moment)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
