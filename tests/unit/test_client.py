"""Sending from sync code, other threads and other loops (client.py), on memory://."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading

import pytest
from django.db import transaction

from django_faust import Record, RecordMetadata
from django_faust.client import SyncCallInAsyncContext, get_client
from django_faust.exceptions import EncodeError, RecordValidationError
from django_faust.testing import make_app, running
from django_faust.transport.memory import get_broker
from tests.helpers import wait_for


class Order(Record):
    account: str
    amount: int


def logged(app, topic: str) -> list[bytes | None]:
    broker = get_broker(app.conf.broker_url)
    return [m.value for log in broker.logs.get(topic, []) for m in log]


@pytest.fixture
def counting_app():
    """An app whose agent collects every order it processes."""
    app = make_app()
    topic = app.topic("orders", key_type=str, value_type=Order)
    seen: list[Order] = []

    @app.agent(topic)
    async def collect(stream):
        async for order in stream:
            seen.append(order)

    return app, topic, seen


async def test_send_sync_from_threads_of_a_running_app(counting_app):
    """Sync code in threads (a WSGI view under the worker) hands over to its loop."""
    app, topic, seen = counting_app

    def view(n: int) -> RecordMetadata:
        return topic.send_sync(key=f"acct-{n}", value=Order(f"acct-{n}", n))

    async with running(app):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            metas = await asyncio.gather(
                *(asyncio.wrap_future(pool.submit(view, n)) for n in range(40))
            )
        await wait_for(lambda: len(seen) == 40, timeout=5)
    assert all(isinstance(m, RecordMetadata) and m.topic == "orders" for m in metas)
    assert sorted(o.amount for o in seen) == list(range(40))


async def test_sync_calls_refuse_inside_a_running_loop(counting_app):
    app, topic, _ = counting_app

    @app.agent()
    async def echo(stream):
        async for value in stream:
            yield value

    async with running(app):
        with pytest.raises(SyncCallInAsyncContext, match=r"topic\.send_and_wait"):
            topic.send_sync(key="a", value=Order("a", 1))
        with pytest.raises(SyncCallInAsyncContext, match=r"agent\.ask"):
            echo.ask_sync(1)
        # The async ways work there.
        assert await echo.ask(7) == 7


async def test_send_soon_from_a_thread_returns_a_concurrent_future(counting_app):
    app, topic, seen = counting_app
    async with running(app):
        fut = await asyncio.to_thread(topic.send_soon, key="a", value=Order("a", 5))
        assert isinstance(fut, concurrent.futures.Future)
        meta = await asyncio.wrap_future(fut)
        await wait_for(lambda: len(seen) == 1, timeout=5)
    assert meta.topic == "orders"
    assert seen == [Order("a", 5)]


async def test_ask_sync_and_cast_sync_from_a_thread(faust_app):
    got = []

    @faust_app.agent()
    async def double(stream):
        async for value in stream:
            got.append(value)
            if value >= 0:
                yield value * 2

    async with running(faust_app):
        assert await asyncio.to_thread(double.ask_sync, 21, timeout=5) == 42
        await asyncio.to_thread(double.cast_sync, 5)
        await wait_for(lambda: 5 in got, timeout=5)
        with pytest.raises(TimeoutError):
            # Negative values get no reply.
            await asyncio.to_thread(double.ask_sync, -1, timeout=0.2)


def test_bad_value_or_key_raises_naming_topic_and_field_and_sends_nothing():
    app = make_app()
    topic = app.topic("orders", key_type=int, value_type=Order)
    with pytest.raises(RecordValidationError, match=r"'orders'.*amount") as info:
        topic.send_sync(key=1, value={"account": "a"})
    assert info.value.field == "amount"
    with pytest.raises(EncodeError, match=r"'orders'.*key"):
        topic.send_sync(key=object(), value=Order("a", 1))
    with pytest.raises(EncodeError, match=r"'orders' \(field 'x'\)"):
        topic.send_soon(key=1, value={"account": "a", "amount": 1, "x": object()})
    with pytest.raises(EncodeError, match=r"'orders' \(field 'account'\)"):
        topic.send_sync(key=1, value=Order(object(), 1))  # type: ignore[arg-type]
    assert logged(app, "orders") == []


def test_a_process_without_worker_starts_one_client_thread_for_every_thread():
    """`manage.py shell`: the first send starts the client; all threads share it."""
    app = make_app()
    topic = app.topic("events", value_type=int)
    try:
        threads = [
            threading.Thread(
                target=lambda i=i: [
                    topic.send_sync(value=i * 100 + n) for n in range(50)
                ]
            )
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert app.running_loop is get_client(app)._loop
        assert len(logged(app, "events")) == 200
        assert topic.send_soon(value=1).result(5).topic == "events"
    finally:
        get_client(app).stop()
    assert app.running_loop is None


def test_async_send_from_another_loop_gets_a_future_of_its_own_loop():
    """``async_to_sync(topic.send)`` and async views on another server's loop."""
    app = make_app()
    topic = app.topic("events", value_type=int)
    try:
        get_client(app).loop()  # the App runs on the client thread

        async def view() -> RecordMetadata:
            fut = await topic.send(value=1)
            assert fut.get_loop() is asyncio.get_running_loop()
            return await fut

        # Each asyncio.run() is a new loop, closed afterwards.
        assert asyncio.run(view()).offset >= 0
        assert asyncio.run(view()).offset >= 0
        # The future returned to a loop that is gone is still resolved.
        fut = asyncio.run(topic.send(value=2))
        wait_for_sync(fut.done)
        assert fut.result().topic == "events"
        assert len(logged(app, "events")) == 3
    finally:
        get_client(app).stop()


def wait_for_sync(predicate, timeout: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("timed out")


@pytest.mark.django_db(transaction=True)
def test_send_on_commit_sends_after_commit_and_never_on_rollback():
    app = make_app()
    topic = app.topic("orders", key_type=str, value_type=Order)
    try:
        with transaction.atomic():
            topic.send_on_commit(key="a", value=Order("a", 1))
            with transaction.atomic():
                topic.send_on_commit(key="b", value=Order("b", 2))
            # Not before the outermost block commits.
            assert logged(app, "orders") == []
        with pytest.raises(RuntimeError), transaction.atomic():
            topic.send_on_commit(key="c", value=Order("c", 3))
            raise RuntimeError("rolled back")
        # Outside a transaction: at once.
        topic.send_on_commit(key="d", value=Order("d", 4))
        wait_for_sync(lambda: len(logged(app, "orders")) == 3)
        amounts = [Order.loads(v).amount for v in logged(app, "orders") if v]
    finally:
        get_client(app).stop()
    assert sorted(amounts) == [1, 2, 4]


@pytest.mark.django_db(transaction=True)
def test_send_on_commit_validates_in_the_block_and_logs_failed_sends(caplog):
    app = make_app()
    topic = app.topic("orders", key_type=str, value_type=Order)
    try:
        with pytest.raises(RecordValidationError), transaction.atomic():
            topic.send_on_commit(key="a", value={"account": "a"})
        with caplog.at_level(logging.ERROR, logger="django_faust.client"):
            # Partition 99 does not exist: the broker refuses it after commit.
            topic.send_on_commit(key="k-99", value=Order("a", 1), partition=99)
            wait_for_sync(lambda: "k-99" in caplog.text)
        assert "'orders'" in caplog.text
    finally:
        get_client(app).stop()


@pytest.mark.django_db(transaction=True)
def test_cast_on_commit(faust_app):
    @faust_app.agent()
    async def inbox(stream):
        async for _ in stream:
            pass

    try:
        with transaction.atomic():
            inbox.cast_on_commit(1, key="a")
        name = inbox.channel.get_topic_name()
        wait_for_sync(lambda: len(logged(faust_app, name)) == 1)
    finally:
        get_client(faust_app).stop()


def test_send_sync_to_a_topic_the_broker_does_not_have(monkeypatch):
    """With auto-creation off, Kafka answers UNKNOWN_TOPIC_OR_PARTITION."""
    from aiokafka.errors import UnknownTopicOrPartitionError

    from django_faust.exceptions import UnknownTopicError

    app = make_app()
    topic = app.topic("missing", value_type=int)
    broker = get_broker(app.conf.broker_url)

    def refuse(topic, *args, **kwargs):
        raise UnknownTopicOrPartitionError()

    monkeypatch.setattr(broker, "append", refuse)
    try:
        with pytest.raises(UnknownTopicError, match="'missing' does not exist") as info:
            topic.send_sync(value=1)
        assert info.value.topic == "missing"
    finally:
        get_client(app).stop()


def test_a_forked_child_does_not_reuse_the_parents_client():
    """gunicorn --preload: the client thread does not survive the fork."""
    import os

    from django_faust.exceptions import ImproperlyConfigured

    started = make_app()
    topic = started.topic("events", value_type=int)
    topic.send_sync(value=1)  # starts the client in this (parent) process
    fresh = make_app()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                topic.send_sync(value=2, timeout=5)
                code = 1
            except ImproperlyConfigured:
                pass
            except BaseException:
                code = 2
            try:
                fresh.topic("events", value_type=int).send_sync(value=3, timeout=5)
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert topic.send_sync(value=4).topic == "events"  # the parent's still works
    finally:
        get_client(started).stop()


@pytest.mark.django_db(transaction=True)
async def test_local_channels_take_sync_sends_from_threads(faust_app):
    channel = faust_app.channel()
    got = []

    @faust_app.agent(channel)
    async def inbox(stream):
        async for value in stream:
            got.append(value)

    def on_commit_then_rollback() -> None:
        with transaction.atomic():
            channel.send_on_commit(value="committed")
        with pytest.raises(RuntimeError), transaction.atomic():
            channel.send_on_commit(value="rolled back")
            raise RuntimeError

    async with running(faust_app):
        await asyncio.to_thread(channel.send_sync, value="sync")
        fut = await asyncio.to_thread(channel.send_soon, value="soon")
        await asyncio.wrap_future(fut)
        await asyncio.to_thread(on_commit_then_rollback)
        await wait_for(lambda: len(got) == 3, timeout=5)
        with pytest.raises(SyncCallInAsyncContext, match=r"channel\.send"):
            channel.send_sync(value="in the loop")
    assert got == ["sync", "soon", "committed"]


def test_sync_sends_wait_producer_send_timeout_unless_told(monkeypatch):
    from django_faust import client as client_module

    app = make_app(producer_send_timeout=0.2)
    topic = app.topic("slow", value_type=int)
    # A broker that never acknowledges.
    monkeypatch.setattr(
        client_module, "send_soon", lambda *a, **k: concurrent.futures.Future()
    )
    with pytest.raises(TimeoutError, match=r"within 0\.2s"):
        topic.send_sync(value=1)
    with pytest.raises(TimeoutError, match=r"within 0\.1s"):
        topic.send_sync(value=1, timeout=0.1)
    assert repr(client_module.SEND_TIMEOUT) == "<the PRODUCER_SEND_TIMEOUT setting>"
