"""Alerts as a neutral `Card`: one card per batch (a channel's alerts of one poll cycle).

Price moves come first, biggest first, one line per model (its fields together); then new and
removed models, then source health. `top` lines are listed; the rest are summarised in one
line of counts. Lines are plain text: each chat adapter escapes and lays them out.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

from bot.cards import Card, Severity
from storage.alerts import PRICE_KINDS

FIELD_NAMES = {"input_mtok": "input", "output_mtok": "output", "cache_read_mtok": "cache read"}
_NOUNS = {
    "price_cut": ("price cut", "price cuts"),
    "price_hike": ("price rise", "price rises"),
    "new_model": ("new model", "new models"),
    "model_removed": ("model removed", "models removed"),
    "source_suspect": ("partial catalog", "partial catalogs"),
    "source_stale": ("stale source", "stale sources"),
    "source_recovered": ("source recovered", "sources recovered"),
    "indicator_threshold": ("indicator signal", "indicator signals"),
    "tier_floor": ("tier floor", "tier floors"),
}
_TITLES = {
    "new_model": "New model: {model}",
    "model_removed": "Model removed: {model}",
    "source_stale": "Source {source} is stale",
    "source_recovered": "Source {source} recovered",
    "source_suspect": "Partial catalog from {source}",
    "indicator_threshold": "Watch indicator: {model}",
    "tier_floor": "New floor: {field}",
}
_ORDER = (
    "price_cut", "price_hike", "tier_floor", "new_model", "model_removed",
    "source_stale", "source_suspect", "source_recovered", "indicator_threshold",
)  # fmt: skip


def money(text: str | None) -> str:
    return "?" if text is None else f"${format(Decimal(text).normalize(), 'f')}"


def model_label(row: dict) -> str:
    """`o3 (openai)`; a key that already names its provider (`openai/o3`) stands alone."""
    model, provider = row["model"], row["provider"]
    return model if not provider or model.lower().startswith(provider.lower() + "/") else f"{model} ({provider})"


def count_phrase(counts: Counter) -> str:
    parts = []
    for kind in _ORDER:
        if counts[kind]:
            one, many = _NOUNS[kind]
            parts.append(f"{counts[kind]} {one if counts[kind] == 1 else many}")
    return ", ".join(parts)


def _moves(rows: list[dict]) -> list[list[dict]]:
    """Price alerts gathered per model and direction (its moved fields together), biggest first."""
    by_model: dict[tuple, list[dict]] = {}
    for row in rows:
        by_model.setdefault((row["source"], row["provider"], row["model"], row["kind"]), []).append(row)
    return sorted(by_model.values(), key=lambda group: -max(_size(row["pct_change"]) for row in group))


def _size(pct: float) -> float:
    """How big a move is, as a factor either way: -90 % (x0.1) ranks with +900 % (x10)."""
    return abs(math.log(max(1 + pct / 100, 1e-9)))


def _move_line(group: list[dict]) -> str:
    first = group[0]
    arrow = "▼" if first["kind"] == "price_cut" else "▲"
    fields = "; ".join(
        f"{FIELD_NAMES.get(row['field'], row['field'])} {money(row['old_mtok'])} → {money(row['new_mtok'])} ({row['pct_change']:+g}%)"
        for row in sorted(group, key=lambda row: list(FIELD_NAMES).index(row["field"]))
    )
    return f"{arrow} {model_label(first)}: {fields} per Mtok · {', '.join(first['sources'])}"


def _other_line(row: dict) -> str:
    kind, detail = row["kind"], row["detail"]
    where = ", ".join(row["sources"])
    if kind == "new_model":
        prices = " / ".join(f"{money(None if detail.get(k) is None else str(detail[k]))} {n}" for k, n in (("input_mtok", "in"), ("output_mtok", "out")))
        return f"New: {model_label(row)} at {prices} per Mtok · {where}"
    if kind == "model_removed":
        return f"Removed: {model_label(row)} · no longer listed by {where} since {row['new_value'][:10]}"
    if kind == "source_stale":
        why = f"{detail.get('failures')} failed polls in a row" if detail.get("failures") else "no good poll"
        last = detail.get("last_good_at") or "never"
        error = f"; last error: {detail['error']}" if detail.get("error") else ""
        return f"Source {row['source']} is stale: {why}, last good poll {last}{error}"
    if kind == "source_recovered":
        return f"Source {row['source']} recovered (stale since {row['new_value']})"
    if kind == "source_suspect":
        return (
            f"Source {row['source']} sent a partial catalog ({detail.get('models_seen')} of "
            f"{detail.get('last_good_models')} models); removals from it are held back"
        )
    if kind in ("indicator_threshold", "tier_floor"):  # the sentence was written with the alert
        return detail.get("message") or f"{row['model']}: {row['field']}"
    return f"{kind}: {row['source']} {row['model']}"


def _severity(counts: Counter) -> Severity:
    if counts["source_stale"] or counts["source_suspect"]:
        return "warning"
    if counts["price_cut"]:
        return "good"
    return "info"


def render(rows: list[dict], *, top: int = 8) -> Card:
    """One message for a batch of alert rows (as `storage.alerts.query` returns them)."""
    moves = _moves([row for row in rows if row["kind"] in PRICE_KINDS])
    others = sorted((row for row in rows if row["kind"] not in PRICE_KINDS), key=lambda row: (_ORDER.index(row["kind"]), row["model"]))
    # A model whose input and output moved together is one price cut, not two.
    counts = Counter(group[0]["kind"] for group in moves) + Counter(row["kind"] for row in others)
    lines = [_move_line(group) for group in moves] + [_other_line(row) for row in others]
    shown, rest = lines[:top], lines[top:]
    if rest:
        left = Counter(group[0]["kind"] for group in moves[top:]) + Counter(row["kind"] for row in others[max(0, top - len(moves)):])
        shown.append(f"…and {len(rest)} more: {count_phrase(left)}")
    if len(moves) == 1 and not others:
        group = moves[0]
        biggest = max((row["pct_change"] for row in group), key=abs)
        title = f"{'Price cut' if group[0]['kind'] == 'price_cut' else 'Price rise'}: {model_label(group[0])} {biggest:+g}%"
    elif len(others) == 1 and not moves:
        row = others[0]
        title = _TITLES[row["kind"]].format(model=model_label(row) if row["model"] else "", source=row["source"], field=row["field"])
    else:
        title = count_phrase(counts).capitalize()
    observed = sorted(row["observed_at"] for row in rows)
    span = observed[0][:16].replace("T", " ") + (f" to {observed[-1][:16].replace('T', ' ')}" if observed[-1][:16] != observed[0][:16] else "")
    return Card(
        title=title,
        lines=shown,
        severity=_severity(counts),
        footer=f"Deflation Watch · observed {span} UTC · prices in USD per million tokens",
    )
