"""Exact tables under at-least-once: a crash never counts an event twice.

A worker may die between sending its table changes to the changelog and
committing the offsets of the events that made them. Those events are
processed again after the restart; the changelog records they made before
must then not count. Each record names its source event (a header), the
stores persist changes only after the commit, and recovery and standby
copies leave out records whose source offsets were never committed.

A "crash" here is a worker whose offset commits fail from some moment on
(as if it had been killed before its next commit): everything it did after
the last successful commit is done again by the next worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from django_faust import TP
from django_faust.tables.table import SOURCE_HEADER, source_of
from django_faust.testing import make_app, running
from tests.helpers import log_of, wait_for

STORES = ["memory://", "rocksdb://"]


@pytest.fixture(params=STORES)
def store(request: Any, tmp_path: Any, monkeypatch: Any) -> str:
    monkeypatch.chdir(tmp_path)  # DATADIR is relative: keep RocksDB files here
    return str(request.param)


def counting_app(
    app_id: str, broker: str | None, store: str, gate: asyncio.Event | None = None
) -> tuple[Any, Any, Any]:
    """Counts events per key; with ``gate``, an event of value 99 waits for it
    after counting (an event in flight while the worker commits)."""
    options: dict[str, Any] = {"store": store, "topic_partitions": 1}
    if broker:
        options["broker"] = broker
    app = make_app(app_id, **options)
    topic = app.topic("clicks", key_type=str, value_type=int)
    counts = app.Table("counts", default=int)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for key, value in stream.items():
            counts[key] += 1
            if gate is not None and value == 99:
                await gate.wait()

    return app, topic, counts


def crash_before_next_commit(app: Any, monkeypatch: Any) -> None:
    """Make every further offset commit of ``app`` fail, as a kill would."""

    async def killed(offsets: Any) -> None:
        raise ConnectionError("the worker was killed before this commit")

    monkeypatch.setattr(app.consumer, "_commit_offsets", killed)


async def test_changelog_records_name_their_source_event(store: str) -> None:
    app, topic, counts = counting_app("xsrc", None, store)
    async with running(app):
        for _ in range(3):
            await topic.send(key="a", value=1)
        await wait_for(lambda: counts["a"] == 3)
        await app.consumer.commit()
        [record] = log_of(app, "xsrc-counts-changelog")
    # The last of the three events made the coalesced record.
    assert source_of(record) == ("clicks", 0, 2)
    assert dict(record.headers)[SOURCE_HEADER] == b"0:2:clicks"


async def test_a_crash_between_changelog_and_commit_counts_each_event_once(
    store: str, monkeypatch: Any
) -> None:
    first, topic, counts = counting_app("xcrash", None, store)
    async with running(first):
        for _ in range(10):
            await topic.send(key="a", value=1)
        await wait_for(lambda: counts["a"] == 10)
        assert await first.consumer.commit()
        for _ in range(5):
            await topic.send(key="a", value=1)
        await wait_for(lambda: counts["a"] == 15)
        crash_before_next_commit(first, monkeypatch)
        # The changes reach the changelog; the commit that would follow fails.
        await first.tables.flush()
        assert not await _commits(first)
    changelog = log_of(first, "xcrash-counts-changelog")
    assert [(m.value, source_of(m)) for m in changelog] == [
        (b"10", ("clicks", 0, 9)),
        (b"15", ("clicks", 0, 14)),
    ]
    assert await first.consumer.committed(TP("clicks", 0)) == 10

    again, _, recovered = counting_app("xcrash", first.conf.broker_url, store)
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        # Events 10 to 14 are processed again, counted once.
        await wait_for(lambda: recovered["a"] == 15)
        await asyncio.sleep(0.2)
        assert recovered["a"] == 15
    assert again.tables.skipped_uncommitted == 1


async def test_an_event_in_flight_at_a_commit_is_not_persisted(
    store: str, monkeypatch: Any
) -> None:
    gate = asyncio.Event()
    first, topic, counts = counting_app("xflight", None, store, gate)
    async with running(first):
        for value in (1, 1, 1, 99):
            await topic.send(key="a", value=value)
        # The fourth event is counted, then waits: it is not acked.
        await wait_for(lambda: counts["a"] == 4)
        assert await first.consumer.commit()
        assert await first.consumer.committed(TP("clicks", 0)) == 3
        # The changelog has the value the committed events left, then the
        # in-flight one's; only the first is in the store's durable state.
        changelog = log_of(first, "xflight-counts-changelog")
        assert [(m.value, source_of(m)) for m in changelog] == [
            (b"3", ("clicks", 0, 2)),
            (b"4", ("clicks", 0, 3)),
        ]
        assert counts.unpersisted() == 1
        assert counts.store.persisted_offset(0) == 0
        crash_before_next_commit(first, monkeypatch)
        gate.set()
        await asyncio.sleep(0.1)

    again, _, recovered = counting_app("xflight", first.conf.broker_url, store)
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        await wait_for(lambda: recovered["a"] == 4)
        await asyncio.sleep(0.2)
        assert recovered["a"] == 4


async def test_a_change_is_persisted_at_the_commit_that_covers_its_event(
    tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    gate = asyncio.Event()
    app, topic, counts = counting_app("xlater", None, "rocksdb://", gate)
    async with running(app):
        for value in (1, 99, 1):
            await topic.send(key="a", value=value)
        await wait_for(lambda: counts["a"] == 2)
        assert await app.consumer.commit()
        assert counts.unpersisted() == 1
        gate.set()
        await wait_for(lambda: counts["a"] == 3)
        assert await app.consumer.commit()
        assert counts.unpersisted() == 0
        # a=1 (event 0), a=2 (event 1, in flight at the first commit), a=3.
        assert counts.store.persisted_offset(0) == 2
        assert not counts.store._partitions[0].dirty  # all of it written


async def test_a_standby_copy_waits_for_the_commit_of_a_change(
    monkeypatch: Any,
) -> None:
    active, topic, counts = counting_app("xstandby", None, "memory://")
    _, _, copy = standby_parts = counting_app(
        "xstandby", active.conf.broker_url, "memory://"
    )
    standby = standby_parts[0]
    async with running(active):
        commit = active.consumer._commit_offsets
        crash_before_next_commit(active, monkeypatch)
        for _ in range(3):
            await topic.send(key="a", value=1)
        await wait_for(lambda: counts["a"] == 3)
        await active.tables.flush()
        changelog = TP("xstandby-counts-changelog", 0)
        follower = asyncio.ensure_future(
            standby.tables._follow_standbys({changelog: copy})
        )
        try:
            await wait_for(lambda: changelog in standby.tables._held)
            await asyncio.sleep(0.3)
            # In the changelog, but its events are not committed.
            assert copy.store.count(0) == 0
            monkeypatch.setattr(active.consumer, "_commit_offsets", commit)
            assert await active.consumer.commit()
            await wait_for(lambda: copy.store.count(0) == 1)
            assert copy.store.get(0, "a") == 3
            assert not standby.tables._held
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)


async def _commits(app: Any) -> bool:
    """Whether a commit now succeeds (False: it failed, as after a kill)."""
    try:
        return bool(await app.consumer.commit())
    except ConnectionError:
        return False


async def test_a_key_moved_by_an_uncommitted_event_is_counted_once(
    store: str, monkeypatch: Any
) -> None:
    def two_partitions(broker: str | None) -> tuple[Any, Any, Any]:
        options: dict[str, Any] = {"store": store, "topic_partitions": 2}
        if broker:
            options["broker"] = broker
        app = make_app("xmove", **options)
        topic = app.topic("clicks", key_type=str, value_type=int)
        counts = app.Table("counts", default=int)

        @app.agent(topic)
        async def count(stream: Any) -> None:
            async for key, _ in stream.items():
                counts[key] += 1

        return app, topic, counts

    first, topic, counts = two_partitions(None)
    async with running(first):
        await topic.send(key="a", value=1, partition=0)
        await wait_for(lambda: counts["a"] == 1)
        assert await first.consumer.commit()
        # Not partitioned by the table's key: "a" moves to partition 1.
        await topic.send(key="a", value=1, partition=1)
        await wait_for(lambda: counts["a"] == 2)
        crash_before_next_commit(first, monkeypatch)
        await first.tables.flush()
    # The value went to partition 1, the tombstone to partition 0, both
    # naming the event of partition 1 that moved it: neither counts.
    moved = [
        (m.partition, m.value, source_of(m))
        for m in log_of(first, "xmove-counts-changelog")
    ]
    assert (1, b"2", ("clicks", 1, 0)) in moved
    assert (0, None, ("clicks", 1, 0)) in moved

    again, _, recovered = two_partitions(first.conf.broker_url)
    async with running(again):
        await wait_for(lambda: again.tables.recovered.is_set())
        await wait_for(lambda: recovered["a"] == 2)
        await asyncio.sleep(0.2)
        assert recovered["a"] == 2
        assert len(recovered) == 1
