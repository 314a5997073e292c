"""Windowed tables: windows by event time, reads, expiry, changelog, recovery."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from django_faust import Record
from django_faust.exceptions import ImproperlyConfigured, TableWriteError
from django_faust.tables.wrappers import WindowSet, WindowWrapper
from django_faust.testing import make_app, running
from django_faust.windows import WindowRange
from tests.helpers import log_of, wait_for

STORES = ["memory://", "rocksdb://"]


@pytest.fixture(params=STORES)
def store(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DATADIR is relative: keep RocksDB files here
    return request.param


def counting_app(app_id, store, make_window, *, broker=None, **options):
    """An app whose agent adds each event's value to ``views[key]``.

    ``make_window(table)`` turns the table into a windowed one. Returns the
    app, the source topic, the wrapper, and the list of processed keys.
    """
    options.setdefault("table_cleanup_interval", 3600)
    if broker:
        options["broker"] = broker
    app = make_app(app_id, store=store, **options)
    topic = app.topic("views", key_type=str, value_type=int)
    views = make_window(app.Table("views", default=int, key_type=str))
    seen = []

    @app.agent(topic)
    async def count(stream):
        async for key, value in stream.items():
            views[key] += value
            seen.append(key)

    return app, topic, views, seen


async def send_at(topic, key, *timestamps, value=1):
    for timestamp in timestamps:
        await topic.send(key=key, value=value, timestamp=timestamp)


def changelog(app, table="views"):
    """The changelog as ``{(key, start): last value}``, None for a tombstone."""
    last = {}
    for message in log_of(app, f"{app.conf.id}-{table}-changelog"):
        key, start = json.loads(message.key)
        value = message.value
        last[(key, start)] = None if value is None else json.loads(value)
    return last


# -- which window ------------------------------------------------------------------


async def test_tumbling_counts_out_of_order_events_in_their_own_window(store):
    app, topic, views, seen = counting_app("wt", store, lambda t: t.tumbling(10))
    timestamps = [5, 15, 3, 25, 12, 9, 19.999, 20, 0, 10]
    async with running(app):
        await send_at(topic, "a", *timestamps)
        await send_at(topic, "b", 11)
        await wait_for(lambda: len(seen) == 11)
        assert views.as_dict() == {
            ("a", WindowRange(0.0, 10.0)): 4,
            ("a", WindowRange(10.0, 20.0)): 4,
            ("a", WindowRange(20.0, 30.0)): 2,
            ("b", WindowRange(10.0, 20.0)): 1,
        }
        await app.tables.flush()
        # One record per key and window, keyed by (key, window start).
        assert changelog(app) == {
            ("a", 0.0): 4,
            ("a", 10.0): 4,
            ("a", 20.0): 2,
            ("b", 10.0): 1,
        }
        source = {m.partition for m in log_of(app, "views") if m.key == b"a"}
        records = log_of(app, "wt-views-changelog")
        assert {m.partition for m in records if m.key.startswith(b'["a"')} == source


async def test_hopping_counts_an_event_in_every_window_containing_it(store):
    app, topic, views, seen = counting_app("wh", store, lambda t: t.hopping(10, 5))
    async with running(app):
        await send_at(topic, "a", 7, 12, 4.5)
        await wait_for(lambda: len(seen) == 3)
        assert views.as_dict() == {
            ("a", WindowRange(-5.0, 5.0)): 1,
            ("a", WindowRange(0.0, 10.0)): 2,
            ("a", WindowRange(5.0, 15.0)): 2,
            ("a", WindowRange(10.0, 20.0)): 1,
        }


async def test_sliding_window_of_each_event(store):
    app, topic, views, seen = counting_app("ws", store, lambda t: t.sliding(5, 5))
    async with running(app):
        await send_at(topic, "a", 100, 100, 103)
        await wait_for(lambda: len(seen) == 3)
        assert views.as_dict() == {
            ("a", WindowRange(95.0, 105.0)): 2,
            ("a", WindowRange(98.0, 108.0)): 1,
        }


async def test_set_and_delete_every_window_of_the_event_time():
    app = make_app("wsd")
    topic = app.topic("cmds", key_type=str, value_type=str)
    levels = app.Table("levels").hopping(10, 5)
    done = []

    @app.agent(topic)
    async def apply(stream):
        async for key, command in stream.items():
            if command == "del":
                del levels[key]
            else:
                levels[key] = command
            done.append(command)

    async with running(app):
        await topic.send(key="a", value="high", timestamp=7)
        await wait_for(lambda: len(done) == 1)
        assert levels.as_dict() == {
            ("a", WindowRange(0.0, 10.0)): "high",
            ("a", WindowRange(5.0, 15.0)): "high",
        }
        await topic.send(key="a", value="low", timestamp=12)
        await topic.send(key="a", value="del", timestamp=3)
        await wait_for(lambda: len(done) == 3)
        assert levels.as_dict() == {
            ("a", WindowRange(5.0, 15.0)): "low",
            ("a", WindowRange(10.0, 20.0)): "low",
        }


# -- reading -----------------------------------------------------------------------


async def test_current_now_delta_and_value_read_without_writing(store):
    app = make_app("wr", store=store)
    topic = app.topic("views", key_type=str, value_type=int)
    table = app.Table("views", default=int)
    views = table.tumbling(10)
    reads = []

    @app.agent(topic)
    async def count(stream):
        async for key, _ in stream.items():
            views[key] += 1
            window = views[key]
            reads.append(
                (window.current(), window.delta(10), window.value(), window.now())
            )

    async with running(app):
        await send_at(topic, "a", 1000, 1005, 1012, 1001)
        await wait_for(lambda: len(reads) == 4)
        assert reads == [
            (1, 0, 1, 0),
            (2, 0, 2, 0),
            (1, 2, 1, 0),  # 1012 - 10 s is in [1000, 1010)
            (3, 0, 3, 0),  # late event, counted in its own window
        ]
        # Reading missing windows stored nothing (now(), delta(10)).
        assert set(views.keys()) == {
            ("a", WindowRange(1000.0, 1010.0)),
            ("a", WindowRange(1010.0, 1020.0)),
        }
        # Outside an event the wall clock stands in for the event time.
        assert views["a"].now() == 0
        assert views["a"].current() == 0
        assert "a" not in views
        assert len(table) == 2


async def test_relative_to_now_and_to_field():
    class Click(Record):
        user: str
        at: datetime
        seconds: float

    app = make_app("wrel")
    topic = app.topic("clicks", value_type=Click)
    table = app.Table("clicks", default=int)
    by_stream = table.tumbling(60)
    by_now = by_stream.relative_to_now()
    by_field = by_stream.relative_to_field(Click.at)
    by_seconds = by_now.relative_to_field(Click.seconds)
    values = []

    @app.agent(topic)
    async def count(stream):
        async for click in stream:
            by_field[click.user] += 1
            by_seconds[click.user] += 10
            values.append((by_stream[click.user].value(), by_field[click.user].value()))

    at = datetime(2020, 1, 1, 0, 0, 30, tzinfo=UTC)
    start = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    async with running(app):
        # The message timestamps (second 1) are not what counts: the fields are.
        await topic.send(key="ann", value=Click("ann", at, 150.0), timestamp=1)
        naive = at.replace(tzinfo=None, second=59)  # naive datetimes are UTC
        await topic.send(key="ann", value=Click("ann", naive, 170.0), timestamp=1)
        await wait_for(lambda: len(values) == 2)
        assert values == [(0, 1), (0, 2)]
        assert table.as_dict() == {("ann", start): 2, ("ann", 120.0): 20}

    # Outside events writing is refused, whatever the wrapper goes by.
    for wrapper in (by_stream, by_now, by_field):
        with pytest.raises(TableWriteError):
            wrapper["ann"] += 1
        with pytest.raises(TableWriteError):
            wrapper["ann"] = 1
    assert "relative to now" in repr(by_now)
    assert "relative to field at" in repr(by_field)
    with pytest.raises(ImproperlyConfigured):
        by_stream.relative_to_field("at")


async def test_relative_to_now_writes_in_the_window_of_the_wall_clock():
    app = make_app("wnow")
    topic = app.topic("views", key_type=str, value_type=int)
    views = app.Table("views", default=int).tumbling(3600).relative_to_now()
    done = []

    @app.agent(topic)
    async def count(stream):
        async for key, _ in stream.items():
            views[key] += 1
            done.append(views[key].value())

    async with running(app):
        before = time.time()
        await send_at(topic, "a", 5, 10)  # old event times are ignored
        await wait_for(lambda: len(done) == 2)
        after = time.time()
    ((key, window),) = views.keys()
    assert key == "a"
    assert window.start <= after and window.end > before
    assert views.as_dict()[(key, window)] == 2


def test_missing_window_without_default_is_a_key_error():
    app = make_app("wkey")
    views = app.Table("views").tumbling(10)
    assert isinstance(views, WindowWrapper)
    assert isinstance(views["a"], WindowSet)
    with pytest.raises(KeyError):
        views["a"].now()
    with pytest.raises(KeyError):
        views["a"].delta(60)
    with pytest.raises(TypeError):
        views["a"] = views["b"]  # the windows of one key are not a value


async def test_any_operation_through_apply():
    app = make_app("wapply")
    topic = app.topic("temps", key_type=str, value_type=int)
    highest = app.Table("highest", default=lambda: -1000).tumbling(10)
    done = []

    @app.agent(topic)
    async def track(stream):
        async for key, value in stream.items():
            highest[key].apply(max, value)
            done.append(value)

    async with running(app):
        for timestamp, value in [(1, 5), (2, 12), (3, 7), (11, -3)]:
            await topic.send(key="x", value=value, timestamp=timestamp)
        await wait_for(lambda: len(done) == 4)
    assert highest.as_dict() == {
        ("x", WindowRange(0.0, 10.0)): 12,
        ("x", WindowRange(10.0, 20.0)): -3,
    }


def test_a_table_has_one_window():
    app = make_app("wone")
    table = app.Table("views", default=int)
    table.tumbling(10, expires=60)
    assert repr(table.tumbling(10, expires=60).window) == repr(table.window)
    with pytest.raises(ImproperlyConfigured):
        table.hopping(10, 5)


def test_window_keys_round_trip_through_the_changelog_codec():
    class Account(Record, frozen=True):
        id: int

    app = make_app("wcodec")
    typed = app.Table("typed", key_type=str)
    typed.tumbling(10)
    untyped = app.Table("untyped")
    untyped.sliding(0.5, 0.5)
    records = app.Table("records", key_type=Account)
    records.tumbling(10)
    cases = [
        (typed, ("a", 10.0)),
        (typed, ("[", -5.5)),
        (untyped, (("user", 1), 0.3)),
        (untyped, ((("nested", ("deep",)), 2), 1.0)),
        (untyped, (7, 1_700_000_000.25)),
        (records, (Account(3), 20.0)),
    ]
    for table, key in cases:
        data = table.changelog_topic.encode_key(key)
        decoded = table.store.decode_key(data)
        assert decoded == key
        assert type(decoded) is tuple and type(decoded[1]) is float
        hash(decoded)
    # An integral start written as 20 still reads as the float 20.0.
    assert records.store.decode_key(b'[{"id":3},20]') == (Account(3), 20.0)


# -- expiry ------------------------------------------------------------------------


async def test_expired_windows_are_deleted_and_tombstoned(store):
    app, topic, views, seen = counting_app(
        "wx",
        store,
        lambda t: t.tumbling(10, expires=20),
        table_cleanup_interval=0.05,
        topic_partitions=1,  # one partition, so one latest time for a and b
    )
    async with running(app):
        await send_at(topic, "a", 0, 5, 15, 22)
        await send_at(topic, "b", 3)
        await wait_for(lambda: len(seen) == 5)
        await app.tables.flush()
        # Latest time 22: nothing ended before 2 yet.
        assert len(views.as_dict()) == 4
        await send_at(topic, "a", 100)
        await wait_for(
            lambda: set(views.keys()) == {("a", WindowRange(100.0, 110.0))},
            timeout=5,
        )
        assert not views.table.store.contains(0, ("a", 0.0))
        await app.tables.flush()
        assert changelog(app) == {
            ("a", 0.0): None,
            ("a", 10.0): None,
            ("a", 20.0): None,
            ("a", 100.0): 1,
            ("b", 0.0): None,
        }
        # A late event for an expired window does not bring it back.
        await send_at(topic, "a", 3, 85)
        await wait_for(lambda: len(seen) == 8)
        await app.tables.flush()
        assert views.as_dict() == {
            ("a", WindowRange(80.0, 90.0)): 1,
            ("a", WindowRange(100.0, 110.0)): 1,
        }
        assert changelog(app)[("a", 0.0)] is None


async def test_an_event_for_an_expired_window_is_skipped_before_any_cleanup():
    app, topic, views, seen = counting_app(
        "wlate", "memory://", lambda t: t.hopping(10, 5, expires=0)
    )
    async with running(app):
        await send_at(topic, "a", 101, 12, 96)
        await wait_for(lambda: len(seen) == 3)
        # 12 is only in windows that ended long before 101; of the windows
        # of 96, [90, 100) has ended (expires=0), [95, 105) has not.
        assert views.as_dict() == {
            ("a", WindowRange(95.0, 105.0)): 2,
            ("a", WindowRange(100.0, 110.0)): 1,
        }


async def test_restart_recovers_live_windows_exactly_and_expires_the_rest(store):
    def window(table):
        return table.tumbling(10, expires=30)

    app, topic, views, seen = counting_app("wrec", store, window)
    keys = ["a", "b", "c", "d"]
    async with running(app):
        # In time order: keys may share a partition, and so its latest time.
        for timestamp in [*range(0, 110, 10), 101]:
            for key in keys:
                await send_at(topic, key, timestamp)
        await wait_for(lambda: len(seen) == 48)
        before = views.as_dict()
    # Cleanup never ran (long interval): every window is still there.
    assert len(before) == 44
    assert all(v == 1 for (_, w), v in before.items() if w.start != 100.0)
    broker = app.conf.broker_url

    again, _, views2, _ = counting_app("wrec", store, window, broker=broker)
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        # Latest time 100 (the newest window's start): windows that ended
        # before 70 are gone, the others are exactly as they were.
        after = views2.as_dict()
        assert after == {kw: v for kw, v in before.items() if kw[1].end >= 70}
        assert {w.start for _, w in after} == {60.0, 70.0, 80.0, 90.0, 100.0}
        await again.tables.flush()
        last = changelog(again)
        for key in keys:
            for start in range(0, 60, 10):
                assert last[(key, float(start))] is None
            assert last[(key, 100.0)] == 2

    third, _, views3, _ = counting_app("wrec", store, window, broker=broker)
    async with running(third):
        await wait_for(lambda: third.tables.recovered.is_set())
        assert views3.as_dict() == after


async def test_restart_without_expiry_rebuilds_every_window(store):
    def window(table):
        return table.hopping(10, 5)

    app, topic, views, seen = counting_app("wrb", store, window)
    async with running(app):
        for i in range(60):
            await send_at(topic, f"k{i % 6}", (i * 7) % 50, value=i)
        await wait_for(lambda: len(seen) == 60)
        before = views.as_dict()
    again, _, views2, _ = counting_app("wrb", store, window, broker=app.conf.broker_url)
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        assert views2.as_dict() == before
        assert views2.table.expire_windows() == 0
