"""The Monitor: statistics about a running app, kept cheaply.

Counters are updated per batch, per commit and per error, never per event:
the stream loop stays free of bookkeeping. Per-event totals are derived
from the consumer and the streams when someone asks.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ..app.base import App
    from ..types import TP

__all__ = ["Monitor"]


class Monitor:
    """Counts commits, dead letters and agent errors; reports a snapshot."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.started_at = time.time()
        self.commits = 0
        self.last_commit: dict[TP, int] = {}
        self.dead_letters: Counter[str] = Counter()
        self.recovery: dict[str, dict[str, int]] = {}

    def on_commit(self, offsets: Mapping[TP, int]) -> None:
        self.commits += 1
        self.last_commit.update(offsets)

    def on_dead_letter(self, topic: str) -> None:
        self.dead_letters[topic] += 1

    def on_recovery_progress(self, progress: Mapping[Any, Mapping[str, int]]) -> None:
        """Records done and left per table partition while recovering."""
        self.recovery = {
            f"{name}[{partition}]": dict(counts)
            for (name, partition), counts in progress.items()
        }

    def asdict(self) -> dict[str, Any]:
        """A JSON-ready snapshot, for the CLI, the admin and the web views."""
        app = self.app
        consumer = app._consumer
        return {
            "app_id": app.conf.id,
            "uptime": time.time() - self.started_at,
            "messages_received": consumer.messages_received if consumer else 0,
            "commits": self.commits,
            "committed": {
                f"{tp.topic}[{tp.partition}]": o
                for tp, o in sorted(self.last_commit.items())
            },
            "dead_letters": dict(self.dead_letters),
            "recovery": self.recovery,
            "agents": {
                name: {
                    "concurrency": agent.concurrency,
                    "errors": agent.errors_total,
                    "events": sum(a.stream.events_total for a in agent.actors),
                }
                for name, agent in app.agents.items()
            },
        }
