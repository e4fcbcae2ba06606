"""`python -m benchmarks [--quick] [--out FILE]`: run every metric, print a table, write JSON.

The full run uses the real snapshots in ../shared/data beside the checkout. `--quick` runs the
same code on the small fixtures under tests/ with few repeats: the smoke run in `make test`
that keeps the harness from rotting (its numbers are not the goals' numbers).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import sys
from pathlib import Path

from rich.console import Console

from benchmarks import storage_bench
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


def metrics(quick: bool) -> list:
    payloads = {name: (FIXTURES / file).read_bytes() for name, file in QUICK_PAYLOADS.items()}
    if quick:
        catalogue, repeats, replay_dir = payloads["litellm"], 3, None
        latencies = {name: 0.05 * (i + 1) for i, name in enumerate(payloads)}
    else:
        if not SHARED.is_dir():
            sys.exit(f"benchmarks need the real snapshots in {SHARED}; use --quick without them")
        # The newest LiteLLM snapshot: 1 701 keys, of which about 1 460 are priced models.
        catalogue = gzip.decompress(sorted((SHARED / "replay" / "litellm").glob("*.json.gz"))[-1].read_bytes())
        repeats, replay_dir, latencies = 50, SHARED / "replay" / "litellm", storage_bench.LATENCIES
    chosen = [
        functools.partial(storage_bench.no_change_poll, catalogue, repeats),
        functools.partial(storage_bench.ingest_cpu, catalogue, repeats),
        functools.partial(storage_bench.poll_cycle, payloads, latencies),
    ]
    if replay_dir is not None:
        chosen.append(functools.partial(storage_bench.replay_history, replay_dir))
    for metric in chosen:
        functools.update_wrapper(metric, metric.func)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, few repeats: a smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"), help="where to write the JSON results")
    args = parser.parse_args()
    run(metrics(args.quick), args.out, Console())


if __name__ == "__main__":
    main()
