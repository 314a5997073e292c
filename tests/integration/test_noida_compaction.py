"""A compacted changelog on noida-db: recovery reads what compaction left.

Tansu never compacts, so this runs on the second test broker (noida-db,
`django_faust.testing.noida`). The changelog is created beforehand with fast
compaction settings, as topic config: with only ``cleanup.policy=compact``
Kafka (and noida-db) compacts nothing for days (``segment.ms`` is 7 days by
default). Many updates of a few keys become about one record per key, and a
worker recovering from the compacted changelog gets the same table.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from django_faust.tables.table import source_of
from django_faust.testing import make_app, running
from django_faust.testing.noida import NoidaBroker
from tests.helpers import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: Topic configs that make a changelog compact within seconds.
FAST_COMPACTION = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "100",
    "min.compaction.lag.ms": "0",
}
KEYS = ["a", "b", "c"]


def counting_app(app_id: str, broker: NoidaBroker) -> tuple[Any, Any, Any]:
    app = make_app(
        app_id,
        broker=broker.url,
        topic_partitions=1,
        # Kafka's default group.min.session.timeout.ms (6 s) holds on noida-db.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        commit_interval=60.0,  # the test commits itself
    )
    topic = app.topic(f"{app_id}-clicks", key_type=str, value_type=int)
    counts = app.Table("counts", default=int)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for key, _ in stream.items():
            counts[key] += 1

    return app, topic, counts


async def read_all(broker: NoidaBroker, topic: str) -> list[Any]:
    """Every record of partition 0 of ``topic``, from its start to its end."""
    client = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False
    )
    await client.start()
    try:
        tp = TopicPartition(topic, 0)
        client.assign([tp])
        await client.seek_to_beginning(tp)
        end = (await client.end_offsets([tp]))[tp]
        records: list[Any] = []
        while await client.position(tp) < end:
            batch = await client.getmany(tp, timeout_ms=500)
            records.extend(batch.get(tp, []))
        return records
    finally:
        await client.stop()


async def test_recovery_from_a_compacted_changelog(noida_broker: NoidaBroker) -> None:
    app_id = f"compact-{uuid.uuid4().hex[:8]}"
    changelog = f"{app_id}-counts-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=noida_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(changelog, 1, 1, topic_configs=FAST_COMPACTION),
                NewTopic(f"{app_id}-clicks", 1, 1),
            ]
        )
    finally:
        await admin.close()

    first, topic, counts = counting_app(app_id, noida_broker)
    rounds = 0

    async def one_round() -> None:
        nonlocal rounds
        for key in KEYS:
            await topic.send(key=key, value=rounds)
        rounds += 1
        await wait_for(lambda: counts["c"] == rounds, timeout=15)
        # One commit per round: one changelog record per key and round.
        assert await first.consumer.commit()

    async with running(first):
        for _ in range(40):
            await one_round()
        written = len(KEYS) * rounds
        # Compaction runs in the background on segments that are no longer
        # the active one: a round a second keeps rolling them.
        deadline = time.monotonic() + 60
        while True:
            records = await read_all(noida_broker, changelog)
            # A few records per key are left (the active segment's too).
            if len(records) <= 4 * len(KEYS):
                break
            assert time.monotonic() < deadline, (
                f"{changelog} still has {len(records)} of {written} records"
            )
            await asyncio.sleep(1.0)
            await one_round()
            written += len(KEYS)
    expected = dict.fromkeys(KEYS, rounds)
    # What is left is the last value of each key, with its source header.
    last = {r.key: r for r in records}
    assert {k: int(r.value) for k, r in last.items()} == {
        f'"{k}"'.encode(): rounds for k in KEYS
    }
    assert all(source_of(r) is not None for r in last.values())

    again, _, recovered = counting_app(app_id, noida_broker)
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set(), timeout=30)
        await wait_for(lambda: dict(recovered.items()) == expected, timeout=30)
    # (Compaction may have gone on since the changelog was read.)
    assert again.tables.last_recovered <= len(records) < written / 10
