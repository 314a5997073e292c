"""The Kafka producer's batching, against a stand-in for the aiokafka client.

The stand-in builds real aiokafka batches (``BatchBuilder``) and records
what `send_batch` was handed, with a delivery future the test resolves: the
partition choice, the batches, the order, the offsets and the reports can be
checked without a broker.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder

from django_faust.sensors import Monitor, Sensor
from django_faust.testing import make_app
from django_faust.transport.kafka.producer import AIOKafkaProducer
from django_faust.types import RecordMetadata


class Delivered:
    """What aiokafka resolves a batch's future to (its base offset)."""

    def __init__(self, offset: int) -> None:
        self.offset = offset


class FakeCluster:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self.partitions.get(topic)
        return None if count is None else set(range(count))


class FakeClient:
    """The parts of ``aiokafka.AIOKafkaProducer`` the driver uses."""

    def __init__(self, partitions: dict[str, int], batch_size: int = 16384) -> None:
        self.cluster = FakeCluster(partitions)
        self.client = self
        self.batch_size = batch_size
        self.shipped: list[tuple[str, int, int, asyncio.Future[Any]]] = []
        self.picks = 0

    # AIOKafkaClient
    async def _wait_on_metadata(self, topic: str) -> set[int]:
        return self.cluster.partitions_for_topic(topic) or set()

    # AIOKafkaProducer
    def _partition(self, topic, partition, key, value, key_bytes, value_bytes):
        count = self.cluster.partitions[topic]
        if key_bytes is None:
            self.picks += 1
            return self.picks % count
        return sum(key_bytes) % count

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int):
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.shipped.append((topic, partition, batch.record_count(), fut))
        return fut

    async def flush(self) -> None:
        return None


def make_producer(
    partitions: dict[str, int], batch_size: int = 16384
) -> tuple[AIOKafkaProducer, FakeClient]:
    app = make_app("producer-test", broker="kafka://localhost:9092")
    producer = app.transport.create_producer()
    assert isinstance(producer, AIOKafkaProducer)
    client = FakeClient(partitions, batch_size)
    producer._producer = client  # type: ignore[assignment]
    return producer, client


def deliver(client: FakeClient, base: int = 100) -> None:
    for _, _, _, fut in client.shipped:
        if not fut.done():
            fut.set_result(Delivered(base))


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_keyed_sends_get_one_batch_per_partition_and_offsets_from_its_base():
    producer, client = make_producer({"out": 4})
    keys = [b"a", b"b", b"c", b"a", b"b", b"a"]
    futures = [producer.send_soon("out", k, b"v%d" % n) for n, k in enumerate(keys)]
    await producer._drain()  # routes the first sends (metadata was unknown)
    more = [producer.send_soon("out", k, b"w") for k in keys]  # routed at once
    await producer._drain()
    deliver(client)
    await settle()
    # One batch per partition and round; nothing left behind.
    assert [(p, n) for _, p, n, _ in client.shipped] == [
        (1, 3),
        (2, 2),
        (3, 1),
        (1, 3),
        (2, 2),
        (3, 1),
    ]
    assert producer.buffered == 0
    results = [f.result() for f in futures]
    assert [r.partition for r in results] == [sum(k) % 4 for k in keys]
    # Positions within each partition's batch, after its base offset.
    assert [r.offset for r in results] == [100, 100, 100, 101, 101, 102]
    assert [f.result().offset for f in more] == [100, 100, 100, 101, 101, 102]


async def test_sends_wait_behind_those_waiting_for_metadata():
    producer, client = make_producer({"out": 1, "other": 1})
    producer._counts["other"] = 1  # known already
    first = producer.send_soon("out", b"k", b"1")
    second = producer.send_soon("other", b"k", b"2")  # known, but must wait
    assert producer.buffered == 2 and not producer._open
    await producer._drain()
    deliver(client)
    await settle()
    assert [(t, n) for t, _, n, _ in client.shipped] == [("out", 1), ("other", 1)]
    assert first.result().topic == "out" and second.result().topic == "other"


async def test_keyless_sends_stick_to_one_partition_per_round():
    producer, client = make_producer({"out": 4})
    producer._counts["out"] = 4
    first = [producer.send_soon("out", None, b"x") for _ in range(5)]
    await producer._drain()
    second = [producer.send_soon("out", None, b"y") for _ in range(5)]
    await producer._drain()
    deliver(client)
    await settle()
    assert len({f.result().partition for f in first}) == 1
    assert len({f.result().partition for f in second}) == 1
    assert first[0].result().partition != second[0].result().partition
    assert [n for _, _, n, _ in client.shipped] == [5, 5]


async def test_a_full_batch_is_shipped_before_the_next_in_order():
    producer, client = make_producer({"out": 1}, batch_size=200)
    producer._counts["out"] = 1
    futures = [producer.send_soon("out", b"k", b"%040d" % n) for n in range(20)]
    await producer._drain()
    assert len(client.shipped) > 1
    base = 0
    for _, _, count, fut in client.shipped:
        fut.set_result(Delivered(base))
        base += count
    await settle()
    assert [f.result().offset for f in futures] == list(range(20))


async def test_a_failed_batch_fails_every_sender_and_is_reported_once():
    producer, client = make_producer({"out": 2})
    producer._counts["out"] = 2
    reports: list[tuple[int, float, Any]] = []

    def report(count: int, seconds: float, error: Any) -> None:
        reports.append((count, seconds, error))

    futures = [
        producer.send_soon("out", b"\x00", b"v", report=report) for _ in range(3)
    ]
    await producer._drain()
    failure = RuntimeError("broker said no")
    client.shipped[0][3].set_exception(failure)
    await settle()
    assert all(f.exception() is failure for f in futures)
    assert len(reports) == 1 and reports[0][0] == 3 and reports[0][2] is failure
    assert producer.delivery_failure is failure


async def test_a_delivered_batch_is_reported_once_per_reporter():
    producer, client = make_producer({"out": 1})
    producer._counts["out"] = 1
    seen: list[tuple[str, int]] = []
    for name, count in (("a", 2), ("b", 1)):

        def report(n: int, seconds: float, error: Any, name: str = name) -> None:
            seen.append((name, n))

        for _ in range(count):
            producer.send_soon("out", b"k", b"v", report=report)
    await producer._drain()
    deliver(client)
    await settle()
    assert sorted(seen) == [("a", 2), ("b", 1)]


async def test_a_partition_the_topic_lacks_fails_that_send_only():
    producer, client = make_producer({"out": 2})
    producer._counts["out"] = 2
    bad = producer.send_soon("out", b"k", b"v", partition=5)
    good = producer.send_soon("out", b"k", b"v", partition=1)
    with pytest.raises(ValueError, match="no partition 5"):
        bad.result()
    await producer._drain()
    deliver(client, base=7)
    await settle()
    assert good.result() == RecordMetadata("out", 1, 7, None)


async def test_a_value_that_is_not_bytes_fails_alone():
    producer, client = make_producer({"out": 1})
    producer._counts["out"] = 1
    bad = producer.send_soon("out", b"k", "text")  # type: ignore[arg-type]
    good = producer.send_soon("out", b"k", b"v")
    assert isinstance(bad.exception(), TypeError)
    await producer._drain()
    deliver(client)
    await settle()
    assert good.result().offset == 100


async def test_a_partition_count_change_routes_keys_anew():
    producer, client = make_producer({"out": 2})
    producer._counts["out"] = 2
    producer.send_soon("out", b"\x03", b"v")
    await producer._drain()
    client.cluster.partitions["out"] = 4  # the topic grew
    later = producer.send_soon("out", b"\x03", b"v")  # routed with the old count
    await producer._drain()
    after = producer.send_soon("out", b"\x03", b"v")
    await producer._drain()
    deliver(client)
    await settle()
    assert later.result().partition == 1
    assert after.result().partition == 3


async def test_cancelled_while_shipping_puts_the_batches_back_in_order():
    producer, client = make_producer({"a": 1, "b": 1})
    producer._counts.update(a=1, b=1)
    started = asyncio.Event()
    release = asyncio.Event()
    real = client.send_batch

    async def slow(batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        started.set()
        await release.wait()
        return await real(batch, topic, partition=partition)

    client.send_batch = slow  # type: ignore[method-assign]
    fa = producer.send_soon("a", b"k", b"1")
    fb = producer.send_soon("b", b"k", b"2")
    task = asyncio.ensure_future(producer._drain())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert producer.buffered == 2 and [b.topic for b in producer._full] == ["a", "b"]
    client.send_batch = real  # type: ignore[method-assign]
    await producer._drain()
    deliver(client)
    await settle()
    assert fa.result().topic == "a" and fb.result().topic == "b"


def test_a_sensor_with_only_on_send_hears_of_each_message_of_a_batch():
    calls: list[tuple[str, float, Any]] = []

    class Recorder(Sensor):
        def on_send(self, topic: str, seconds: float, error: Any) -> None:
            calls.append((topic, seconds, error))

    Recorder().on_sends("out", 3, 0.5, None)
    assert calls == [("out", 0.5, None)] * 3


def test_the_monitor_counts_a_batch_in_bulk():
    monitor = Monitor(make_app())
    monitor.on_sends("out", 4, 0.25, None)
    monitor.on_sends("out", 2, 0.0, RuntimeError())
    assert monitor.sends["out"] == 4 and monitor.send_errors["out"] == 2
    assert monitor.send_latency.count == 4
    assert monitor.send_latency.asdict()["avg_seconds"] == 0.25


async def test_keyless_sends_move_to_another_partition_when_a_batch_fills():
    producer, client = make_producer({"out": 4}, batch_size=200)
    producer._counts["out"] = 4
    futures = [producer.send_soon("out", None, b"%040d" % n) for n in range(12)]
    await producer._drain()
    deliver(client)
    await settle()
    shipped = [(p, n) for _, p, n, _ in client.shipped]
    assert len(shipped) > 1
    # Each full batch went to a partition of its own, one after the other.
    assert all(a[0] != b[0] for a, b in itertools.pairwise(shipped))
    assert sum(n for _, n in shipped) == len(futures)
