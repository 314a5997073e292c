"""Untimed broker work for ``run.py``: topics, input data and verification.

Runs in the project's virtualenv, with aiokafka. Nothing here is part of
any row's timed section.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from common import PARTITIONS, key_sequence, make_event

#: Longest wait for a topic to be read back to its end.
READ_TIMEOUT = 120.0


async def create_topics(
    bootstrap: str, *names: str, config: Mapping[str, str] | None = None
) -> None:
    """Create topics with `PARTITIONS` partitions each (never auto-created)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Tansu describes only the configs a topic was created with, and
        # quixstreams' W3 derives its changelog's retention from the input's.
        config = {"retention.ms": "-1", **(config or {})}
        topics = [NewTopic(name, PARTITIONS, 1, topic_configs=config) for name in names]
        await admin.create_topics(topics)
    finally:
        await admin.close()


def encoded_events(events: int) -> list[tuple[bytes, bytes]]:
    """The input as (key, value) bytes, in production order."""
    return [
        (key.encode(), json.dumps(make_event(seq, key)).encode())
        for seq, key in enumerate(key_sequence(events))
    ]


async def delete_topics(bootstrap: str, *names: str) -> None:
    """Delete topics (the broker keeps everything in memory)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


async def produce_input(bootstrap: str, topic: str, events: int) -> float:
    """Fill ``topic`` with the input; returns the produce rate (events/s)."""
    return await produce_records(bootstrap, topic, encoded_events(events))


async def produce_records(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]
) -> float:
    """Produce ``records`` (key, value) to ``topic``; the rate (records/s).

    Records go in big batches built per partition (aiokafka's default key
    partitioner), so filling the topic takes little of the run's time.
    """
    events = len(records)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_batch_size=256 * 1024, acks=1
    )
    await producer.start()
    try:
        started = time.perf_counter()
        partitions = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()
        batches: dict[int, Any] = {}
        for key, value in records:
            partition = partitioner(key, partitions, partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                await producer.send_batch(batch, topic, partition=partition)
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            await producer.send_batch(batch, topic, partition=partition)
        await producer.flush()
        return events / (time.perf_counter() - started)
    finally:
        await producer.stop()


class OutputCheck:
    """Checks W2's output: every input event once, transformed, same key."""

    def __init__(self, keyless: bool = False) -> None:
        #: Whether records may lack their key (the row sent values only).
        self.keyless = keyless
        self.records = 0
        self.per_key: Counter[str] = Counter()
        self.ids: set[int] = set()
        self.problems: list[str] = []

    def visit(self, key: bytes | None, raw: bytes | None) -> None:
        """Take one output record into account."""
        self.records += 1
        value = json.loads(raw or b"null")
        if not isinstance(value, dict) or value.get("seen") is not True:
            self.note(f"untransformed record {(raw or b'')[:80]!r}")
            return
        # A sink's records have no key: the value's key field is what counts.
        keyless_ok = key is None and self.keyless
        if not keyless_ok and (key is None or key.decode() != value["key"]):
            self.note(f"record key {key!r} is not its value's {value['key']!r}")
        self.per_key[value["key"]] += 1
        self.ids.add(value["id"])

    def note(self, problem: str) -> None:
        """Remember a problem (the first few only)."""
        if len(self.problems) < 5:
            self.problems.append(problem)

    def verify(self, expected: Counter[str]) -> list[str]:
        """What is wrong with the output compared with ``expected``."""
        total = sum(expected.values())
        problems = list(self.problems)
        if self.records != total:
            problems.append(f"output has {self.records} records, expected {total}")
        if len(self.ids) != total:
            problems.append(f"output has {len(self.ids)} distinct events of {total}")
        problems.extend(compare_counts(self.per_key, expected))
        return problems


class ChangelogCheck:
    """Checks W3's changelog: the last count of each key is the right one."""

    def __init__(self) -> None:
        self.records = 0
        self.latest: dict[str, int] = {}

    def visit(self, key: bytes | None, raw: bytes | None) -> None:
        """Take one changelog record into account (later ones win).

        Keys may be the key's bytes (raw row) or JSON (django-faust's tables
        encode keys with their ``json`` serializer: ``b'"k0001"'``).
        """
        self.records += 1
        name = (key or b"").decode()
        if name.startswith('"'):
            name = json.loads(name)
        self.latest[name] = int(json.loads(raw or b"0"))

    def verify(self, expected: Counter[str]) -> list[str]:
        """What is wrong with the changelog compared with ``expected``."""
        if not self.records:
            return ["the changelog is empty"]
        return compare_counts(Counter(self.latest), expected)


def compare_counts(got: Mapping[str, int], expected: Mapping[str, int]) -> list[str]:
    """Differences between per-key counts (empty when they match)."""
    total, wanted = sum(got.values()), sum(expected.values())
    problems = [] if total == wanted else [f"counted {total} events, not {wanted}"]
    wrong = [k for k in set(got) | set(expected) if got.get(k, 0) != expected.get(k)]
    if wrong:
        sample = ", ".join(
            f"{k}: {got.get(k, 0)} not {expected.get(k, 0)}" for k in sorted(wrong)[:3]
        )
        problems.append(f"{len(wrong)} keys have wrong counts ({sample})")
    return problems


async def read_topic(
    bootstrap: str, topic: str, visit: Callable[[bytes | None, bytes | None], None]
) -> bool:
    """Hand every record of ``topic`` to ``visit``; False if it timed out.

    The end is the high watermark seen in fetch responses (Tansu's
    ``end_offsets()`` is wrong), so every partition is fetched at least once.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + READ_TIMEOUT
        while not await _at_end(consumer, tps):
            if time.monotonic() > deadline:
                return False
            batches = await consumer.getmany(timeout_ms=300)
            for messages in batches.values():
                for message in messages:
                    visit(message.key, message.value)
        return True
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True
