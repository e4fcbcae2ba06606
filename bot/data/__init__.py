"""Data shipped with the package: the real price history (`history.json.gz`) and tiers."""
