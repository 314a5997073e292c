"""Row 4: django-faust, in the project's own virtualenv.

A tiny app from ``django_faust.testing.make_app()`` on the ``kafka://``
transport, started with ``running(app)``, with one agent over the input
topic. ``app.topic(name, value_type=None)`` decodes values with the app's
``json`` serializer and keys with ``raw``; offsets of processed events are
committed every `COMMIT_INTERVAL` seconds.

* W1: ``async for value in stream``, counting per key in a plain dict.
* W2: ``async for key, value in stream.items()``, then
  ``await output.send(key=key, value=transform(value))``: the code a Faust
  user writes. ``BENCH_DJANGO_FAUST_SEND=send_soon`` sends with
  ``output.send_soon(...)`` instead, and ``=sink`` has an agent with
  ``sink=[output]`` ``yield`` each transformed value (a sink gets the value
  only, as in Faust: the output records have no key, which ``run.py`` is
  told to accept). After the last event
  the agent awaits ``app.producer.flush()`` (every record acked).
* W3: ``counts = app.Table("counts", default=int)`` and, per event,
  ``counts[value["key"]] += 1`` (the ``key`` field, as the other rows
  count). The table records each change in its changelog
  ``<app id>-counts-changelog``, coalesced per key between commits. After
  the last event the agent awaits ``app.consumer.commit()`` (which sends the
  pending changelog records, waits for the broker, then commits) and
  ``app.tables.flush()`` (a no-op unless the commit found no offset to
  commit): the timed section ends with every change in the changelog.
  ``BENCH_DJANGO_FAUST_STORE=rocksdb`` keeps the table in RocksDB
  (``rocksdb://``, in a temporary DATADIR) instead of memory.

``BENCH_DJANGO_FAUST_VALUE=record`` declares the input (and W2's output)
with ``value_type=BenchEvent``, a `Record` of 7 fields (the event's five,
and two with defaults, ``seen`` and ``note``); ``=record_validated`` the
same record with ``validation=True``. W2's transformation then sets
``value.seen = True``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from typing import Any

from common import (
    COMMIT_INTERVAL,
    LINGER_MS,
    MAX_POLL_RECORDS,
    PARTITIONS,
    SESSION_TIMEOUT_MS,
    Clock,
    RowArgs,
    RowResult,
    resources,
    row_main,
    transform,
)

import django_faust
from django_faust import Record
from django_faust.testing import make_app, running

#: W2: ``send`` (``await topic.send()``, default), ``send_soon`` or ``sink``.
SEND = os.environ.get("BENCH_DJANGO_FAUST_SEND", "send")
#: Table store of W3: ``memory`` (default) or ``rocksdb``.
STORE = os.environ.get("BENCH_DJANGO_FAUST_STORE", "memory")
#: Values as ``dict`` (default), ``record`` or ``record_validated``.
VALUE = os.environ.get("BENCH_DJANGO_FAUST_VALUE", "dict")


class BenchEvent(Record, namespace="bench.Event"):
    """The benchmark's event as a user would declare it: 7 fields."""

    id: int
    key: str
    amount: int
    ts: int
    pad: str
    seen: bool = False
    note: str = ""


class ValidatedBenchEvent(
    BenchEvent, namespace="bench.ValidatedEvent", validation=True
):
    """`BenchEvent` with its field types checked on decoding."""


VALUE_TYPES = {
    "dict": None,
    "record": BenchEvent,
    "record_validated": ValidatedBenchEvent,
}


def value_key(value: Any) -> str:
    """The ``key`` field of a dict or record value."""
    return value["key"] if isinstance(value, dict) else value.key


def transform_any(value: Any) -> Any:
    """W2's transformation, of a dict or a record."""
    if isinstance(value, dict):
        return transform(value)
    value.seen = True
    return value


def build_app(args: RowArgs, **options: Any) -> Any:
    """The app, with settings as in every row."""
    return make_app(
        f"bench-{args.group}",
        broker=f"kafka://{args.bootstrap}",
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=MAX_POLL_RECORDS,
        commit_interval=COMMIT_INTERVAL,
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=SESSION_TIMEOUT_MS / 3000,
        producer_linger=LINGER_MS / 1000,
        topic_partitions=PARTITIONS,
        **options,
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


def add_counter(app: Any, source: Any, progress: Progress, counts: dict) -> None:
    """W1: count per key."""

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for value in stream:
            key = value_key(value)
            counts[key] = counts.get(key, 0) + 1
            if progress.tick():
                progress.finish()


def add_transformer(app: Any, source: Any, output: Any, progress: Progress) -> None:
    """W2: transform and produce with the input key."""

    if SEND == "sink":

        @app.agent(source, sink=[output])
        async def forward_to_sink(stream: Any) -> Any:
            async for value in stream:
                yield transform_any(value)
                if progress.tick():
                    await app.producer.flush()
                    progress.finish()

        return

    @app.agent(source)
    async def forward(stream: Any) -> None:
        async for key, value in stream.items():
            if SEND == "send":
                await output.send(key=key, value=transform_any(value))
            else:
                output.send_soon(key=key, value=transform_any(value))
            if progress.tick():
                await app.producer.flush()
                progress.finish()


def add_table_counter(app: Any, source: Any, table: Any, progress: Progress) -> None:
    """W3: count per key in a changelogged table."""

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for value in stream:
            table[value_key(value)] += 1
            if progress.tick():
                # The commit flushes the table's changelog first; the second
                # flush only matters if there was no offset left to commit.
                await app.consumer.commit()
                await app.tables.flush()
                progress.finish()


async def run_async(args: RowArgs, datadir: str) -> RowResult:
    """Run one workload and time it."""
    clock = Clock()
    progress = Progress(clock, args.events)
    counts: dict[str, int] = {}
    options = {}
    stats: dict[str, Any] = {}
    if args.workload == "W3":
        options = {"store": f"{STORE}://", "datadir": datadir}
    app = build_app(args, **options)
    value_type = VALUE_TYPES[VALUE]
    source = app.topic(args.input_topic, value_type=value_type)
    output = ""
    if args.workload == "W1":
        add_counter(app, source, progress, counts)
    elif args.workload == "W2":
        sink = app.topic(args.output_topic, value_type=value_type)
        add_transformer(app, source, sink, progress)
        output = args.output_topic
    else:
        table = app.Table("counts", default=int)
        add_table_counter(app, source, table, progress)
        output = table.changelog_topic_name
    async with running(app):
        await progress.finished.wait()
        if args.workload == "W3":
            # Memory and disk before reading the table back into a dict.
            stats = resources(datadir)
            counts = dict(table.items())  # untimed: for the verification
    notes = f"values {VALUE}; "
    if args.workload == "W2":
        notes += f"W2 via {SEND}"
    elif args.workload == "W3":
        notes += f"store {STORE}://"
    return clock.result(
        args.events,
        keyless=args.workload == "W2" and SEND == "sink",
        stats=stats,
        counts=counts,
        output=output,
        library=f"django-faust {django_faust.__version__}",
        notes=notes,
    )


def run(args: RowArgs) -> RowResult:
    """Entry point used by `row_main`."""
    logging.basicConfig(level=logging.WARNING)
    datadir = tempfile.mkdtemp(prefix="bench-django-faust-")
    try:
        return asyncio.run(run_async(args, datadir))
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


if __name__ == "__main__":
    row_main(run)
