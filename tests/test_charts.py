from __future__ import annotations

import io
import struct

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from bot import analytics
from bot.charts import tier_chart

AS_OF = pd.Timestamp("2026-11-23", tz="UTC")
BASE = pd.Timestamp("2023-03-14", tz="UTC")


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG signature and IHDR chunk, which must come first."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind, width, height = struct.unpack(">I4sII", png[8:24])
    assert (length, kind) == (13, b"IHDR")
    return width, height


@pytest.fixture
def curves():
    tiers = {
        "gpt-4-class": pd.DataFrame({"date": [BASE, BASE + pd.Timedelta(days=400)], "usd_per_mtok": [37.5, 0.5]}),
        "small-fast": pd.DataFrame({"date": [BASE, BASE + pd.Timedelta(days=200)], "usd_per_mtok": [2.0, 0.2]}),
    }
    return analytics.indexed(tiers)


def test_tier_chart_is_a_1600_by_900_png(curves):
    png = tier_chart(curves, analytics.reference_curves(BASE, AS_OF), AS_OF, "LiteLLM, OpenRouter")
    assert png_size(png) == (1600, 900)
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (900, 1600)
    assert pixels[..., :3].std() > 0.05  # something was drawn on the white


def test_tier_chart_draws_a_gap_and_no_references(curves):
    curves["ended"] = pd.DataFrame({"date": [BASE, BASE + pd.Timedelta(days=30)], "index": [100.0, np.nan]})
    assert png_size(tier_chart(curves, {}, AS_OF, "genai-prices.")) == (1600, 900)


def test_tier_chart_with_references_only():
    assert png_size(tier_chart({}, analytics.reference_curves(BASE, AS_OF), AS_OF, "none")) == (1600, 900)
