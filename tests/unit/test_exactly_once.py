"""Exactly-once on the memory transport: transactions as Kafka has them.

With ``PROCESSING_GUARANTEE="exactly_once"`` a worker's sends, its tables'
changelog records and its consumed offsets are committed together, in one
transaction per commit. A worker that dies before the commit leaves none of
it visible to ``read_committed`` readers; its successor (same transactional
id) aborts the open transaction, processes the events again, and its sink
holds each result once.

The memory broker models what matters of Kafka's transactions: records of
an open transaction have offsets but stay invisible to read_committed
readers (they stop at the last stable offset), aborted records are skipped
for good, and a newer producer with the same transactional id fences the
older one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from django_faust import TP
from django_faust.exceptions import ImproperlyConfigured, TransactionError
from django_faust.testing import make_app, running
from django_faust.transport.memory import MemoryBroker
from tests.helpers import wait_for


def committed_values(broker: MemoryBroker, topic: str) -> list[Any]:
    """What a read_committed reader sees of ``topic``, all partitions."""
    out = []
    for partition in range(broker.partitions(topic)):
        messages, _ = broker.read_committed(TP(topic, partition), 0, 1_000_000)
        out.extend(json.loads(m.value) for m in messages if m.value is not None)
    return out


def feed(broker: MemoryBroker, topic: str, *values: int, key: bytes = b"a") -> None:
    """Events from outside (a plain producer: visible at once)."""
    for value in values:
        broker.append(topic, key, json.dumps(value).encode())


def eos_app(app_id: str, broker: str | None = None) -> tuple[Any, Any]:
    """Counts events per key and sends each (key, count) to a sink."""
    options: dict[str, Any] = {
        "processing_guarantee": "exactly_once",
        "topic_partitions": 1,
        "commit_interval": 0.2,
    }
    if broker is not None:
        options["broker"] = broker
    app = make_app(app_id, **options)
    topic = app.topic("clicks", key_type=str, value_type=int)
    sink = app.topic("sink", key_type=str, value_type=int)
    counts = app.Table("counts", default=int)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for key, value in stream.items():
            counts[key] += 1
            await sink.send(key=key, value=value)

    return app, counts


# -- the broker's model ------------------------------------------------------------


def test_read_committed_sees_committed_records_only() -> None:
    broker = MemoryBroker()
    broker.create_topic("t", 1)
    tp = TP("t", 0)
    epoch = broker.init_transactions("tx")
    broker.append("t", b"k", b"1", transaction=("tx", epoch))
    feed(broker, "t", 2)  # a plain record after the open transaction's
    # An open transaction: read_committed stops at its first record.
    assert broker.read_committed(tp, 0, 100) == ([], 0)
    assert broker.stable_offset(tp) == 0
    broker.abort_transaction("tx", epoch)
    messages, position = broker.read_committed(tp, 0, 100)
    assert [m.value for m in messages] == [b"2"]
    assert position == 2
    # read_uncommitted (the log) still has the aborted record.
    assert [m.value for m in broker.read(tp, 0, 100)] == [b"1", b"2"]

    broker.append("t", b"k", b"3", transaction=("tx", epoch))
    broker.commit_transaction("tx", epoch, {TP("in", 0): 7}, "group")
    messages, _ = broker.read_committed(tp, 0, 100)
    assert [m.value for m in messages] == [b"2", b"3"]
    assert broker.committed[("group", TP("in", 0))] == 7


def test_a_new_producer_with_the_same_id_aborts_and_fences_the_old() -> None:
    broker = MemoryBroker()
    broker.create_topic("t", 1)
    old = broker.init_transactions("tx")
    broker.append("t", b"k", b"zombie", transaction=("tx", old))
    new = broker.init_transactions("tx")
    assert broker.read_committed(TP("t", 0), 0, 100) == ([], 1)
    with pytest.raises(TransactionError, match="fenced"):
        broker.append("t", b"k", b"late", transaction=("tx", old))
    with pytest.raises(TransactionError, match="fenced"):
        broker.commit_transaction("tx", old, {TP("in", 0): 1}, "group")
    assert ("group", TP("in", 0)) not in broker.committed
    broker.append("t", b"k", b"1", transaction=("tx", new))
    broker.commit_transaction("tx", new)
    assert [m.value for m in broker.read_committed(TP("t", 0), 0, 100)[0]] == [b"1"]


# -- the app -------------------------------------------------------------------------


async def test_a_committed_transaction_is_visible_with_its_offsets() -> None:
    app, counts = eos_app("eos-commit")
    async with running(app):
        broker = app.transport.broker
        feed(broker, "clicks", *range(10))
        await wait_for(lambda: counts["a"] == 10)
        await wait_for(lambda: broker.committed.get(("eos-commit", TP("clicks", 0))))
        assert broker.committed[("eos-commit", TP("clicks", 0))] == 10
        assert committed_values(broker, "sink") == list(range(10))
        changelog = committed_values(broker, "eos-commit-counts-changelog")
        assert changelog[-1] == 10
        assert app.producer.transactional
        assert broker.transactions_committed >= 1


async def test_a_crash_mid_transaction_leaves_nothing_visible_and_counts_once(
    monkeypatch: Any,
) -> None:
    first, counts = eos_app("eos-crash")
    broker_url = first.conf.broker_url
    async with running(first):
        broker = first.transport.broker
        feed(broker, "clicks", *range(10))
        await wait_for(lambda: broker.committed.get(("eos-crash", TP("clicks", 0))))
        assert committed_values(broker, "sink") == list(range(10))

        # Killed before its next commit: the transaction is never committed
        # nor aborted by this worker (a SIGKILL does neither).
        async def killed(*args: Any) -> bool:
            return False

        monkeypatch.setattr(first.consumer, "commit", killed)
        feed(broker, "clicks", *range(10, 15))
        await wait_for(lambda: counts["a"] == 15)
        # Sent, but in the open transaction: invisible to read_committed.
        assert len(broker.read(TP("sink", 0), 0, 100)) == 15
        assert committed_values(broker, "sink") == list(range(10))
    assert broker.committed[("eos-crash", TP("clicks", 0))] == 10

    # The same worker restarts: its transactional id aborts what was open.
    again, recovered = eos_app("eos-crash", broker_url)
    assert again.transactional_id == first.transactional_id
    async with running(again):
        await wait_for(lambda: recovered["a"] == 15)
        await wait_for(
            lambda: broker.committed.get(("eos-crash", TP("clicks", 0))) == 15
        )
        await asyncio.sleep(0.3)
        assert recovered["a"] == 15
    # Each event's result once; the dead worker's 10..14 were aborted.
    assert committed_values(broker, "sink") == list(range(15))
    assert len(broker.aborted[TP("sink", 0)]) == 5
    assert committed_values(broker, "eos-crash-counts-changelog")[-1] == 15


async def test_a_failed_transaction_commit_aborts_and_stops_the_worker(
    monkeypatch: Any,
) -> None:
    app, _ = eos_app("eos-fail")
    broker = app.transport.broker

    commit = app.producer.commit_transaction
    refusals = []

    async def refused_once(offsets: Any, group_id: str) -> None:
        if not refusals:
            refusals.append(offsets)
            raise ConnectionError("the broker refused EndTxn")
        await commit(offsets, group_id)

    monkeypatch.setattr(app.producer, "commit_transaction", refused_once)
    async with running(app):
        feed(broker, "clicks", *range(3))
        await wait_for(lambda: app.crashed)
        assert isinstance(app.crash_reason, TransactionError)
    assert committed_values(broker, "sink") == []
    assert len(broker.aborted[TP("sink", 0)]) == 3
    # Nor did the final commit at stop commit the aborted events' offsets.
    assert refusals
    assert ("eos-fail", TP("clicks", 0)) not in broker.committed


async def test_the_commit_waits_for_the_events_in_hand() -> None:
    gate = asyncio.Event()
    app = make_app(
        "eos-wait",
        processing_guarantee="exactly_once",
        topic_partitions=1,
        commit_interval=5.0,
    )
    topic = app.topic("clicks", key_type=str, value_type=int)
    sink = app.topic("sink", key_type=str, value_type=int)

    @app.agent(topic)
    async def slow(stream: Any) -> None:
        async for key, value in stream.items():
            await sink.send(key=key, value=value)
            if value == 1:
                await gate.wait()  # sent, not yet acked

    async with running(app):
        broker = app.transport.broker
        feed(broker, "clicks", 0, 1)
        await wait_for(lambda: len(broker.read(TP("sink", 0), 0, 10)) == 2)
        commit = asyncio.ensure_future(app.consumer.commit())
        await asyncio.sleep(0.1)
        # The commit must cover event 1, whose send is in the transaction.
        assert not commit.done()
        # Events fetched while it waits are held back, not lost.
        feed(broker, "clicks", 2, 3)
        await asyncio.sleep(0.1)
        gate.set()
        assert await commit
        assert broker.committed[("eos-wait", TP("clicks", 0))] == 2
        assert committed_values(broker, "sink") == [0, 1]
        await wait_for(lambda: len(broker.read(TP("sink", 0), 0, 10)) == 4)
        assert await app.consumer.commit()
        assert broker.committed[("eos-wait", TP("clicks", 0))] == 4
        assert committed_values(broker, "sink") == [0, 1, 2, 3]


def test_a_misspelled_guarantee_is_refused_with_a_suggestion() -> None:
    app = make_app("eos-client", processing_guarantee="exactly_once")
    assert app.exactly_once
    with pytest.raises(ImproperlyConfigured, match="did you mean 'exactly_once'"):
        make_app("eos-bad", processing_guarantee="exactly-once").conf  # noqa: B018


async def test_ask_works_from_outside_an_event_and_is_refused_inside_one() -> None:
    app = make_app(
        "eos-ask",
        processing_guarantee="exactly_once",
        topic_partitions=1,
        commit_interval=0.1,
    )
    words = app.topic("words", value_type=str)
    asks = app.topic("asks", value_type=str)
    refused: list[BaseException] = []

    @app.agent(words)
    async def shout(stream: Any) -> Any:
        async for word in stream:
            yield word.upper()

    @app.agent(asks)
    async def relay(stream: Any) -> None:
        async for word in stream:
            try:
                await shout.ask(word, timeout=1)
            except ImproperlyConfigured as exc:
                refused.append(exc)

    async with running(app):
        # The request and the reply each become visible at a commit.
        assert await shout.ask("hi", timeout=10) == "HI"
        app.transport.broker.append("asks", None, b'"x"')
        await wait_for(lambda: refused)
    assert "exactly_once" in str(refused[0])


def test_kafka_clients_read_committed_and_the_worker_producer_is_transactional() -> (
    None
):
    from django_faust.transport.kafka.reader import AIOKafkaPartitionReader
    from django_faust.transport.kafka.transactions import TransactionalProducer

    app = make_app(
        "shop", broker="kafka://k1:9092", processing_guarantee="exactly_once"
    )
    assert app.consumer.client_options()["isolation_level"] == "read_committed"
    reader = app.transport.create_reader({TP("t", 0): 0})
    assert isinstance(reader, AIOKafkaPartitionReader)
    assert reader._read_committed
    producer = app.producer
    assert isinstance(producer, TransactionalProducer)
    # A client process's producer stays plain: only a worker's sends in
    # transactions (App.on_init_dependencies calls use_transactions).
    assert "transactional_id" not in producer.client_options()
    producer.use_transactions(app.transactional_id)
    options = producer.client_options()
    assert options["transactional_id"] == app.transactional_id
    assert app.transactional_id.startswith("shop-")
    assert options["enable_idempotence"] is True
    assert options["acks"] == "all"

    plain = make_app("shop", broker="kafka://k1:9092")
    assert plain.consumer.client_options()["isolation_level"] == "read_uncommitted"
    assert not isinstance(plain.producer, TransactionalProducer)
