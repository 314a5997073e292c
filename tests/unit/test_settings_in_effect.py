"""Settings that change what a running app does: each one is honoured.

Written the way a user would configure them (keyword arguments to the App, as
in Faust; the same names upper-cased in ``FAUST`` under Django), and checked
on the memory broker, whose topics, partitions and committed offsets are
visible.
"""

from __future__ import annotations

import asyncio

import pytest

from django_faust import TP
from django_faust.exceptions import ImproperlyConfigured
from django_faust.testing import make_app, running
from tests.helpers import committed, log_of, wait_for

# VERSION ----------------------------------------------------------------------


async def test_version_renames_the_group_and_internal_topics_not_user_topics():
    app = make_app("shop", version=2)
    orders = app.topic("orders", value_type=int)
    counts = app.Table("counts", default=int)
    seen = []

    @app.agent(orders)
    async def count(stream):
        async for value in stream:
            counts[str(value)] += 1
            seen.append(value)

    assert app.conf.id == "shop-v2"
    assert counts.changelog_topic_name == "shop-v2-counts-changelog"
    assert app.conf.dead_letter_topic == "shop-v2-dead-letters"
    async with running(app):
        await orders.send(key=b"k", value=1)
        await wait_for(lambda: seen == [1])
        await wait_for(lambda: counts["1"] == 1)
        assert await app.consumer.commit()
        broker = app.transport.broker
        assert "orders" in broker.logs  # named in code: not renamed
        assert len(log_of(app, "shop-v2-counts-changelog")) == 1
        groups = {group for group, _ in broker.committed}
    assert groups == {"shop-v2"}


async def test_version_1_keeps_the_app_id():
    app = make_app("shop")
    assert app.conf.version == 1
    assert app.conf.id == "shop"
    assert app.Table("t").changelog_topic_name == "shop-t-changelog"


async def test_a_new_version_reads_its_topics_from_the_start():
    """Bumping VERSION is a new consumer group: nothing committed by the old."""
    broker_url = "memory://version-bump"
    seen: dict[int, list[int]] = {1: [], 2: []}
    for version in (1, 2):
        app = make_app("shop", broker=broker_url, version=version)
        orders = app.topic("orders", value_type=int, partitions=1)

        @app.agent(orders)
        async def read(stream, version=version):
            async for value in stream:
                seen[version].append(value)

        async with running(app):
            if version == 1:
                for i in range(3):
                    await orders.send(value=i)
            await wait_for(lambda version=version: len(seen[version]) == 3)
            await app.consumer.commit()
    assert seen == {1: [0, 1, 2], 2: [0, 1, 2]}


# The dead-letter topic ------------------------------------------------------------


async def test_dead_letter_topic_is_created_at_start_with_the_app_settings():
    app = make_app(topic_partitions=3, topic_replication_factor=1)

    @app.agent(app.topic("work", value_type=int))
    async def work(stream):
        async for _ in stream:
            pass

    async with running(app):
        broker = app.transport.broker
        # Before anything failed: declared like a changelog, not auto-created.
        assert broker.partitions(app.conf.dead_letter_topic) == 3
        assert log_of(app, app.conf.dead_letter_topic) == []


async def test_client_only_app_does_not_declare_the_dead_letter_topic():
    app = make_app()
    await app.start_client()
    try:
        assert app.conf.dead_letter_topic not in app.transport.broker.logs
    finally:
        await app.stop()


# TOPIC_ALLOW_DECLARE ---------------------------------------------------------------


def _app_with_an_agent_and_a_table(**options):
    app = make_app("managed", topic_allow_declare=False, **options)
    orders = app.topic("orders", value_type=int)
    totals = app.Table("totals", default=int)
    seen = []

    @app.agent(orders)
    async def total(stream):
        async for value in stream:
            totals["all"] += value
            seen.append(value)

    return app, orders, seen


async def test_without_declare_the_app_creates_no_topic():
    app, orders, seen = _app_with_an_agent_and_a_table()
    broker = app.transport.broker
    # The topics, as an operator created them (fewer partitions than the app's).
    managed = {
        "orders": 2,
        "managed-totals-changelog": 2,
        "managed-dead-letters": 1,
    }
    for name, partitions in managed.items():
        broker.create_topic(name, partitions)
    async with running(app):
        await orders.send(key=b"a", value=5)
        await wait_for(lambda: seen == [5])
    assert {name: broker.partitions(name) for name in broker.logs} == managed


@pytest.mark.parametrize(
    "missing", ["orders", "managed-totals-changelog", "managed-dead-letters"]
)
async def test_without_declare_a_missing_topic_is_an_error_naming_it(missing):
    app, _, _ = _app_with_an_agent_and_a_table()
    broker = app.transport.broker
    for name in ("orders", "managed-totals-changelog", "managed-dead-letters"):
        if name != missing:
            broker.create_topic(name, 4)
    try:
        with pytest.raises(ImproperlyConfigured) as info:
            await app.start()
    finally:
        await app.stop()
    message = str(info.value)
    assert f"Topic {missing!r} does not exist" in message
    assert 'FAUST["TOPIC_ALLOW_DECLARE"] is False' in message
    assert missing not in broker.logs


async def test_with_declare_the_app_creates_its_topics():
    app = make_app("owned", topic_partitions=3)
    orders = app.topic("orders", value_type=int)

    @app.agent(orders)
    async def read(stream):
        async for _ in stream:
            pass

    app.Table("totals", default=int)
    async with running(app):
        broker = app.transport.broker
        for name in ("orders", "owned-totals-changelog", "owned-dead-letters"):
            assert broker.partitions(name) == 3, name
        await wait_for(lambda: TP("orders", 2) in app.consumer.assignment())


# BROKER_COMMIT_EVERY -------------------------------------------------------------


def _counting_app(commit_every):
    # A commit interval long enough never to fire during the test.
    app = make_app(broker_commit_every=commit_every, commit_interval=3600)
    topic = app.topic("events", value_type=int, partitions=1)
    seen = []

    @app.agent(topic)
    async def consume(stream):
        async for value in stream:
            seen.append(value)

    return app, topic, seen


async def test_commit_every_commits_after_that_many_processed_messages():
    app, topic, seen = _counting_app(commit_every=5)
    async with running(app):
        for i in range(5):
            await topic.send(value=i)
        await wait_for(lambda: committed(app).get(TP("events", 0)) == 5)
        assert seen == [0, 1, 2, 3, 4]


async def test_below_commit_every_only_the_interval_commits():
    app, topic, seen = _counting_app(commit_every=100)
    async with running(app):
        for i in range(5):
            await topic.send(value=i)
        await wait_for(lambda: len(seen) == 5)
        await asyncio.sleep(0.2)
        assert committed(app) == {}
    # Stopping commits what was processed.
    assert committed(app) == {TP("events", 0): 5}


# STREAM_WAIT_EMPTY -----------------------------------------------------------------


def _slow_app(**options):
    app = make_app(**options)
    topic = app.topic("slow", value_type=int, partitions=1)
    started, finished = [], []

    @app.agent(topic)
    async def slow(stream):
        async for value in stream:
            started.append(value)
            await asyncio.sleep(0.05)
            finished.append(value)

    return app, topic, started, finished


async def test_stream_wait_empty_processes_every_fetched_event_before_stopping():
    app, topic, _, finished = _slow_app(stream_wait_empty=True)
    await app.start()
    for i in range(5):
        await topic.send(value=i)
    await wait_for(lambda: app.consumer.messages_received == 5)
    await app.stop()
    assert finished == [0, 1, 2, 3, 4]
    assert committed(app) == {TP("slow", 0): 5}


async def test_without_stream_wait_empty_only_the_event_in_hand_finishes():
    app, topic, started, finished = _slow_app()
    assert app.conf.stream_wait_empty is False
    await app.start()
    for i in range(5):
        await topic.send(value=i)
    await wait_for(lambda: app.consumer.messages_received == 5 and started)
    await app.stop()
    assert finished == started
    assert len(finished) < 5
    assert committed(app) == {TP("slow", 0): len(finished)}


async def test_stream_wait_empty_gives_up_after_the_shutdown_timeout(caplog):
    app = make_app(stream_wait_empty=True)
    app.shutdown_timeout = 0.2
    topic = app.topic("held", value_type=int, partitions=1)

    @app.agent(topic)
    async def hold(stream):
        async for _ in stream.noack():
            pass  # never acknowledged

    await app.start()
    await topic.send(value=1)
    await wait_for(lambda: app.consumer.messages_received == 1)
    await app.stop()
    assert "still unprocessed after 0.2s" in caplog.text


# WORKER_SHUTDOWN_TIMEOUT -----------------------------------------------------------


def test_worker_shutdown_timeout_bounds_the_stop_and_the_cli_overrides_it():
    from django_faust.worker import Worker

    app = make_app(worker_shutdown_timeout=4)
    app._shutdown_timeout = None  # make_app shortens it for tests
    assert app.shutdown_timeout == 4.0
    Worker(app, shutdown_timeout=1.5, setup_logging=False)
    assert app.shutdown_timeout == 1.5


async def test_the_shutdown_timeout_bounds_the_whole_wait_not_each_step(caplog):
    app = make_app(stream_wait_empty=True)
    app.shutdown_timeout = 0.5
    held = app.topic("held", value_type=int, partitions=1)
    slow = app.topic("slow", value_type=int, partitions=1)
    busy = []

    @app.agent(held)
    async def hold(stream):
        async for _ in stream.noack():
            pass  # never acknowledged: wait_empty waits the whole timeout

    @app.agent(slow)
    async def crawl(stream):
        async for _ in stream:
            busy.append(1)
            await asyncio.sleep(30)

    await app.start()
    await held.send(value=1)
    await slow.send(value=1)
    await wait_for(lambda: app.consumer.messages_received == 2 and busy)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await app.stop()
    took = loop.time() - started
    assert took < 0.5 + 0.4, f"the stop took {took:.2f}s"
    assert "still unprocessed after 0.5s" in caplog.text
    assert "still being processed" in caplog.text
