"""Settings that change what the app does on Kafka, against the test broker.

Tansu auto-creates a missing topic with 4 partitions; the app's own topics
are created with TOPIC_PARTITIONS (3 here), so a topic with 3 partitions was
declared by the app, not left to the broker.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_faust.exceptions import ImproperlyConfigured
from django_faust.testing import running
from django_faust.testing.broker import TestBroker
from django_faust.types import TP
from tests.integration.test_kafka_transport import (
    group_offsets,
    kafka_app,
    unique,
    wait_for,
)

pytestmark = pytest.mark.broker


def committed(app: Any, tp: TP) -> int | None:
    tracker = app.consumer.trackers.get(tp)
    return None if tracker is None else tracker.committed


async def test_dead_letter_topic_is_declared_at_start(kafka_broker: TestBroker):
    app = kafka_app(kafka_broker, topic_partitions=3)
    topic = app.topic(unique("dl-source"), value_type=int)

    @app.agent(topic)
    async def work(stream: Any) -> None:
        async for _ in stream:
            pass

    async with running(app):
        partitions = await app.producer.partitions_for(app.conf.dead_letter_topic)
        assert partitions == {0, 1, 2}


async def test_version_is_the_consumer_group_on_kafka(kafka_broker: TestBroker):
    app = kafka_app(kafka_broker, version=3)
    topic = app.topic(unique("versioned"), partitions=1, value_type=int)
    tp = TP(topic.get_topic_name(), 0)
    seen: list[int] = []

    @app.agent(topic)
    async def read(stream: Any) -> None:
        async for value in stream:
            seen.append(value)

    assert app.conf.id.endswith("-v3")
    async with running(app):
        for i in range(5):
            await topic.send(value=i)
        await wait_for(lambda: len(seen) == 5, what="5 events")
        await wait_for(lambda: committed(app, tp) == 5, what="commit")
    assert await group_offsets(kafka_broker, app.conf.id, [tp]) == {tp: 5}
    assert await group_offsets(kafka_broker, app.conf.app_id, [tp]) == {tp: None}


async def test_commit_every_commits_before_the_interval(kafka_broker: TestBroker):
    app = kafka_app(kafka_broker, commit_interval=3600.0, broker_commit_every=10)
    topic = app.topic(unique("every"), partitions=1, value_type=int)
    tp = TP(topic.get_topic_name(), 0)

    @app.agent(topic)
    async def read(stream: Any) -> None:
        async for _ in stream:
            pass

    async with running(app):
        for i in range(10):
            await topic.send(value=i)
        await wait_for(lambda: committed(app, tp) == 10, what="commit")
        assert await group_offsets(kafka_broker, app.conf.id, [tp]) == {tp: 10}


async def test_without_declare_a_missing_topic_stops_the_start(
    kafka_broker: TestBroker,
):
    app = kafka_app(kafka_broker, topic_allow_declare=False)
    name = unique("unmanaged")

    @app.agent(app.topic(name, value_type=int))
    async def read(stream: Any) -> None:
        async for _ in stream:
            pass

    # The operator created the dead-letter topic, not the one the agent reads.
    creator = kafka_app(kafka_broker)
    await creator.maybe_start_producer()
    try:
        await creator.producer.create_topic(
            app.conf.dead_letter_topic, partitions=1, replication=1
        )
    finally:
        await creator.producer.stop()
    try:
        with pytest.raises(ImproperlyConfigured, match=f"Topic '{name}' does not"):
            await app.start()
        assert await app.producer.partitions_for(name) == set()
    finally:
        await app.stop()
