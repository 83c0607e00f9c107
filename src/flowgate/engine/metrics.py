"""Prometheus metrics: every series ``GET /metrics`` serves, defined once.

Counters and histograms live in this process's registry and are incremented where the thing
happens (run creation, run end, step end, lease renewal, HTTP). Each server process exposes its
own; Prometheus scrapes every process and ``sum`` adds them up. Gauges about the queue are read
from the database at scrape time (:class:`QueueSnapshot`), so every process reports the same
values. Labels stay bounded: workflow ids, step types, statuses, route templates; never run ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

#: Process-wide by nature (Prometheus counts per process); a registry of our own keeps other
#: libraries' default metrics out.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

RUNS_STARTED = Counter(
    "flowgate_runs_started_total",
    "Runs created, by workflow and source (api, webhook, schedule, rerun, child, ...)",
    ["workflow", "source"],
    registry=REGISTRY,
)
RUNS_FINISHED = Counter(
    "flowgate_runs_finished_total",
    "Runs the engine ended, by workflow and final status",
    ["workflow", "status"],
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "flowgate_step_duration_seconds",
    "Duration of finished step attempts, by step type and status",
    ["step_type", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)
LEASE_RENEWALS = Counter(
    "flowgate_lease_renewals_total",
    "Run lease renewals, by result (renewed, lost, error)",
    ["result"],
    registry=REGISTRY,
)
WORKER_LOST = Counter(
    "flowgate_worker_lost_total",
    "Step attempts taken over from a lost worker (recorded WORKER_LOST), by step type",
    ["step_type"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "flowgate_http_request_duration_seconds",
    "HTTP request latency, by method, route template and status class",
    ["method", "route", "status"],
    registry=REGISTRY,
)

#: The ``route`` label of a request no route matched (a 404): never the raw path.
UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    status_class = f"{status // 100}xx" if 100 <= status < 600 else "unknown"
    HTTP_DURATION.labels(method, route, status_class).observe(seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSnapshot:
    """The database-wide gauges: runs waiting for a concurrency slot (``queued``) or for a
    worker (``pending``), the age of the oldest of each, and waiting event triggers."""

    counts: dict[str, int]
    oldest_age_secs: dict[str, float]
    waiting_event_triggers: int


def render(snapshot: QueueSnapshot | None) -> bytes:
    """The exposition text: this process's counters, then the gauges (absent when the database
    did not answer)."""
    body = generate_latest(REGISTRY)
    if snapshot is None:
        return body
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(_SnapshotCollector(snapshot))
    return body + generate_latest(gauges)


class _SnapshotCollector:
    def __init__(self, snapshot: QueueSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> list[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "flowgate_queue_depth",
            "Runs not yet started: queued (held by a concurrency limit) or pending (for a worker)",
            labels=["status"],
        )
        age = GaugeMetricFamily(
            "flowgate_queue_oldest_age_seconds",
            "Age of the oldest queued or pending run (0 when there is none)",
            labels=["status"],
        )
        for status, count in sorted(self.snapshot.counts.items()):
            depth.add_metric([status], count)
            age.add_metric([status], self.snapshot.oldest_age_secs.get(status, 0.0))
        waiting = GaugeMetricFamily(
            "flowgate_event_triggers_waiting", "Event triggers waiting for their event"
        )
        waiting.add_metric([], self.snapshot.waiting_event_triggers)
        return [depth, age, waiting]
