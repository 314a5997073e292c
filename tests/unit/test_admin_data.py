"""Pages of table keys (the admin's reads): store cursors, merging, search."""

from __future__ import annotations

import pytest

from django_faust.admin_data import LocalAdminData, decode_cursor
from django_faust.stores import MemoryStore, RocksDBStore
from django_faust.testing import make_app, running
from tests.helpers import wait_for
from tests.unit.test_stores import make


@pytest.fixture(params=[MemoryStore, RocksDBStore], ids=["memory", "rocksdb"])
def store(request, tmp_path):
    store = make(request.param, tmp_path)
    yield store
    store.close()


def test_store_pages_follow_encoded_key_order_from_a_cursor(store):
    for i in range(30):
        store.set(i % 2, f"k{i:02d}", i)
    first = store.page(0, limit=5)
    assert [key for _, key, _ in first] == ["k00", "k02", "k04", "k06", "k08"]
    second = store.page(0, after=first[-1][0], limit=5)
    assert [key for _, key, _ in second] == ["k10", "k12", "k14", "k16", "k18"]
    assert [v for _, _, v in second] == [10, 12, 14, 16, 18]
    # A prefix of the encoded key ('"k2' finds "k20" ... "k28").
    assert [k for _, k, _ in store.page(0, prefix=b'"k2', limit=50)] == [
        "k20",
        "k22",
        "k24",
        "k26",
        "k28",
    ]


def test_store_pages_see_new_and_deleted_keys(store):
    store.set(0, "b", 1)
    assert [k for _, k, _ in store.page(0)] == ["b"]
    store.set(0, "a", 2)
    store.delete(0, "b")
    store.set(0, "c", 3)
    assert [(k, v) for _, k, v in store.page(0)] == [("a", 2), ("c", 3)]


def counting_app(store_url: str):
    app = make_app("adm", store=store_url, topic_partitions=4, datadir="{appid}-data")
    topic = app.topic("clicks", key_type=str, value_type=int)
    counts = app.Table("counts", default=int)
    per_minute = app.Table("per-minute", default=int).tumbling(60)

    @app.agent(topic)
    async def count(stream):
        async for key, _ in stream.items():
            counts[key] += 1
            per_minute[key] += 1

    return app, topic, counts


@pytest.mark.parametrize("store_url", ["memory://", "rocksdb://"])
async def test_pages_merge_every_partition_and_search_by_key(
    store_url, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    app, topic, counts = counting_app(store_url)
    async with running(app):
        for i in range(25):
            await topic.send(key=f"user-{i:02d}", value=1)
        await topic.send(key="user-03", value=1)
        await wait_for(lambda: sum(counts.values()) == 26)
        data = LocalAdminData(app)
        seen = []
        cursor = None
        while True:
            page = data.page("counts", cursor=cursor, limit=10)
            seen.extend(e.key for e in page.entries)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            assert decode_cursor(cursor)
        assert seen == [f"user-{i:02d}" for i in range(25)]
        assert {
            e.key: e.value
            for e in data.page("counts", search="user-03", exact=True).entries
        } == {"user-03": 2}
        assert [e.key for e in data.page("counts", search="user-1").entries] == [
            f"user-{i}" for i in range(10, 20)
        ]
        assert data.page("counts", search="nobody", exact=True).entries == []
        info = data.table("counts")
        assert info.keys == 25 or store_url == "rocksdb://"
        assert info.kind == "table"
        assert info.changelog_topic == "adm-counts-changelog"
        windowed = data.table("per-minute")
        assert windowed.kind == "windowed table"
        assert windowed.window == "TumblingWindow(size=60)"
        current = data.windows("per-minute")[0]
        page = data.page("per-minute", window=current, search="user-03", exact=True)
        assert [(e.key, e.window_start, e.value) for e in page.entries] == [
            ("user-03", current, 2)
        ]
        assert len(data.page("per-minute", window=current, limit=100).entries) == 25
        assert data.page("per-minute", window=current - 60).entries == []
        [worker] = data.workers()
        assert "clicks[0]" in worker.active
        assert worker.lag == 26  # nothing committed yet
        await app.consumer.commit()
        [worker] = data.workers()
        assert worker.lag == 0
        assert sum(worker.last_commit.values()) > 0


async def test_change_listeners_see_sets_and_deletes_and_a_failing_one_goes():
    app = make_app("lst", topic_partitions=1)
    topic = app.topic("ops", key_type=str, value_type=int)
    table = app.Table("t", default=int)

    @app.agent(topic)
    async def apply(stream):
        async for key, value in stream.items():
            if value < 0:
                del table[key]
            else:
                table[key] = value

    seen = []

    def broken(t, key, value):
        raise RuntimeError("boom")

    table.add_listener(lambda t, key, value: seen.append((t.name, key, value)))
    table.add_listener(broken)
    async with running(app):
        await topic.send(key="a", value=1)
        await topic.send(key="a", value=-1)
        await topic.send(key="b", value=2)
        await wait_for(lambda: len(seen) == 3)
        assert seen == [("t", "a", 1), ("t", "a", None), ("t", "b", 2)]
        assert broken not in table._listeners
        assert table["b"] == 2


def test_a_window_page_that_scans_too_far_ends_early_with_a_cursor(monkeypatch):
    from django_faust import admin_data

    monkeypatch.setattr(admin_data, "MAX_SCAN", 5)
    app = make_app("scan", topic_partitions=1)
    table = app.Table("per-minute", default=int).tumbling(60).table
    store = table.store
    # Ten keys in an old window, then two in the current one: a window
    # filter cannot seek, so the first page stops after five entries.
    for i in range(10):
        store.set(0, (f"a{i}", 0.0), i)
    store.set(0, ("b0", 600.0), 1)
    store.set(0, ("b1", 600.0), 2)
    data = LocalAdminData(app)
    found = []
    cursor = None
    pages = 0
    while True:
        page = data.page("per-minute", window=600.0, cursor=cursor, limit=10)
        pages += 1
        found += [(e.key, e.window_start, e.value) for e in page.entries]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert found == [("b0", 600.0, 1), ("b1", 600.0, 2)]
    assert pages > 1
