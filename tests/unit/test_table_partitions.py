"""Tables across partitions: a key lives in one partition on a worker.

A worker may hold several partitions of a table. Inside an event a read
finds a key in whichever of them holds it (and never writes); a write that
comes from another partition than the key's moves the key there, with a
tombstone in the old partition's changelog, and warns once. Recovery keeps
a key found in two partitions once. On both stores.
"""

from __future__ import annotations

import json
import logging

import pytest

from django_faust import Record
from django_faust.exceptions import ImproperlyConfigured
from django_faust.tables import GlobalTable, SetGlobalTable
from django_faust.tables.wrappers import WindowWrapper
from django_faust.testing import make_app, running
from django_faust.windows import TumblingWindow, WindowRange
from tests.helpers import log_of, wait_for

STORES = ["memory://", "rocksdb://"]
LOGGER = "django_faust.tables.table"


@pytest.fixture(params=STORES)
def store(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DATADIR is relative: keep RocksDB files here
    return request.param


class Payment(Record):
    account: str
    amount: int


def changelog(app, table):
    """``[(partition, key, value)]`` of a table's changelog; None: tombstone."""
    return [
        (
            m.partition,
            json.loads(m.key),
            None if m.value is None else json.loads(m.value),
        )
        for m in log_of(app, f"{app.conf.id}-{table}-changelog")
    ]


def moves_logged(caplog):
    return [r for r in caplog.records if r.name == LOGGER and "moves" in r.message]


# -- reads: the bug this file is about ---------------------------------------------


def ledger_app(app_id, store, **options):
    """Deposits keyed by account; the agent sums every balance per event."""
    app = make_app(app_id, store=store, **options)
    deposits = app.topic("deposits", key_type=str, value_type=int)
    balances = app.Table("balances", default=int)
    totals: list[int] = []

    @app.agent(deposits)
    async def deposit(stream):
        async for account, amount in stream.items():
            balances[account] += amount
            # Other accounts live in other partitions of this one worker.
            totals.append(sum(balances[a] for a in ("a", "b", "c", "never")))

    return app, deposits, balances, totals


async def test_an_agent_reads_the_keys_of_its_other_partitions(store):
    app, deposits, balances, totals = ledger_app("tpread", store)
    sends = [("a", 0, 1), ("b", 1, 10), ("c", 2, 100), ("a", 0, 2), ("b", 1, 20)]
    async with running(app):
        for i, (account, partition, amount) in enumerate(sends):
            await deposits.send(key=account, value=amount, partition=partition)
            # Partitions are processed concurrently: one event at a time.
            await wait_for(lambda i=i: len(totals) == i + 1)
        # Each total saw every balance, whatever partition it lives in.
        assert totals == [1, 11, 111, 113, 133]
        # Each key once; reading "never" stored nothing.
        assert sorted(balances.items()) == [("a", 3), ("b", 30), ("c", 100)]
        assert len(balances) == 3
        assert sorted(balances) == ["a", "b", "c"]
        assert sum(balances.values()) == 133
        assert "never" not in balances
        await app.consumer.commit()
    # The reads wrote no record: one per key written, in the key's partition.
    assert sorted(changelog(app, "balances")) == [
        (0, "a", 3),
        (1, "b", 30),
        (2, "c", 100),
    ]


async def test_reading_a_missing_key_returns_the_default_without_storing_it(store):
    app = make_app("tpdefault", store=store)
    topic = app.topic("reads", key_type=str, value_type=str)
    seen = app.Table("seen", default=list)
    got = []

    @app.agent(topic)
    async def read(stream):
        async for key, _ in stream.items():
            got.append((seen[key], key in seen, len(seen)))

    async with running(app):
        await topic.send(key="x", value="?")
        await wait_for(lambda: got)
        await app.consumer.commit()
    assert got == [([], False, 0)]
    assert changelog(app, "seen") == []


# -- writes from another partition -----------------------------------------------


def payments_app(app_id, store, table_options=None, **options):
    """Payments keyed by payment id (not by account): not co-partitioned."""
    app = make_app(app_id, store=store, **options)
    payments = app.topic("payments", key_type=str, value_type=Payment)
    balances = app.Table("balances", default=int, **(table_options or {}))
    done: list[str] = []

    @app.agent(payments)
    async def pay(stream):
        async for payment_id, payment in stream.items():
            balances[payment.account] += payment.amount
            done.append(payment_id)

    return app, payments, balances, done


async def test_a_key_written_from_another_partition_moves_there(store, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    app, payments, balances, done = payments_app("tpmove", store)
    # Account "a" is paid from partitions 0, 1, 1, 3; "b" from 2 only.
    sends = [(0, "a", 1), (1, "a", 10), (2, "b", 5), (1, "a", 100), (3, "a", 1000)]
    async with running(app):
        for i, (partition, account, amount) in enumerate(sends):
            await payments.send(
                key=f"p{i}", value=Payment(account, amount), partition=partition
            )
            await wait_for(lambda i=i: len(done) == i + 1)
            await app.consumer.commit()  # one changelog flush per payment
        assert list(balances.items()) == [("b", 5), ("a", 1111)]
        assert balances.store.find_partition("a") == 3
    # Each move: the value in the new partition, a tombstone in the old one.
    assert changelog(app, "balances") == [
        (0, "a", 1),
        (0, "a", None),
        (1, "a", 11),
        (1, "a", 111),
        (1, "a", None),
        (2, "b", 5),
        (3, "a", 1111),
    ]
    # One warning for the table, however many moves.
    (warning,) = moves_logged(caplog)
    message = warning.getMessage()
    assert "'balances'" in message and "'a'" in message
    assert "partition 0" in message and "partition 1" in message
    assert "group_by" in message


async def test_tombstones_of_moves_are_sent_after_the_values(store, monkeypatch):
    app, payments, _, done = payments_app("tporder", store)
    sent = []
    async with running(app):
        producer = app.producer
        original = producer.send_soon

        def spy(topic, key, value, **kwargs):
            if topic.endswith("-changelog"):
                sent.append((kwargs["partition"], value))
            return original(topic, key, value, **kwargs)

        monkeypatch.setattr(producer, "send_soon", spy)
        await payments.send(key="p0", value=Payment("a", 1), partition=0)
        await wait_for(lambda: len(done) == 1)
        await app.consumer.commit()
        await payments.send(key="p1", value=Payment("a", 2), partition=1)
        await wait_for(lambda: len(done) == 2)
        await app.consumer.commit()
    assert sent == [(0, b"1"), (1, b"3"), (0, None)]


async def test_a_moved_key_is_recovered_once_after_a_restart(store, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    app, payments, _, done = payments_app("tpmrestart", store)
    async with running(app):
        for i, partition in enumerate([0, 1, 2, 3, 0]):
            await payments.send(key=f"p{i}", value=Payment("a", 1), partition=partition)
            await payments.send(
                key=f"q{i}", value=Payment(f"k{i}", i), partition=partition
            )
        await wait_for(lambda: len(done) == 10)
    expected = {"a": 5, "k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4}

    again, payments2, balances2, done2 = payments_app(
        "tpmrestart", store, broker=app.conf.broker_url
    )
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        pairs = list(balances2.items())
        assert sorted(pairs) == sorted(expected.items())  # each key once
        assert len(balances2) == len(expected)
        await payments2.send(key="p9", value=Payment("a", 1), partition=2)
        await wait_for(lambda: done2)
        assert balances2["a"] == 6
        assert [k for k, _ in balances2.items()].count("a") == 1
    # The moves were clean: recovery found nothing twice.
    assert not [r for r in caplog.records if "was in partitions" in r.message]


async def test_two_workers_writing_one_key_then_one_takes_over(store, caplog):
    # A stream not partitioned by the table's key, on two workers: each
    # counts the key in its own partition, unaware of the other. When one
    # leaves, the other holds both partitions: it keeps the key once.
    caplog.set_level(logging.WARNING, logger=LOGGER)
    one, payments, b1, done1 = payments_app("tp2w", store, datadir="one")
    two, _, b2, done2 = payments_app(
        "tp2w", store, datadir="two", broker=one.conf.broker_url
    )

    def source(app):
        return {
            tp.partition for tp in app.consumer.assignment() if tp.topic == "payments"
        }

    async with running(one):
        async with running(two):
            await wait_for(lambda: len(source(one)) == 2 and len(source(two)) == 2)
            await wait_for(
                lambda: one.tables.recovered.is_set() and two.tables.recovered.is_set()
            )
            mine, theirs = min(source(one)), min(source(two))
            await payments.send(key="p1", value=Payment("a", 1), partition=mine)
            await payments.send(key="p2", value=Payment("a", 10), partition=theirs)
            await wait_for(lambda: done1 and done2)
            assert dict(b1.items()) == {"a": 1}
            assert dict(b2.items()) == {"a": 10}
            await one.consumer.commit()
            await two.consumer.commit()
        await wait_for(lambda: len(source(one)) == 4)
        await wait_for(lambda: one.tables.recovered.is_set())
        # Once, as it was in the partition taken over.
        assert list(b1.items()) == [("a", 10)]
        assert len(b1) == 1
        await one.tables.flush()  # (the next commit would)
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert "'balances': key 'a' was in partitions" in message
    assert "group_by" in message
    # The copy not kept got a tombstone: a restart holds the key once too.
    assert (mine, "a", None) in changelog(one, "balances")
    again, _, b3, _ = payments_app(
        "tp2w", store, datadir="again", broker=one.conf.broker_url
    )
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        assert list(b3.items()) == [("a", 10)]


async def test_a_moved_key_is_held_once_when_its_partitions_split(store):
    one, payments, b1, done1 = payments_app("tpsplit", store, datadir="one")
    async with running(one):
        await wait_for(lambda: len(one.consumer.assignment()) == 8)
        for i, partition in enumerate([0, 1, 2, 3]):
            await payments.send(key=f"p{i}", value=Payment("a", 1), partition=partition)
        await wait_for(lambda: len(done1) == 4)
        await one.consumer.commit()
        two, _, b2, _ = payments_app(
            "tpsplit", store, datadir="two", broker=one.conf.broker_url
        )
        async with running(two):
            await wait_for(
                lambda: (
                    len(one.consumer.assignment()) == 4
                    and len(two.consumer.assignment()) == 4
                    and one.tables.recovered.is_set()
                    and two.tables.recovered.is_set()
                )
            )
            keys = [k for k, _ in b1.items()] + [k for k, _ in b2.items()]
            assert keys == ["a"]
            assert {**dict(b1.items()), **dict(b2.items())} == {"a": 4}


async def test_delete_of_a_key_held_in_another_partition(store):
    app = make_app("tpdel", store=store)
    commands = app.topic("commands", key_type=str, value_type=str)
    things = app.Table("things")
    done = []

    @app.agent(commands)
    async def run(stream):
        async for key, command in stream.items():
            if command == "put":
                things[key] = "x"
            else:
                del things[key]
            done.append(command)

    async with running(app):
        await commands.send(key="k", value="put", partition=0)
        await wait_for(lambda: len(done) == 1)
        await app.consumer.commit()
        await commands.send(key="k", value="del", partition=3)
        await wait_for(lambda: len(done) == 2)
        assert len(things) == 0
        await app.consumer.commit()
    # The tombstone goes where the key was.
    assert changelog(app, "things") == [(0, "k", "x"), (0, "k", None)]


# -- recovery: a key in two changelog partitions ---------------------------------


async def test_recovery_waits_for_the_whole_changelog_before_choosing(store):
    # A move whose old value and tombstone come in two recovery batches:
    # the key must not be resolved (and lost) in between.
    app, _, balances, _ = payments_app("tprec", store)
    async with running(app):
        name = balances.changelog_topic_name
        for partition, value in [(1, b"5"), (1, None), (2, b"6")]:
            await app.producer.send_and_wait(name, b'"a"', value, partition=partition)

    again, _, table, _ = payments_app(
        "tprec",
        store,
        broker=app.conf.broker_url,
        table_options={"recovery_buffer_size": 1},
    )
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        assert list(table.items()) == [("a", 6)]
        await again.consumer.commit()
    # Nothing was resolved, so nothing was tombstoned.
    assert changelog(again, "balances") == [(1, "a", 5), (1, "a", None), (2, "a", 6)]


# -- global tables ---------------------------------------------------------------


async def test_a_global_table_is_one_dict_on_one_worker(store):
    app = make_app("tpglobal", store=store)
    payments = app.topic("payments", key_type=str, value_type=Payment)
    balances = app.GlobalTable("balances", default=int)
    done = []

    @app.agent(payments)
    async def pay(stream):
        async for _, payment in stream.items():
            balances[payment.account] += payment.amount
            done.append(sum(balances.values()))

    async with running(app):
        for i, partition in enumerate([0, 1, 2, 3, 1]):
            await payments.send(key=f"p{i}", value=Payment("a", 1), partition=partition)
        await wait_for(lambda: len(done) == 5)
        assert done == [1, 2, 3, 4, 5]
        assert list(balances.items()) == [("a", 5)]


async def test_agents_wait_for_global_tables_to_catch_up_at_start(store):
    # Events are waiting when the worker starts, and the global table's
    # changelog is long: the first event must see the recovered value.
    first = make_app("tpglobalstart", store=store, datadir="first")
    seen = first.GlobalTable("seen", default=int)
    async with running(first):
        name = seen.changelog_topic_name
        for i in range(3000):
            first.producer.send_soon(name, f'"f{i}"'.encode(), b"1", partition=i % 4)
        await first.producer.send_and_wait(name, b'"a"', b"100", partition=2)
        topic = first.topic("payments", key_type=str, value_type=Payment)
        await topic.send(key="p", value=Payment("a", 1), partition=1)

    again = make_app(
        "tpglobalstart", store=store, datadir="again", broker=first.conf.broker_url
    )
    payments = again.topic("payments", key_type=str, value_type=Payment)
    table = again.GlobalTable("seen", default=int)
    counts = []

    @again.agent(payments)
    async def pay(stream):
        async for _, payment in stream.items():
            table[payment.account] += 1
            counts.append(table[payment.account])

    async with running(again):
        await wait_for(lambda: counts)
        assert counts == [101]
        assert len(table) == 3001


async def test_a_global_table_does_not_apply_its_own_changes_again(store):
    # The worker follows the global table's changelog, its own records
    # included: applying one again, late, would step a counter back.
    app = make_app("tpecho", store=store)
    payments = app.topic("payments", key_type=str, value_type=Payment)
    seen = app.GlobalTable("seen", default=int)
    counts = []

    @app.agent(payments)
    async def pay(stream):
        async for _, payment in stream.items():
            seen[payment.account] += 1
            counts.append(seen[payment.account])

    async with running(app):
        for i in range(3):
            await payments.send(key=f"p{i}", value=Payment("a", 1), partition=0)
            await wait_for(lambda i=i: len(counts) == i + 1)
            await app.consumer.commit()
        records = log_of(app, seen.changelog_topic_name)
        assert [m.value for m in records] == [b"1", b"2", b"3"]
        # The follower comes across the first record late: it is ours.
        seen.apply_changelog(0, records[:1])
        assert seen["a"] == 3
        # Another worker's record is applied.
        other = type(records[0])(
            records[0].topic, 0, 99, records[0].timestamp, b'"a"', b"7", ()
        )
        seen.apply_changelog(0, [other])
        assert seen["a"] == 7


async def test_a_global_table_key_moved_by_another_worker_is_held_once():
    apps, tables, done = [], [], []
    broker = None
    for datadir in ("one", "two"):
        options = {"broker": broker} if broker else {}
        app = make_app("tpglobal2", datadir=datadir, **options)
        broker = app.conf.broker_url
        payments = app.topic("payments", key_type=str, value_type=Payment)
        balances = app.GlobalTable("balances", default=int)

        def declare(app=app, balances=balances):
            @app.agent(app.topic("payments", key_type=str, value_type=Payment))
            async def pay(stream):
                async for _, payment in stream.items():
                    balances[payment.account] += payment.amount
                    done.append(payment.amount)

        declare()
        apps.append(app)
        tables.append(balances)
    one, two = apps

    def source(app):
        return {
            tp.partition for tp in app.consumer.assignment() if tp.topic == "payments"
        }

    async with running(one), running(two):
        await wait_for(lambda: len(source(one)) == 2 and len(source(two)) == 2)
        await payments.send(key="p1", value=Payment("a", 1), partition=min(source(one)))
        await wait_for(lambda: done == [1])
        await one.consumer.commit()
        await wait_for(lambda: dict(tables[1].items()) == {"a": 1})
        await payments.send(
            key="p2", value=Payment("a", 10), partition=min(source(two))
        )
        await wait_for(lambda: done == [1, 10])
        await two.consumer.commit()
        for table in tables:
            await wait_for(lambda table=table: list(table.items()) == [("a", 11)])


async def test_set_global_table():
    app = make_app("tpsetglobal")
    tags = app.SetGlobalTable("tags")
    topic = app.topic("tags", key_type=str, value_type=str)
    assert isinstance(tags, SetGlobalTable) and isinstance(tags, GlobalTable)
    assert tags.is_global and app.tables["tags"] is tags

    @app.agent(topic)
    async def tag(stream):
        async for key, value in stream.items():
            if value.startswith("-"):
                tags.discard(key, value[1:])
            else:
                tags.add(key, value)

    async with running(app):
        for partition, value in enumerate(("a", "b", "-a", "c")):
            await topic.send(key="post", value=value, partition=partition)
        await wait_for(lambda: tags["post"] == {"b", "c"})
        assert len(tags) == 1


# -- windowed tables -------------------------------------------------------------


async def test_windows_written_from_several_partitions_stay_one_entry(store):
    app = make_app("tpwin", store=store)
    payments = app.topic("payments", key_type=str, value_type=Payment)
    sums = app.Table("sums", default=int).tumbling(10)
    done = []

    @app.agent(payments)
    async def pay(stream):
        async for _, payment in stream.items():
            sums[payment.account] += payment.amount
            done.append(sums[payment.account].current())

    async with running(app):
        for i, (partition, ts) in enumerate([(0, 1), (1, 2), (2, 3), (1, 12)]):
            await payments.send(
                key=f"p{i}", value=Payment("a", 1), partition=partition, timestamp=ts
            )
            await wait_for(lambda i=i: len(done) == i + 1)
        assert done == [1, 2, 3, 1]
        # One entry per key and window, wherever it was last written.
        assert sorted(sums.items()) == [
            (("a", WindowRange(0.0, 10.0)), 3),
            (("a", WindowRange(10.0, 20.0)), 1),
        ]
        assert len(sums.table) == 2


async def test_table_with_window_argument_is_a_windowed_table(store):
    app = make_app("tpwinarg", store=store)
    topic = app.topic("views", key_type=str, value_type=int)
    views = app.Table("views", default=int, window=TumblingWindow(10))
    assert isinstance(views, WindowWrapper)
    assert views.table is app.tables["views"]
    assert repr(views.window) == repr(TumblingWindow(10))
    # The same as .using_window() (or .tumbling()) on the table.
    assert isinstance(views.table.tumbling(10), WindowWrapper)

    @app.agent(topic)
    async def count(stream):
        async for key, value in stream.items():
            views[key] += value

    async with running(app):
        for ts in (1, 5, 11):
            await topic.send(key="home", value=1, timestamp=ts)
        await wait_for(lambda: len(views.as_dict()) == 2)
        await wait_for(
            lambda: (
                views.as_dict()
                == {
                    ("home", WindowRange(0.0, 10.0)): 2,
                    ("home", WindowRange(10.0, 20.0)): 1,
                }
            )
        )


def test_table_window_argument_must_be_a_window():
    app = make_app("tpwinbad")
    with pytest.raises(ImproperlyConfigured, match="'views': window must be"):
        app.Table("views", window=60)
