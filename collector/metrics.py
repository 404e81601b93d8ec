"""Prometheus metrics, in a registry per app (so tests can run many apps)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from collector import logs


class Metrics:
    """The counters and histograms the server updates as it works."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "collector_webhook_events",
            "Telnyx webhooks by event type and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "collector_webhook_ack_seconds",
            "Time from receiving a webhook to acknowledging it",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
            registry=self.registry,
        )
        self.commands = Counter(
            "collector_telnyx_commands",
            "Telnyx commands by action and outcome",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "collector_delivery_attempts",
            "Sink delivery attempts by sink and outcome (delivered, retried, dead)",
            ["sink", "outcome"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "collector_store_commit_seconds",
            "Time of each SQLite group commit's COMMIT: the WAL write and its fsync",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.committed_jobs = Counter(
            "collector_store_committed_jobs",
            "Store jobs made durable (per commit: this over collector_store_commit_seconds_count)",
            registry=self.registry,
        )
        self.dead_events = Counter(
            "collector_dead_events",
            "Events acknowledged but never applied (they failed for a reason a redelivery"
            " cannot change; see GET /api/events/dead), by event type",
            ["type"],
            registry=self.registry,
        )
        # with a store several instances share: this instance's claims, by kind (command,
        # delivery, deadline); the instance is the process /metrics is scraped from
        self.claims = Counter(
            "collector_claims",
            "Work this instance claimed from the shared store, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.claims_taken_over = Counter(
            "collector_claims_taken_over",
            "Claims that took work over from another instance whose lease had run out",
            ["kind"],
            registry=self.registry,
        )
        self.lease_expiries = Counter(
            "collector_lease_expiries",
            "Claims of this instance whose lease ran out before it renewed or finished them"
            " (its event loop or the database stalled): another instance may take them over",
            ["kind"],
            registry=self.registry,
        )
        self._children: dict[tuple[Counter, str, str], Any] = {}
        # bytes held by each bounded cache or buffer, and their limits (collector.bounded)
        self.memory_sources: list[Callable[[], Mapping[str, int]]] = []
        self.memory_limits: dict[str, int] = {}

    def count(self, counter: Counter, first: str, second: str) -> None:
        """`counter.labels(first, second).inc()`, with each label pair's child looked up once
        (labels() takes a lock and validates its arguments on every call)."""
        key = (counter, first, second)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(first, second)
        child.inc()

    def count_claims_for(self, kinds: tuple[str, ...]) -> None:
        """Show the claim counters of these kinds from the start, at 0."""
        for kind in kinds:
            for counter in (self.claims, self.claims_taken_over, self.lease_expiries):
                counter.labels(kind)

    def count_claim(self, kind: str, taken_from: str | None) -> None:
        """A claim made (`taken_from`: the instance whose lapsed lease it took over)."""
        self.claims.labels(kind).inc()
        if taken_from is not None:
            self.claims_taken_over.labels(kind).inc()

    def count_lease_expiry(self, kind: str) -> None:
        self.lease_expiries.labels(kind).inc()

    def count_dead(self, event_type: str) -> None:
        """An event recorded as dead (the engine's `on_dead`)."""
        self.dead_events.labels(event_type).inc()

    def observe_commit(self, seconds: float, jobs: int) -> None:
        """The store's writer thread reports each group commit (prometheus_client locks)."""
        self.commit_seconds.observe(seconds)
        self.committed_jobs.inc(jobs)

    async def render(self, store: Any) -> bytes:
        """The exposition text: the live counters plus gauges read from the store now."""
        sessions = await store.count_sessions_by_state()
        counts, oldest = await store.delivery_stats()
        registry = CollectorRegistry()
        registry.register(_Snapshot(sessions, counts, oldest))
        registry.register(_Memory(self.memory_sources, self.memory_limits))
        registry.register(_DroppedLogLines())
        return generate_latest(self.registry) + generate_latest(registry)


class _Snapshot:
    """Gauges read from the store at scrape time."""

    def __init__(
        self,
        sessions: dict[str, int],
        deliveries: dict[tuple[str, str], int],
        oldest_pending: float | None,
    ) -> None:
        self.sessions = sessions
        self.deliveries = deliveries
        self.oldest_pending = oldest_pending

    def collect(self) -> Any:
        g = GaugeMetricFamily("collector_sessions", "Sessions by state", labels=["state"])
        for state, n in sorted(self.sessions.items()):
            g.add_metric([state], n)
        yield g
        d = GaugeMetricFamily(
            "collector_deliveries", "Deliveries by sink and state", labels=["sink", "state"]
        )
        for (sink, state), n in sorted(self.deliveries.items()):
            d.add_metric([sink, state], n)
        yield d
        age = 0.0 if self.oldest_pending is None else max(0.0, time.time() - self.oldest_pending)
        yield GaugeMetricFamily(
            "collector_oldest_pending_delivery_seconds",
            "Age of the oldest delivery not yet delivered",
            value=age,
        )


class _DroppedLogLines:
    """The log lines this process could not write (collector.logs counts them)."""

    def collect(self) -> Any:
        yield CounterMetricFamily(
            "collector_log_lines_dropped",
            "Log lines dropped because stderr could not be written (full disk, closed pipe)",
            value=logs.dropped_lines(),
        )


class _Memory:
    """Gauges of the bytes each bounded cache or buffer holds, and of its limit."""

    def __init__(
        self, sources: list[Callable[[], Mapping[str, int]]], limits: Mapping[str, int]
    ) -> None:
        self.sources = sources
        self.limits = limits

    def collect(self) -> Any:
        held: dict[str, int] = {}
        for source in self.sources:
            held.update(source())
        g = GaugeMetricFamily(
            "collector_memory_bytes",
            "Bytes held in memory by each bounded cache or buffer (estimated payload)",
            labels=["cache"],
        )
        for name, n in sorted(held.items()):
            g.add_metric([name], n)
        yield g
        lim = GaugeMetricFamily(
            "collector_memory_limit_bytes",
            "The byte limit of each bounded cache or buffer (live_subscriber_queues: each)",
            labels=["cache"],
        )
        for name, n in sorted(self.limits.items()):
            lim.add_metric([name], n)
        yield lim
