from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from bot import analytics
from bot.errors import NotEnoughDataError, UnknownModelError
from bot.tiers import Member, SetAside, Tier

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def interval(model, start, end=None, input_mtok=1.0, output_mtok=1.0, *, source="litellm", provider="openai",
             open_weight=False, flag=None):
    """One price-history row as storage provides it; start and end are days after T0."""
    return {
        "source": source, "provider": provider, "model": model,
        "valid_from": day(start), "valid_to": day(end) if end is not None else pd.NaT,
        "input_mtok": input_mtok, "output_mtok": output_mtok, "cache_read_mtok": np.nan,
        "open_weight": open_weight, "flag": flag,
    }


def intervals(*rows) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows)).astype({"open_weight": object, "flag": object})
    for column in ("valid_from", "valid_to"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.as_unit("ns")
    return frame


def steps(*pairs) -> pd.DataFrame:
    """A step series from (day, price) pairs."""
    return pd.DataFrame({"date": [day(d) for d, _ in pairs], "usd_per_mtok": [p for _, p in pairs]})


def exponential(rate: float, days: int, start_price: float = 100.0) -> pd.DataFrame:
    return steps(*((d, start_price * (1 - rate) ** (d / 365)) for d in range(days + 1)))


def tier(*members: tuple, set_aside: tuple[SetAside, ...] = ()) -> Tier:
    """A tier from (patterns, since[, open_weight]) tuples."""
    return Tier("test", "a test tier", tuple(
        Member(patterns if isinstance(patterns, tuple) else (patterns,), since, open_weight=bool(rest and rest[0]))
        for patterns, since, *rest in members
    ), set_aside)


# blended


def test_blended_weights_input_three_to_one():
    assert analytics.blended(2.5, 10) == 4.375
    assert analytics.blended(Decimal("0.15"), Decimal("0.6")) == Decimal("0.2625")


def test_blended_works_on_series_and_keeps_unknowns_unknown():
    result = analytics.blended(pd.Series([1.0, 3.0, np.nan]), pd.Series([5.0, 3.0, 1.0]))
    assert result.iloc[0] == 2.0 and result.iloc[1] == 3.0 and math.isnan(result.iloc[2])


# annual_decline


@pytest.mark.parametrize("rate", [0.3, 0.7, 0.9])
def test_fit_recovers_a_known_exponential_rate_exactly(rate):
    result = analytics.annual_decline(exponential(rate, 730), window_days=None)
    assert abs(result.annual_decline - rate) < 1e-9
    assert abs(result.fold_per_year - 1 / (1 - rate)) < 1e-9
    assert abs(result.slope_per_day - math.log(1 - rate) / 365) < 1e-12
    assert result.n_points == 731 and result.start == T0 and result.end == day(730)


def test_fold_per_year_of_70_percent_is_3_33():
    assert round(analytics.annual_decline(exponential(0.7, 400), window_days=None).fold_per_year, 2) == 3.33


def test_window_keeps_only_the_last_365_days():
    series = pd.concat([steps((0, 1000.0)), exponential(0.5, 365).assign(date=lambda f: f["date"] + pd.Timedelta(days=500))])
    result = analytics.annual_decline(series, window_days=365)
    assert result.n_points == 366 and result.window_days == 365
    assert result.start == day(500) and result.end == day(865)
    assert abs(result.annual_decline - 0.5) < 1e-9


def test_rate_is_the_fit_of_the_returned_daily_points():
    # A step series: 10 for 100 days, 5 for 200 days, then 2 until as_of.
    result = analytics.annual_decline(steps((0, 10.0), (100, 5.0), (300, 2.0)), window_days=None, as_of=day(400))
    points = result.points
    assert list(points.columns) == ["date", "usd_per_mtok"] and len(points) == result.n_points == 401
    assert points["usd_per_mtok"].iloc[99] == 10.0 and points["usd_per_mtok"].iloc[100] == 5.0
    assert points["usd_per_mtok"].iloc[-1] == 2.0
    x = ((points["date"] - points["date"].iloc[0]) / pd.Timedelta(days=1)).to_numpy(float)
    slope = np.polyfit(x, np.log(points["usd_per_mtok"].to_numpy(float)), 1)[0]
    assert abs(result.slope_per_day - slope) < 1e-12
    assert abs(result.annual_decline - (1 - math.exp(365 * slope))) < 1e-12


def test_samples_are_taken_at_utc_midnight_after_each_change():
    series = pd.DataFrame({"date": [T0 + pd.Timedelta(hours=13), day(40.5)], "usd_per_mtok": [8.0, 4.0]})
    points = analytics.annual_decline(series, window_days=None, as_of=day(60)).points
    assert points["date"].iloc[0] == day(1)
    assert (points["date"] == points["date"].dt.floor("D")).all()
    assert points.set_index("date").loc[day(40), "usd_per_mtok"] == 8.0
    assert points.set_index("date").loc[day(41), "usd_per_mtok"] == 4.0


def test_a_gap_marker_stops_the_price_carrying_forward():
    result = analytics.annual_decline(steps((0, 10.0), (50, 5.0), (100, np.nan)), window_days=None, as_of=day(200))
    assert result.end == day(99) and result.n_points == 100


def test_refuses_a_span_shorter_than_30_days():
    with pytest.raises(NotEnoughDataError) as excinfo:
        analytics.annual_decline(exponential(0.7, 19), window_days=None)
    assert str(excinfo.value) == (
        "Not enough data to fit a decline between 2024-01-01 and 2024-01-20: 20 daily prices over a "
        "19-day span; need at least 3 prices over 30 days."
    )


def test_refuses_fewer_than_three_points():
    with pytest.raises(NotEnoughDataError, match="2 daily prices over a 1-day span; need at least 3 prices"):
        analytics.annual_decline(steps((0, 10.0), (1, 9.0)), window_days=None)


def test_refuses_a_window_with_no_prices():
    with pytest.raises(NotEnoughDataError, match="0 daily prices"):
        analytics.annual_decline(steps((0, 10.0), (100, np.nan)), window_days=30, as_of=day(400))


def test_refuses_prices_that_cannot_be_logged():
    with pytest.raises(ValueError, match="needs positive prices"):
        analytics.annual_decline(steps((0, 10.0), (20, 0.0)), window_days=None, as_of=day(60))


# tier_series

GPT4 = date(2024, 1, 1)


def test_a_member_counts_only_from_the_day_it_joined():
    frame = intervals(
        interval("gpt-4", 0, input_mtok=30, output_mtok=60),
        interval("cheap-model", 0, input_mtok=1, output_mtok=1),  # priced all along, joins on day 100
    )
    floor = analytics.tier_series(frame, tier(("gpt-4", GPT4), ("cheap-model", date(2024, 4, 10))))
    assert floor["date"].tolist() == [day(0), day(100)]
    assert floor["model"].tolist() == ["gpt-4", "cheap-model"]
    assert floor["usd_per_mtok"].tolist() == [37.5, 1.0]


def test_floor_switches_models_with_their_attribution():
    frame = intervals(
        interval("gpt-4", 0, input_mtok=30, output_mtok=60),
        interval("gpt-4o", 50, 120, input_mtok=5, output_mtok=15),
        interval("gpt-4o", 120, input_mtok=2.5, output_mtok=10),
        interval("meta-llama/llama-3.1-70b-instruct", 80, input_mtok=0.8, output_mtok=0.8,
                 source="openrouter", provider="together", open_weight=True),
    )
    floor = analytics.tier_series(frame, tier(("gpt-4", GPT4), ("gpt-4o", GPT4), ("llama-3.1-70b*", GPT4, True)))
    assert floor[["date", "usd_per_mtok", "model", "provider", "source", "open_weight"]].values.tolist() == [
        [day(0), 37.5, "gpt-4", "openai", "litellm", False],
        [day(50), 7.5, "gpt-4o", "openai", "litellm", False],
        [day(80), 0.8, "meta-llama/llama-3.1-70b-instruct", "together", "openrouter", True],
    ]


def test_floor_follows_a_price_change_and_an_ending_listing():
    frame = intervals(
        interval("gpt-4", 0, input_mtok=30, output_mtok=60),
        interval("gpt-4o", 10, 20, input_mtok=5, output_mtok=15),
        interval("gpt-4o", 20, 30, input_mtok=2.5, output_mtok=10),
    )
    floor = analytics.tier_series(frame, tier(("gpt-4*", GPT4)))
    assert floor["usd_per_mtok"].tolist() == [37.5, 7.5, 4.375, 37.5]
    assert floor["date"].tolist() == [day(0), day(10), day(20), day(30)]


def test_free_zero_sentinel_and_half_known_prices_never_set_the_floor():
    frame = intervals(
        interval("gpt-4o", 0, input_mtok=2.5, output_mtok=10),
        interval("gpt-4o:free", 0, input_mtok=0, output_mtok=0, source="openrouter", flag="free"),
        interval("gpt-4o", 0, input_mtok=-1, output_mtok=-1, source="openrouter", flag="sentinel"),
        interval("gpt-4o", 0, input_mtok=0, output_mtok=0, provider="promo"),  # zero but unflagged
        interval("gpt-4o", 0, input_mtok=0.01, output_mtok=np.nan, provider="partial"),
        interval("gpt-4o", 0, input_mtok=0.01, output_mtok=0.01, provider="cheap", flag="free"),
    )
    floor = analytics.tier_series(frame, tier(("gpt-4o", GPT4)))
    assert floor[["usd_per_mtok", "provider", "source"]].values.tolist() == [[4.375, "openai", "litellm"]]


def test_every_listing_ending_leaves_a_gap_marker():
    floor = analytics.tier_series(intervals(interval("gpt-4o", 0, 10, 2.5, 10)), tier(("gpt-4o", GPT4)))
    assert floor["date"].tolist() == [day(0), day(10)]
    assert math.isnan(floor["usd_per_mtok"].iloc[1]) and pd.isna(floor["model"].iloc[1])


def test_members_match_on_normalised_names_and_not_beyond_their_pattern():
    frame = intervals(
        interval("azure/gpt-4o", 0, input_mtok=2.5, output_mtok=10, provider="azure"),
        interval("gpt-4o-mini", 0, input_mtok=0.15, output_mtok=0.6),
        interval("gpt-4o-mini-audio-preview", 0, input_mtok=0.15, output_mtok=0.6),
    )
    floor = analytics.tier_series(frame, tier(("gpt-4o", GPT4)))
    assert floor["model"].tolist() == ["azure/gpt-4o"]


def test_a_tier_with_no_priced_member_is_an_empty_series():
    floor = analytics.tier_series(intervals(interval("gpt-4o", 0)), tier(("claude-*", GPT4)))
    assert floor.empty and list(floor.columns) == ["date", "usd_per_mtok", "model", "provider", "source", "open_weight"]


def test_tie_goes_to_the_first_source_alphabetically():
    frame = intervals(interval("gpt-4o", 0, source="openrouter"), interval("gpt-4o", 0, source="litellm"))
    assert analytics.tier_series(frame, tier(("gpt-4o", GPT4)))["source"].tolist() == ["litellm"]


# model_series

THREE_SOURCES = intervals(
    interval("gpt-4o", 0, 100, 5, 15, source="litellm"),
    interval("gpt-4o", 100, None, 2.5, 10, source="litellm"),
    interval("openai/gpt-4o", 0, None, 5, 15, source="openrouter"),
    interval("gpt-4o", 30, None, 50, 150, source="genai-prices"),  # a mistyped price
    interval("azure/gpt-4o", 0, None, 6, 18, source="litellm", provider="azure"),
)


def test_consensus_is_the_median_across_sources():
    series = analytics.model_series(THREE_SOURCES, "gpt-4o", provider="openai")
    assert series[["date", "usd_per_mtok", "n_sources"]].values.tolist() == [
        [day(0), 7.5, 2],
        [day(30), 7.5, 3],  # the outlier does not move the median,
    ]  # nor does litellm's cut on day 100 while the other two disagree with it


def test_per_source_gives_each_sources_series_and_the_median_of_its_listings():
    series = analytics.model_series(THREE_SOURCES, "GPT-4o", how="per_source")
    litellm = series[series["source"] == "litellm"]
    # litellm lists openai (7.5, then 4.375) and azure (9.0): its value is their median
    assert litellm["usd_per_mtok"].tolist() == [8.25, 6.6875]
    assert litellm["date"].tolist() == [day(0), day(100)]
    assert series[series["source"] == "genai-prices"]["date"].tolist() == [day(30)]
    assert list(series.columns) == ["date", "source", "usd_per_mtok"]


def test_a_free_listing_is_not_a_price_of_the_model():
    frame = intervals(interval("gpt-4o", 0, None, 2.5, 10), interval("gpt-4o:free", 0, None, 0, 0, flag="free"))
    assert analytics.model_series(frame, "gpt-4o")["usd_per_mtok"].tolist() == [4.375]


def test_source_filter():
    series = analytics.model_series(THREE_SOURCES, "gpt-4o", provider="openai", source="litellm")
    assert series["usd_per_mtok"].tolist() == [7.5, 4.375]


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError) as excinfo:
        analytics.model_series(THREE_SOURCES, "gpt4o")
    assert excinfo.value.suggestions == ["gpt-4o"]


def test_how_must_be_known():
    with pytest.raises(ValueError, match="how must be"):
        analytics.model_series(THREE_SOURCES, "gpt-4o", how="mean")


# indexed and reference curves


def test_indexed_is_100_at_the_first_common_date():
    curves = analytics.indexed({"a": steps((0, 10.0), (50, 5.0), (200, 1.0)), "b": steps((100, 4.0), (300, 1.0))})
    assert curves["a"].values.tolist() == [[day(100), 100.0], [day(200), 20.0]]
    assert curves["b"].values.tolist() == [[day(100), 100.0], [day(300), 25.0]]


def test_indexed_to_an_explicit_base_and_refusing_a_base_without_a_price():
    series = {"a": steps((0, 10.0), (50, 5.0))}
    assert analytics.indexed(series, base_date=date(2024, 1, 11))["a"]["index"].tolist() == [100.0, 50.0]
    with pytest.raises(NotEnoughDataError, match="Cannot index 'a' to 2023-12-31: it has no price that day."):
        analytics.indexed(series, base_date=date(2023, 12, 31))


@pytest.mark.parametrize(("rate", "after_a_year"), [(0.3, 70.0), (0.7, 30.0), (0.9, 10.0)])
def test_reference_curve_falls_by_its_rate_each_year_from_100(rate, after_a_year):
    curve = analytics.reference_curve(rate, T0, day(730), freq="MS")
    assert curve["date"].iloc[0] == T0 and curve["date"].iloc[-1] == day(730)
    assert curve["index"].iloc[0] == 100.0
    assert abs(curve["index"].iloc[-1] - 100 * (after_a_year / 100) ** 2) < 1e-9
    daily = analytics.reference_curve(rate, T0, day(365))
    assert len(daily) == 366 and abs(daily["index"].iloc[-1] - after_a_year) < 1e-9


def test_reference_curves_share_the_base_and_are_labelled_with_their_fold():
    curves = analytics.reference_curves(T0, day(365))
    assert list(curves) == ["30 %/yr (1.4×)", "70 %/yr (3.3×)", "90 %/yr (10×)"]
    assert {c["index"].iloc[0] for c in curves.values()} == {100.0}


def test_open_weight_comes_from_the_tier_file_not_the_listing():
    frame = intervals(
        interval("gpt-4o", 0, input_mtok=2.5, output_mtok=10, open_weight=True),  # a source that says so wrongly
        interval("llama-3.3-70b-instruct", 0, input_mtok=5, output_mtok=5, provider="together", open_weight=None),
    )
    listed = analytics.tier_listings_at(frame, tier(("gpt-4o", GPT4), ("llama-3.3-70b*", GPT4, True)), day(1))
    assert dict(zip(listed["name"], listed["open_weight"])) == {"gpt-4o": False, "llama-3.3-70b-instruct": True}


# the outlier guard


def vertex_opus_case(**anthropic) -> pd.DataFrame:
    """LiteLLM in April 2024: Vertex lists claude-3-opus at a tenth of what Anthropic and Bedrock
    charge, until a later snapshot fixes it; gpt-4-turbo is the honest floor meanwhile."""
    return intervals(
        interval("gpt-4-turbo", 0, input_mtok=10, output_mtok=30),  # 15.0 blended
        interval("claude-3-opus-20240229", 0, provider="anthropic", input_mtok=15, output_mtok=75, **anthropic),
        interval("anthropic.claude-3-opus-20240229-v1:0", 0, provider="bedrock", input_mtok=15, output_mtok=75),
        interval("vertex_ai/claude-3-opus@20240229", 20, 60, provider="vertex_ai-anthropic_models", input_mtok=1.5, output_mtok=7.5),
        interval("vertex_ai/claude-3-opus@20240229", 60, provider="vertex_ai-anthropic_models", input_mtok=15, output_mtok=75),
    )


GPT4_CLASS = (("gpt-4-turbo", GPT4), ("claude-3-opus*", GPT4))


def test_a_listing_under_a_fifth_of_the_other_sellers_is_not_the_floor():
    floor = analytics.tier_series(vertex_opus_case(), tier(*GPT4_CLASS))
    assert floor[["usd_per_mtok", "model"]].values.tolist() == [[15.0, "gpt-4-turbo"]]
    listed = analytics.tier_listings_at(vertex_opus_case(), tier(*GPT4_CLASS), day(30))
    vertex = listed[listed["provider"] == "vertex_ai-anthropic_models"]
    assert vertex["outlier"].tolist() == [True] and vertex["usd_per_mtok"].tolist() == [3.0]
    cheapest = analytics.cheapest(vertex_opus_case(), tier(*GPT4_CLASS), day(30))
    assert cheapest["floor"]["model"] == "gpt-4-turbo"
    assert [row["provider"] for row in cheapest["set_aside"]] == ["vertex_ai-anthropic_models"]


def test_with_only_one_other_seller_the_guard_cannot_judge_and_the_price_counts():
    frame = vertex_opus_case(end=10)  # Anthropic's listing ends before Vertex's mistake
    floor = analytics.tier_series(frame, tier(*GPT4_CLASS))
    assert floor[["date", "usd_per_mtok"]].values.tolist() == [[day(0), 15.0], [day(20), 3.0], [day(60), 15.0]]


def test_the_guard_uses_the_median_so_one_dear_seller_does_not_make_a_cheap_one_an_outlier():
    frame = intervals(
        interval("gpt-4o", 0, input_mtok=2.5, output_mtok=10),  # 4.375
        interval("azure/gpt-4o", 0, provider="azure", input_mtok=2.5, output_mtok=10),
        interval("gpt-4o", 0, provider="overpriced", input_mtok=250, output_mtok=1000),
        interval("openai/gpt-4o", 0, provider="discount", source="openrouter", input_mtok=1, output_mtok=4),  # 1.75
    )
    assert analytics.tier_series(frame, tier(("gpt-4o", GPT4)))["provider"].tolist() == ["discount"]


def test_an_open_weight_host_is_compared_only_with_its_own_other_listings():
    frame = intervals(
        # Together's Turbo listing, twice over in two sources, at fifteen times DeepInfra's price:
        interval("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", 0, provider="together", input_mtok=0.88, output_mtok=0.88),
        interval("meta-llama/Llama-3.3-70B-Instruct-Turbo", 0, provider="together", source="genai-prices", input_mtok=0.88, output_mtok=0.88),
        interval("deepinfra/meta-llama/Llama-3.3-70B-Instruct-Turbo", 0, provider="deepinfra", input_mtok=0.038, output_mtok=0.12),
        # ... while a host's own typo is still caught against its listings elsewhere.
        interval("deepseek-chat", 0, provider="deepseek", input_mtok=0.27, output_mtok=1.1),
        interval("deepseek/deepseek-chat", 0, provider="deepseek", input_mtok=0.27, output_mtok=1.1),
        interval("deepseek-chat", 0, provider="deepseek", source="genai-prices", input_mtok=0.014, output_mtok=0.028),
    )
    open_tier = tier(("llama-3.3-70b*", GPT4, True), ("deepseek-chat", GPT4, True))
    floor = analytics.tier_series(frame, open_tier)
    assert floor[["provider", "usd_per_mtok"]].values.tolist() == [["deepinfra", analytics.blended(0.038, 0.12)]]
    listed = analytics.tier_listings_at(frame, open_tier, day(1))
    assert listed.loc[listed["outlier"], ["provider", "source"]].values.tolist() == [["deepseek", "genai-prices"]]


def test_set_aside_prices_never_reach_the_floor_and_later_prices_of_the_listing_do():
    frame = intervals(
        interval("gpt-4o", 0, input_mtok=5, output_mtok=15),  # 7.5
        interval("gemini-1.5-pro", 0, 30, provider="vertex", input_mtok=0.625, output_mtok=1.875),  # per character
        interval("gemini-1.5-pro", 30, provider="vertex", input_mtok=3.5, output_mtok=10.5),  # 5.25
    )
    entry = SetAside("litellm", "gemini-1.5-*", date(2024, 1, 31), "per-character prices stored as per-token", "vertex")
    members = (("gpt-4o", GPT4), ("gemini-1.5-pro", GPT4))
    assert analytics.tier_series(frame, tier(*members))["usd_per_mtok"].tolist() == [0.9375, 5.25]
    guarded = analytics.tier_series(frame, tier(*members, set_aside=(entry,)))
    assert guarded[["date", "usd_per_mtok"]].values.tolist() == [[day(0), 7.5], [day(30), 5.25]]
    other_source = SetAside("openrouter", "gemini-1.5-*", date(2024, 1, 31), "not this source")
    assert analytics.tier_series(frame, tier(*members, set_aside=(other_source,)))["usd_per_mtok"].tolist() == [0.9375, 5.25]


def test_the_floor_at_a_moment_is_the_first_listing_there_that_is_not_an_outlier():
    frame = vertex_opus_case()
    series = analytics.tier_series(frame, tier(*GPT4_CLASS))
    for moment in (day(0), day(25), day(59.5), day(61)):
        listed = analytics.tier_listings_at(frame, tier(*GPT4_CLASS), moment)
        first = listed[~listed["outlier"]].iloc[0]
        held = analytics.rows_at(series, pd.DatetimeIndex([moment])).iloc[0]
        assert (first["usd_per_mtok"], first["model"]) == (held["usd_per_mtok"], held["model"])


# answers as plain values


def test_trend_of_a_tier_gives_the_daily_points_it_fitted_with_their_holders():
    frame = intervals(
        interval("gpt-4", 0, input_mtok=30, output_mtok=60),
        interval("llama-3.1-70b-instruct", 100, provider="together", input_mtok=0.9, output_mtok=0.9),
    )
    result = analytics.trend(frame, day(200), tier=tier(("gpt-4", GPT4), ("llama-3.1-70b*", GPT4, True)), window_days=None)
    assert result["n_points"] == len(result["points"]) == 201 and result["window_days"] is None
    assert result["points"][0] == {"date": "2024-01-01", "usd_per_mtok": 37.5, "model": "gpt-4", "provider": "openai",
                                   "source": "litellm", "open_weight": False}
    assert result["points"][-1]["model"] == "llama-3.1-70b-instruct" and result["points"][-1]["open_weight"] is True
    x = np.array([(pd.Timestamp(p["date"]) - pd.Timestamp(result["points"][0]["date"])).days for p in result["points"]], float)
    slope = np.polyfit(x, np.log([p["usd_per_mtok"] for p in result["points"]]), 1)[0]
    assert abs(result["annual_decline"] - (1 - math.exp(365 * slope))) < 1e-9
    assert result["label"] == analytics.rate_label(result["annual_decline"])


def test_trend_of_a_model_is_its_consensus_with_the_number_of_sources():
    result = analytics.trend(THREE_SOURCES, day(200), model="gpt-4o", provider="openai", window_days=None)
    assert result["tier"] is None and result["model"] == "gpt-4o" and set(result["points"][0]) == {"date", "usd_per_mtok", "n_sources"}


def test_trend_needs_one_of_tier_or_model():
    with pytest.raises(ValueError, match="a tier or a model"):
        analytics.trend(THREE_SOURCES, day(200))


def test_cheapest_lists_one_row_per_model_after_the_floor_and_both_kinds_of_floor():
    frame = intervals(
        interval("gpt-4o", 0, input_mtok=2.5, output_mtok=10),
        interval("azure/gpt-4o", 0, provider="azure", input_mtok=2.5, output_mtok=10),
        interval("llama-3.3-70b-instruct", 0, provider="deepinfra", input_mtok=0.1, output_mtok=0.3),
        interval("llama-3.3-70b-instruct", 0, provider="together", input_mtok=0.88, output_mtok=0.88),
        interval("claude-3-opus", 0, provider="anthropic", input_mtok=15, output_mtok=75),
    )
    members = (("gpt-4o", GPT4), ("llama-3.3-70b*", GPT4, True), ("claude-3-opus", GPT4))
    result = analytics.cheapest(frame, tier(*members), day(1), top=5)
    assert (result["floor"]["name"], result["floor"]["provider"], result["floor"]["usd_per_mtok"]) == ("llama-3.3-70b-instruct", "deepinfra", analytics.blended(0.1, 0.3))
    assert [(row["name"], row["provider"]) for row in result["next"]] == [("gpt-4o", "azure"), ("claude-3-opus", "anthropic")]
    assert result["open_weight_floor"] == result["floor"]
    assert result["proprietary_floor"]["provider"] == "azure"  # ties go to the first provider alphabetically
    assert set(result["floor"]) == {"model", "name", "provider", "source", "usd_per_mtok", "input_mtok", "output_mtok", "open_weight", "since"}
    assert analytics.cheapest(frame, tier(*members), day(1), top=1)["next"] == result["next"][:1]
    assert analytics.cheapest(frame, tier(*members), day(-1))["floor"] is None


# the week's news


def test_price_changes_are_real_moves_of_one_listing_inside_the_window():
    frame = intervals(
        interval("gpt-4o", 0, 10, input_mtok=5, output_mtok=15),
        interval("gpt-4o", 10, input_mtok=2.5, output_mtok=10),  # a cut on day 10
        interval("gpt-4o", 0, 10, source="genai-prices", input_mtok=5, output_mtok=15),
        interval("gpt-4o", 10, source="genai-prices", input_mtok=2.5, output_mtok=10),  # the same cut, again
        interval("o3", 0, 8, input_mtok=2, output_mtok=8),
        interval("o3", 8, input_mtok=10, output_mtok=40),  # a hike on day 8
        interval("mini", 0, 9, input_mtok=0, output_mtok=0, flag="free"),
        interval("mini", 9, input_mtok=1, output_mtok=1),  # free to paid: not a price change
        interval("gone", 0, 5, input_mtok=9, output_mtok=9),
        interval("gone", 9, input_mtok=1, output_mtok=1),  # returned after a gap: not a price change
        interval("old", 0, 2, input_mtok=9, output_mtok=9),
        interval("old", 2, input_mtok=1, output_mtok=1),  # before the window
    )
    changes = analytics.price_changes(frame, day(3), day(10))
    assert changes[["name", "source", "old_usd", "usd_per_mtok"]].values.tolist() == [
        ["gpt-4o", "genai-prices", 7.5, 4.375],
        ["o3", "litellm", 3.5, 17.5],
    ]
    assert changes["change"].tolist() == [4.375 / 7.5 - 1, 4.0]
    assert analytics.price_changes(frame, day(10), day(20)).empty  # a change exactly at the start is last week's


def test_new_models_are_names_no_source_had_before_the_window():
    frame = intervals(
        interval("gpt-4o", 0, input_mtok=2.5, output_mtok=10),
        interval("azure/gpt-4o", 5, provider="azure", input_mtok=2.5, output_mtok=10),  # a new seller, not a new model
        interval("o3", 6, input_mtok=2, output_mtok=8),
        interval("openai/o3", 7, source="openrouter", input_mtok=1, output_mtok=4),
        interval("preview", 6, input_mtok=0, output_mtok=0, flag="free"),
    )
    found = analytics.new_models(frame, day(3), day(10))
    assert found[["name", "first_seen", "listings"]].values.tolist() == [["o3", day(6), 2], ["preview", day(6), 1]]
    # the cheapest real price of each at the end of the window, and who charges it; none for a free preview
    assert found[["usd_per_mtok", "source"]].iloc[0].tolist() == [1.75, "openrouter"]
    assert found[["usd_per_mtok", "source"]].iloc[1].isna().all()
    assert analytics.new_models(frame, day(6), day(10)).empty


def test_rate_verdict_compares_with_the_references_at_the_precision_it_prints():
    assert analytics.rate_verdict(0.64) == "running at 64 %/yr: faster than the 30 % plan, slower than the 70 % thesis"
    assert analytics.rate_verdict(0.2) == "running at 20 %/yr: slower than the 30 % plan"
    assert analytics.rate_verdict(0.6996) == "running at 70 %/yr: faster than the 30 % plan, in line with the 70 % thesis"
    assert analytics.rate_verdict(0.8) == "running at 80 %/yr: faster than the 70 % thesis, slower than 10× a year"
    assert analytics.rate_verdict(0.95) == "running at 95 %/yr: faster than 10× a year"
    assert analytics.rate_verdict(0.0) == "flat (0 %/yr): slower than the 30 % plan"
    assert analytics.rate_verdict(-0.12) == "rising 12 %/yr: slower than the 30 % plan"


# loading from storage


def test_load_intervals_frames_storage_and_reloads_only_after_a_write(fresh_db):
    from bot import pipeline

    pipeline.load_history(fresh_db)
    frame = analytics.load_intervals(fresh_db)
    assert list(frame.columns) == list(analytics.prices.INTERVAL_COLUMNS)
    assert str(frame["valid_from"].dt.tz) == "UTC" and frame["valid_to"].isna().any()
    assert set(frame["open_weight"].map(repr)) <= {"True", "False", "None"}
    assert frame["flag"].dropna().isin(["free", "sentinel"]).all()
    assert analytics.load_intervals(fresh_db) is not frame  # a copy each time, so callers may change theirs
    again = analytics.load_intervals(fresh_db)
    assert again.equals(frame) and analytics._INTERVALS.current is not again
    fresh_db.execute("UPDATE prices SET input_mtok = 999 WHERE id = 1")
    assert (analytics.load_intervals(fresh_db)["input_mtok"] == 999).sum() == 1


def test_load_intervals_of_an_empty_database(fresh_db):
    frame = analytics.load_intervals(fresh_db)
    assert frame.empty and list(frame.columns) == list(analytics.prices.INTERVAL_COLUMNS)
    assert analytics.tier_series(frame, tier(("gpt-4o", GPT4))).empty
