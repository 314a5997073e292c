"""``await topic.send()`` in a tight loop: fast, bounded, nothing lost.

An agent that awaits every send never waits for the broker while the
producer's buffer has room; when it is full (``BUFFER_HIGH_WATER``) the
agent waits for the background sender to take the buffer over, so the
buffer stays bounded and the order within a partition holds.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from django_faust.testing import make_app, running
from django_faust.testing.broker import TestBroker
from django_faust.transport.kafka.producer import BUFFER_HIGH_WATER

pytestmark = pytest.mark.broker


async def test_awaited_sends_stay_bounded_and_arrive_in_order(
    kafka_broker: TestBroker,
) -> None:
    name = f"burst-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 4, 1)])
    finally:
        await admin.close()
    app = make_app(f"burst-{uuid.uuid4().hex[:8]}", broker=kafka_broker.url)
    topic = app.topic(name, value_type=int)
    total = 3 * BUFFER_HIGH_WATER
    async with running(app):
        producer = app.producer
        buffered = []
        futures = []
        for n in range(total):
            futures.append(await topic.send(key=f"k{n % 10}", value=n))
            buffered.append(producer.buffered)
        await producer.flush()
        assert all(f.done() and not f.exception() for f in futures)
    # Bounded: at most one round in aiokafka's hands and one waiting here.
    assert max(buffered) <= 2 * BUFFER_HIGH_WATER
    consumer = AIOKafkaConsumer(
        name, bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: dict[bytes, list[int]] = defaultdict(list)
    try:
        count = 0
        while count < total:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    seen[record.key].append(int(record.value))
                    count += 1
    finally:
        await consumer.stop()
    assert count == total
    for key, values in seen.items():
        assert values == sorted(values), key  # one key, one partition: in order
