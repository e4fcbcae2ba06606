"""`source_stale` and `source_recovered`: a source failing `stale_after_failures` (3) polls in a
row, or without a good poll for `stale_after` (2 days), is stale, once per episode; its next good
poll (ok or 304) resolves the episode with `source_recovered`. An episode is named by the time
of its first bad poll, which both alerts carry as their dedupe value.
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.detectors.base import Context, Finding
from storage import alerts, polls
from storage.times import parse_iso


def detect(ctx: Context) -> Iterator[Finding]:
    episode = alerts.latest_episode(ctx.db, ctx.source)
    stale = episode is not None and episode["kind"] == "source_stale"
    if ctx.status in polls.GOOD:
        if stale:
            yield ctx.finding("source_recovered", new_value=episode["new_value"], detail={"stale_since": episode["new_value"]})
        return
    if stale:
        return
    limit = ctx.settings.stale_after_failures
    recent = polls.recent_statuses(ctx.db, ctx.source, upto=ctx.poll_id, limit=limit)
    failures = next((n for n, status in enumerate(recent) if status != "failed"), len(recent))
    good = polls.find(ctx.db, ctx.source, polls.GOOD, before=ctx.poll_id)
    first_bad = polls.first_after(ctx.db, ctx.source, good["id"] if good else None)
    quiet = good is not None and ctx.observed_at - parse_iso(good["observed_at"]) >= ctx.settings.stale_after
    if failures >= limit or quiet:
        error = ctx.db.execute("SELECT error FROM polls WHERE id = ?", [ctx.poll_id]).fetchone()[0]
        yield ctx.finding(
            "source_stale",
            new_value=first_bad["observed_at"],
            detail={"failures": failures, "last_good_at": good and good["observed_at"], "error": error},
        )
