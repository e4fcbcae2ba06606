"""`model_removed`: a model absent from two consecutive good polls of its source (storage counts
the absences and closes its price interval when it first went missing).

No alert for a removal that completes the baseline (its absence began on the first live catalog,
so it may have happened any time before), for a free or sentinel listing, or for a key that
another key of the same model replaced (a rename). Inhibition: while the source is stale or its
last catalog was partial, the removal is stored but marked `inhibited_by` and not delivered.
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.detectors.base import Context, Finding
from bot.quotes import FREE, SENTINEL


def detect(ctx: Context) -> Iterator[Finding]:
    for change in ctx.changes_of("removed"):
        since = ctx.db.execute(
            "SELECT removed_at FROM models WHERE source = ? AND provider = ? AND model = ?",
            [ctx.source, change.provider, change.model],
        ).fetchone()[0]
        if ctx.first_live_at is None or since <= ctx.first_live_at:
            continue
        if change.old is not None and change.old.flag in (FREE, SENTINEL):
            continue
        if ctx.other_key(change.provider, change.model, listed=True):
            continue
        yield ctx.finding(
            "model_removed",
            provider=change.provider,
            model=change.model,
            new_value=since,
            old_mtok=change.old.output_mtok if change.old else None,
            inhibited_by={"stale": "source_stale", "suspect": "source_suspect"}.get(ctx.health),
            detail={"missing_since": since},
        )
