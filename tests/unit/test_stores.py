"""Table stores: the shared contract on both drivers, then RocksDB durability."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from django_faust.exceptions import ImproperlyConfigured
from django_faust.stores import (
    MISSING,
    MemoryStore,
    RocksDBStore,
    Store,
    by_url,
)

REPO = Path(__file__).resolve().parents[2]


def enc(obj: Any) -> bytes | None:
    return None if obj is None else json.dumps(obj).encode()


def dec(data: bytes | None) -> Any:
    return None if data is None else json.loads(data)


def make(cls: type[Store], directory: Path, name: str = "counts", **codecs: Any) -> Any:
    url = "memory://" if cls is MemoryStore else "rocksdb://"
    options = {
        "encode_key": enc,
        "decode_key": dec,
        "encode_value": enc,
        "decode_value": dec,
        **codecs,
    }
    return cls(url, name, directory=directory, **options)


@pytest.fixture(params=[MemoryStore, RocksDBStore], ids=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    store = make(request.param, tmp_path)
    yield store
    store.close()


def records(*pairs: tuple[Any, Any]) -> list[tuple[bytes | None, bytes | None]]:
    """Changelog records as the broker gives them: encoded bytes."""
    return [(enc(key), enc(value)) for key, value in pairs]


# -- the contract, on both stores -------------------------------------------------


class TestData:
    def test_get_missing(self, store: Store) -> None:
        with pytest.raises(KeyError):
            store.get(0, "nope")
        assert store.get(0, "nope", None) is None
        assert store.get(0, "nope", 7) == 7
        marker = object()
        assert store.get(0, "nope", default=marker) is marker
        assert repr(MISSING) == "MISSING"

    def test_set_get_contains(self, store: Store) -> None:
        store.set(0, "a", 1)
        store.set(0, ("tuple", 1), {"nested": [1, 2]})
        assert store.get(0, "a") == 1
        assert store.get(0, ("tuple", 1)) == {"nested": [1, 2]}
        assert store.contains(0, "a")
        assert not store.contains(0, "b")
        store.set(0, "a", 2)
        assert store.get(0, "a") == 2

    def test_partitions_are_separate(self, store: Store) -> None:
        store.set(0, "k", "zero")
        store.set(3, "k", "three")
        assert store.get(0, "k") == "zero"
        assert store.get(3, "k") == "three"
        assert not store.contains(1, "k")
        store.delete(0, "k")
        assert store.get(3, "k") == "three"

    def test_delete(self, store: Store) -> None:
        store.set(1, "a", 1)
        store.delete(1, "a")
        assert not store.contains(1, "a")
        with pytest.raises(KeyError):
            store.delete(1, "a")
        with pytest.raises(KeyError):
            store.delete(1, "never")
        with pytest.raises(KeyError):
            store.get(1, "a")

    def test_set_after_delete(self, store: Store) -> None:
        store.set(0, "a", 1)
        store.delete(0, "a")
        store.set(0, "a", 2)
        assert store.get(0, "a") == 2

    def test_falsy_values_are_values(self, store: Store) -> None:
        for key, value in [("zero", 0), ("empty", ""), ("false", False), ("list", [])]:
            store.set(0, key, value)
            assert store.contains(0, key)
            assert store.get(0, key) == value

    def test_none_is_refused(self, store: Store) -> None:
        with pytest.raises(ValueError, match="deletion"):
            store.set(0, "a", None)
        with pytest.raises(ValueError, match="without a key"):
            store.set(0, None, 1)
        assert store.count() == 0

    def test_items_and_count(self, store: Store) -> None:
        for i in range(5):
            store.set(i % 2, f"k{i}", i)
        assert dict(store.items(0)) == {"k0": 0, "k2": 2, "k4": 4}
        assert dict(store.items(1)) == {"k1": 1, "k3": 3}
        assert dict(store.items()) == {f"k{i}": i for i in range(5)}
        assert sorted(store.keys(1)) == ["k1", "k3"]
        assert store.count(0) == 3
        assert store.count(1) == 2
        assert store.count() == 5
        assert store.count(7) == 0
        assert list(store.items(7)) == []

    def test_items_reflect_deletes(self, store: Store) -> None:
        store.set(0, "a", 1)
        store.set(0, "b", 2)
        store.delete(0, "a")
        assert list(store.items(0)) == [("b", 2)]
        assert store.count(0) == 1

    def test_writes_while_iterating(self, store: Store) -> None:
        for i in range(50):
            store.set(0, i, i)
        seen = []
        for key, value in store.items(0):
            seen.append(key)
            store.delete(0, key)
            store.set(0, key + 1000, value)
        assert sorted(seen)[:50] == list(range(50))
        assert not any(store.contains(0, i) for i in range(50))

    def test_partitions(self, store: Store) -> None:
        assert store.partitions() == set()
        store.set(2, "a", 1)
        store.set(5, "a", 1)
        assert store.partitions() == {2, 5}
        store.drop_partition(2)
        assert store.partitions() == {5}
        assert dict(store.items()) == {"a": 1}
        store.drop_partition(99)  # not local: nothing to do

    def test_find_partition(self, store: Store) -> None:
        store.set(0, "a", 1)
        store.set(3, "b", 2)
        assert store.find_partition("a") == 0
        assert store.find_partition("b") == 3
        assert store.find_partition("c") is None
        store.delete(3, "b")
        assert store.find_partition("b") is None

    def test_find_partition_among_some_partitions(self, store: Store) -> None:
        # How a table finds a key outside the event's partition: only the
        # partitions it serves, the event's own left out, none made local.
        store.set(0, "a", 1)
        store.set(2, "a", 1)
        store.set(3, "b", 2)
        assert store.find_partition("a", (0, 2), exclude=0) == 2
        assert store.find_partition("a", (2, 0)) == 2  # in the order given
        assert store.find_partition("a", (1, 3)) is None
        assert store.find_partition("b", (3,), exclude=3) is None
        assert store.find_partition("a", (7,)) is None
        assert store.partitions() == {0, 2, 3}

    def test_a_miss_is_not_remembered_past_a_change(self, store: Store) -> None:
        # ``table[k] += 1`` of a new key: every partition misses, then the
        # write lands; the same key asked again anywhere must be found, also
        # after it reached the disk or came from a changelog.
        for number in range(4):
            store.set(number, "other", 0)
        assert store.get(0, "a", None) is None
        assert store.find_partition("a", exclude=0) is None
        assert not store.contains(0, "a")
        store.set(2, "a", 1)
        assert store.find_partition("a", exclude=0) == 2
        store.flush()
        assert store.get(2, "a") == 1
        assert not store.contains(1, "b")
        store.apply_changelog(1, records(("b", 5)), 0)
        assert store.contains(1, "b")
        assert store.find_partition("b") == 1
        store.delete(1, "b")
        assert store.find_partition("b") is None

    def test_keys_of_other_types_are_other_keys(self, store: Store) -> None:
        store.set(0, "1", "text")
        store.flush()
        assert store.get(0, "1") == "text"
        assert store.get(0, 1, None) is None
        assert store.get(0, "1") == "text"

    def test_reset(self, store: Store) -> None:
        store.set(0, "a", 1)
        store.set_persisted_offset(0, 10)
        store.reset()
        assert store.partitions() == set()
        assert store.count() == 0
        assert store.persisted_offset(0) is None
        store.set(0, "b", 2)  # usable again
        assert dict(store.items()) == {"b": 2}

    def test_close_keeps_data(self, store: Store) -> None:
        store.set(0, "a", 1)
        store.set_persisted_offset(0, 3)
        store.close()
        assert store.get(0, "a") == 1
        assert store.persisted_offset(0) == 3

    def test_repr(self, store: Store) -> None:
        assert "'counts'" in repr(store)


class TestChangelog:
    def test_apply(self, store: Store) -> None:
        assert store.persisted_offset(0) is None
        store.apply_changelog(0, records(("a", 1), ("b", {"x": 2}), ("a", 3)), 2)
        assert dict(store.items(0)) == {"a": 3, "b": {"x": 2}}
        assert store.persisted_offset(0) == 2
        assert store.persisted_offset(1) is None

    def test_tombstones(self, store: Store) -> None:
        store.apply_changelog(0, records(("a", 1), ("b", 2)), 1)
        store.apply_changelog(0, records(("a", None), ("gone", None)), 5)
        assert dict(store.items(0)) == {"b": 2}
        assert store.persisted_offset(0) == 5

    def test_tombstone_then_value_in_one_batch(self, store: Store) -> None:
        store.apply_changelog(0, records(("a", 1), ("a", None), ("a", 2)), 2)
        assert store.get(0, "a") == 2

    def test_empty_batch_still_moves_offset(self, store: Store) -> None:
        # Compaction may leave gaps: the last offset read, not the last given.
        store.apply_changelog(0, [], 41)
        assert store.persisted_offset(0) == 41

    def test_records_without_key_are_skipped(self, store: Store) -> None:
        store.apply_changelog(0, [(None, enc(1)), (enc("a"), enc(2))], 1)
        assert dict(store.items(0)) == {"a": 2}

    def test_changelog_wins_over_local_writes(self, store: Store) -> None:
        store.set(0, "a", "local")
        store.set(0, "b", "local")
        store.apply_changelog(0, records(("a", "changelog"), ("b", None)), 9)
        assert store.get(0, "a") == "changelog"
        assert not store.contains(0, "b")

    def test_values_read_through_the_table_codecs(self, store: Store) -> None:
        store.apply_changelog(0, records((1, [1, 2])), 0)
        assert store.get(0, 1) == [1, 2]
        assert store.find_partition(1) == 0

    def test_find_shared_keys(self, store: Store) -> None:
        store.set(1, "a", "one")
        store.set(2, "b", "two")
        store.flush()
        store.set(3, "c", "three")  # not written to disk yet (RocksDB)
        replayed = records(("a", 1), ("b", 2), ("c", 3), ("d", 4), ("gone", 5))
        store.apply_changelog(0, [*replayed, (enc("gone"), None)], 5)
        store.set(9, "d", "nine")  # not served: not compared
        shared = store.find_shared_keys(
            {0: {key for key, _ in replayed if key is not None}}, (0, 1, 2, 3, 7)
        )
        # "gone" was deleted again; 7 is not local.
        assert sorted(shared) == [("a", 0), ("b", 0), ("c", 0)]
        assert 7 not in store.partitions()

    def test_find_shared_keys_of_fresh_partitions(self, store: Store) -> None:
        # Partitions that held nothing before their replay: their replayed
        # keys are all they hold.
        one = records(("a", 1), ("b", 1), ("gone", 1))
        two = records(("b", 2), ("c", 2), ("gone", 2))
        store.apply_changelog(0, one, 2)
        store.apply_changelog(1, [*two, (enc("gone"), None)], 3)
        replayed = {0: {k for k, _ in one}, 1: {k for k, _ in two}}
        shared = store.find_shared_keys(replayed, (0, 1), fresh=(0, 1))  # type: ignore[arg-type]
        assert sorted(shared) == [("b", 0), ("b", 1)]

    def test_set_persisted_offset(self, store: Store) -> None:
        store.set_persisted_offset(1, 7)
        assert store.persisted_offset(1) == 7
        assert 1 in store.partitions()
        store.apply_changelog(1, records(("a", 1)), 8)
        assert store.persisted_offset(1) == 8


class TestMemoryStore:
    def test_keeps_objects_as_given(self, tmp_path: Path) -> None:
        store = make(MemoryStore, tmp_path)
        value: dict[str, list[int]] = {"mutable": []}
        store.set(0, "a", value)
        assert store.get(0, "a") is value

    def test_drop_partition_forgets_data_and_offset(self, tmp_path: Path) -> None:
        store = make(MemoryStore, tmp_path)
        store.apply_changelog(0, records(("a", 1)), 4)
        store.drop_partition(0)
        assert not store.contains(0, "a")
        assert store.persisted_offset(0) is None

    def test_writes_nothing_to_disk(self, tmp_path: Path) -> None:
        store = make(MemoryStore, tmp_path / "data")
        store.set(0, "a", 1)
        store.flush()
        store.close()
        assert not (tmp_path / "data").exists()


# -- RocksDB: files, durability, size ---------------------------------------------


def run_and_crash(directory: Path, body: str) -> None:
    """Run ``body`` with ``store`` (a RocksDBStore) in a new process killed at the end.

    ``os._exit`` skips every cleanup, as a crash would: nothing is flushed or
    closed, so only what reached RocksDB's write-ahead log survives.
    """
    script = textwrap.dedent(
        """
        import json, os, sys
        from django_faust.stores import RocksDBStore

        def enc(obj):
            return None if obj is None else json.dumps(obj).encode()

        def dec(data):
            return None if data is None else json.loads(data)

        store = RocksDBStore(
            "rocksdb://", "counts", directory=sys.argv[1],
            encode_key=enc, decode_key=dec, encode_value=enc, decode_value=dec,
        )
        """
    )
    script += textwrap.dedent(body) + "\nos._exit(0)\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", script, str(directory)], check=True, env=env, timeout=60
    )


class TestRocksDBStore:
    def test_a_known_miss_asks_rocksdb_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # ``table[k] += 1`` of a new key: the read's miss in every other
        # partition answers the write's look for a copy elsewhere too.
        store = make(RocksDBStore, tmp_path)
        for number in range(4):
            store.set(number, "other", 0)
        store.flush()
        lookups: list[int] = []
        lookup = store._lookup

        def counted(number: int, part: Any, stored_key: bytes) -> Any:
            lookups.append(number)
            return lookup(number, part, stored_key)

        monkeypatch.setattr(store, "_lookup", counted)
        assert store.get(0, "a", None) is None
        assert store.find_partition("a", exclude=0) is None
        assert sorted(lookups) == [0, 1, 2, 3]
        assert not store.contains(0, "a")
        asked = len(lookups)
        assert store.find_partition("a", exclude=0) is None
        assert store.find_partition("a", (3, 1), exclude=0) is None
        assert len(lookups) == asked
        # Not known absent from all: asked (and found) as before.
        assert store.find_partition("other", exclude=0) == 1
        store.set(2, "a", 1)
        assert store.find_partition("a", exclude=0) == 2
        store.close()

    def test_files(self, tmp_path: Path) -> None:
        store = make(RocksDBStore, tmp_path / "tables")
        assert not (tmp_path / "tables").exists()  # opened lazily
        store.set(3, "a", 1)
        assert store.path_for(3) == tmp_path / "tables" / "counts-3.db"
        assert store.path_for(3).is_dir()
        store.close()

    def test_survives_reopen(self, tmp_path: Path) -> None:
        store = make(RocksDBStore, tmp_path)
        store.set(0, "a", {"n": 1})
        store.set(1, "b", 2)
        store.apply_changelog(2, records(("c", 3)), 17)
        store.set_persisted_offset(0, 5)
        store.close()

        again = make(RocksDBStore, tmp_path)
        assert again.partitions() == set()  # files alone do not make it local
        assert again.get(0, "a") == {"n": 1}
        assert again.get(1, "b") == 2
        assert again.get(2, "c") == 3
        assert again.persisted_offset(0) == 5
        assert again.persisted_offset(1) is None
        assert again.persisted_offset(2) == 17
        assert dict(again.items()) == {"a": {"n": 1}, "b": 2, "c": 3}
        again.close()

    def test_unflushed_writes_visible_before_lost_in_crash(
        self, tmp_path: Path
    ) -> None:
        run_and_crash(
            tmp_path,
            """
            store.set(0, "flushed", 1)
            store.set_persisted_offset(0, 10)
            store.flush()
            store.set(0, "dirty", 2)
            store.delete(0, "flushed")
            store.set_persisted_offset(0, 11)
            # Visible to this process before any flush:
            assert store.get(0, "dirty") == 2
            assert not store.contains(0, "flushed")
            assert store.persisted_offset(0) == 11
            """,
        )
        store = make(RocksDBStore, tmp_path)
        assert dict(store.items(0)) == {"flushed": 1}
        assert store.persisted_offset(0) == 10
        store.close()

    def test_full_dirty_map_is_written(self, tmp_path: Path) -> None:
        run_and_crash(
            tmp_path,
            """
            store.max_dirty = 3
            for i in range(5):
                store.set(0, i, i)
            """,
        )
        store = make(RocksDBStore, tmp_path)
        assert dict(store.items(0)) == {0: 0, 1: 1, 2: 2}
        store.close()

    def test_changelog_and_offset_survive_a_crash(self, tmp_path: Path) -> None:
        run_and_crash(
            tmp_path,
            """
            store.apply_changelog(0, [(enc(i), enc(i * 2)) for i in range(1000)], 999)
            store.apply_changelog(0, [(enc(0), None)], 1000)
            """,
        )
        store = make(RocksDBStore, tmp_path)
        assert store.persisted_offset(0) == 1000
        assert store.count(0) == 999
        assert not store.contains(0, 0)
        assert store.get(0, 999) == 1998
        store.close()

    def test_changelog_and_offset_after_close(self, tmp_path: Path) -> None:
        store = make(RocksDBStore, tmp_path)
        store.apply_changelog(4, records(("a", 1), ("b", 2)), 100)
        store.close()
        again = make(RocksDBStore, tmp_path)
        assert again.persisted_offset(4) == 100
        assert dict(again.items(4)) == {"a": 1, "b": 2}
        again.close()

    def test_offset_cannot_collide_with_keys(self, tmp_path: Path) -> None:
        # Raw bytes codecs: a key may be any bytes, including the name of
        # the metadata entry.
        def same(data: Any) -> Any:
            return data

        raw: dict[str, Any] = {"encode_key": same, "decode_key": same}
        raw |= {"encode_value": same, "decode_value": same}
        store = make(RocksDBStore, tmp_path, **raw)
        for key in (b"mchangelog-offset", b"changelog-offset", b"m", b"", b"\xff"):
            store.set(0, key, b"v")
        store.set_persisted_offset(0, 3)
        store.close()
        again = make(RocksDBStore, tmp_path, **raw)
        assert again.persisted_offset(0) == 3
        assert again.count(0) == 5
        assert again.get(0, b"mchangelog-offset") == b"v"
        assert again.get(0, b"") == b"v"
        again.close()

    def test_drop_partition_keeps_files(self, tmp_path: Path) -> None:
        store = make(RocksDBStore, tmp_path)
        store.apply_changelog(0, records(("a", 1)), 6)
        store.set(0, "b", 2)  # dirty: written by drop_partition
        store.set(1, "c", 3)
        store.drop_partition(0)
        assert store.partitions() == {1}
        assert store.path_for(0).is_dir()
        assert dict(store.items()) == {"c": 3}
        # Assigned back: the data and the offset it matches are still there.
        assert store.persisted_offset(0) == 6
        assert dict(store.items(0)) == {"a": 1, "b": 2}
        store.close()

    def test_reset_deletes_every_partition_of_this_table_only(
        self, tmp_path: Path
    ) -> None:
        other = make(RocksDBStore, tmp_path, name="counts-extra")
        other.set(0, "x", 1)
        other.close()
        earlier = make(RocksDBStore, tmp_path)
        earlier.set(7, "old", 1)  # on disk, not open in the next store
        earlier.close()
        (tmp_path / "unrelated.txt").write_text("keep me")

        store = make(RocksDBStore, tmp_path)
        store.set(0, "a", 1)
        store.set(1, "dirty", 1)
        store.reset()
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "counts-extra-0.db",
            "unrelated.txt",
        ]
        assert store.partitions() == set()
        assert not store.contains(7, "old")
        store.close()

    def test_reset_without_directory(self, tmp_path: Path) -> None:
        store = make(RocksDBStore, tmp_path / "missing")
        store.reset()
        assert not (tmp_path / "missing").exists()

    def test_dirty_map_is_bounded(self, tmp_path: Path) -> None:
        store = make(RocksDBStore, tmp_path)
        store.max_dirty = 100
        for i in range(1_000):
            store.set(0, i, i)
            assert len(store._partitions[0].dirty) < 100
        assert store.count(0) == 1_000
        store.close()

    def test_large_store_iterates_in_bounded_memory(self, tmp_path: Path) -> None:
        # Keys and values stay bytes (no JSON) to keep the test quick.
        def same(data: Any) -> Any:
            return data

        store = make(RocksDBStore, tmp_path, decode_key=same, decode_value=same)
        value = b"x" * 200
        batch = [(enc(i), value) for i in range(200_000)]
        store.apply_changelog(0, batch, len(batch) - 1)
        del batch
        assert store.count(0) == 200_000

        tracemalloc.start()
        try:
            count = 0
            for key, _ in store.items(0):
                count += 1
                assert key[:1].isdigit()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == 200_000
        # The values alone are over 40 MB; a chunk of them is well under 2.
        assert peak < 2_000_000
        store.close()

    def test_abandoned_iteration_does_not_hold_the_database(
        self, tmp_path: Path
    ) -> None:
        store = make(RocksDBStore, tmp_path)
        store.iter_chunk_size = 10
        for i in range(100):
            store.set(0, i, i)
        store.flush()  # iterated from the database, in its order
        items = store.items(0)
        first = [next(items) for _ in range(15)]
        assert [key for key, _ in first] == sorted(range(100), key=str)[:15]
        store.drop_partition(0)
        # Finishes the chunk already read, then stops: the partition is gone.
        assert len(list(items)) == 5
        again = make(RocksDBStore, tmp_path)  # the database is not locked
        assert again.count(0) == 100
        again.close()
        store.close()

    def test_iteration_crosses_chunks(self, tmp_path: Path) -> None:
        store = make(RocksDBStore, tmp_path)
        store.iter_chunk_size = 7
        for i in range(50):
            store.set(1, i, -i)
        assert dict(store.items(1)) == {i: -i for i in range(50)}
        store.close()

    def test_missing_rocksdict(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "rocksdict", None)
        with pytest.raises(ImproperlyConfigured) as info:
            make(RocksDBStore, tmp_path)
        assert "pip install django-faust[rocksdb]" in str(info.value)


# -- choosing a store -------------------------------------------------------------


class TestByUrl:
    @pytest.mark.parametrize(
        ("url", "cls"),
        [
            ("memory://", MemoryStore),
            ("rocksdb://", RocksDBStore),
            ("RocksDB://data/tables", RocksDBStore),
            ("rocksdb://?opt=1", RocksDBStore),
        ],
    )
    def test_known(self, url: str, cls: type[Store]) -> None:
        assert by_url(url) is cls

    def test_unknown_scheme(self) -> None:
        with pytest.raises(ImproperlyConfigured) as info:
            by_url("redis://localhost")
        message = str(info.value)
        assert 'FAUST["STORE"]' in message
        assert "'redis'" in message
        assert "memory://, rocksdb://" in message

    @pytest.mark.parametrize("url", ["not a url", "", 42])
    def test_malformed(self, url: Any) -> None:
        with pytest.raises(ImproperlyConfigured, match=r'FAUST\["STORE"\]'):
            by_url(url)
