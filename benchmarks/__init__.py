"""Deflation Watch's speed and size goals, measured: `make bench` (or `python -m benchmarks`)."""
