from __future__ import annotations

import math
from decimal import Decimal

import pytest

from bot.cards import Table
from bot.margin import MarginYear, margin_model, margin_table, rate_from_drop


def test_the_articles_costs_at_70_percent_a_year():
    years = margin_model(seat_price=40, cost=14, rate=0.7, years=2)
    assert [y.cost for y in years] == [Decimal("14"), Decimal("4.2"), Decimal("1.26")]


def test_the_articles_costs_at_30_percent_a_year():
    years = margin_model(seat_price=40, cost=14, rate=0.3, years=2)
    assert [y.cost for y in years] == [Decimal("14"), Decimal("9.8"), Decimal("6.86")]


def test_gross_margin_at_year_0_is_65_percent():
    assert margin_model(40, 14, 0.7, 0)[0] == MarginYear(0, Decimal(14), Decimal(40), Decimal("0.65"))


def test_without_clawback_the_seller_keeps_every_saving():
    years = margin_model(40, 14, 0.7, 2)
    assert [y.price for y in years] == [Decimal(40)] * 3
    assert [y.gross_margin for y in years] == [Decimal("0.65"), Decimal("0.895"), Decimal("0.9685")]


def test_clawback_lowers_the_seat_price_by_a_share_of_the_saving():
    year_1 = margin_model(40, 14, 0.7, 1, clawback=0.5)[1]
    assert year_1.price == Decimal("35.1")  # 40 − 0.5 × (14 − 4.2)
    assert year_1.gross_margin == (Decimal("35.1") - Decimal("4.2")) / Decimal("35.1")
    assert round(year_1.gross_margin, 4) == Decimal("0.8803")


def test_full_clawback_passes_every_saving_on():
    years = margin_model(40, 14, 0.7, 2, clawback=1)
    assert [y.price - y.cost for y in years] == [Decimal(26)] * 3


def test_table_renders_cents_and_percentages():
    table = margin_table(margin_model(40, 14, 0.7, 2))
    assert table == Table(
        header=("Year", "Inference cost", "Seat price", "Gross margin"),
        rows=(
            ("0", "$14.00", "$40.00", "65.0 %"),
            ("1", "$4.20", "$40.00", "89.5 %"),
            ("2", "$1.26", "$40.00", "96.9 %"),  # 96.85 rounds half up
        ),
    )


def test_90_percent_in_24_months_is_68_4_percent_a_year():
    rate = rate_from_drop(drop=0.9, months=24)
    assert abs(rate - (1 - math.sqrt(0.1))) < 1e-12
    assert round(rate, 3) == 0.684
    assert rate_from_drop() == rate


def test_rate_from_drop_compounds_back_to_the_drop():
    rate = rate_from_drop(0.5, 6)
    assert abs(rate - 0.75) < 1e-12  # halving every six months is 75 %/yr
    assert abs((1 - rate) ** 0.5 - 0.5) < 1e-12


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seat_price": 0}, "seat price must be positive, got 0"),
        ({"cost": -1}, "inference cost must not be negative, got -1"),
        ({"rate": 1}, "annual decline must be at least 0 and below 1, got 1"),
        ({"clawback": 1.5}, "clawback share must be between 0 and 1, got 1.5"),
        ({"years": -1}, "years must not be negative, got -1"),
    ],
)
def test_margin_model_rejects_impossible_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        margin_model(**{"seat_price": 40, "cost": 14, "rate": 0.7, "years": 2, **kwargs})


def test_rate_from_drop_rejects_impossible_inputs():
    with pytest.raises(ValueError, match="drop must be at least 0 and below 1, got 1"):
        rate_from_drop(1, 24)
    with pytest.raises(ValueError, match="months must be positive, got 0"):
        rate_from_drop(0.9, 0)
