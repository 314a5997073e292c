"""The Monitor: statistics about a running app, kept cheaply.

It is the first sensor of every app (`~.base.Sensor`): counters are
updated per batch, per commit, per send and per error, never per event, so
the stream loop stays free of bookkeeping. Per-agent event totals are read
from the streams when someone asks; rates are computed between snapshots.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .base import Sensor

if TYPE_CHECKING:
    from ..app.base import App
    from ..types import TP

__all__ = ["Latency", "Monitor"]

#: Latency samples kept per kind (commit, send) for percentiles.
SAMPLES = 1000


class Latency:
    """The last `SAMPLES` durations of something, and their summary."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=SAMPLES)
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.count += 1
        self.total += seconds

    def add_many(self, seconds: float, count: int) -> None:
        """``count`` durations of ``seconds`` (a batch delivered together).

        One sample stands for the batch in the percentiles; the count and
        the average weigh every member.
        """
        self.samples.append(seconds)
        self.count += count
        self.total += seconds * count

    def asdict(self) -> dict[str, float | int | None]:
        ordered = sorted(self.samples)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        return {
            "count": self.count,
            "avg_seconds": self.total / self.count if self.count else None,
            "p50_seconds": pct(0.50),
            "p99_seconds": pct(0.99),
            "max_seconds": ordered[-1] if ordered else None,
        }


class Monitor(Sensor):
    """Counts messages, commits, sends and errors; reports a snapshot."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.started_at = time.time()
        self.commits = 0
        self.last_commit: dict[TP, int] = {}
        #: Messages fetched per partition (per batch, by its size).
        self.messages: Counter[TP] = Counter()
        self.sends: Counter[str] = Counter()
        self.send_errors: Counter[str] = Counter()
        self.commit_latency = Latency()
        self.send_latency = Latency()
        self.dead_letters: Counter[str] = Counter()
        self.agent_errors: Counter[str] = Counter()
        self.recovery: dict[str, dict[str, int]] = {}
        self.rebalances = 0
        self.last_rebalance_seconds: float | None = None
        # The previous snapshot's counts, for rates.
        self._last_at = time.monotonic()
        self._last_messages: Counter[TP] = Counter()
        self._last_agent_events: dict[str, int] = {}

    # -- hooks --------------------------------------------------------------

    def on_batch(self, tp: TP, count: int) -> None:
        self.messages[tp] += count

    def on_commit(self, offsets: Mapping[TP, int], seconds: float = 0.0) -> None:
        self.commits += 1
        self.last_commit.update(offsets)
        self.commit_latency.add(seconds)

    def on_send(self, topic: str, seconds: float, error: BaseException | None) -> None:
        if error is None:
            self.sends[topic] += 1
            self.send_latency.add(seconds)
        else:
            self.send_errors[topic] += 1

    def on_sends(
        self, topic: str, count: int, seconds: float, error: BaseException | None
    ) -> None:
        if error is None:
            self.sends[topic] += count
            self.send_latency.add_many(seconds, count)
        else:
            self.send_errors[topic] += count

    def on_dead_letter(self, topic: str) -> None:
        self.dead_letters[topic] += 1

    def on_agent_error(self, agent: str, exc: BaseException) -> None:
        self.agent_errors[agent] += 1

    def on_recovery_progress(self, progress: Mapping[Any, Mapping[str, int]]) -> None:
        """Records done and left per table partition while recovering."""
        self.recovery = {
            f"{name}[{partition}]": dict(counts)
            for (name, partition), counts in progress.items()
        }

    def on_rebalance_complete(self, seconds: float) -> None:
        self.rebalances += 1
        self.last_rebalance_seconds = seconds

    # -- reading ------------------------------------------------------------

    def agent_events(self) -> dict[str, int]:
        """Events each agent's streams have taken, in total."""
        return {
            name: sum(actor.stream.events_total for actor in agent.actors)
            for name, agent in self.app.agents.items()
        }

    def rates(self) -> tuple[dict[str, float], dict[str, float]]:
        """Messages/s per partition and events/s per agent since last asked."""
        now = time.monotonic()
        elapsed = max(now - self._last_at, 1e-6)
        per_tp = {
            f"{tp.topic}[{tp.partition}]": (n - self._last_messages.get(tp, 0))
            / elapsed
            for tp, n in sorted(self.messages.items())
        }
        events = self.agent_events()
        per_agent = {
            name: (n - self._last_agent_events.get(name, 0)) / elapsed
            for name, n in events.items()
        }
        self._last_at = now
        self._last_messages = Counter(self.messages)
        self._last_agent_events = events
        return per_tp, per_agent

    def asdict(self) -> dict[str, Any]:
        """A JSON-ready snapshot, for the CLI, the admin and the web views.

        Rates are per second since the previous snapshot.
        """
        app = self.app
        consumer = app._consumer
        per_tp, per_agent = self.rates()
        events = self.agent_events()
        tables = app.tables
        return {
            "app_id": app.conf.id,
            "uptime": time.time() - self.started_at,
            "messages_received": consumer.messages_received if consumer else 0,
            "messages": {
                f"{tp.topic}[{tp.partition}]": n
                for tp, n in sorted(self.messages.items())
            },
            "messages_per_second": per_tp,
            "commits": self.commits,
            "commit_latency": self.commit_latency.asdict(),
            "committed": {
                f"{tp.topic}[{tp.partition}]": o
                for tp, o in sorted(self.last_commit.items())
            },
            "sends": dict(self.sends),
            "send_errors": dict(self.send_errors),
            "send_latency": self.send_latency.asdict(),
            "dead_letters": dict(self.dead_letters),
            "recovery": self.recovery,
            "recovered": tables.recovered.is_set(),
            "changelog_records_recovered": tables.total_recovered,
            "standby_records_applied": tables.standby_applied,
            "rebalances": self.rebalances,
            "last_rebalance_seconds": self.last_rebalance_seconds,
            "agents": {
                name: {
                    "concurrency": agent.concurrency,
                    "errors": agent.errors_total,
                    "events": events.get(name, 0),
                    "events_per_second": per_agent.get(name, 0.0),
                }
                for name, agent in app.agents.items()
            },
        }
