"""The `Store` interface: where a table keeps its keys and values.

A store holds the data of exactly one table, split by partition. Tables are
co-partitioned with their source topic, so the partition of the event that
wrote a key decides where that key lives; the table passes it to every call.
Keeping partitions apart is what lets a worker hand one partition to another
worker (or forget it) without touching the rest, and lets recovery replay the
changelog of a single partition.

Stores take and return Python objects. Tables also hand over the functions
that turn keys and values into bytes and back, because recovery
(`Store.apply_changelog`) receives the raw bytes of changelog records and a
disk-backed store keeps data encoded anyway.

A store is not thread-safe: the worker calls it from its event loop only.
"""

from __future__ import annotations

import abc
import builtins
import os
import pathlib
from typing import (
    Any,
    Callable,
    Collection,
    Final,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)

__all__ = ["MISSING", "ChangelogRecord", "Decoder", "Encoder", "Store"]

#: Turns a key or value into bytes (None stays None), as the table's codecs do.
Encoder = Callable[[Any], bytes | None]
#: Turns changelog bytes back into a key or value.
Decoder = Callable[[bytes | None], Any]
#: One changelog record as read from the broker: (key, value) bytes. A value
#: of None is a tombstone: the key was deleted.
ChangelogRecord = tuple[bytes | None, bytes | None]


class _Missing:
    """Type of `MISSING`; a class of its own so it reads well in reprs."""

    def __repr__(self) -> str:
        return "MISSING"


#: Default of `Store.get`: "no default given, raise KeyError". ``None`` cannot
#: play that role because None is a legitimate default.
MISSING: Final = _Missing()


class Store(abc.ABC):
    """The data of one table, by partition.

    ``url`` is the ``FAUST["STORE"]`` URL the store was chosen by (drivers may
    read options from its query string); ``table_name`` names the table (and
    its files); ``directory`` is where a disk-backed store keeps them.
    ``encode_key``/``encode_value`` turn objects into bytes and
    ``decode_key``/``decode_value`` turn changelog bytes back into objects;
    they are the table's codecs, so the bytes a store keeps are exactly the
    bytes of the changelog.

    A partition becomes *local* the first time any per-partition method uses
    it, and stops being local after `drop_partition`; `partitions` lists the
    local ones and ``items()``/``count()`` without a partition cover them.

    Values of ``None`` cannot be stored: in the changelog a None value is a
    tombstone, so recovery would turn it into a deletion. ``set`` raises
    `ValueError` instead of letting the two disagree. A ``None`` key is refused
    too: Kafka does not accept records without a key in a compacted topic.
    """

    #: Whether the data outlives the process (``manage.py faust reset`` has
    #: files to delete only for such stores).
    persistent: bool = False

    def __init__(
        self,
        url: str,
        table_name: str,
        *,
        directory: str | os.PathLike[str],
        encode_key: Encoder,
        decode_key: Decoder,
        encode_value: Encoder,
        decode_value: Decoder,
    ) -> None:
        self.url = url
        self.table_name = table_name
        self.directory = pathlib.Path(directory)
        self.encode_key = encode_key
        self.decode_key = decode_key
        self.encode_value = encode_value
        self.decode_value = decode_value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.table_name!r}>"

    # -- data --------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, partition: int, key: Any, default: Any = MISSING) -> Any:
        """The value of ``key``; ``default`` if absent, or `KeyError` without one."""

    @abc.abstractmethod
    def set(self, partition: int, key: Any, value: Any) -> None:
        """Store ``value`` under ``key`` in ``partition``."""

    @abc.abstractmethod
    def delete(self, partition: int, key: Any) -> None:
        """Remove ``key`` from ``partition``; `KeyError` if it is not there."""

    @abc.abstractmethod
    def contains(self, partition: int, key: Any) -> bool:
        """Whether ``partition`` holds ``key``."""

    @abc.abstractmethod
    def items(self, partition: int | None = None) -> Iterator[tuple[Any, Any]]:
        """``(key, value)`` pairs of one partition, or of every local one.

        Writes made while iterating do not disturb the iteration; whether
        they show up in it is unspecified.
        """

    @abc.abstractmethod
    def count(self, partition: int | None = None) -> int:
        """The number of keys in one partition, or in every local one."""

    @abc.abstractmethod
    def partitions(self) -> builtins.set[int]:
        """The local partitions."""

    def find_partition(
        self,
        key: Any,
        partitions: Iterable[int] | None = None,
        exclude: int | None = None,
    ) -> int | None:
        """The first of ``partitions`` (default: every local one) holding ``key``.

        ``exclude`` is left out (the partition the caller looked in already).
        Partitions that are not local are skipped, not made local. Tables
        use it to find a key that is not in the event's own partition, so
        that a read finds it wherever this worker holds it and a write moves
        it rather than storing it twice. The default asks each partition in
        turn (one point lookup each, never a scan); drivers may do better.
        """
        local = self.partitions()
        for partition in sorted(local) if partitions is None else partitions:
            if partition == exclude or partition not in local:
                continue
            if self.contains(partition, key):
                return partition
        return None

    def page(
        self,
        partition: int,
        *,
        after: bytes | None = None,
        prefix: bytes = b"",
        limit: int = 50,
    ) -> list[tuple[bytes, Any, Any]]:
        """Up to ``limit`` ``(encoded key, key, value)`` of ``partition``, in key order.

        The order is that of the encoded keys (bytes), which is what RocksDB
        keeps natively; ``after`` is the encoded key the previous page ended
        with (the cursor), ``prefix`` keeps only encoded keys starting with
        it. The admin pages through a table with it: a page reads about
        ``limit`` entries, never the whole partition, in a driver that keeps
        the order. This default sorts the partition (correct, not fast).
        """
        encode_key = self.encode_key
        entries = []
        for key, value in self.items(partition):
            raw = encode_key(key) or b""
            if raw.startswith(prefix) and (after is None or raw > after):
                entries.append((raw, key, value))
        entries.sort(key=lambda entry: entry[0])
        return entries[:limit]

    def approximate_count(self, partition: int) -> int:
        """The number of keys in ``partition``, cheaply; may be an estimate.

        For pages that show sizes (the admin): a disk-backed store may
        answer from its statistics instead of reading every key.
        """
        return self.count(partition)

    def keys(self, partition: int | None = None) -> Iterator[Any]:
        """The keys of one partition, or of every local one."""
        for key, _ in self.items(partition):
            yield key

    # -- changelog recovery ------------------------------------------------------

    @abc.abstractmethod
    def apply_changelog(
        self, partition: int, records: Sequence[ChangelogRecord], last_offset: int
    ) -> None:
        """Apply changelog ``records`` (raw bytes, in offset order) to ``partition``.

        A record whose value is None deletes its key (deleting an absent key
        is not an error: compaction may have removed the value already).
        Afterwards `persisted_offset` is ``last_offset``: the offset of the
        last record read, which may lie beyond the last record given when the
        batch ended with records that compaction or filtering removed.
        """

    #: Whether `find_shared_keys` needs the keys replayed (``False``: it
    #: compares whole partitions, cheaply, and ignores them).
    needs_replayed_keys: bool = True

    def find_shared_keys(
        self,
        replayed: Mapping[int, Collection[bytes]],
        served: Collection[int],
        fresh: Collection[int] = (),
    ) -> list[tuple[Any, int]]:
        """Keys a replayed partition holds that another ``served`` one holds too.

        ``replayed`` maps each partition a recovery just replayed to the raw
        keys of the changelog records it applied; ``fresh`` are those of them
        that held nothing before, so that their keys are all in ``replayed``
        (two fresh partitions compare as sets, without a lookup). Each key
        found is returned once per replayed partition holding it. Tables ask
        after a recovery, so as never to serve one key from two partitions.
        The default looks each replayed key up in the other partitions (one
        point lookup each, never a scan); drivers may do better.
        """
        local = self.partitions()
        shared = []
        for partition, keys in replayed.items():
            others = [p for p in sorted(served) if p != partition and p in local]
            for raw in keys:
                key = self.decode_key(raw)
                if self.contains(partition, key) and any(
                    self.contains(other, key) for other in others
                ):
                    shared.append((key, partition))
        return shared

    @abc.abstractmethod
    def persisted_offset(self, partition: int) -> int | None:
        """The last changelog offset reflected in ``partition``'s data, or None.

        Recovery resumes after it. It always describes the data the store
        shows; a disk-backed store makes the two durable together on `flush`.
        """

    @abc.abstractmethod
    def set_persisted_offset(self, partition: int, offset: int) -> None:
        """Record that ``partition``'s data reflects the changelog up to ``offset``."""

    def checkpoint(
        self,
        partition: int,
        changes: Mapping[Any, Any],
        offset: int,
        encoded: Mapping[Any, tuple[bytes | None, bytes | None]] | None = None,
    ) -> None:
        """Make ``changes`` and ``offset`` durable together (after a commit).

        ``changes`` maps keys to the values the committed events left them
        with (None: deleted); they are in the changelog up to ``offset``,
        which becomes the persisted offset. ``encoded`` may give each key's
        changelog bytes ``(key, value)``, which a disk-backed store writes
        as they are. Writes made since (by events
        whose offsets are not committed) stay out of the durable state, so
        that after a crash the store holds the effect of committed events
        only. A store whose data does not outlive the process only notes
        the offset (its data is rebuilt from the changelog at a start).
        """
        self.set_persisted_offset(partition, offset)

    def rollback(self, partition: int | None = None) -> None:  # noqa: B027
        """Forget the writes not yet checkpointed (of one or every partition).

        The worker calls it before it closes a store or gives a partition
        away: those writes belong to events whose offsets are not
        committed, which are processed again. A store without a durable
        state has nothing to forget.
        """

    # -- lifecycle ---------------------------------------------------------------

    def flush(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Make buffered writes durable (tables use `checkpoint` instead)."""

    @abc.abstractmethod
    def drop_partition(self, partition: int) -> None:
        """Stop serving ``partition`` (it was assigned away without a standby)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Delete every local file and datum of this table (``faust reset``)."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Flush and release files; the store may be used (and reopen) again."""

    # -- helpers for drivers -----------------------------------------------------

    def _check_writable(self, key: Any, value: Any) -> None:
        if key is None:
            raise ValueError(
                f"Table {self.table_name!r}: a key of None cannot be stored; "
                "a compacted changelog topic refuses records without a key."
            )
        if value is None:
            raise ValueError(
                f"Table {self.table_name!r}: a value of None cannot be stored "
                f"(key {key!r}); the changelog would read it as a deletion. "
                "Delete the key instead."
            )
