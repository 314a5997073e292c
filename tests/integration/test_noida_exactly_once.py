"""Exactly-once on noida-db: Kafka transactions across a real broker.

Tansu has no working transactions (see /work/shared/broker.md), so these
run on noida-db. The first test runs an app in the test process; the second
SIGKILLs a worker process mid-stream again and again, and reads the sink with
``read_committed`` afterwards: each event's result is there exactly once, and
the table counts are exact, although the killed workers processed many events
twice.

Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from django_faust import TP
from django_faust.testing import make_app, running
from django_faust.testing.noida import NoidaBroker
from tests.helpers import wait_for
from tests.integration.workers import PARTITIONS, Project
from tests.integration.workers import wait_for as wait_for_workers

pytestmark = [pytest.mark.broker, pytest.mark.slow]


async def create_topics(broker: NoidaBroker, partitions: int, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def produce(broker: NoidaBroker, topic: str, records: Any) -> None:
    """``(partition, key, value)`` with a plain (non-transactional) producer."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, json.dumps(value).encode(), key=key.encode(), partition=p
            )
            for p, key, value in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_committed(
    broker: NoidaBroker, topic: str, partitions: int, timeout: float = 60
) -> list[Any]:
    """Every committed record of ``topic``, as a read_committed reader sees it.

    Read until the position reaches the last stable offset of every
    partition with no transaction open (LSO == high watermark).
    """
    client = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await client.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        client.assign(tps)
        await client.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await client.getmany(timeout_ms=300)
            for messages in batch.values():
                records.extend(messages)
            done = True
            for tp in tps:
                lso, high = client.last_stable_offset(tp), client.highwater(tp)
                if lso is None or lso != high or await client.position(tp) < lso:
                    done = False
            if done:
                return records
        raise AssertionError(f"could not read {topic} to its end in {timeout}s")
    finally:
        await client.stop()


async def test_an_in_process_app_commits_its_sends_with_its_offsets(
    noida_broker: NoidaBroker,
) -> None:
    app_id = f"eos-{uuid.uuid4().hex[:8]}"
    clicks, sink = f"{app_id}-clicks", f"{app_id}-sink"
    await create_topics(noida_broker, 1, clicks, sink, f"{app_id}-counts-changelog")
    app = make_app(
        app_id,
        broker=noida_broker.url,
        topic_partitions=1,
        processing_guarantee="exactly_once",
        # Kafka's default group.min.session.timeout.ms (6 s) holds on noida-db.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        commit_interval=0.3,
    )
    topic = app.topic(clicks, key_type=str, value_type=int)
    out = app.topic(sink, key_type=str, value_type=int)
    counts = app.Table("counts", default=int)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for key, value in stream.items():
            counts[key] += 1
            await out.send(key=key, value=value)

    async with running(app):
        await produce(noida_broker, clicks, ((0, "a", i) for i in range(50)))
        await wait_for(lambda: counts["a"] == 50, timeout=60)

        async def committed() -> int | None:
            return await app.consumer.committed(TP(clicks, 0))

        deadline = time.monotonic() + 30
        while await committed() != 50:
            assert time.monotonic() < deadline, await committed()
            await asyncio.sleep(0.2)
        assert app.producer.transactions_committed >= 1
    records = await read_committed(noida_broker, sink, 1)
    assert [json.loads(r.value) for r in records] == list(range(50))
    changelog = await read_committed(noida_broker, f"{app_id}-counts-changelog", 1)
    assert json.loads(changelog[-1].value) == 50


class EosProject(Project):
    """The worker project under exactly-once, with the tally agent's sink."""

    @property
    def tallied(self) -> str:
        return f"tallied{self.suffix}"

    @property
    def topics(self) -> list[str]:
        return [*super().topics, self.tallied, f"{self.app_id}-memory-counts-changelog"]


@pytest.fixture
def noida_projects(
    noida_broker: NoidaBroker, tmp_path: Path
) -> Iterator[Callable[[str], EosProject]]:
    projects: list[EosProject] = []

    def make(prefix: str) -> EosProject:
        project = EosProject(noida_broker, tmp_path, prefix)
        projects.append(project)
        return project

    try:
        yield make
    finally:
        for project in projects:
            project.kill_all()


KEYS = [f"k{i}" for i in range(12)]


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
async def test_no_duplicates_in_the_sink_after_sigkills_mid_stream(
    noida_projects: Callable[[str], EosProject],
    noida_broker: NoidaBroker,
    guarantee: str,
    tmp_path: Path,
) -> None:
    """Under exactly-once: 0 duplicates and exact counts. The same run under
    at-least-once is the control: it must show duplicates in the sink."""
    project = noida_projects("eoskill")
    n_events, kills = 6_000, 4
    await project.declare_topics()
    sent = [(i % len(KEYS), i) for i in range(n_events)]
    await produce(
        noida_broker,
        project.tallies,
        ((k % PARTITIONS, KEYS[k], value) for k, value in sent),
    )
    expected = Counter(KEYS[k] for k, _ in sent)
    ends = Counter(k % PARTITIONS for k, _ in sent)
    env = {
        "WORKER_PROCESSING_GUARANTEE": guarantee,
        # ``counts`` in RocksDB, its files kept across the kills (as on a
        # worker machine); ``memory-counts`` rebuilt from its changelog.
        "WORKER_STORE": "rocksdb://",
        "WORKER_DATADIR": str(tmp_path / "machine"),
        "WORKER_SESSION_TIMEOUT": "6",
        # Kafka drops a SIGKILLed member after the session timeout; noida-db
        # 0.2.3 never does (the group waits for the dead leader forever): the
        # restarted worker is the same static member (KIP-345) and replaces it.
        "WORKER_GROUP_INSTANCE_ID": "eos-worker",
        "WORKER_MEMORY_TABLE": "1",
        "WORKER_SINK": "1",
    }
    rng = random.Random(447)
    processed: list[int] = []
    try:
        for _ in range(kills):
            worker = project.start_worker(delay=0.001, env=env)
            await wait_for_workers(
                lambda w=worker: len(project.lines("tally", w.pid)) >= 200,
                timeout=90,
                what="the worker to process events",
                project=project,
            )
            # Kills land anywhere: mid-transaction mostly (0.5 s commits).
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            processed.append(len(project.lines("tally", worker.pid)))

        final = project.start_worker(env=env)

        async def all_committed() -> bool:
            committed = await project.committed(project.tallies)
            return all(committed[p] == ends[p] for p in range(PARTITIONS))

        deadline = asyncio.get_running_loop().time() + 180
        while not await all_committed():
            project.check_alive()
            assert asyncio.get_running_loop().time() < deadline, project.output(final)
            await asyncio.sleep(0.5)
        final_processed = len(project.lines("tally", final.pid))
        project.stop_all()
    finally:
        project.kill_all()

    total_processed = sum(processed) + final_processed
    records = await read_committed(noida_broker, project.tallied, PARTITIONS)
    sources = Counter(json.loads(r.value)["source"] for r in records)
    duplicates = sum(n - 1 for n in sources.values() if n > 1)
    # The last count of each key in the sink is the table's count then.
    last: dict[str, int] = {}
    memory_last: dict[str, int] = {}
    for record in records:
        value = json.loads(record.value)
        last[record.key.decode()] = value["count"]
        memory_last[record.key.decode()] = value["memory_count"]
    print(
        f"\n{guarantee}: {n_events} events, {kills} SIGKILLs, "
        f"{total_processed} processed "
        f"({total_processed - n_events} replayed); sink: {len(records)} committed "
        f"records, {duplicates} duplicates"
    )
    assert total_processed > n_events, "no event was processed twice: no test"
    if guarantee == "at_least_once":
        assert duplicates > 0, "the control run shows no duplicate: no test"
        return
    assert duplicates == 0
    assert len(records) == n_events
    assert last == dict(expected)
    assert memory_last == dict(expected)
