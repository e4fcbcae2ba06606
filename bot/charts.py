"""Charts as PNG bytes, drawn on a bare `matplotlib.figure.Figure` with the Agg canvas.

No pyplot: its global figure registry leaks memory and is not thread-safe in a long-running
bot. Charts are 1600×900 px and drawn with large type and thick lines so they stay legible in a
chat client's thumbnail.
"""

from __future__ import annotations

import io
from datetime import datetime
from itertools import cycle

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

WIDTH_IN, HEIGHT_IN, DPI = 16, 9, 100  # 1600×900 px
TIER_COLOURS = ("#1f4e9c", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#3d3d3d")
REFERENCE_GREYS = ("#9a9a9a", "#707070", "#454545")
INK = "#222222"
MUTED = "#555555"
LEFT = 0.07  # the title, legends, plot and footnote share this left edge


def tier_chart(
    curves: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame], as_of: datetime, sources_note: str
) -> bytes:
    """Indexed tier curves (steps, log scale) over dashed constant-decline references, as PNG.

    `curves` and `references` map a legend label to a frame of date and index (100 at the
    base); each tier curve is drawn on to `as_of` (an aware datetime), since its last price
    still holds then. `sources_note` names the data sources for the footnote.
    """
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=LEFT, right=0.975, top=0.73, bottom=0.165)
    axes = figure.add_subplot()
    end = pd.Timestamp(as_of).tz_convert("UTC")

    reference_lines = []
    for (label, curve), grey in zip(references.items(), cycle(REFERENCE_GREYS)):
        reference_lines += axes.plot(
            _naive(curve["date"]), curve["index"], linestyle=(0, (6, 4)), linewidth=2.5, color=grey, label=label
        )
    # Widest first, so a stretch where two tiers share a floor shows both colours.
    widths = [6.0] if len(curves) == 1 else list(np.linspace(9.0, 5.0, len(curves)))
    tier_lines = []
    for (label, curve), colour, width in zip(curves.items(), cycle(TIER_COLOURS), widths):
        last = curve["index"].iloc[-1]
        drawn = pd.concat([curve, pd.DataFrame({"date": [end], "index": [last]})]) if pd.notna(last) else curve
        tier_lines += axes.step(
            _naive(drawn["date"]), drawn["index"], where="post", linewidth=width, color=colour,
            label=f"{label}: 100 → {last:.3g}" if pd.notna(last) else label,
        )

    axes.set_yscale("log")
    axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    axes.set_ylabel("Price index (log scale)", fontsize=21, color=INK, labelpad=12)
    axes.set_xlabel("Date (UTC)", fontsize=21, color=INK, labelpad=8)
    axes.tick_params(labelsize=19, colors=INK, length=7, width=1.5)
    axes.grid(which="major", color="#e3e3e3", linewidth=1.2)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_linewidth(1.5)

    for lines, y in ((tier_lines, 0.835), (reference_lines, 0.775)):
        if lines:
            figure.legend(
                handles=lines, loc="center left", bbox_to_anchor=(LEFT - 0.008, y), ncol=len(lines),
                fontsize=18, frameon=False, handlelength=2.6, columnspacing=2.2,
            )
    figure.text(
        LEFT, 0.955, f"Price of constant capability, indexed to 100 — as of {end:%Y-%m-%d}",
        fontsize=26, fontweight="bold", color=INK, va="center",
    )
    figure.text(
        LEFT, 0.9, "Cheapest qualifying model at each date; dashed lines are constant annual declines",
        fontsize=18, color=MUTED, va="center",
    )
    footnote = f"Sources: {sources_note.rstrip('.')}. Price = (3 × input + output) ÷ 4, USD per million tokens."
    figure.text(LEFT, 0.035, footnote, fontsize=15, color=MUTED, va="center")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _naive(dates: pd.Series) -> pd.Series:
    """UTC dates without a zone, which matplotlib's date axis reads directly."""
    return pd.to_datetime(dates, utc=True).dt.tz_localize(None)
