"""Tables: changelog, recovery and rebalancing, on both stores."""

from __future__ import annotations

import asyncio

import pytest

from django_faust import TP
from django_faust.exceptions import ImproperlyConfigured
from django_faust.testing import make_app, running
from tests.helpers import log_of, wait_for

STORES = ["memory://", "rocksdb://"]


@pytest.fixture(params=STORES)
def store(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DATADIR is relative: keep RocksDB files here
    return request.param


def counting_app(
    app_id: str,
    broker: str | None,
    store: str,
    partitions: int = 4,
    datadir: str = "{appid}-data",
):
    options = {"store": store, "topic_partitions": partitions, "datadir": datadir}
    if broker:
        options["broker"] = broker
    app = make_app(app_id, **options)
    topic = app.topic("clicks", key_type=str, value_type=int)
    counts = app.Table("counts", default=int)

    @app.agent(topic)
    async def count(stream):
        async for key, _ in stream.items():
            counts[key] += 1

    return app, topic, counts


async def test_changes_reach_the_changelog_coalesced_on_the_event_partition(store):
    app, topic, counts = counting_app("tc", None, store)
    async with running(app):
        for _ in range(10):
            await topic.send(key="a", value=1)
        await wait_for(lambda: counts["a"] == 10)
        await app.consumer.commit()
        changelog = log_of(app, "tc-counts-changelog")
        # Ten increments of one key between commits: one record, last value.
        assert [(m.key, m.value) for m in changelog] == [(b'"a"', b"10")]
        source_partition = log_of(app, "clicks")[0].partition
        assert changelog[0].partition == source_partition
        assert counts.store.persisted_offset(source_partition) == 0


async def test_deletes_are_tombstones(store):
    app = make_app("td", store=store)
    topic = app.topic("cmds", key_type=str, value_type=str)
    table = app.Table("things")

    @app.agent(topic)
    async def apply(stream):
        async for key, command in stream.items():
            if command == "put":
                table[key] = "x"
            else:
                del table[key]

    async with running(app):
        await topic.send(key="k", value="put")
        await wait_for(lambda: "k" in table)
        await app.consumer.commit()
        await topic.send(key="k", value="del")
        await wait_for(lambda: "k" not in table)
        await app.consumer.commit()
    changelog = log_of(app, "td-things-changelog")
    assert [m.value for m in changelog] == [b'"x"', None]


async def test_restart_recovers_exact_counts_replaying_only_what_is_new(store):
    app, topic, counts = counting_app("tr", None, store)
    async with running(app):
        for i in range(200):
            await topic.send(key=f"user{i % 20}", value=i)
        await wait_for(lambda: sum(counts.values()) == 200)
    broker = app.conf.broker_url
    first_recovery = app.tables.total_recovered

    again, topic2, counts2 = counting_app("tr", broker, store)
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        assert dict(counts2.items()) == {f"user{u}": 10 for u in range(20)}
        replayed = again.tables.total_recovered
        for i in range(20):
            await topic2.send(key=f"user{i}", value=i)
        await wait_for(lambda: sum(counts2.values()) == 220)
    if store == "rocksdb://":
        # Offsets were stored with the data: nothing old is replayed.
        assert replayed == 0
    else:
        # Memory starts empty: the whole changelog (one record per key).
        assert replayed == 20
    assert first_recovery == 0


async def test_two_workers_split_the_table_and_take_it_back(store):
    # Two workers: two machines, each with its own data directory.
    one, topic, counts_one = counting_app("tw", None, store, datadir="one")
    broker = one.conf.broker_url
    two, _, counts_two = counting_app("tw", broker, store, datadir="two")
    keys = [f"k{i}" for i in range(40)]
    async with running(one):
        async with running(two):
            await wait_for(
                lambda: (
                    len(one.consumer.assignment()) == 4
                    and len(two.consumer.assignment()) == 4
                )
            )
            for i in range(400):
                await topic.send(key=keys[i % 40], value=i)
            await wait_for(
                lambda: sum(counts_one.values()) + sum(counts_two.values()) == 400
            )
            # Each key is served by exactly one worker, with the right count.
            mine, theirs = dict(counts_one.items()), dict(counts_two.items())
            assert mine and theirs
            assert not set(mine) & set(theirs)
            assert {**mine, **theirs} == dict.fromkeys(keys, 10)
            # Source and changelog partitions live together.
            for tp in one.consumer.assignment():
                if tp.topic == "clicks":
                    assert TP("tw-counts-changelog", tp.partition) in (
                        one.consumer.assignment()
                    )
            # Recovery progress is shown for the partitions a worker holds.
            held = {tp.partition for tp in one.consumer.assignment()}
            assert set(one.monitor.recovery) == {f"counts[{p}]" for p in held}
        # `two` left: `one` recovers its partitions from the changelog.
        await wait_for(lambda: len(one.consumer.assignment()) == 8)
        await wait_for(lambda: one.tables.recovered.is_set())
        assert dict(counts_one.items()) == dict.fromkeys(keys, 10)
        assert len(one.monitor.recovery) == 4
        for key in keys:
            await topic.send(key=key, value=0)
        await wait_for(lambda: sum(counts_one.values()) == 440)


async def test_global_table_holds_every_partition_on_every_worker():
    one = make_app("tg", topic_partitions=4)
    two = make_app("tg", broker=one.conf.broker_url, topic_partitions=4)
    tables = []
    for app in (one, two):
        topic = app.topic("prices", key_type=str, value_type=int)
        prices = app.GlobalTable("prices")
        tables.append(prices)

        def declare(app=app, topic=topic, prices=prices):
            @app.agent(topic, name="set_price")
            async def set_price(stream):
                async for key, value in stream.items():
                    prices[key] = value

        declare()
    async with running(one), running(two):
        for i in range(12):
            await one.send("prices", key=f"p{i}", value=i, key_serializer="raw")
        await wait_for(lambda: sum(1 for _ in tables[0]) + 0 >= 0)
        await one.consumer.commit()
        await two.consumer.commit()
        await wait_for(lambda: all(len(t) == 12 for t in tables), timeout=10)
    for table in tables:
        assert dict(table.items()) == {f"p{i}": i for i in range(12)}


async def test_set_table_adds_and_discards_members():
    app = make_app("ts")
    topic = app.topic("tags", key_type=str, value_type=str)
    tags = app.SetTable("tags")

    @app.agent(topic)
    async def tag(stream):
        async for key, value in stream.items():
            if value.startswith("-"):
                tags.discard(key, value[1:])
            else:
                tags.add(key, value)

    async with running(app):
        for value in ("a", "b", "a", "-b", "c"):
            await topic.send(key="post", value=value)
        await wait_for(lambda: tags["post"] == {"a", "c"})


async def test_recovery_callbacks_and_reset(store):
    app, topic, counts = counting_app("tcb", None, store)
    async with running(app):
        for i in range(5):
            await topic.send(key="x", value=i)
        await wait_for(lambda: counts["x"] == 5)
    seen, recovered = [], []
    again = make_app("tcb", broker=app.conf.broker_url, store=store, topic_partitions=4)
    again_topic = again.topic("clicks", key_type=str, value_type=int)
    table = again.Table(
        "counts",
        default=int,
        on_changelog_event=seen.append,
        on_recover=lambda: recovered.append(True),
    )

    @again.agent(again_topic)
    async def count(stream):
        async for key, _ in stream.items():
            table[key] += 1

    async with running(again):
        await wait_for(lambda: recovered)
        assert table["x"] == 5
    if store == "memory://":
        assert len(seen) == 1  # the one changelog record of key "x"
    assert again.tables.reset() == ["counts"]
    assert len(table) == 0


async def test_standby_copies_make_a_failover_recover_almost_nothing(store):
    # TABLE_STANDBY_REPLICAS defaults to 1: each worker keeps a warm copy of
    # the other's table partitions.
    one, topic, counts_one = counting_app("tsb", None, store, datadir="one")
    two, _, counts_two = counting_app("tsb", one.conf.broker_url, store, datadir="two")
    keys = [f"k{i}" for i in range(40)]
    async with running(one):
        async with running(two):
            await wait_for(
                lambda: (
                    len(one.consumer.assignment()) == 4
                    and len(two.consumer.assignment()) == 4
                )
            )
            assert len(one.consumer.standby_assignment()) == 2
            assert not one.consumer.standby_assignment() & one.consumer.assignment()
            for i in range(400):
                await topic.send(key=keys[i % 40], value=i)
            await wait_for(
                lambda: sum(counts_one.values()) + sum(counts_two.values()) == 400
            )
            await one.consumer.commit()
            await two.consumer.commit()
            # one's standby copies caught up with two's changelog partitions.
            copies = {tp.partition for tp in one.consumer.standby_assignment()}
            expected = sum(
                1 for m in log_of(one, "tsb-counts-changelog") if m.partition in copies
            )
            await wait_for(lambda: one.tables.standby_applied == expected)
        await wait_for(lambda: len(one.consumer.assignment()) == 8)
        await wait_for(lambda: one.tables.recovered.is_set())
        # Taking over replayed (almost) nothing: the copies were warm.
        assert one.tables.last_recovered <= 5
        assert dict(counts_one.items()) == dict.fromkeys(keys, 10)


async def test_recovery_and_standbys_write_the_store_in_buffers(monkeypatch):
    from django_faust.stores.memory import MemoryStore

    writes: list[tuple[int, int, int]] = []
    original = MemoryStore.apply_changelog

    def spy(self, partition, records, last_offset):
        writes.append((partition, len(records), last_offset))
        return original(self, partition, records, last_offset)

    monkeypatch.setattr(MemoryStore, "apply_changelog", spy)

    def build(app_id, broker=None):
        options = {"broker": broker} if broker else {}
        app = make_app(app_id, topic_partitions=1, **options)
        topic = app.topic("clicks", key_type=str, value_type=int)
        table = app.Table(
            "counts", default=int, recovery_buffer_size=4, standby_buffer_size=3
        )

        @app.agent(topic)
        async def count(stream):
            async for key, _ in stream.items():
                table[key] += 1

        return app, topic, table

    first, topic, counts = build("tbuf")
    async with running(first):
        for i in range(10):
            await topic.send(key=f"k{i}", value=i)
        await wait_for(lambda: len(counts) == 10)
    assert writes == []  # a worker's own writes do not go through recovery

    again, _, table = build("tbuf", first.conf.broker_url)
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        assert dict(table.items()) == {f"k{i}": 1 for i in range(10)}
    # Ten changelog records, four at a time, each with its last offset.
    assert writes == [(0, 4, 3), (0, 4, 7), (0, 2, 9)]
    # The monitor (and so the stats views) saw the recovery finish.
    assert again.monitor.recovery == {"counts[0]": {"done": 10, "left": 0}}

    # A standby copy following the same changelog writes three at a time.
    writes.clear()
    standby, _, copy = build("tbuf", first.conf.broker_url)
    follower = asyncio.ensure_future(
        standby.tables._follow_standbys({TP("tbuf-counts-changelog", 0): copy})
    )
    try:
        await wait_for(lambda: len(writes) == 4)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert writes == [(0, 3, 2), (0, 3, 5), (0, 3, 8), (0, 1, 9)]
    assert copy.store.count(0) == 10


def test_buffer_sizes_must_be_positive():
    app = make_app("tbufbad")
    with pytest.raises(ImproperlyConfigured, match="'t': recovery_buffer_size"):
        app.Table("t", recovery_buffer_size=0)
    with pytest.raises(ImproperlyConfigured, match="'t': standby_buffer_size"):
        app.Table("t", standby_buffer_size=0)


async def test_failover_among_three_workers_goes_to_the_standby_copies(store):
    # With three workers, the partitions of the one that leaves go to the
    # workers that kept standby copies of them: the takeover replays nothing
    # they had not applied already.
    one, topic, c1 = counting_app("tf3", None, store, datadir="one")
    broker = one.conf.broker_url
    two, _, c2 = counting_app("tf3", broker, store, datadir="two")
    three, _, c3 = counting_app("tf3", broker, store, datadir="three")
    keys = [f"k{i}" for i in range(40)]
    apps = (one, two, three)
    async with running(one), running(two):
        async with running(three):
            await wait_for(
                lambda: all(
                    a.consumer.assignment() and a.tables.recovered.is_set()
                    for a in apps
                )
            )
            held_by_three = three.consumer.assignment()
            for i in range(400):
                await topic.send(key=keys[i % 40], value=i)
            await wait_for(
                lambda: sum(c1.values()) + sum(c2.values()) + sum(c3.values()) == 400
            )
            for app in apps:
                await app.consumer.commit()
            changelog = len(log_of(one, "tf3-counts-changelog"))
            await wait_for(
                lambda: sum(a.tables.standby_applied for a in apps) == changelog
            )
        await wait_for(
            lambda: (
                (one.consumer.assignment() | two.consumer.assignment()) >= held_by_three
            )
        )
        await wait_for(
            lambda: one.tables.recovered.is_set() and two.tables.recovered.is_set()
        )
        assert one.tables.last_recovered == two.tables.last_recovered == 0
        assert {**dict(c1.items()), **dict(c2.items())} == dict.fromkeys(keys, 10)
