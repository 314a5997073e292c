"""The Prometheus exporter: a sensor, and the ``metrics/`` text.

Needs the ``prometheus`` extra (``pip install django-faust[prometheus]``).
Counters and histograms are kept by `PrometheusSensor` from the app's sensor
hooks (per batch, commit, send, error); gauges (consumer lag, table keys,
recovery) are read from the running app at scrape time. Every series is
listed in the "Monitoring" page of the docs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from ..types import TP
from .base import Sensor

try:
    import prometheus_client
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        Metric,
    )
except ImportError:  # pragma: no cover - checked where used
    prometheus_client = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ..app.base import App

__all__ = ["PrometheusSensor", "exposition", "sensor_for"]

#: Latency buckets in seconds: sub-millisecond sends to multi-second commits.
BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)


def _need_client() -> None:
    if prometheus_client is None:
        raise ImproperlyConfigured(
            "metrics/ needs the prometheus_client library: "
            "pip install 'django-faust[prometheus]'."
        )


class PrometheusSensor(Sensor):
    """Counters and histograms of one app, in a registry of its own."""

    def __init__(self, app: App) -> None:
        _need_client()
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "faust_messages_received",
            "Messages fetched from the broker and handed to streams.",
            ["topic", "partition"],
            registry=r,
        )
        self.commits = Counter(
            "faust_commits", "Offset commits of the consumer group.", registry=r
        )
        self.commit_latency = Histogram(
            "faust_commit_latency_seconds",
            "Time of a commit: flushing tables and producer, then committing.",
            buckets=BUCKETS,
            registry=r,
        )
        self.send_latency = Histogram(
            "faust_send_latency_seconds",
            "Time from handing a batch's first message to the producer to the "
            "broker's ack of the batch (one sample per delivered batch).",
            ["topic"],
            buckets=BUCKETS,
            registry=r,
        )
        self.sends = Counter(
            "faust_sends",
            "Messages the broker acknowledged.",
            ["topic"],
            registry=r,
        )
        self.send_errors = Counter(
            "faust_send_errors",
            "Messages the broker did not accept.",
            ["topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "faust_dead_letters",
            "Events sent to the dead-letter topic, by source topic.",
            ["topic"],
            registry=r,
        )
        self.agent_errors = Counter(
            "faust_agent_errors",
            "Exceptions raised by agents while processing events.",
            ["agent"],
            registry=r,
        )
        self.rebalances = Counter(
            "faust_rebalances", "Completed consumer group rebalances.", registry=r
        )
        self.rebalance_duration = Histogram(
            "faust_rebalance_duration_seconds",
            "Time from a rebalance's start to its tables being recovered.",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        r.register(_AppCollector(app))

    def on_batch(self, tp: TP, count: int) -> None:
        self.messages.labels(tp.topic, str(tp.partition)).inc(count)

    def on_commit(self, offsets: Mapping[TP, int], seconds: float) -> None:
        self.commits.inc()
        self.commit_latency.observe(seconds)

    def on_send(self, topic: str, seconds: float, error: BaseException | None) -> None:
        self.on_sends(topic, 1, seconds, error)

    def on_sends(
        self, topic: str, count: int, seconds: float, error: BaseException | None
    ) -> None:
        # One histogram sample per batch: an observation costs microseconds
        # (a lock, the buckets), too much to pay per message.
        if error is None:
            self.sends.labels(topic).inc(count)
            self.send_latency.labels(topic).observe(seconds)
        else:
            self.send_errors.labels(topic).inc(count)

    def on_dead_letter(self, topic: str) -> None:
        self.dead_letters.labels(topic).inc()

    def on_agent_error(self, agent: str, exc: BaseException) -> None:
        self.agent_errors.labels(agent).inc()

    def on_rebalance_complete(self, seconds: float) -> None:
        self.rebalances.inc()
        self.rebalance_duration.observe(seconds)


class _AppCollector:
    """Series read from the running app at scrape time."""

    def __init__(self, app: App) -> None:
        self.app = app

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Metric]:
        app = self.app
        events = CounterMetricFamily(
            "faust_agent_events",
            "Events taken by an agent's streams.",
            labels=["agent"],
        )
        for name, count in sorted(app.monitor.agent_events().items()):
            events.add_metric([name], count)
        yield events
        consumer = app._consumer
        running = consumer is not None and consumer.started and not app.client_only
        lag = GaugeMetricFamily(
            "faust_consumer_lag",
            "High watermark minus committed offset, per assigned partition.",
            labels=["topic", "partition"],
        )
        committed = GaugeMetricFamily(
            "faust_consumer_committed_offset",
            "Last committed offset, per assigned partition.",
            labels=["topic", "partition"],
        )
        highwater = GaugeMetricFamily(
            "faust_consumer_highwater_offset",
            "End of the partition's log as last fetched.",
            labels=["topic", "partition"],
        )
        if running:
            assert consumer is not None
            for tp, tracker in sorted(consumer.trackers.items()):
                labels = [tp.topic, str(tp.partition)]
                high = consumer.highwater(tp)
                done = tracker.committed or 0
                committed.add_metric(labels, done)
                if high is not None:
                    highwater.add_metric(labels, high)
                    lag.add_metric(labels, max(0, high - done))
        yield lag
        yield committed
        yield highwater
        keys = GaugeMetricFamily(
            "faust_table_keys", "Keys of a table held (served) here.", labels=["table"]
        )
        held = GaugeMetricFamily(
            "faust_table_partitions",
            "Partitions of a table served here.",
            labels=["table"],
        )
        left = GaugeMetricFamily(
            "faust_table_recovery_remaining",
            "Changelog records left to replay, per recovering table partition.",
            labels=["table", "partition"],
        )
        for table in app.tables.values():
            if running:
                keys.add_metric([table.name], len(table))
                held.add_metric([table.name], len(table.active_partitions or ()))
        for (name, partition), counts in sorted(app.tables.recovery.items()):
            left.add_metric([name, str(partition)], counts.get("left", 0))
        yield keys
        yield held
        yield left
        recovered = GaugeMetricFamily(
            "faust_tables_recovered", "1 once table recovery is done, else 0."
        )
        recovered.add_metric([], 1 if app.tables.recovered.is_set() else 0)
        yield recovered


def sensor_for(app: App) -> PrometheusSensor:
    """The app's Prometheus sensor, added to ``app.sensors`` on first use."""
    for sensor in app.sensors:
        if isinstance(sensor, PrometheusSensor):
            return sensor
    sensor = PrometheusSensor(app)
    app.sensors.add(sensor)
    return sensor


def exposition(app: App) -> tuple[bytes, str]:
    """The app's metrics in the Prometheus text format, and its content type."""
    _need_client()
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(sensor_for(app).registry), CONTENT_TYPE_LATEST
