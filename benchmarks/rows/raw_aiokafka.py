"""Row 1: a hand-written aiokafka loop, the practical ceiling.

One consumer in a consumer group fetches with ``getmany()`` (up to
`MAX_POLL_RECORDS` per call) and handles each batch inline; offsets are
committed every `COMMIT_INTERVAL` seconds, after flushing the producer when
there is one (at-least-once, like the frameworks).

* W1: ``json.loads`` each value, count per key in a plain dict.
* W2: decode, `transform`, ``json.dumps``, then ``await producer.send()``
  per record (the input key kept); ends after ``producer.flush()`` returns
  (every record acked).
* W3: W1's dict, and after each batch every changed count is sent to a
  changelog topic (key -> count) with ``await producer.send()``, flushed
  before each commit.

With ``BENCH_RAW_SEND=batch`` (the "batched ceiling" row) W2 and W3 append
to aiokafka batches per output partition instead (``create_batch()``,
``send_batch()``, aiokafka's default key partitioner): the fastest path
aiokafka offers, and the ceiling a framework's send path is measured by.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from common import (
    COMMIT_INTERVAL,
    LINGER_MS,
    MAX_POLL_RECORDS,
    SESSION_TIMEOUT_MS,
    Clock,
    RowArgs,
    RowResult,
    row_main,
    transform,
)

#: ``send`` (``await producer.send()`` per record) or ``batch`` (the ceiling).
SEND = os.environ.get("BENCH_RAW_SEND", "send")

#: Handles one fetched batch; may send with the producer.
BatchHandler = Callable[[Sequence[Any]], Awaitable[None]]


def make_consumer(args: RowArgs) -> AIOKafkaConsumer:
    """The group consumer of the input topic, settings as in every row."""
    return AIOKafkaConsumer(
        args.input_topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=MAX_POLL_RECORDS,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
    )


def make_producer(args: RowArgs) -> AIOKafkaProducer:
    """The producer of W2's output and W3's changelog."""
    return AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, linger_ms=LINGER_MS, acks="all"
    )


async def consume(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer | None,
    events: int,
    handle: BatchHandler,
    clock: Clock,
) -> None:
    """Fetch batches and hand them to ``handle`` until ``events`` were seen."""
    seen = 0
    next_commit = time.monotonic() + COMMIT_INTERVAL
    while seen < events:
        batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_POLL_RECORDS)
        for messages in batches.values():
            clock.first_event()
            await handle(messages)
            seen += len(messages)
        if time.monotonic() >= next_commit:
            await commit(consumer, producer)
            next_commit = time.monotonic() + COMMIT_INTERVAL
    if producer is not None:
        await producer.flush()
    clock.done()
    await commit(consumer, producer)


async def commit(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer | None) -> None:
    """Flush what the handled events produced, then commit their offsets."""
    if producer is not None:
        await producer.flush()
    await consumer.commit()


def counter(counts: dict[str, int]) -> BatchHandler:
    """W1: decode and count per key."""

    async def handle(messages: Sequence[Any]) -> None:
        for message in messages:
            key = json.loads(message.value)["key"]
            counts[key] = counts.get(key, 0) + 1

    return handle


def transformer(producer: AIOKafkaProducer, topic: str) -> BatchHandler:
    """W2: decode, transform, encode, ``await send()`` with the same key."""

    async def handle(messages: Sequence[Any]) -> None:
        send = producer.send
        for message in messages:
            value = json.dumps(transform(json.loads(message.value))).encode()
            await send(topic, value=value, key=message.key)

    return handle


class Batches:
    """Records appended to one aiokafka batch per partition, sent when full."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.partitioner = DefaultPartitioner()
        self.partitions: list[int] = []
        self.batches: dict[int, Any] = {}

    async def append(self, key: bytes, value: bytes) -> None:
        """Add one record to its partition's batch."""
        if not self.partitions:
            found = await self.producer.partitions_for(self.topic)
            self.partitions.extend(sorted(found))
        partition = self.partitioner(key, self.partitions, self.partitions)
        batch = self.batches.get(partition)
        if batch is None:
            batch = self.batches[partition] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self.producer.send_batch(batch, self.topic, partition=partition)
            batch = self.batches[partition] = self.producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)

    async def send(self) -> None:
        """Hand every open batch to aiokafka."""
        batches, self.batches = self.batches, {}
        for partition, batch in batches.items():
            await self.producer.send_batch(batch, self.topic, partition=partition)


def batched_transformer(producer: AIOKafkaProducer, topic: str) -> BatchHandler:
    """W2, the ceiling: decode, transform, encode, produce with the same key.

    Records go into aiokafka batches built here, one per output partition
    (chosen by aiokafka's default key partitioner), handed over with
    ``send_batch()``: the fastest way aiokafka offers, and what a hand-tuned
    loop would do.
    """
    partitioner = DefaultPartitioner()
    partitions: list[int] = []

    async def handle(messages: Sequence[Any]) -> None:
        if not partitions:
            partitions.extend(sorted(await producer.partitions_for(topic)))
        batches: dict[int, Any] = {}
        for message in messages:
            value = json.dumps(transform(json.loads(message.value))).encode()
            partition = partitioner(message.key, partitions, partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=message.key, value=value, timestamp=None) is None:
                await producer.send_batch(batch, topic, partition=partition)
                batch = batches[partition] = producer.create_batch()
                batch.append(key=message.key, value=value, timestamp=None)
        for partition, batch in batches.items():
            await producer.send_batch(batch, topic, partition=partition)

    return handle


def table_counter(
    counts: dict[str, int], producer: AIOKafkaProducer, changelog: str
) -> BatchHandler:
    """W3: count per key, then send each count the batch changed."""

    async def handle(messages: Sequence[Any]) -> None:
        changed = set()
        for message in messages:
            key = json.loads(message.value)["key"]
            counts[key] = counts.get(key, 0) + 1
            changed.add(key)
        for key in changed:
            value = str(counts[key]).encode()
            await producer.send(changelog, value=value, key=key.encode())

    return handle


def batched_table_counter(
    counts: dict[str, int], producer: AIOKafkaProducer, changelog: str
) -> BatchHandler:
    """W3, the ceiling: count per key, then batch each changed count."""
    batches = Batches(producer, changelog)

    async def handle(messages: Sequence[Any]) -> None:
        changed = set()
        for message in messages:
            key = json.loads(message.value)["key"]
            counts[key] = counts.get(key, 0) + 1
            changed.add(key)
        for key in changed:
            await batches.append(key.encode(), str(counts[key]).encode())
        await batches.send()

    return handle


async def run_async(args: RowArgs) -> RowResult:
    """Run one workload and time it."""
    clock = Clock()
    counts: dict[str, int] = {}
    consumer = make_consumer(args)
    producer = None if args.workload == "W1" else make_producer(args)
    await consumer.start()
    if producer is not None:
        await producer.start()
    try:
        if args.workload == "W1":
            handle = counter(counts)
        elif args.workload == "W2":
            make = batched_transformer if SEND == "batch" else transformer
            handle = make(producer, args.output_topic)
        else:
            make = batched_table_counter if SEND == "batch" else table_counter
            handle = make(counts, producer, args.output_topic)
        await consume(consumer, producer, args.events, handle, clock)
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return clock.result(
        args.events,
        counts=counts,
        output="" if producer is None else args.output_topic,
        library=f"aiokafka {aiokafka.__version__}",
        notes=f"sends: {SEND}",
    )


def run(args: RowArgs) -> RowResult:
    """Entry point used by `row_main`."""
    return asyncio.run(run_async(args))


if __name__ == "__main__":
    row_main(run)
