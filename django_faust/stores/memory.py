"""`MemoryStore`: table data in plain dicts, for development and tests.

Nothing is written to disk, so a worker rebuilds its tables from their
changelog at every start. Within one process the data and the persisted
changelog offset of a partition survive a rebalance that keeps the partition
here, so only what is new is replayed.

Keys and values are kept as the Python objects the table gave, without a
round trip through the codecs: a read returns the very object stored, as a
dict would. Only `MemoryStore.apply_changelog` decodes.
"""

from __future__ import annotations

import builtins
from bisect import bisect_left, bisect_right
from collections import defaultdict
from typing import Any, Collection, Iterable, Iterator, Mapping, Sequence

from .base import MISSING, ChangelogRecord, Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """One dict per partition; the persisted offsets in another dict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A defaultdict: using a partition makes it local (see `Store`).
        self._data: defaultdict[int, dict[Any, Any]] = defaultdict(dict)
        self._offsets: dict[int, int] = {}
        #: Bumped by every removal of a key: with a partition's length it
        #: tells whether the sorted index `page` keeps is still true (a new
        #: key changes the length, a changed value changes nothing), so that
        #: writes pay nothing for it.
        self._removals = 0
        #: partition -> (length, removals, encoded keys sorted, their keys).
        self._index: dict[int, tuple[int, int, list[bytes], list[Any]]] = {}

    # -- data --------------------------------------------------------------------

    def get(self, partition: int, key: Any, default: Any = MISSING) -> Any:
        try:
            return self._data[partition][key]
        except KeyError:
            if default is MISSING:
                raise KeyError(key) from None
            return default

    def set(self, partition: int, key: Any, value: Any) -> None:
        if key is None or value is None:
            self._check_writable(key, value)
        self._data[partition][key] = value

    def delete(self, partition: int, key: Any) -> None:
        try:
            del self._data[partition][key]
        except KeyError:
            raise KeyError(key) from None
        self._removals += 1

    def contains(self, partition: int, key: Any) -> bool:
        return key in self._data[partition]

    def items(self, partition: int | None = None) -> Iterator[tuple[Any, Any]]:
        # Each partition is copied before it is iterated, so that a caller
        # may write to the table while iterating (expiring windows does).
        if partition is not None:
            return iter(list(self._data[partition].items()))
        return self._all_items()

    def _all_items(self) -> Iterator[tuple[Any, Any]]:
        for partition in sorted(self._data):
            yield from list(self._data[partition].items())

    def page(
        self,
        partition: int,
        *,
        after: bytes | None = None,
        prefix: bytes = b"",
        limit: int = 50,
    ) -> list[tuple[bytes, Any, Any]]:
        # A sorted index of the encoded keys, built once and kept until the
        # partition gains or loses a key: later pages are a bisection.
        data = self._data.get(partition)
        if not data:
            return []
        index = self._index.get(partition)
        if index is None or index[0] != len(data) or index[1] != self._removals:
            encode_key = self.encode_key
            pairs = sorted(((encode_key(k) or b""), k) for k in data)
            index = (
                len(data),
                self._removals,
                [p[0] for p in pairs],
                [p[1] for p in pairs],
            )
            self._index[partition] = index
        raws, keys = index[2], index[3]
        start = bisect_left(raws, prefix)
        if after is not None:
            start = max(start, bisect_right(raws, after))
        out: list[tuple[bytes, Any, Any]] = []
        for position in range(start, len(raws)):
            raw = raws[position]
            if not raw.startswith(prefix) or len(out) >= limit:
                break
            key = keys[position]
            out.append((raw, key, data[key]))
        return out

    def count(self, partition: int | None = None) -> int:
        if partition is not None:
            return len(self._data[partition])
        return sum(len(data) for data in self._data.values())

    def partitions(self) -> builtins.set[int]:
        return set(self._data)

    def find_partition(
        self,
        key: Any,
        partitions: Iterable[int] | None = None,
        exclude: int | None = None,
    ) -> int | None:
        data = self._data
        for partition in sorted(data) if partitions is None else partitions:
            if partition == exclude:
                continue
            # .get(): asking must not make a partition local.
            part = data.get(partition)
            if part is not None and key in part:
                return partition
        return None

    # -- changelog recovery ------------------------------------------------------

    def apply_changelog(
        self, partition: int, records: Sequence[ChangelogRecord], last_offset: int
    ) -> None:
        data = self._data[partition]
        decode_key, decode_value = self.decode_key, self.decode_value
        for key, value in records:
            if key is None:
                # Cannot be in a compacted topic; nothing to apply it to.
                continue
            if value is None:
                data.pop(decode_key(key), None)
                self._removals += 1
            else:
                data[decode_key(key)] = decode_value(value)
        self._offsets[partition] = last_offset

    #: Whole partitions are compared (dict key views, in C): complete, and
    #: cheaper than looking up the replayed keys one by one.
    needs_replayed_keys = False

    def find_shared_keys(
        self,
        replayed: Mapping[int, Collection[bytes]],
        served: Collection[int],
        fresh: Collection[int] = (),
    ) -> list[tuple[Any, int]]:
        shared: list[tuple[Any, int]] = []
        data = self._data
        numbers = sorted(set(served) | set(replayed))
        # Each pair of partitions once, if one of them was replayed.
        for index, partition in enumerate(numbers):
            mine = data.get(partition)
            if not mine:
                continue
            for other in numbers[index + 1 :]:
                if partition not in replayed and other not in replayed:
                    continue
                theirs = data.get(other)
                if not theirs:
                    continue
                # Iterates the smaller of the two, in C.
                for key in mine.keys() & theirs.keys():
                    if partition in replayed:
                        shared.append((key, partition))
                    if other in replayed:
                        shared.append((key, other))
        return shared

    def persisted_offset(self, partition: int) -> int | None:
        self._data.setdefault(partition, {})  # using it makes it local
        return self._offsets.get(partition)

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        self._data.setdefault(partition, {})
        self._offsets[partition] = offset

    # -- lifecycle ---------------------------------------------------------------

    def drop_partition(self, partition: int) -> None:
        # The offset goes with the data: keeping it would make a later
        # re-assignment skip the changelog records the data came from.
        self._data.pop(partition, None)
        self._offsets.pop(partition, None)
        self._index.pop(partition, None)

    def reset(self) -> None:
        self._data.clear()
        self._offsets.clear()
        self._index.clear()
