"""What `GET /metrics` shows, in the Prometheus text format: polls and their failures, alerts
raised, deliveries by outcome, digests posted and how long commands take to answer.

One registry per running bot (not prometheus_client's global one), so tests can build several.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Command latency buckets, in seconds: Slack and Discord want a first answer within 3.
COMMAND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ns = "deflation_watch"
        self.polls = Counter("polls", "Polls of a price source, by outcome.", ["source", "status"], namespace=ns, registry=self.registry)
        self.poll_failures = Counter("poll_failures", "Polls that failed (fetch or payload error).", ["source"], namespace=ns, registry=self.registry)
        self.last_good_poll = Gauge(
            "source_last_good_poll_timestamp_seconds", "When each source last answered with a usable catalog (Unix time).",
            ["source"], namespace=ns, registry=self.registry,
        )
        self.alerts = Counter("alerts", "Alerts stored, by source.", ["source"], namespace=ns, registry=self.registry)
        self.deliveries = Counter("deliveries", "Outbox messages handed to a chat platform, by outcome.", ["platform", "state"], namespace=ns, registry=self.registry)
        self.digests = Counter("digests", "Weekly digests posted to a channel, by outcome.", ["platform", "state"], namespace=ns, registry=self.registry)
        self.commands = Histogram(
            "command_seconds", "Time from a command's arrival to its answer card.", ["platform", "command"],
            namespace=ns, registry=self.registry, buckets=COMMAND_BUCKETS,
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
