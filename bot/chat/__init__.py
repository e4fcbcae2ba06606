"""Chat platforms. Everything Slack- or Discord-specific lives in this package and nowhere else."""
