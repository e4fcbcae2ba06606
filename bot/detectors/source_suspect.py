"""`source_suspect`: the partial-catalog guard. A poll listing under 60 % of the models of the
source's last good poll is stored as `suspect` by storage (which then marks no model absent, so
it removes nothing); this raises one alert per run of suspect polls, keyed by the last good poll.
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.detectors.base import Context, Finding
from storage import polls


def detect(ctx: Context) -> Iterator[Finding]:
    if ctx.status != "suspect":
        return
    good = polls.find(ctx.db, ctx.source, polls.GOOD, before=ctx.poll_id)
    seen = ctx.db.execute("SELECT models_seen FROM polls WHERE id = ?", [ctx.poll_id]).fetchone()[0]
    yield ctx.finding(
        "source_suspect",
        new_value=good["observed_at"] if good else "",
        detail={"models_seen": seen, "last_good_models": good["models_seen"] if good else None, "last_good_at": good and good["observed_at"]},
    )
