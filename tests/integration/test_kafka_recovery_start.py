"""How fast a worker gets past the recovery of changelogs with nothing in them.

A fresh worker's table partitions are usually empty; recovering them must
not cost a fetch that waits for records that are not there.
"""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from django_faust.testing import make_app
from django_faust.testing.broker import TestBroker
from django_faust.types import TP

pytestmark = pytest.mark.broker


async def test_empty_changelog_partitions_are_caught_up_before_any_fetch(
    kafka_broker: TestBroker,
) -> None:
    app = make_app(f"recovery-{uuid.uuid4().hex[:8]}", broker=kafka_broker.url)
    table = app.Table("counts", default=int)
    name = table.changelog_topic_name
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 4, 1)])
    finally:
        await admin.close()
    await app.maybe_start_producer()
    try:
        # Partition 2 has two records; the others none.
        await app.producer.send_and_wait(name, b'"a"', b"1", partition=2)
        await app.producer.send_and_wait(name, b'"b"', b"2", partition=2)
        offsets = {TP(name, p): 0 for p in range(4)}
        reader = app.transport.create_reader(offsets)
        await reader.start()
        try:
            assert [reader.highwater(TP(name, p)) for p in (0, 1, 3)] == [0, 0, 0]
            # Not empty: known from a fetch, as before.
            records = []
            while len(records) < 2:
                records += await reader.getmany(timeout=1.0)
            assert reader.highwater(TP(name, 2)) == 2
        finally:
            await reader.stop()

        # The table recovers all four partitions without a fetch's wait for
        # the empty ones (fetch_max_wait_ms is 500 ms).
        started = time.monotonic()
        await app.tables.recover({TP(name, p): table for p in (0, 1, 3)})
        assert time.monotonic() - started < 0.4
        assert app.tables.last_recovered == 0
    finally:
        await app.producer.stop()
