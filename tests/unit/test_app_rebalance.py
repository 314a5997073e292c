"""The App's rebalance signals and ``app.commit()``, on the memory transport.

Written as a user of the Faust docs would: connect to the app's signals,
commit from inside the application when a batch of work is known to be done.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from django_faust import TP
from django_faust.testing import make_app, running
from tests.helpers import committed, wait_for


def _record(app: Any) -> list[tuple[str, Any]]:
    """Connect to every rebalance signal of ``app``; what arrives, in order."""
    seen: list[tuple[str, Any]] = []

    @app.on_rebalance_start.connect
    async def on_rebalance_start(sender: Any, **kwargs: Any) -> None:
        seen.append(("start", sender))

    @app.on_partitions_revoked.connect
    async def on_partitions_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        seen.append(("revoked", set(revoked)))

    @app.on_rebalance_return.connect
    async def on_rebalance_return(sender: Any, **kwargs: Any) -> None:
        # The new assignment is known here; the tables are recovered next.
        seen.append(("return", app.consumer.assignment()))

    @app.on_partitions_assigned.connect
    async def on_partitions_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        seen.append(("assigned", set(assigned)))

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
        seen.append(("complete", sender))

    return seen


async def test_every_rebalance_sends_start_return_and_complete_in_order() -> None:
    one = make_app("rebalancing", commit_interval=1000.0)
    two = make_app("rebalancing", broker=one.conf.broker_url)
    for app in (one, two):
        topic = app.topic("jobs", partitions=2, value_type=int)

        @app.agent(topic, name="worker")
        async def worker(stream: Any) -> None:
            async for _ in stream:
                pass

    seen = _record(one)
    everything = {TP("jobs", 0), TP("jobs", 1)}
    async with running(one):
        await wait_for(lambda: ("complete", one) in seen)
        # Joining the group is the first rebalance: nothing to revoke.
        assert seen == [
            ("start", one),
            ("return", everything),
            ("assigned", everything),
            ("complete", one),
        ]
        assert one.consumer.assignment() == everything
        seen.clear()
        async with running(two):
            await wait_for(lambda: ("complete", one) in seen)
            kept = one.consumer.assignment()
            assert len(kept) == 1
            assert seen == [
                ("start", one),
                ("revoked", everything),
                ("return", kept),
                ("assigned", kept),
                ("complete", one),
            ]


async def test_a_signal_connected_to_the_class_hears_every_app() -> None:
    from django_faust import App

    app = make_app()
    app.topic("anything", partitions=1)
    heard: list[Any] = []

    async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
        heard.append(sender)

    App.on_rebalance_complete.connect(on_rebalance_complete)
    try:

        @app.agent("anything")
        async def reader(stream: Any) -> None:
            async for _ in stream:
                pass

        async with running(app):
            await wait_for(lambda: app in heard)
    finally:
        App.on_rebalance_complete.disconnect(on_rebalance_complete)


async def test_app_commit_commits_the_acked_offsets_of_the_topics_given() -> None:
    # A commit interval that never comes: only app.commit() commits.
    app = make_app(commit_interval=1000.0)
    orders = app.topic("orders", partitions=2, value_type=int)
    audits = app.topic("audits", partitions=1, value_type=int)
    done: list[int] = []

    @app.agent(orders)
    async def take_orders(stream: Any) -> None:
        async for value in stream:
            done.append(value)

    @app.agent(audits)
    async def take_audits(stream: Any) -> None:
        async for value in stream:
            done.append(value)

    assert await app.commit(None) is False  # not consuming yet
    async with running(app):
        for i in range(4):
            await orders.send(value=i, partition=i % 2)
        await audits.send(value=100)
        await wait_for(lambda: len(done) == 5)
        # Acked once each agent asks for its next event.
        await wait_for(
            lambda: (
                app.consumer.committable()
                == {TP("orders", 0): 2, TP("orders", 1): 2, TP("audits", 0): 1}
            )
        )
        assert committed(app) == {}

        assert await app.commit({"orders"}) is True
        assert committed(app) == {TP("orders", 0): 2, TP("orders", 1): 2}
        assert await app.commit({"orders"}) is False  # nothing new was acked

        assert await app.commit({TP("audits", 0)}) is True
        assert committed(app)[TP("audits", 0)] == 1

        await orders.send(value=4, partition=0)
        await wait_for(lambda: app.consumer.committable() == {TP("orders", 0): 3})
        assert await app.commit(None) is True
        assert committed(app)[TP("orders", 0)] == 3
        assert await app.commit({"not-a-topic-we-read"}) is False


async def test_app_commit_refuses_a_bare_topic_name() -> None:
    app = make_app()
    with pytest.raises(TypeError, match=r"app.commit\(\{'orders'\}\)"):
        await app.commit("orders")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="topic names and TPs"):
        await app.commit({42})  # type: ignore[arg-type]


async def test_the_event_in_hand_at_a_rebalance_is_finished_and_committed_once() -> (
    None
):
    # An agent is in the middle of an event (awaiting something) when a
    # second worker joins and the partitions are revoked. The event is
    # finished, and its offset committed, before the partitions are given
    # up: no worker processes it again.
    one = make_app("in-hand", commit_interval=1000.0)
    two = make_app("in-hand", broker=one.conf.broker_url, commit_interval=1000.0)
    gate = asyncio.Event()
    done: list[tuple[str, int, int]] = []
    for app in (one, two):
        topic = app.topic("jobs", partitions=2, value_type=int)

        @app.agent(topic, name="worker")
        async def worker(stream: Any, app: Any = app) -> None:
            async for event in stream.events():
                if event.value == 1:
                    await gate.wait()  # held here while the group rebalances
                message = event.message
                done.append((app.conf.id, message.partition, message.offset))

    jobs = one.topic("jobs", partitions=2, value_type=int)
    async with running(one):
        await jobs.send(value=0, partition=0)
        await jobs.send(value=1, partition=0)
        await wait_for(lambda: len(done) == 1)
        async with running(two):
            await asyncio.sleep(0.1)  # the rebalance waits for the event in hand
            gate.set()
            await wait_for(lambda: len(two.consumer.assignment()) == 1)
            await wait_for(lambda: len(one.consumer.assignment()) == 1)
            for n in range(2, 6):
                await jobs.send(value=n, partition=n % 2)
            await wait_for(lambda: len({(p, o) for _, p, o in done}) == 6)
            await asyncio.sleep(0.1)
    offsets = [(p, o) for _, p, o in done]
    assert sorted(offsets) == sorted(set(offsets)), done


async def test_a_rebalance_waits_for_the_event_in_hand_no_longer_than_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    one = make_app("stuck", commit_interval=1000.0)
    one.shutdown_timeout = 0.2  # WORKER_SHUTDOWN_TIMEOUT
    two = make_app("stuck", broker=one.conf.broker_url, commit_interval=1000.0)
    two.shutdown_timeout = 0.2
    never = asyncio.Event()
    for app in (one, two):
        topic = app.topic("jobs", partitions=2, value_type=int)

        @app.agent(topic, name="worker")
        async def worker(stream: Any) -> None:
            async for _ in stream:
                await never.wait()

    jobs = one.topic("jobs", partitions=2, value_type=int)
    async with running(one):
        await jobs.send(value=0, partition=0)
        await jobs.send(value=1, partition=1)
        await asyncio.sleep(0.05)  # the first event in hand, never finished
        async with running(two):
            await wait_for(lambda: "still being processed after 0.2s" in caplog.text)
            await wait_for(lambda: len(two.consumer.assignment()) == 1)
            await wait_for(lambda: len(one.consumer.assignment()) == 1)
            # Nothing was finished, so nothing was committed.
            assert committed(one) == {}
        never.set()
