"""`RocksDBStore`: table data on local disk, through rocksdict.

Each partition of a table is a RocksDB database of its own, at
``directory / f"{table_name}-{partition}.db"``, opened the first time the
partition is used. One database per partition makes handing a partition over
cheap (close one database) and recovery per partition natural.

Layout of a partition database. Keys are prefixed so that table keys and the
store's own metadata can never collide, whatever a key encodes to:

* ``b"k" + encoded key`` -> encoded value, for every table key;
* ``b"m" + name`` -> metadata; ``b"mchangelog-offset"`` holds the last
  changelog offset the data reflects, as ASCII digits.

The bytes kept are the changelog's bytes (the same codecs make both), so
recovery writes changelog records as they are, without decoding them.

Crash safety. The persisted offset is written in the same `WriteBatch` as the
data it describes, and RocksDB applies a batch atomically: after a crash the
database holds some consistent prefix of the batches, and the offset in it
says where changelog recovery must resume. Batches go through the write-ahead
log without an fsync each: a process crash loses nothing written, and a power
loss can only lose a suffix of batches, which recovery replays from the
changelog, because the offset is lost with them.

Speed and exactness. ``set`` and ``delete`` only record the change in a
per-partition *dirty map* (reads consult it first), so RocksDB never works
per event. After each offset commit the table hands the store the values
its committed events left (`RocksDBStore.checkpoint`), written as one batch
with the changelog offset they reach; writes of events whose offsets are not
committed stay in the dirty map. So after a SIGKILL the database holds the
effect of committed events only, and the events processed again after the
restart are counted once. The dirty map holds the keys changed within about
one commit interval; `RocksDBStore.max_dirty` can bound it instead, at the
cost of that exactness (a full map is written as it is).
"""

from __future__ import annotations

import builtins
import functools
import re
import shutil
from itertools import islice
from typing import TYPE_CHECKING, Any, Collection, Iterable, Iterator, Mapping, Sequence

from ..exceptions import ImproperlyConfigured
from .base import MISSING, ChangelogRecord, Store

if TYPE_CHECKING:
    import pathlib
    from types import ModuleType

    from rocksdict import Options, Rdict

__all__ = ["RocksDBStore"]

#: Prefix of table keys, and the first byte after it (the end of their range).
_DATA = b"k"
_DATA_END = b"l"
#: Where the persisted changelog offset lives.
_OFFSET_KEY = b"mchangelog-offset"
#: A dirty entry whose value is encoded when written (see `RocksDBStore.set`).
_UNENCODED: Any = object()
#: No key looked up yet (see `RocksDBStore._stored_key`).
_NO_KEY: Any = object()

#: Memtable memory all RocksDB stores of the process share; RocksDB flushes
#: memtables to disk beyond it. Data is never lost by this, only moved.
_WRITE_BUFFER_LIMIT = 256 << 20
#: Block cache all stores of the process share, for reads from disk.
_BLOCK_CACHE_SIZE = 128 << 20


def _import_rocksdict() -> ModuleType:
    try:
        import rocksdict
    except ImportError as exc:
        raise ImproperlyConfigured(
            f'FAUST["STORE"] asks for RocksDB, but the rocksdict package cannot '
            f"be imported ({exc}). Install it with: "
            "pip install django-faust[rocksdb]"
        ) from exc
    return rocksdict


@functools.cache
def _shared_resources() -> tuple[Any, Any]:
    """The process-wide block cache and write buffer manager.

    Shared so that memory use does not grow with the number of tables times
    partitions: a worker may hold hundreds of partition databases.
    """
    rocksdict = _import_rocksdict()
    cache = rocksdict.Cache(_BLOCK_CACHE_SIZE)
    manager = rocksdict.WriteBufferManager(_WRITE_BUFFER_LIMIT, False)
    return cache, manager


class _Partition:
    """An open partition database and the writes not yet given to it.

    ``dirty`` maps a key (the Python object, so that reads need not encode)
    to ``(stored key, encoded value, value)``; an encoded value of None marks
    a deletion. ``offset`` is the persisted offset as the store shows it,
    ``offset_dirty`` whether it still has to be written.
    """

    __slots__ = ("db", "dirty", "offset", "offset_dirty")

    def __init__(self, db: Rdict, offset: int | None) -> None:
        self.db = db
        self.dirty: dict[Any, tuple[bytes | None, bytes | None, Any]] = {}
        self.offset = offset
        self.offset_dirty = False


class RocksDBStore(Store):
    """Table data in one RocksDB database per partition (see the module doc).

    `drop_partition` closes a partition's database but keeps its files: the
    data and offset in them are consistent, so if the partition comes back
    to this worker, recovery replays only the changelog written since. Files
    of a partition that never comes back stay until `reset`.

    Partitions on disk are not local until used: after a restart the worker
    may have been assigned other partitions, and stale files of those it was
    not must not be served.
    """

    persistent = True

    #: Entries a partition's dirty map may hold before it is written as it
    #: is, uncommitted writes included (None: no bound; tables stay exact
    #: after a crash only without one).
    max_dirty: int | None = None
    #: Memtable size of each partition database (64 MiB like RocksDB's
    #: default, capped process-wide by a shared write buffer manager).
    write_buffer_size: int = 64 << 20
    #: Pairs read from RocksDB at a time while iterating; between chunks no
    #: RocksDB iterator is held, so a partition can be closed and reopened.
    iter_chunk_size: int = 1_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rocksdict = _import_rocksdict()
        self._partitions: dict[int, _Partition] = {}
        self._options: Options | None = None
        self._write_options = self._rocksdict.WriteOptions()
        # Durability comes from the WAL plus the offset kept with the data,
        # not from an fsync per batch (see the module doc).
        self._write_options.sync = False
        # The key of the last lookup, its stored form, and the partitions
        # known not to hold it. ``table[k] += 1`` of a new key asks every
        # partition twice (the read, then the write's check for a copy
        # elsewhere) and encodes the key each time: with these, once. Any
        # change to the store forgets the partitions (`_forget_absent`).
        self._last_key: Any = _NO_KEY
        self._last_stored: bytes | None = None
        self._absent_in: builtins.set[int] = builtins.set()

    def path_for(self, partition: int) -> pathlib.Path:
        """The database directory of ``partition``."""
        return self.directory / f"{self.table_name}-{partition}.db"

    # -- opening -----------------------------------------------------------------

    def _make_options(self) -> Options:
        rocksdict = self._rocksdict
        cache, manager = _shared_resources()
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.increase_parallelism(2)
        options.set_max_background_jobs(2)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(3)
        options.set_write_buffer_manager(manager)
        options.set_target_file_size_base(64 << 20)
        options.set_compression_type(rocksdict.DBCompressionType.lz4())
        # A bloom filter over the memtable too (5% of its size): a table of
        # new keys misses in every partition (``table[k] += 1`` looks for
        # the key elsewhere), and a miss in the memtable's skiplist costs
        # about 2.5x one answered by the filter.
        options.set_memtable_prefix_bloom_ratio(0.05)
        options.set_memtable_whole_key_filtering(True)
        # After a power loss, recover up to the last intact batch.
        options.set_wal_recovery_mode(rocksdict.DBRecoveryMode.point_in_time())
        options.set_keep_log_file_num(3)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(cache)
        # Most reads are point lookups of one key (``table[key]``).
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        return options

    def _open(self, partition: int) -> _Partition:
        part = self._partitions.get(partition)
        if part is not None:
            return part
        self._absent_in.clear()
        if self._options is None:
            self._options = self._make_options()
        self.directory.mkdir(parents=True, exist_ok=True)
        db = self._rocksdict.Rdict(str(self.path_for(partition)), self._options)
        raw = db.get(_OFFSET_KEY)
        part = _Partition(db, int(raw) if raw is not None else None)
        self._partitions[partition] = part
        return part

    # -- writing -----------------------------------------------------------------

    def _write(self, part: _Partition) -> None:
        """Write ``part``'s dirty map and pending offset as one batch."""
        if not part.dirty and not part.offset_dirty:
            return
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        encode_key, encode_value = self.encode_key, self.encode_value
        for key, (stored_key, encoded, value) in part.dirty.items():
            if stored_key is None:
                stored_key = _DATA + encode_key(key)  # type: ignore[operator]
            if encoded is None:
                delete(stored_key)
            else:
                if encoded is _UNENCODED:
                    encoded = encode_value(value)
                put(stored_key, encoded)
        if part.offset_dirty:
            put(_OFFSET_KEY, str(part.offset).encode("ascii"))
        part.db.write(batch, self._write_options)
        part.dirty.clear()
        part.offset_dirty = False

    def _stored_key(self, key: Any) -> bytes | None:
        """``key`` as stored: its encoding after the data prefix (None: unencodable).

        The last key's is remembered: one event's read and write of a key
        encode it once. A key of another type never matches (``1 == 1.0``
        but they encode differently).
        """
        last = self._last_key
        if key is last or (type(key) is type(last) and key == last):
            return self._last_stored
        encoded = self.encode_key(key)
        stored = None if encoded is None else _DATA + encoded
        self._last_key, self._last_stored = key, stored
        self._absent_in.clear()
        return stored

    def _lookup(self, number: int, part: _Partition, stored_key: bytes) -> Any:
        """The raw value of the last looked-up key in ``part``, or None."""
        if number in self._absent_in:
            return None
        raw = part.db.get(stored_key)
        if raw is None:
            self._absent_in.add(number)
        return raw

    # -- data --------------------------------------------------------------------

    def get(self, partition: int, key: Any, default: Any = MISSING) -> Any:
        part = self._partitions.get(partition) or self._open(partition)
        entry = part.dirty.get(key)
        if entry is not None:
            if entry[1] is not None:
                return entry[2]
        else:
            stored_key = self._stored_key(key)
            if stored_key is not None:
                raw = self._lookup(partition, part, stored_key)
                if raw is not None:
                    return self.decode_value(raw)
        if default is MISSING:
            raise KeyError(key)
        return default

    def set(self, partition: int, key: Any, value: Any) -> None:
        if key is None or value is None:
            self._check_writable(key, value)
        part = self._partitions.get(partition) or self._open(partition)
        # Encoded when written (flush), once per key however often it was set
        # in between: per-event encoding was most of a table write's cost.
        # The table encodes its changelog record at the same flush, so disk
        # and changelog hold the same bytes.
        self._absent_in.clear()
        stored_key = self._last_stored if key is self._last_key else None
        part.dirty[key] = (stored_key, _UNENCODED, value)
        if self.max_dirty is not None and len(part.dirty) >= self.max_dirty:
            self._write(part)

    def delete(self, partition: int, key: Any) -> None:
        part = self._partitions.get(partition) or self._open(partition)
        entry = part.dirty.get(key)
        if entry is not None:
            stored_key: bytes | None = entry[0] or self._stored_key(key)
            present = entry[1] is not None
        else:
            stored_key = self._stored_key(key)
            present = stored_key is not None and part.db.get(stored_key) is not None
        if not present or stored_key is None:
            raise KeyError(key)
        self._absent_in.clear()
        part.dirty[key] = (stored_key, None, MISSING)
        if self.max_dirty is not None and len(part.dirty) >= self.max_dirty:
            self._write(part)

    def contains(self, partition: int, key: Any) -> bool:
        part = self._partitions.get(partition) or self._open(partition)
        entry = part.dirty.get(key)
        if entry is not None:
            return entry[1] is not None
        stored_key = self._stored_key(key)
        if stored_key is None:
            return False
        return self._lookup(partition, part, stored_key) is not None

    def _contains(self, part: _Partition, key: Any, stored_key: bytes | None) -> bool:
        entry = part.dirty.get(key)
        if entry is not None:
            return entry[1] is not None
        if stored_key is None:
            stored_key = self._stored_key(key)
            if stored_key is None:
                return False
        return part.db.get(stored_key) is not None

    def items(self, partition: int | None = None) -> Iterator[tuple[Any, Any]]:
        # The dirty maps are copied now (not at the first next()) and laid
        # over what RocksDB holds: iterating never writes (uncommitted
        # writes must stay out of the database, see the module doc).
        numbers = [partition] if partition is not None else sorted(self._partitions)
        overlays = [(number, self._overlay(self._open(number))) for number in numbers]
        return self._iter_items(overlays)

    def _overlay(self, part: _Partition) -> dict[bytes, tuple[Any, bool, Any]]:
        """``part``'s dirty map by stored key: (key, present, value)."""
        encode_key = self.encode_key
        return {
            stored_key or _DATA + encode_key(key): (key, encoded is not None, value)  # type: ignore[operator]
            for key, (stored_key, encoded, value) in part.dirty.items()
        }

    def _iter_items(
        self, overlays: list[tuple[int, dict[bytes, tuple[Any, bool, Any]]]]
    ) -> Iterator[tuple[Any, Any]]:
        decode_key, decode_value = self.decode_key, self.decode_value
        for number, overlay in overlays:
            for stored_key, raw in self._iter_raw(number):
                if stored_key not in overlay:
                    yield decode_key(stored_key[1:]), decode_value(raw)
            for key, present, value in overlay.values():
                if present:
                    yield key, value

    def _iter_raw(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Stored pairs of ``partition``, read a chunk at a time.

        No RocksDB iterator is kept across a ``yield``: an open iterator
        keeps its database open (and locked) even after ``close()``, and a
        caller may stop iterating half way. Stops quietly if the partition is
        dropped or the store closed in the meantime.
        """
        part = self._partitions.get(partition)
        start = _DATA
        while part is not None and self._partitions.get(partition) is part:
            read_options = self._rocksdict.ReadOptions()
            read_options.set_iterate_upper_bound(_DATA_END)
            pairs: Iterator[Any] = part.db.items(from_key=start, read_opt=read_options)
            chunk = list(islice(pairs, self.iter_chunk_size))
            del pairs
            yield from chunk
            if len(chunk) < self.iter_chunk_size:
                return
            # The smallest key after the last one seen.
            start = chunk[-1][0] + b"\x00"

    def page(
        self,
        partition: int,
        *,
        after: bytes | None = None,
        prefix: bytes = b"",
        limit: int = 50,
    ) -> list[tuple[bytes, Any, Any]]:
        # RocksDB keeps keys sorted: seek to the cursor (or the prefix) and
        # read ``limit`` entries, however large the partition.
        part = self._open(partition)
        self._write(part)
        start = _DATA + prefix
        if after is not None and _DATA + after >= start:
            start = _DATA + after + b"\x00"
        read_options = self._rocksdict.ReadOptions()
        read_options.set_iterate_upper_bound(_DATA_END)
        pairs: Iterator[Any] = part.db.items(from_key=start, read_opt=read_options)
        wanted = _DATA + prefix
        out: list[tuple[bytes, Any, Any]] = []
        decode_key, decode_value = self.decode_key, self.decode_value
        for stored_key, raw in pairs:
            if not stored_key.startswith(wanted) or len(out) >= limit:
                break
            out.append((stored_key[1:], decode_key(stored_key[1:]), decode_value(raw)))
        del pairs
        return out

    def approximate_count(self, partition: int) -> int:
        # RocksDB's own estimate: counting would read every key.
        part = self._open(partition)
        self._write(part)
        estimate = part.db.property_int_value("rocksdb.estimate-num-keys")
        # The offset entry is one of them.
        return max(0, int(estimate or 0) - (1 if part.offset is not None else 0))

    def count(self, partition: int | None = None) -> int:
        numbers = [partition] if partition is not None else sorted(self._partitions)
        total = 0
        for number in numbers:
            part = self._open(number)
            read_options = self._rocksdict.ReadOptions()
            read_options.set_iterate_upper_bound(_DATA_END)
            total += sum(1 for _ in part.db.keys(from_key=_DATA, read_opt=read_options))
            for stored_key, (_, present, _) in self._overlay(part).items():
                total += present - (part.db.get(stored_key) is not None)
        return total

    def partitions(self) -> builtins.set[int]:
        return set(self._partitions)

    def find_partition(
        self,
        key: Any,
        partitions: Iterable[int] | None = None,
        exclude: int | None = None,
    ) -> int | None:
        # One point lookup per open partition (dirty map, then the bloom
        # filter), the key encoded once; never a scan.
        stored_key = self._stored_key(key)
        if stored_key is None:
            return None
        opened = self._partitions
        absent = self._absent_in
        if len(absent) >= len(opened) - 1 and all(
            number in absent or number == exclude for number in opened
        ):
            # Known absent from every open partition since the last change
            # (a new key's write asks again right after its read missed).
            return None
        for number in sorted(opened) if partitions is None else partitions:
            if number == exclude:
                continue
            part = opened.get(number)
            if part is None:
                continue
            entry = part.dirty.get(key)
            if entry is not None:
                if entry[1] is not None:
                    return number
            elif self._lookup(number, part, stored_key) is not None:
                return number
        return None

    # -- changelog recovery ------------------------------------------------------

    def apply_changelog(
        self, partition: int, records: Sequence[ChangelogRecord], last_offset: int
    ) -> None:
        part = self._partitions.get(partition) or self._open(partition)
        self._absent_in.clear()
        dirty = part.dirty
        if dirty:
            # The changelog wins over local writes not yet checkpointed.
            decode_key = self.decode_key
            for key, _ in records:
                if key is not None:
                    dirty.pop(decode_key(key), None)
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        for key, value in records:
            if key is None:
                # Cannot be in a compacted topic; nothing to apply it to.
                continue
            if value is None:
                delete(_DATA + key)
            else:
                put(_DATA + key, value)
        put(_OFFSET_KEY, str(last_offset).encode("ascii"))
        part.db.write(batch, self._write_options)
        part.offset = last_offset

    def find_shared_keys(
        self,
        replayed: Mapping[int, Collection[bytes]],
        served: Collection[int],
        fresh: Collection[int] = (),
    ) -> list[tuple[Any, int]]:
        # Two fresh partitions compare their replayed keys as sets (in C);
        # any other is asked with one multi-get of the replayed keys, sorted
        # (RocksDB finds sorted keys about twice as fast). Only the keys
        # found are decoded, and checked to be still in both partitions.
        shared: list[tuple[Any, int]] = []
        opened = self._partitions
        for partition in sorted(replayed):
            part = opened.get(partition)
            raw_keys = replayed[partition]
            if part is None or not raw_keys:
                continue
            stored: list[Any] | None = None
            found: set[bytes] = set()
            for other in sorted(served):
                theirs = opened.get(other)
                if other == partition or theirs is None:
                    continue
                if other in fresh and partition in fresh:
                    common = [_DATA + raw for raw in raw_keys & replayed[other]]  # type: ignore[operator]
                    found.update(self._held(theirs, common))
                    continue
                if stored is None:
                    stored = sorted(_DATA + raw for raw in raw_keys)
                found.update(self._held(theirs, stored))
            if found:
                kept = self._held(part, sorted(found))
                shared.extend((self.decode_key(k[1:]), partition) for k in kept)
        return shared

    def _held(self, part: _Partition, stored_keys: list[Any]) -> list[Any]:
        """The ``stored_keys`` ``part`` holds (dirty map included), in order."""
        if not stored_keys:
            return []
        if part.dirty:
            # Writes not written yet (rare during recovery): key by key.
            return [
                k
                for k in stored_keys
                if self._contains(part, self.decode_key(k[1:]), k)
            ]
        values = part.db.get(stored_keys)
        return [k for k, v in zip(stored_keys, values, strict=True) if v is not None]  # type: ignore[arg-type]

    def persisted_offset(self, partition: int) -> int | None:
        return self._open(partition).offset

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        part = self._open(partition)
        # Written with the next batch, so it never gets ahead of the data.
        part.offset = offset
        part.offset_dirty = True

    def checkpoint(
        self,
        partition: int,
        changes: Mapping[Any, Any],
        offset: int,
        encoded: Mapping[Any, tuple[bytes | None, bytes | None]] | None = None,
    ) -> None:
        part = self._partitions.get(partition) or self._open(partition)
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        encode_key, encode_value = self.encode_key, self.encode_value
        dirty = part.dirty
        raw = encoded or {}
        for key, value in changes.items():
            # The changelog's bytes, when given: encoded once, not twice.
            raw_key, raw_value = raw.get(key) or (None, None)
            stored_key = _DATA + (raw_key or encode_key(key))  # type: ignore[operator]
            if value is None:
                delete(stored_key)
            else:
                put(stored_key, raw_value or encode_value(value))  # type: ignore[arg-type]
            entry = dirty.get(key)
            # Written now, unless changed again since (by an event whose
            # offset is not committed): that write stays dirty.
            if entry is not None and (
                entry[1] is None if value is None else entry[2] is value
            ):
                del dirty[key]
        put(_OFFSET_KEY, str(offset).encode("ascii"))
        part.db.write(batch, self._write_options)
        part.offset = offset
        part.offset_dirty = False

    def rollback(self, partition: int | None = None) -> None:
        numbers = [partition] if partition is not None else list(self._partitions)
        for number in numbers:
            part = self._partitions.get(number)
            if part is not None:
                part.dirty.clear()
                part.offset_dirty = False
                raw = part.db.get(_OFFSET_KEY)
                part.offset = int(raw) if raw is not None else None

    # -- lifecycle ---------------------------------------------------------------

    def flush(self) -> None:
        for part in self._partitions.values():
            self._write(part)

    def drop_partition(self, partition: int) -> None:
        self._absent_in.clear()
        part = self._partitions.pop(partition, None)
        if part is not None:
            self._write(part)
            part.db.close()

    def close(self) -> None:
        self._absent_in.clear()
        while self._partitions:
            _, part = self._partitions.popitem()
            self._write(part)
            part.db.close()

    def reset(self) -> None:
        # Pending writes are discarded: the files they would go to are deleted.
        self._absent_in.clear()
        while self._partitions:
            _, part = self._partitions.popitem()
            part.db.close()
        if not self.directory.is_dir():
            return
        own = re.compile(rf"{re.escape(self.table_name)}-\d+\.db\Z")
        for path in self.directory.iterdir():
            if own.match(path.name) and path.is_dir():
                shutil.rmtree(path)
