"""Row 3: faust-streaming 0.15.x, in ``benchmarks/.venvs/faust``.

A Faust app (started with ``await app.start()``, no CLI worker) with one
agent over the input topic, values decoded by Faust's ``json`` serializer;
offsets are committed every `COMMIT_INTERVAL` seconds.

* W1: ``async for value in stream``, counting per key in a plain dict.
* W2: ``async for key, value in stream.items()``, then
  ``await output.send(key=key, value=transform(value))``; after the last
  event the agent awaits ``app.producer.flush()`` (every record acked).
* W3: ``counts = app.Table("counts", default=int)`` and, per event,
  ``counts[value["key"]] += 1``; after the last event the agent awaits
  ``app.producer.flush()``. The changelog is Faust's
  ``<group>-counts-changelog``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from typing import Any

import faust
from common import (
    COMMIT_INTERVAL,
    LINGER_MS,
    MAX_POLL_RECORDS,
    PARTITIONS,
    SESSION_TIMEOUT_MS,
    Clock,
    RowArgs,
    RowResult,
    row_main,
    transform,
)


def make_app(args: RowArgs, datadir: str) -> faust.App:
    """The Faust app, with settings as in every row."""
    return faust.App(
        args.group,
        datadir=datadir,
        broker=f"kafka://{args.bootstrap}",
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=MAX_POLL_RECORDS,
        broker_commit_interval=COMMIT_INTERVAL,
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=SESSION_TIMEOUT_MS / 3000,
        producer_linger=LINGER_MS / 1000,
        topic_partitions=PARTITIONS,
        web_enabled=False,
    )


class Progress:
    """Counts events; sets ``finished`` after the last one."""

    def __init__(self, clock: Clock, events: int) -> None:
        self.clock = clock
        self.events = events
        self.seen = 0
        self.finished = asyncio.Event()

    def tick(self) -> bool:
        """Count one event; True if it was the last."""
        if not self.seen:
            self.clock.first_event()
        self.seen += 1
        return self.seen == self.events

    def finish(self) -> None:
        """End the timed section."""
        self.clock.done()
        self.finished.set()


def add_agent(
    app: faust.App, args: RowArgs, progress: Progress, counts: dict[str, int]
) -> None:
    """The agent of the workload."""
    source = app.topic(args.input_topic, key_serializer="raw", value_serializer="json")
    if args.workload == "W3":
        table = app.Table("counts", default=int, partitions=PARTITIONS)

        @app.agent(source)
        async def tally(stream: Any) -> None:
            async for value in stream:
                table[value["key"]] += 1
                if progress.tick():
                    await app.producer.flush()
                    progress.finish()

    elif args.workload == "W1":

        @app.agent(source)
        async def count(stream: Any) -> None:
            async for value in stream:
                key = value["key"]
                counts[key] = counts.get(key, 0) + 1
                if progress.tick():
                    progress.finish()

    else:
        output = app.topic(
            args.output_topic, key_serializer="raw", value_serializer="json"
        )

        @app.agent(source)
        async def forward(stream: Any) -> None:
            async for key, value in stream.items():
                await output.send(key=key, value=transform(value))
                if progress.tick():
                    await app.producer.flush()
                    progress.finish()


async def run_async(args: RowArgs) -> RowResult:
    """Run one workload and time it."""
    clock = Clock()
    progress = Progress(clock, args.events)
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-faust-") as datadir:
        app = make_app(args, datadir)
        add_agent(app, args, progress, counts)
        await app.start()
        try:
            await progress.finished.wait()
            if args.workload == "W3":  # untimed: for the verification
                counts = dict(app.tables["counts"].items())
        finally:
            await app.stop()
    output = {"W2": args.output_topic, "W3": f"{args.group}-counts-changelog"}
    return clock.result(
        args.events,
        counts=counts,
        output=output.get(args.workload, ""),
        library=f"faust-streaming {faust.__version__}",
    )


def run(args: RowArgs) -> RowResult:
    """Entry point used by `row_main`."""
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(run_async(args))


if __name__ == "__main__":
    row_main(run)
