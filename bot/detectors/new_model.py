"""`new_model`: the first time a source lists a priced model.

Not news, so no alert: anything on a baseline poll (the source's first catalog, or its first
live one after a backfill); free and sentinel listings; a model that replaces another key of
the same model that the source dropped in the same poll (a rename); and a model whose upstream
dates its first price more than a day before the source's previous poll (genai-prices adding an
old model with its price history is a catalog addition, not a launch).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from bot.detectors.base import Context, Finding
from bot.quotes import FREE, SENTINEL
from storage.times import iso, parse_iso

#: Upstream dates are days (genai-prices' `start_date`); a launch dated today is still news.
DATE_SLACK = timedelta(days=1)


def detect(ctx: Context) -> Iterator[Finding]:
    if ctx.baseline:
        return
    for change in ctx.changes_of("new"):
        if change.new is None or change.new.flag in (FREE, SENTINEL):
            continue
        if ctx.other_key(change.provider, change.model, listed=False):
            continue
        first = ctx.first_price_at(change.provider, change.model)
        if first and ctx.previous_catalog_at and first < iso(parse_iso(ctx.previous_catalog_at) - DATE_SLACK):
            continue
        yield ctx.finding(
            "new_model",
            provider=change.provider,
            model=change.model,
            new_mtok=change.new.output_mtok,
            detail={"input_mtok": change.new.input_mtok, "output_mtok": change.new.output_mtok},
        )
