"""`python -m benchmarks [--quick] [--out FILE]`: run every metric, print a table, write JSON.

The full run uses the real snapshots in ../shared/data beside the checkout, and a ten-year
database synthesised from them (`benchmarks.synth`, cached in .bench-cache/). `--quick` runs
the same code on the small fixtures under tests/ (a one-year database of 60 models per source)
with few repeats: the smoke run in `make test` that keeps the harness from rotting (its numbers
are not the goals' numbers).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import sys
from pathlib import Path

from rich.console import Console

from benchmarks import commands_bench, digest_bench, memory_bench, storage_bench, synth
from benchmarks.harness import run

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures"
QUICK_PAYLOADS = {
    "openrouter": "openrouter/models-2025-02-08.json",
    "litellm": "litellm/prices-2025-09-01.json",
    "genai-prices": "genai-prices/v2-data-2026-08-21.json",
    "llm-prices": "llm-prices/current-v1-2026-08-05.json",
    "models-dev": "models-dev/api-2026-05-21.json",
}
#: What the synthetic databases are made from: each source's real snapshot series.
REPLAYED = ("litellm", "genai-prices", "llm-prices", "models-dev")


def series(quick: bool) -> dict[str, list[Path]]:
    if quick:
        return {name: sorted((FIXTURES / name).glob("*.json")) for name in synth.SOURCE_NAMES}
    found = {name: sorted((SHARED / "replay" / name).glob("*.json.gz")) for name in REPLAYED}
    found["openrouter"] = sorted((SHARED / "fixtures").glob("openrouter-models-*.json"))
    return found


def metrics(quick: bool, memory_ops: int | None = None) -> list:
    payloads = {name: (FIXTURES / file).read_bytes() for name, file in QUICK_PAYLOADS.items()}
    if quick:
        catalogue, repeats, replay_dir = payloads["litellm"], 3, None
        latencies = {name: 0.05 * (i + 1) for i, name in enumerate(payloads)}
        spec = synth.Spec(years=1, models=60)
        rounds, names, changes, digests, polls, asked, every, warm_up = 2, 2, 1, 1, 20, 20, 10, 10
    else:
        if not SHARED.is_dir():
            sys.exit(f"benchmarks need the real snapshots in {SHARED}; use --quick without them")
        # The newest LiteLLM snapshot: 1 701 keys, of which about 1 460 are priced models.
        catalogue = gzip.decompress(sorted((SHARED / "replay" / "litellm").glob("*.json.gz"))[-1].read_bytes())
        repeats, replay_dir, latencies = 50, SHARED / "replay" / "litellm", storage_bench.LATENCIES
        spec = synth.Spec()
        rounds, names, changes, digests, polls, asked, every, warm_up = 50, 6, 5, 5, 1000, 1000, 50, memory_bench.WARM_UP
    if memory_ops:
        polls = asked = memory_ops
    history = functools.partial(synth.cached, spec, series(quick))  # built on first use, then from .bench-cache/
    chosen = [
        functools.partial(storage_bench.no_change_poll, catalogue, repeats),
        functools.partial(storage_bench.ingest_cpu, catalogue, repeats),
        functools.partial(storage_bench.poll_cycle, payloads, latencies),
    ]
    if replay_dir is not None:
        chosen.append(functools.partial(storage_bench.replay_history, replay_dir))
    chosen += [
        lazy(commands_bench.reply_times, history, rounds, names, changes),
        lazy(digest_bench.weekly_digest, history, digests),
        lazy(memory_bench.resident_memory, history, polls, asked, every, warm_up),
    ]
    for metric in chosen:
        functools.update_wrapper(metric, metric.func)
    return chosen


def lazy(metric, database, *args) -> functools.partial:  # noqa: ANN001
    """`metric(database(), *args)`, named after `metric`: the database is made when it runs."""

    def call(*_: object) -> list:
        return metric(database(), *args)

    functools.update_wrapper(call, metric)
    return functools.partial(call)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, few repeats: a smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"), help="where to write the JSON results")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only the metric functions with this name (repeatable), e.g. reply_times")
    parser.add_argument("--memory-ops", type=int, metavar="N",
                        help="polls and commands of the memory run after its warm-up (default 1000 each; 20 with --quick)")
    args = parser.parse_args()
    chosen = [m for m in metrics(args.quick, args.memory_ops) if not args.only or m.__name__ in args.only]
    run(chosen, args.out, Console() if sys.stdout.isatty() else Console(width=110))  # piped: wide enough for the names


if __name__ == "__main__":
    main()
