"""The sensor interface: hooks the app calls at its moments.

A sensor observes: it is told about fetched batches, commits, sends, dead
letters, agent errors, recovery progress and rebalances, and keeps whatever
statistics it likes. The `Monitor` is one (the web views read it), the
Prometheus exporter another; StatsD or OpenTelemetry plug in the same way::

    class StatsdSensor(Sensor):
        def on_commit(self, offsets, seconds):
            statsd.timing("faust.commit", seconds * 1000)

    app.sensors.add(StatsdSensor())

Hooks are called per batch, per commit, per send, never per event, and a
sensor that raises is logged and skipped, never allowed to stop the app.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ..types import TP

__all__ = ["Sensor", "SensorDelegate"]

logger = logging.getLogger(__name__)


class Sensor:
    """Every hook of the app; each does nothing unless overridden."""

    def on_batch(self, tp: TP, count: int) -> None:
        """``count`` messages of ``tp`` were fetched and handed to streams."""

    def on_commit(self, offsets: Mapping[TP, int], seconds: float) -> None:
        """Offsets were committed; the commit (with its flush) took ``seconds``."""

    def on_send(self, topic: str, seconds: float, error: BaseException | None) -> None:
        """A message to ``topic`` was acknowledged (or failed) after ``seconds``."""

    def on_sends(
        self, topic: str, count: int, seconds: float, error: BaseException | None
    ) -> None:
        """``count`` messages to ``topic`` were acknowledged (or failed) together.

        The producer delivers in batches and reports each batch once, with
        the time since its first message was accepted. By default this calls
        `on_send` ``count`` times, so a sensor only needs `on_send`; one that
        can count in bulk (the `Monitor`) overrides this too.
        """
        for _ in range(count):
            self.on_send(topic, seconds, error)

    def on_dead_letter(self, topic: str) -> None:
        """An event of ``topic`` went to the dead-letter topic."""

    def on_agent_error(self, agent: str, exc: BaseException) -> None:
        """Agent ``agent`` raised while processing an event."""

    def on_recovery_progress(self, progress: Mapping[Any, Mapping[str, int]]) -> None:
        """Recovery of table partitions: ``{(table, partition): {done, left}}``."""

    def on_rebalance_start(self) -> None:
        """A rebalance began."""

    def on_rebalance_complete(self, seconds: float) -> None:
        """The rebalance that took ``seconds`` is over (tables recovered)."""


class SensorDelegate(Sensor):
    """``app.sensors``: calls every hook on every added sensor."""

    def __init__(self, *sensors: Sensor) -> None:
        self._sensors: list[Sensor] = list(sensors)

    def add(self, sensor: Sensor) -> Sensor:
        if not isinstance(sensor, Sensor):
            raise TypeError(
                f"app.sensors.add() takes a Sensor (django_faust.sensors.Sensor), "
                f"got {sensor!r}."
            )
        if sensor not in self._sensors:
            self._sensors.append(sensor)
        return sensor

    def remove(self, sensor: Sensor) -> None:
        self._sensors.remove(sensor)

    def __iter__(self) -> Iterator[Sensor]:
        return iter(self._sensors)

    def __len__(self) -> int:
        return len(self._sensors)

    def _each(self, hook: str, *args: Any) -> None:
        for sensor in self._sensors:
            try:
                getattr(sensor, hook)(*args)
            except Exception:
                logger.exception("Sensor %r failed in %s", sensor, hook)

    def on_batch(self, tp: TP, count: int) -> None:
        self._each("on_batch", tp, count)

    def on_commit(self, offsets: Mapping[TP, int], seconds: float) -> None:
        self._each("on_commit", offsets, seconds)

    def on_send(self, topic: str, seconds: float, error: BaseException | None) -> None:
        self._each("on_send", topic, seconds, error)

    def on_sends(
        self, topic: str, count: int, seconds: float, error: BaseException | None
    ) -> None:
        self._each("on_sends", topic, count, seconds, error)

    def on_dead_letter(self, topic: str) -> None:
        self._each("on_dead_letter", topic)

    def on_agent_error(self, agent: str, exc: BaseException) -> None:
        self._each("on_agent_error", agent, exc)

    def on_recovery_progress(self, progress: Mapping[Any, Mapping[str, int]]) -> None:
        self._each("on_recovery_progress", progress)

    def on_rebalance_start(self) -> None:
        self._each("on_rebalance_start")

    def on_rebalance_complete(self, seconds: float) -> None:
        self._each("on_rebalance_complete", seconds)
