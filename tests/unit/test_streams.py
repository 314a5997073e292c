"""Streams: what an agent sees, in what order, and what gets acknowledged."""

from __future__ import annotations

import asyncio

import pytest

from django_faust import Record, current_event, current_message
from django_faust.testing import running
from tests.helpers import committed, log_of, wait_for


class Order(Record):
    account: str
    amount: int


async def test_values_arrive_in_order_per_partition(faust_app):
    topic = faust_app.topic("numbers", value_type=int, partitions=4)
    seen: dict[int, list[int]] = {}

    @faust_app.agent(topic)
    async def collect(stream):
        async for value in stream:
            seen.setdefault(current_event().message.partition, []).append(value)

    async with running(faust_app):
        for i in range(200):
            await topic.send(key=str(i % 7).encode(), value=i)
        await wait_for(lambda: sum(map(len, seen.values())) == 200)
    for values in seen.values():
        assert values == sorted(values)
    assert sorted(v for vs in seen.values() for v in vs) == list(range(200))


async def test_items_and_events_decode_keys_and_models(faust_app):
    topic = faust_app.topic("orders", key_type=str, value_type=Order)
    items, events = [], []

    @faust_app.agent(topic)
    async def by_items(stream):
        async for key, order in stream.items():
            items.append((key, order))

    @faust_app.agent(topic)
    async def by_events(stream):
        async for event in stream.events():
            events.append(event)

    async with running(faust_app):
        await topic.send(key="acct-1", value=Order(account="acct-1", amount=5))
        await wait_for(lambda: items and events)
    assert items == [("acct-1", Order(account="acct-1", amount=5))]
    event = events[0]
    assert event.key == "acct-1"
    assert event.value.amount == 5
    assert event.message.topic == "orders"


async def test_every_processed_event_is_committed(faust_app):
    topic = faust_app.topic("work", value_type=int, partitions=2)
    done = []

    @faust_app.agent(topic)
    async def work(stream):
        async for value in stream:
            done.append(value)

    async with running(faust_app):
        for i in range(50):
            await topic.send(value=i, partition=i % 2)
        await wait_for(lambda: len(done) == 50)
        await faust_app.consumer.commit()
        assert sum(committed(faust_app).values()) == 50


async def test_filter_drops_values_but_acknowledges_them(faust_app):
    topic = faust_app.topic("evens", value_type=int, partitions=1)
    kept = []

    @faust_app.agent(topic)
    async def evens(stream):
        async for value in stream.filter(lambda v: v % 2 == 0):
            kept.append(value)

    async with running(faust_app):
        for i in range(10):
            await topic.send(value=i)
        await wait_for(lambda: len(kept) == 5)
        await wait_for(lambda: faust_app.consumer.trackers[_tp("evens")].acked == 10)
    assert kept == [0, 2, 4, 6, 8]


async def test_async_filter(faust_app):
    topic = faust_app.topic("async-filter", value_type=int, partitions=1)
    kept = []

    async def is_big(value):
        await asyncio.sleep(0)
        return value > 2

    @faust_app.agent(topic)
    async def big(stream):
        async for value in stream.filter(is_big):
            kept.append(value)

    async with running(faust_app):
        for i in range(5):
            await topic.send(value=i)
        await wait_for(lambda: kept == [3, 4])


async def test_take_groups_values_and_flushes_on_timeout(faust_app):
    topic = faust_app.topic("batched", value_type=int, partitions=1)
    groups = []

    @faust_app.agent(topic)
    async def batches(stream):
        async for values in stream.take(4, within=0.05):
            groups.append(values)

    async with running(faust_app):
        for i in range(10):
            await topic.send(value=i)
        await wait_for(lambda: sum(map(len, groups)) == 10)
        # Every value was acknowledged once its group was handled.
        await wait_for(lambda: faust_app.consumer.trackers[_tp("batched")].acked == 10)
    assert groups[0] == [0, 1, 2, 3]
    assert groups[1] == [4, 5, 6, 7]
    assert groups[2] == [8, 9]  # flushed by `within`


async def test_take_does_not_ack_a_group_before_it_is_handled(faust_app):
    topic = faust_app.topic("held", value_type=int, partitions=1)
    release = asyncio.Event()
    got = []

    @faust_app.agent(topic)
    async def slow(stream):
        async for values in stream.take(2):
            got.append(values)
            await release.wait()

    async with running(faust_app):
        for i in range(2):
            await topic.send(value=i)
        await wait_for(lambda: got)
        tracker = faust_app.consumer.trackers[_tp("held")]
        assert tracker.acked is None  # still being handled
        release.set()
        await topic.send(value=2)
        await topic.send(value=3)
        await wait_for(lambda: tracker.acked is not None and tracker.acked >= 2)


async def test_group_by_moves_each_key_through_a_repartition_topic(faust_app):
    topic = faust_app.topic("orders-in", value_type=Order, partitions=4)
    seen = []

    @faust_app.agent(topic)
    async def by_account(stream):
        async for event in stream.group_by(Order.account).events():
            seen.append((event.key, event.value.amount, event.message.topic))

    async with running(faust_app):
        for i in range(20):
            await topic.send(value=Order(account=f"a{i % 3}", amount=i))
        await wait_for(lambda: len(seen) == 20)
    repartition = f"{faust_app.conf.id}-orders-in-account-repartition"
    assert {t for _, _, t in seen} == {repartition}
    assert {k for k, _, _ in seen} == {"a0", "a1", "a2"}
    # Each key lives on exactly one partition of the repartition topic.
    partitions: dict[str, set[int]] = {}
    for message in log_of(faust_app, repartition):
        partitions.setdefault(message.key, set()).add(message.partition)
    assert all(len(p) == 1 for p in partitions.values())


async def test_group_by_with_a_function_needs_a_name(faust_app):
    topic = faust_app.topic("fn", value_type=Order)
    with pytest.raises(Exception, match="name="):
        faust_app.stream(topic).group_by(lambda o: o.account)


async def test_group_by_function_with_name(faust_app):
    topic = faust_app.topic("fn-named", value_type=Order, partitions=2)
    keys = []

    @faust_app.agent(topic)
    async def regroup(stream):
        async for key, _ in stream.group_by(
            lambda o: o.account.upper(), name="up"
        ).items():
            keys.append(key)

    async with running(faust_app):
        await topic.send(value=Order(account="x", amount=1))
        await wait_for(lambda: keys == ["X"])
    assert f"{faust_app.conf.id}-up-repartition" in faust_app.transport.broker.logs


async def test_through_forwards_to_another_topic(faust_app):
    source = faust_app.topic("through-src", value_type=int, partitions=1)
    middle = faust_app.topic("through-mid", value_type=int, partitions=1)
    seen = []

    @faust_app.agent(source)
    async def relay(stream):
        async for event in stream.through(middle).events():
            seen.append((event.message.topic, event.value))

    async with running(faust_app):
        await source.send(value=7)
        await wait_for(lambda: seen)
    assert seen == [("through-mid", 7)]
    assert [m.value for m in log_of(faust_app, "through-mid")] == [b"7"]


async def test_echo_copies_values_to_other_channels(faust_app):
    source = faust_app.topic("echo-src", value_type=int, partitions=1)
    copy = faust_app.channel()
    copies, originals = [], []

    @faust_app.agent(copy)
    async def copies_agent(stream):
        async for value in stream:
            copies.append(value)

    @faust_app.agent(source)
    async def echoed(stream):
        async for value in stream.echo(copy):
            originals.append(value)

    async with running(faust_app):
        await source.send(value=1)
        await source.send(value=2)
        await wait_for(lambda: len(copies) == 2 and len(originals) == 2)
    assert copies == originals == [1, 2]


async def test_enumerate_counts_from_start(faust_app):
    topic = faust_app.topic("enum", value_type=str, partitions=1)
    pairs = []

    @faust_app.agent(topic)
    async def numbered(stream):
        async for i, value in stream.enumerate(1):
            pairs.append((i, value))

    async with running(faust_app):
        for word in ("a", "b", "c"):
            await topic.send(value=word)
        await wait_for(lambda: len(pairs) == 3)
    assert pairs == [(1, "a"), (2, "b"), (3, "c")]


async def test_noack_leaves_acknowledging_to_user_code(faust_app):
    topic = faust_app.topic("manual", value_type=int, partitions=1)
    held = []

    @faust_app.agent(topic)
    async def manual(stream):
        async for event in stream.noack().events():
            held.append(event)

    async with running(faust_app):
        for i in range(3):
            await topic.send(value=i)
        await wait_for(lambda: len(held) == 3)
        tracker = faust_app.consumer.trackers[_tp("manual")]
        assert tracker.acked is None
        for event in held:
            assert event.ack() is True
            assert event.ack() is False  # idempotent
        assert tracker.acked == 3


async def test_topic_with_acks_false_is_noack(faust_app):
    topic = faust_app.topic("no-auto", value_type=int, partitions=1, acks=False)
    held = []

    @faust_app.agent(topic)
    async def manual(stream):
        async for event in stream.events():
            held.append(event)

    async with running(faust_app):
        await topic.send(value=1)
        await wait_for(lambda: held)
        assert faust_app.consumer.trackers[_tp("no-auto")].acked is None
        held[0].ack()
        assert faust_app.consumer.trackers[_tp("no-auto")].acked == 1


async def test_undecodable_message_is_sent_aside_and_the_stream_goes_on(
    faust_app, caplog
):
    topic = faust_app.topic("strict", value_type=Order, partitions=1)
    good = []

    @faust_app.agent(topic)
    async def strict(stream):
        async for order in stream:
            good.append(order.amount)

    async with running(faust_app):
        producer = await faust_app.maybe_start_producer()
        await producer.send("strict", b"k", b"{not json")
        await topic.send(value=Order(account="a", amount=1))
        await wait_for(lambda: good == [1])
        await wait_for(lambda: faust_app.consumer.trackers[_tp("strict")].acked == 2)
    dead = log_of(faust_app, faust_app.conf.dead_letter_topic)
    assert [m.value for m in dead] == [b"{not json"]
    headers = dict(dead[0].headers)
    assert headers["django_faust.topic"] == b"strict"
    assert headers["django_faust.offset"] == b"0"
    assert headers["django_faust.stage"] == b"value"
    assert "strict[0]@0" in caplog.text


async def test_current_event_outside_a_stream_is_none():
    assert current_event() is None
    assert current_message() is None


async def test_current_message_is_the_raw_record_being_processed(faust_app):
    topic = faust_app.topic("raw", value_type=int, partitions=2)
    seen = []

    @faust_app.agent(topic)
    async def collect(stream):
        async for value in stream:
            message = current_message()
            seen.append((value, message.topic, message.partition, message.key))

    async with running(faust_app):
        await topic.send(key=b"k", value=7, partition=1)
        await wait_for(lambda: seen)
    assert seen == [(7, "raw", 1, b"k")]


async def test_app_stream_over_an_iterable(faust_app):
    got = []
    async with running(faust_app):
        async for value in faust_app.stream([1, 2, 3]):
            got.append(value)
            if len(got) == 3:
                break
    assert got == [1, 2, 3]


async def test_app_stream_over_a_topic_name(faust_app):
    got = []

    async def reader():
        async for value in faust_app.stream("named"):
            got.append(value)
            return

    async with running(faust_app):
        task = asyncio.ensure_future(reader())
        await asyncio.sleep(0.05)
        await faust_app.send("named", value={"x": 1})
        await asyncio.wait_for(task, 5)
    assert got == [{"x": 1}]


async def test_a_stream_has_one_reader(faust_app):
    stream = faust_app.stream(faust_app.channel())
    first = stream.__aiter__()
    task = asyncio.ensure_future(first.__anext__())
    await asyncio.sleep(0)
    with pytest.raises(Exception, match="already being iterated"):
        await stream.__aiter__().__anext__()
    task.cancel()


def _tp(topic: str, partition: int = 0):
    from django_faust import TP

    return TP(topic, partition)
