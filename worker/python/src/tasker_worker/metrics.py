"""Prometheus metrics of a worker, served on ``/metrics`` beside the health
endpoints: the same families and labels as the Rust worker records, so one
dashboard shows every service. Labels are namespaces, template names, step
names and fixed codes, bounded by the templates, never a task id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest

# 0.5 ms to about 35 min, as the Rust worker's buckets.
_BUCKETS = tuple(0.0005 * 2**i for i in range(22))
_STEP_LABELS = ("namespace", "template", "step")

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Every metric a worker records, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.step_duration = Histogram(
            "tasker_step_duration_seconds",
            "How long step handlers ran",
            _STEP_LABELS,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "tasker_queue_wait_seconds",
            "From a step's publish to its handler's start",
            _STEP_LABELS,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "tasker_dead_letters",
            "Messages moved to the dead-letter queue",
            ("queue", "reason"),
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The OpenMetrics text of every metric."""
        # The OpenMetrics encoder is not annotated; it returns bytes.
        text: bytes = generate_latest(self.registry)  # type: ignore[no-untyped-call]
        return text


METRICS = Metrics()
"""The process's metrics, like Prometheus's default registry: one per process."""
