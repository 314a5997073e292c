"""``isolated_partitions=True``: an actor per assigned partition, as in Faust."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from django_faust import TP, current_event
from django_faust.exceptions import ImproperlyConfigured
from django_faust.testing import make_app, running
from tests.helpers import committed, wait_for


def stopped(actor) -> bool:
    return actor.should_stop and actor._task.done()


async def test_each_actor_reads_one_partition_in_order(faust_app):
    topic = faust_app.topic("iso", value_type=int, partitions=4)
    # stream -> [(partition, value), ...] as the Faust docs' user would count.
    seen: dict[int, list[tuple[int, int]]] = defaultdict(list)
    totals: dict[int, int] = {}

    @faust_app.agent(topic, isolated_partitions=True)
    async def per_partition(stream):
        total = 0  # state of this partition only
        async for value in stream:
            partition = current_event().message.partition
            seen[id(stream)].append((partition, value))
            total += value
            totals[partition] = total

    async with running(faust_app):
        await wait_for(lambda: len(per_partition.actors) == 4)
        assert sorted(a.tp for a in per_partition.actors) == [
            TP("iso", p) for p in range(4)
        ]
        for i in range(40):
            await topic.send(value=i, partition=i % 4)
        await wait_for(lambda: sum(len(v) for v in seen.values()) == 40)
        await faust_app.consumer.commit()
        assert committed(faust_app) == {TP("iso", p): 10 for p in range(4)}
    assert len(seen) == 4
    for events in seen.values():
        partitions = {p for p, _ in events}
        assert len(partitions) == 1
        (p,) = partitions
        assert [v for _, v in events] == list(range(p, 40, 4))
    assert totals == {p: sum(range(p, 40, 4)) for p in range(4)}


async def test_a_failing_partition_restarts_alone(faust_app):
    topic = faust_app.topic("iso-fail", value_type=int, partitions=2)
    done: list[tuple[int, int]] = []

    @faust_app.agent(topic, isolated_partitions=True)
    async def picky(stream):
        async for value in stream:
            if value < 0:
                raise ValueError("negative")
            done.append((current_event().message.partition, value))

    async with running(faust_app):
        await wait_for(lambda: len(picky.actors) == 2)
        await topic.send(value=-1, partition=0)
        for i in range(4):
            await topic.send(value=i, partition=i % 2)
        await wait_for(lambda: len(done) == 4)
        by_tp = {a.tp.partition: a for a in picky.actors}
        assert by_tp[0].restarts == 1 and by_tp[1].restarts == 0
    assert sorted(done) == [(0, 0), (0, 2), (1, 1), (1, 3)]


async def test_actors_follow_the_assignment_across_a_rebalance():
    one = make_app("iso-group")
    two = make_app("iso-group", broker=one.conf.broker_url)
    seen: dict[str, set[int]] = {"one": set(), "two": set()}
    agents = {}
    for app, name in ((one, "one"), (two, "two")):
        topic = app.topic("iso-shared", value_type=int, partitions=4)

        def make(name=name, topic=topic, app=app):
            @app.agent(topic, name="iso-reader", isolated_partitions=True)
            async def reader(stream):
                async for _ in stream:
                    seen[name].add(current_event().message.partition)

            return reader

        agents[name] = make()

    async with running(one):
        await wait_for(lambda: len(agents["one"].actors) == 4)
        first_actors = list(agents["one"].actors)
        async with running(two):
            await wait_for(
                lambda: (
                    len(one.consumer.assignment()) == 2
                    and len(two.consumer.assignment()) == 2
                    and len(agents["one"].actors) == 2
                    and len(agents["two"].actors) == 2
                )
            )
            for name, app in (("one", one), ("two", two)):
                assert {a.tp for a in agents[name].actors} == app.consumer.assignment()
            # Revoked partitions' actors were stopped, not left reading.
            await wait_for(lambda: all(stopped(a) for a in first_actors))
            producer = await one.maybe_start_producer()
            for i in range(20):
                await producer.send(
                    "iso-shared", None, str(i).encode(), partition=i % 4
                )
            await wait_for(lambda: len(seen["one"]) + len(seen["two"]) == 4)
            assert seen["one"] == {tp.partition for tp in one.consumer.assignment()}
            assert seen["two"] == {tp.partition for tp in two.consumer.assignment()}
        await wait_for(lambda: len(agents["one"].actors) == 4)
    assert all(stopped(a) for a in agents["one"].actors)


async def test_isolated_partitions_with_concurrency_is_refused(faust_app):
    with pytest.raises(ImproperlyConfigured, match="Agent many: isolated_partitions"):

        @faust_app.agent(name="many", isolated_partitions=True, concurrency=2)
        async def many(stream):
            async for _ in stream:
                pass


async def test_isolated_partitions_on_a_local_channel_is_refused(faust_app):
    with pytest.raises(ImproperlyConfigured, match=r"Agent local: .*needs a topic"):

        @faust_app.agent(faust_app.channel(), name="local", isolated_partitions=True)
        async def local(stream):
            async for _ in stream:
                pass


async def test_isolated_agent_on_its_own_topic_starts(faust_app):
    # The option is the agent's: it is not handed on to the topic (which
    # used to fail the start).
    got = []

    @faust_app.agent(value_type=int, isolated_partitions=True)
    async def own(stream):
        async for value in stream:
            got.append((current_event().message.partition, value))

    async with running(faust_app):
        await wait_for(lambda: len(own.actors) == 4)
        await own.send(value=7, partition=3)
        await wait_for(lambda: got == [(3, 7)])


async def test_a_slow_partition_is_paused_alone(faust_app):
    topic = faust_app.topic("iso-flood", value_type=int, partitions=2, maxsize=10)
    stuck, hold_one = asyncio.Event(), asyncio.Event()
    got: dict[int, list[int]] = defaultdict(list)

    @faust_app.agent(topic, isolated_partitions=True)
    async def slow_on_zero(stream):
        async for value in stream:
            partition = current_event().message.partition
            await (stuck if partition == 0 else hold_one).wait()
            got[partition].append(value)

    zero, one = TP("iso-flood", 0), TP("iso-flood", 1)
    async with running(faust_app):
        consumer = faust_app.consumer
        resumed: list[TP] = []
        real_resume = consumer.resume

        def resume(*tps):
            resumed.extend(tps)
            real_resume(*tps)

        consumer.resume = resume
        producer = await faust_app.maybe_start_producer()
        for p in (zero, one):
            for i in range(1000):
                await producer.send(
                    p.topic, None, str(i).encode(), partition=p.partition
                )
                if i % 100 == 0:
                    await asyncio.sleep(0.01)  # several fetches, not one batch
        await wait_for(lambda: {zero, one} <= consumer._paused)
        # Partition 1 flows (its queue drains, so it is resumed) while
        # partition 0's actor is stuck: partition 0 stays paused rather than
        # buffering everything it has.
        hold_one.set()
        await wait_for(lambda: len(got[1]) == 1000, timeout=10)
        assert one in resumed
        assert zero not in resumed
        assert zero in consumer._paused
        assert slow_on_zero._subscription.qsize() < 1000
        stuck.set()
        await wait_for(lambda: len(got[0]) == 1000, timeout=10)
    assert got[0] == got[1] == list(range(1000))


async def test_isolated_actors_may_write_tables(faust_app):
    topic = faust_app.topic("iso-clicks", key_type=str, value_type=int, partitions=4)
    clicks = faust_app.Table("iso-click-counts", default=int, partitions=4)

    @faust_app.agent(topic, isolated_partitions=True)
    async def count(stream):
        async for event in stream.events():
            clicks[event.key] += event.value

    async with running(faust_app):
        await wait_for(lambda: len(count.actors) == 4)
        for i in range(40):
            await topic.send(key=f"user-{i % 5}", value=1)
        await wait_for(lambda: sum(clicks[f"user-{u}"] for u in range(5)) == 40)
        assert count.errors_total == 0
    assert {clicks[f"user-{u}"] for u in range(5)} == {8}
