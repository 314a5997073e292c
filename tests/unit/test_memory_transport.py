"""The memory transport behaves like Kafka where the engine relies on it."""

from __future__ import annotations

import asyncio

from aiokafka.partitioner import DefaultPartitioner

from django_faust import TP
from django_faust.testing import make_app, running
from django_faust.transport.memory import MemoryBroker, partition_for_key
from tests.helpers import committed, wait_for


def test_keys_go_to_the_partition_kafka_would_choose():
    for key in (b"a", b"account-17", b"\x00\xff", "ключ".encode()):
        expected = DefaultPartitioner()(key, list(range(12)), list(range(12)))
        assert partition_for_key(key, 12) == expected


def test_offsets_grow_per_partition_and_keys_are_stable():
    broker = MemoryBroker()
    broker.create_topic("t", 3)
    first = [broker.append("t", b"k", b"v") for _ in range(3)]
    assert [md.offset for md in first] == [0, 1, 2]
    assert len({md.partition for md in first}) == 1
    unkeyed = [broker.append("t", None, b"v").partition for _ in range(6)]
    assert sorted(set(unkeyed)) == [0, 1, 2]  # spread over partitions


def test_bad_partition_names_the_topic():
    broker = MemoryBroker()
    broker.create_topic("t", 2)
    try:
        broker.append("t", None, b"v", partition=5)
    except ValueError as exc:
        assert "'t'" in str(exc) and "5" in str(exc)
    else:
        raise AssertionError("expected ValueError")


async def test_restart_resumes_from_the_committed_offset(faust_app):
    topic = faust_app.topic("resume", value_type=int, partitions=1)
    first_run: list[int] = []

    @faust_app.agent(topic)
    async def consume(stream):
        async for value in stream:
            first_run.append(value)

    async with running(faust_app):
        for i in range(5):
            await topic.send(value=i)
        await wait_for(lambda: len(first_run) == 5)
    # Stopping committed everything processed.
    assert committed(faust_app)[TP("resume", 0)] == 5

    again = make_app(faust_app.conf.id, broker=faust_app.conf.broker_url)
    again_topic = again.topic("resume", value_type=int, partitions=1)
    second_run: list[int] = []

    @again.agent(again_topic)
    async def consume_again(stream):
        async for value in stream:
            second_run.append(value)

    async with running(again):
        for i in range(5, 8):
            await again_topic.send(value=i)
        await wait_for(lambda: len(second_run) == 3)
    assert second_run == [5, 6, 7]


async def test_a_slow_event_holds_back_the_commit(faust_app):
    topic = faust_app.topic("slowpoke", value_type=int, partitions=1)
    gate = asyncio.Event()
    started: list[int] = []
    finished: list[int] = []

    @faust_app.agent(topic, concurrency=3)
    async def work(stream):
        async for value in stream:
            started.append(value)
            if value == 1:
                await gate.wait()
            finished.append(value)

    async with running(faust_app):
        for i in range(6):
            await topic.send(value=i)
        await wait_for(lambda: len(finished) == 5)
        await faust_app.consumer.commit()
        # 0 is done, 1 is not: nothing past 1 may be committed.
        assert committed(faust_app)[TP("slowpoke", 0)] == 1
        gate.set()
        await wait_for(lambda: len(finished) == 6)
        await faust_app.consumer.commit()
        assert committed(faust_app)[TP("slowpoke", 0)] == 6


async def test_two_members_of_a_group_split_the_partitions():
    one = make_app("grouped")
    two = make_app("grouped", broker=one.conf.broker_url)
    seen: dict[str, list[int]] = {"one": [], "two": []}
    for app, name in ((one, "one"), (two, "two")):
        topic = app.topic("shared", value_type=int, partitions=4)

        def make(name=name, topic=topic, app=app):
            @app.agent(topic, name=f"reader-{name}")
            async def reader(stream):
                async for value in stream:
                    seen[name].append(value)

        make()

    async with running(one):
        async with running(two):
            await wait_for(
                lambda: (
                    len(one.consumer.assignment()) == 2
                    and len(two.consumer.assignment()) == 2
                )
            )
            assert not one.consumer.assignment() & two.consumer.assignment()
            assert one.is_leader() != two.is_leader()
            producer = await one.maybe_start_producer()
            for i in range(40):
                await producer.send("shared", None, str(i).encode(), partition=i % 4)
            await wait_for(lambda: len(seen["one"]) + len(seen["two"]) == 40)
            assert seen["one"] and seen["two"]
        # `two` left: `one` takes every partition back and reads new events.
        await wait_for(lambda: len(one.consumer.assignment()) == 4)
        for i in range(40, 44):
            await producer.send("shared", None, str(i).encode(), partition=i % 4)
        await wait_for(lambda: len(seen["one"]) + len(seen["two"]) >= 44)
    assert sorted(seen["one"] + seen["two"]) == list(range(44))


async def test_full_buffers_pause_the_partition_instead_of_growing(faust_app):
    topic = faust_app.topic("flood", value_type=int, partitions=1, maxsize=10)
    gate = asyncio.Event()
    got: list[int] = []

    @faust_app.agent(topic)
    async def slow(stream):
        async for value in stream:
            await gate.wait()
            got.append(value)

    async with running(faust_app):
        producer = await faust_app.maybe_start_producer()
        for i in range(1000):
            await producer.send("flood", None, str(i).encode())
        await asyncio.sleep(0.1)
        sub = slow._subscription
        assert TP("flood", 0) in faust_app.consumer._paused
        assert sub.qsize() < 1000
        gate.set()
        await wait_for(lambda: len(got) == 1000, timeout=10)
    assert got == list(range(1000))
