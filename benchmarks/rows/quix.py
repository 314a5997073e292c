"""Row 2: quixstreams (latest from PyPI), in ``benchmarks/.venvs/quix``.

One `Application` with a StreamingDataFrame over the input topic, values
decoded by quixstreams' ``json`` deserializer; offsets are committed every
`COMMIT_INTERVAL` seconds (its checkpoint, which flushes the producer first).

* W1: ``sdf.update(count)``, counting per key in a plain dict.
* W2: ``sdf.apply(transform).to_topic(output)`` (json serializer, the input
  key kept).
* W3: ``sdf.update(count, stateful=True)`` keeping the count in quixstreams'
  State (RocksDB with a changelog topic of its own naming, which ``run.py``
  does not read back; the final counts are checked).

The code calls ``app.stop()`` once it has seen the last event. W1's timed
section ends at that event; W2's and W3's when the final checkpoint (producer
flush, commit) is done, just before the consumer leaves the group.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import quixstreams
from common import (
    COMMIT_INTERVAL,
    LINGER_MS,
    SESSION_TIMEOUT_MS,
    Clock,
    RowArgs,
    RowResult,
    row_main,
    transform,
)
from quixstreams import Application
from quixstreams.state import State


def make_app(args: RowArgs, state_dir: str) -> Application:
    """The Application, with settings as in every row."""
    return Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL,
        consumer_extra_config={
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 3,
        },
        producer_extra_config={"linger.ms": LINGER_MS},
        state_dir=state_dir,
        loglevel="WARNING",
    )


def end_when_consumer_closes(app: Application, clock: Clock) -> None:
    """Mark the end of the timed section when the app closes its consumer.

    The consumer is closed right after the final checkpoint, so the mark
    falls after the last output record was acknowledged.
    """
    consumer = app._consumer
    close = consumer.close

    def close_and_mark() -> None:
        clock.done()
        close()

    consumer.close = close_and_mark


class Tally:
    """Counts events, marks the first one and stops the app after the last."""

    def __init__(self, app: Application, clock: Clock, events: int) -> None:
        self.app = app
        self.clock = clock
        self.events = events
        self.seen = 0

    def tick(self) -> bool:
        """Count one event; True if it was the last."""
        if not self.seen:
            self.clock.first_event()
        self.seen += 1
        if self.seen == self.events:
            self.app.stop()
            return True
        return False


def counter(tally: Tally, counts: dict[str, int]) -> Callable[[Any], None]:
    """W1: count per key."""

    def count(value: dict[str, Any]) -> None:
        key = value["key"]
        counts[key] = counts.get(key, 0) + 1
        if tally.tick():
            tally.clock.done()

    return count


def transformer(tally: Tally) -> Callable[[Any], Any]:
    """W2: the transformation (the sdf encodes and produces)."""

    def apply(value: dict[str, Any]) -> dict[str, Any]:
        tally.tick()
        return transform(value)

    return apply


def state_counter(tally: Tally, final: dict[str, int]) -> Callable[[Any, State], None]:
    """W3: count per key in State; ``final`` keeps the last count for checking."""

    def count(value: dict[str, Any], state: State) -> None:
        total = state.get("count", 0) + 1
        state.set("count", total)
        final[value["key"]] = total
        tally.tick()

    return count


def run(args: RowArgs) -> RowResult:
    """Run one workload and time it."""
    clock = Clock()
    state_dir = tempfile.mkdtemp(prefix="bench-quix-")
    counts: dict[str, int] = {}
    try:
        app = make_app(args, state_dir)
        tally = Tally(app, clock, args.events)
        sdf = app.dataframe(app.topic(args.input_topic, value_deserializer="json"))
        if args.workload == "W1":
            sdf.update(counter(tally, counts))
        elif args.workload == "W2":
            sdf = sdf.apply(transformer(tally))
            sdf.to_topic(app.topic(args.output_topic, value_serializer="json"))
            end_when_consumer_closes(app, clock)
        else:
            sdf.update(state_counter(tally, counts), stateful=True)
            end_when_consumer_closes(app, clock)
        app.run()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    return clock.result(
        args.events,
        counts=counts,
        output=args.output_topic if args.workload == "W2" else "",
        library=f"quixstreams {quixstreams.__version__}",
        notes="polls one message at a time (librdkafka prefetches)",
    )


if __name__ == "__main__":
    row_main(run)
