"""The ``kafka://`` transport against a real Kafka-protocol broker (Tansu).

Every test uses its own app id and topic names, so they share one broker.
Session timeouts are short so that rebalances take a second or two.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition

from django_faust.testing import make_app, running
from django_faust.testing.broker import TestBroker
from django_faust.transport import kafka as driver
from django_faust.types import TP

pytestmark = pytest.mark.broker

FAST = {
    "broker_session_timeout": 3.0,
    "broker_heartbeat_interval": 0.5,
    "commit_interval": 0.2,
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kafka_app(broker: TestBroker, **options: Any) -> Any:
    return make_app(broker=broker.url, **{**FAST, **options})


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def group_offsets(
    broker: TestBroker, group_id: str, tps: Iterable[TP]
) -> dict[TP, int | None]:
    """Committed offsets of a group, as another client sees them.

    (Not the admin client's ``list_consumer_group_offsets``: Tansu 0.6 answers
    its OffsetFetch request with a response aiokafka cannot decode.)
    """
    client = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await client.start()
    try:
        return {
            tp: await client.committed(TopicPartition(tp.topic, tp.partition))
            for tp in tps
        }
    finally:
        await client.stop()


async def test_clean_run_processes_everything_once_in_order(
    kafka_broker: TestBroker,
) -> None:
    app = kafka_app(kafka_broker)
    topic = app.topic(unique("orders"), partitions=4, value_type=int)
    seen: list[tuple[int, int, str, int]] = []

    @app.agent(topic)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            seen.append((m.partition, m.offset, event.key, event.value))

    n = 2000
    async with running(app):
        for i in range(n):
            key = f"k{i % 13}".encode()
            if i % 2:
                await topic.send(key=key, value=i)
            else:
                topic.send_soon(key=key, value=i)
        await wait_for(lambda: len(seen) >= n, what=f"{n} events")
        await asyncio.sleep(0.5)  # nothing more arrives
    assert len(seen) == n
    assert sorted(value for *_, value in seen) == list(range(n))

    by_partition: dict[int, list[int]] = defaultdict(list)
    by_key: dict[str, list[int]] = defaultdict(list)
    partition_of_key: dict[str, set[int]] = defaultdict(set)
    for partition, offset, key, value in seen:
        by_partition[partition].append(offset)
        by_key[key].append(value)
        partition_of_key[key].add(partition)
    assert set(by_partition) <= {0, 1, 2, 3}
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))  # in order, none missing
    for key, values in by_key.items():
        assert values == sorted(values), key  # one key: one partition, in order
        assert len(partition_of_key[key]) == 1

    expected = {
        TP(topic.get_topic_name(), p): len(offsets)
        for p, offsets in by_partition.items()
    }
    assert await group_offsets(kafka_broker, app.conf.id, expected) == expected


async def test_commit_never_passes_an_unfinished_event(
    kafka_broker: TestBroker,
) -> None:
    app = kafka_app(kafka_broker)
    topic = app.topic(unique("blocking"), partitions=1, value_type=int)
    tp = TP(topic.get_topic_name(), 0)
    blocked = asyncio.Event()
    release = asyncio.Event()
    done: list[int] = []
    k = 40

    @app.agent(topic)
    async def process(stream: Any) -> None:
        async for value in stream:
            if value == k:
                blocked.set()
                await release.wait()
            done.append(value)

    async with running(app):
        for i in range(100):
            topic.send_soon(value=i)
        await asyncio.wait_for(blocked.wait(), 15)
        consumer = app.consumer
        assert isinstance(consumer, driver.AIOKafkaConsumer)
        await wait_for(
            lambda: consumer.trackers[tp].committed == k, what="commit up to k"
        )
        await asyncio.sleep(1.0)  # several commit intervals
        assert await consumer.committed(tp) == k
        release.set()
        await wait_for(lambda: len(done) == 100, what="all events")
        await wait_for(
            lambda: consumer.trackers[tp].committed == 100, what="final commit"
        )
    assert done == list(range(100))
    assert await group_offsets(kafka_broker, app.conf.id, [tp]) == {tp: 100}


async def test_two_members_split_partitions_with_one_leader(
    kafka_broker: TestBroker,
) -> None:
    app_id = unique("group")
    apps = [
        kafka_app(kafka_broker, id=app_id, web_port=7001, web_enabled=True),
        kafka_app(kafka_broker, id=app_id, web_port=7002, web_enabled=True),
    ]
    names = {"a": unique("src"), "b": unique("changelog"), "c": unique("other")}
    counts = {"a": 4, "b": 4, "c": 2}
    seen: list[list[int]] = [[], []]
    for index, app in enumerate(apps):
        for letter, name in names.items():
            topic = app.topic(name, partitions=counts[letter], value_type=int)

            @app.agent(topic, name=f"read-{letter}")
            async def read(stream: Any, _seen: list[int] = seen[index]) -> None:
                async for value in stream:
                    _seen.append(value)

    def assignments() -> list[set[TP]]:
        return [app.consumer.assignment() for app in apps]

    every = {
        TP(name, p) for letter, name in names.items() for p in range(counts[letter])
    }
    async with running(apps[0]):
        await wait_for(lambda: assignments()[0] == every, what="first member gets all")
        assert apps[0].is_leader()
        async with running(apps[1]):
            await wait_for(
                lambda: all(assignments()) and set.union(*assignments()) == every,
                timeout=30,
                what="both members assigned",
            )
            first, second = assignments()
            assert not first & second
            assert abs(len(first) - len(second)) <= 2
            assert [app.is_leader() for app in apps].count(True) == 1

            # Partition p of equally partitioned topics lives on one member.
            for mine in (first, second):
                for p in range(4):
                    assert (TP(names["a"], p) in mine) == (TP(names["b"], p) in mine)

            # Every member knows the whole group: URLs and partitions.
            groups = [app.consumer.group for app in apps]
            assert groups[0].leader_id == groups[1].leader_id
            assert groups[0].member_id != groups[1].member_id
            assert sorted(groups[0].urls.values()) == [
                "http://localhost:7001/",
                "http://localhost:7002/",
            ]
            for group, mine in zip(groups, (first, second), strict=True):
                assert group.partitions[group.member_id] == mine
                for tp in mine:
                    assert group.url_for(tp) == group.urls[group.member_id]

            producer = apps[0].producer
            for i in range(200):
                await producer.send_and_wait(names["a"], None, str(i).encode())
            await wait_for(lambda: len(seen[0]) + len(seen[1]) >= 200)
            assert seen[0] and seen[1]
            assert sorted(seen[0] + seen[1]) == list(range(200))

        # The second member left the group on stop: the first takes over
        # without waiting for a session timeout to expire.
        started = time.monotonic()
        await wait_for(lambda: assignments()[0] == every, what="takeover")
        assert time.monotonic() - started < 3.0 + 2.0
        assert apps[0].is_leader()


async def test_subscription_added_at_runtime(kafka_broker: TestBroker) -> None:
    app = kafka_app(kafka_broker)
    first = app.topic(unique("first"), partitions=2, value_type=int)
    later = app.topic(unique("later"), partitions=3, value_type=int)
    seen_first: list[int] = []

    @app.agent(first)
    async def read_first(stream: Any) -> None:
        async for value in stream:
            seen_first.append(value)

    async with running(app):
        await first.send_and_wait(value=1)
        await wait_for(lambda: seen_first == [1])
        await later.declare()
        seen_later: list[int] = []

        async def read_later() -> None:
            async for value in later.stream():
                seen_later.append(value)

        reader = asyncio.ensure_future(read_later())
        try:
            for i in range(10):
                await later.send(value=i)
            await wait_for(lambda: len(seen_later) == 10, what="new topic's events")
            assert sorted(seen_later) == list(range(10))
            await wait_for(
                lambda: (
                    {tp.topic for tp in app.consumer.assignment()}
                    == {first.get_topic_name(), later.get_topic_name()}
                )
            )
            await first.send_and_wait(value=2)
            await wait_for(lambda: seen_first == [1, 2], what="old topic still read")
        finally:
            reader.cancel()


async def test_send_soon_failure_is_logged_with_the_topic(
    kafka_broker: TestBroker, caplog: pytest.LogCaptureFixture
) -> None:
    app = kafka_app(kafka_broker, producer_max_request_size=1024)
    name = unique("too-big")
    await app.maybe_start_producer()
    producer = app.producer
    assert isinstance(producer, driver.AIOKafkaProducer)
    try:
        await producer.create_topic(name, partitions=1, replication=1)
        with caplog.at_level(
            logging.ERROR, logger="django_faust.transport.kafka.producer"
        ):
            failing = producer.send_soon(name, None, b"x" * 10_000)
            fine = producer.send_soon(name, None, b"small")
            await producer.flush()
            with pytest.raises(Exception, match=r"(?i)too large|size"):
                await failing
            assert (await fine).offset == 0
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(name in message for message in errors), errors
    finally:
        await app.producer.stop()


async def test_create_topic_with_config_and_no_alteration(
    kafka_broker: TestBroker,
) -> None:
    name = unique("compacted")
    app = kafka_app(kafka_broker)
    await app.maybe_start_producer()
    producer = app.producer
    try:
        await producer.create_topic(
            name, partitions=3, replication=1, compacting=True, retention=60.0
        )
        assert await producer.partitions_for(name) == {0, 1, 2}
        assert await producer.partitions_for(unique("missing")) == set()

        # Declared again, elsewhere, differently: the topic stays as it was.
        other = kafka_app(kafka_broker)
        await other.maybe_start_producer()
        try:
            await other.producer.create_topic(name, partitions=8, replication=1)
        finally:
            await other.producer.stop()
        assert await producer.partitions_for(name) == {0, 1, 2}
    finally:
        await producer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name)]
        )
        topics = await admin.list_topics()
    finally:
        await admin.close()
    [resource] = response.resources
    configs = {entry[0]: entry[1] for entry in resource[4]}
    assert configs["cleanup.policy"] == "compact"
    assert configs["retention.ms"] == "60000"
    assert name in topics


def _rounds(seen: list[str]) -> list[list[str]]:
    """The signals seen, one list per rebalance (each begins with "start")."""
    rounds: list[list[str]] = []
    for name in seen:
        if name == "start" or not rounds:
            rounds.append([])
        rounds[-1].append(name)
    return rounds


async def test_rebalance_signals_and_app_commit(kafka_broker: TestBroker) -> None:
    app_id = unique("signals")
    one = kafka_app(kafka_broker, id=app_id, web_port=7011, commit_interval=1000.0)
    two = kafka_app(kafka_broker, id=app_id, web_port=7012)
    name = unique("jobs")
    for app in (one, two):
        topic = app.topic(name, partitions=2, value_type=int)

        @app.agent(topic, name="worker")
        async def worker(stream: Any) -> None:
            async for _ in stream:
                pass

    seen: list[str] = []

    @one.on_rebalance_start.connect
    async def on_rebalance_start(sender: Any, **kwargs: Any) -> None:
        seen.append("start")

    @one.on_partitions_revoked.connect
    async def on_partitions_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        if revoked:
            seen.append("revoked")

    @one.on_rebalance_return.connect
    async def on_rebalance_return(sender: Any, **kwargs: Any) -> None:
        seen.append("return")

    @one.on_partitions_assigned.connect
    async def on_partitions_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        seen.append("assigned")

    @one.on_rebalance_complete.connect
    async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
        assert sender is one
        seen.append("complete")

    tps = [TP(name, 0), TP(name, 1)]
    async with running(one):
        await wait_for(
            lambda: one.consumer.assignment() == set(tps) and seen[-1:] == ["complete"],
            what="first assignment",
        )
        for steps in _rounds(seen):
            assert steps == ["start", "return", "assigned", "complete"], seen

        # app.commit: only the acked offsets of the topics asked, at once
        # (the commit interval never comes).
        for i in range(6):
            await one.send(name, value=i, partition=i % 2)
        await wait_for(
            lambda: one.consumer.committable() == {tps[0]: 3, tps[1]: 3},
            what="six events acked",
        )
        assert await one.commit({unique("other")}) is False
        assert await group_offsets(kafka_broker, app_id, tps) == dict.fromkeys(tps)
        assert await one.commit({name}) is True
        assert await group_offsets(kafka_broker, app_id, tps) == dict.fromkeys(tps, 3)
        assert await one.commit({name}) is False

        seen.clear()
        async with running(two):
            await wait_for(
                lambda: (
                    len(one.consumer.assignment()) == 1 and seen[-1:] == ["complete"]
                ),
                timeout=40,
                what="the second member's share",
            )
            rounds = _rounds(seen)
            assert any("revoked" in steps for steps in rounds), seen
            for steps in rounds:
                assert steps in (
                    ["start", "return", "assigned", "complete"],
                    ["start", "revoked", "return", "assigned", "complete"],
                ), seen


async def test_isolated_partitions_follow_the_group_assignment(
    kafka_broker: TestBroker,
) -> None:
    """An actor per assigned partition, moved at rebalance, on real Kafka."""
    app_id = unique("isolated")
    name = unique("iso")
    apps = [
        kafka_app(kafka_broker, id=app_id, web_port=7011),
        kafka_app(kafka_broker, id=app_id, web_port=7012),
    ]
    # partition -> the streams (actors) that saw it, per member
    seen: list[dict[int, set[int]]] = [defaultdict(set), defaultdict(set)]
    agents = []
    for index, app in enumerate(apps):
        topic = app.topic(name, partitions=4, value_type=int)

        @app.agent(topic, name="iso", isolated_partitions=True)
        async def iso(stream: Any, _seen: dict[int, set[int]] = seen[index]) -> None:
            async for event in stream.events():
                _seen[event.message.partition].add(id(stream))

        agents.append(iso)

    def actor_tps(i: int) -> set[TP]:
        return {a.tp for a in agents[i].actors}

    async with running(apps[0]):
        await wait_for(lambda: len(actor_tps(0)) == 4, what="4 actors on one member")
        async with running(apps[1]):
            await wait_for(
                lambda: (
                    all(app.consumer.assignment() for app in apps)
                    and all(
                        actor_tps(i) == apps[i].consumer.assignment() for i in (0, 1)
                    )
                ),
                timeout=30,
                what="actors follow the split assignment",
            )
            assert not actor_tps(0) & actor_tps(1)
            producer = apps[0].producer
            for i in range(40):
                await producer.send_and_wait(
                    name, None, str(i).encode(), partition=i % 4
                )
            await wait_for(
                lambda: sum(len(s) for s in seen) == 4, what="every partition seen"
            )
            for i in (0, 1):
                assert set(seen[i]) == {tp.partition for tp in actor_tps(i)}
                # One stream per partition, not shared between partitions.
                streams = [s for streams in seen[i].values() for s in streams]
                assert len(streams) == len(set(streams)) == len(seen[i])
