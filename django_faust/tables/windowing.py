"""The bookkeeping of a windowed table: which windows, and when they expire.

A windowed table stores one entry per key and window, under the key
``(key, window_start)``; everything else about it is a plain `Table` (the
partition rules, the changelog, recovery). `TableWindows` is what makes
those entries windows:

* which windows an operation at a given time touches (all the live windows
  containing it for writes, the latest one for reads);
* the latest timestamp written in each partition, which expiry is relative
  to, and an index of window starts by partition, so that expiry finds the
  expired windows without reading the store;
* decoding the ``(key, start)`` keys back from the changelog codec.

The window wrappers (`~django_faust.tables.wrappers`) decide *which time* an
operation is about and call the public methods here; this module reads and
writes the table only through its public mapping (``table[k]``,
``table[k] = v``, ``del table[k]``) and `Table.delete_in`, so a windowed
entry follows exactly the rules of any other key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..exceptions import ImproperlyConfigured, KeyDecodeError
from ..serializers import codecs
from ..windows import SlidingWindow, Window, WindowRange

if TYPE_CHECKING:
    from .table import Table

__all__ = ["TableWindows", "is_window_key"]


def _as_tuples(value: Any) -> Any:
    """``value`` with every list turned into a tuple, however deep."""
    if isinstance(value, list):
        return tuple(_as_tuples(item) for item in value)
    return value


def is_window_key(stored: Any) -> bool:
    """Whether a stored key has the ``(key, window_start)`` shape."""
    return (
        isinstance(stored, tuple) and len(stored) == 2 and isinstance(stored[1], float)
    )


class TableWindows:
    """The windows of one windowed table (made by `Table.using_window`)."""

    def __init__(self, table: Table, window: Window) -> None:
        self.table = table
        self.window = window
        #: The latest timestamp written, by partition; expiry is relative to it.
        self.latest_timestamps: dict[int, float] = {}
        #: partition -> window start -> keys with that window; lets expiry
        #: find expired windows without reading the store. Kept only with
        #: ``expires``.
        self._starts: dict[int, dict[float, set[Any]]] = {}

    def __repr__(self) -> str:
        return f"<TableWindows {self.table.name!r} {self.window!r}>"

    # -- which windows --------------------------------------------------------

    def live_ranges(self, partition: int, timestamp: float) -> list[WindowRange]:
        """The unexpired windows containing ``timestamp``; notes the timestamp.

        A window that has already expired is left out rather than written
        again: it would come back with only the late events in it, and
        expire again at the next cleanup.
        """
        window = self.window
        latest = self.latest_timestamps.get(partition)
        if latest is None or timestamp > latest:
            latest = self.latest_timestamps[partition] = timestamp
        return [r for r in window.ranges(timestamp) if not window.stale(r, latest)]

    def range_of(self, start: float) -> WindowRange:
        return WindowRange(start, self.window._end_of(start))

    # -- reading --------------------------------------------------------------

    def get(self, key: Any, timestamp: float) -> Any:
        """The value of the latest window containing ``timestamp``.

        ``default()`` (not stored) or `KeyError` when the window is missing,
        as for a plain key.
        """
        return self.table[(key, self.window.current(timestamp).start)]

    def contains(self, key: Any, timestamp: float) -> bool:
        return (key, self.window.current(timestamp).start) in self.table

    def items(self) -> Iterator[tuple[tuple[Any, WindowRange], Any]]:
        """Every ``((key, WindowRange), value)`` the table serves."""
        end_of = self.window._end_of
        for stored, value in self.table.items():
            if is_window_key(stored):
                key, start = stored
                yield (key, WindowRange(start, end_of(start))), value

    # -- writing --------------------------------------------------------------

    def set(self, key: Any, value: Any, timestamp: float) -> None:
        """Set ``value`` in every live window of ``key`` containing ``timestamp``."""
        partition = self.table.write_partition()
        for window_range in self.live_ranges(partition, timestamp):
            self._put(partition, key, window_range.start, value)

    def apply(
        self, key: Any, op: Callable[[Any, Any], Any], value: Any, timestamp: float
    ) -> None:
        """``window = op(window, value)`` for each live window of ``timestamp``."""
        partition = self.table.write_partition()
        starts = [r.start for r in self.live_ranges(partition, timestamp)]
        table = self.table
        # Every result first: an error leaves no window half updated.
        results = [op(table[(key, start)], value) for start in starts]
        for start, result in zip(starts, results, strict=True):
            self._put(partition, key, start, result)

    def delete(self, key: Any, timestamp: float) -> None:
        """Delete ``key`` from every window containing ``timestamp`` it has."""
        self.table.write_partition()  # the rules of writes, even with no window
        table = self.table
        for window_range in self.window.ranges(timestamp):
            stored = (key, window_range.start)
            if stored in table:
                del table[stored]

    def _put(self, partition: int, key: Any, start: float, value: Any) -> None:
        self.table[(key, start)] = value
        if self.window.expires is not None:
            starts = self._starts.setdefault(partition, {})
            keys = starts.get(start)
            if keys is None:
                keys = starts[start] = set()
            keys.add(key)

    # -- expiry ---------------------------------------------------------------

    def expire(
        self, partitions: Iterable[int] | None = None, *, rescan: bool = False
    ) -> int:
        """Delete the expired windows of ``partitions``; how many were deleted.

        See `Table.expire_windows`.
        """
        window = self.window
        if window.expires is None:
            return 0
        table = self.table
        for gone in set(self._starts) - table.store.partitions():
            # Assigned away: its windows are another worker's to expire.
            del self._starts[gone]
        if partitions is None:
            partitions = set(self._starts)
        expired = 0
        for partition in sorted(partitions):
            if rescan:
                self._index(partition)
            latest = self.latest_timestamps.get(partition)
            starts = self._starts.get(partition)
            if latest is None or not starts:
                continue
            # Windows of one table all have the same length: the oldest
            # start ends first, so stop at the first window still alive.
            for start in sorted(starts):
                if not window.stale(start, latest):
                    break
                for key in starts.pop(start):
                    # False for a window that moved to another partition.
                    expired += table.delete_in(partition, (key, start))
        return expired

    def _index(self, partition: int) -> None:
        """Rebuild ``partition``'s window index (and latest time) from the store."""
        window = self.window
        starts: dict[float, set[Any]] = {}
        for stored in self.table.store.keys(partition):
            if is_window_key(stored):
                key, start = stored
                starts.setdefault(start, set()).add(key)
        self._starts[partition] = starts
        if starts:
            newest = max(starts)
            if isinstance(window, SlidingWindow):
                newest += window.before  # the window's own event time
            latest = self.latest_timestamps.get(partition)
            if latest is None or newest > latest:
                self.latest_timestamps[partition] = newest

    # -- the changelog's keys -------------------------------------------------

    def decode_key(self, data: bytes | None) -> Any:
        """Decode a stored key of a windowed table back to ``(key, start)``.

        The key codec writes the tuple as an array (JSON has no tuples), and
        a plain decode would give back a list: unhashable, and not equal to
        the tuple the table wrote. So the array is taken apart here: the key
        part goes through the table's own key decoder (``key_type`` still
        applies), the start becomes a float again, and any list left in the
        key becomes a tuple (a key must be hashable, so it was one).
        """
        if data is None:
            return None
        table = self.table
        topic = table.changelog_topic
        codec = codecs.get_codec(table.key_serializer or "json")
        try:
            raw = codec.loads(data)
            if (
                isinstance(raw, list)
                and len(raw) == 2
                and isinstance(raw[1], int | float)
                and not isinstance(raw[1], bool)
            ):
                key = topic.decode_key(codec.dumps(raw[0]))
                return (_as_tuples(key), float(raw[1]))
            # Not a window key (written before the table was windowed?):
            # return it as decoded, hashable.
            return _as_tuples(topic.decode_key(data))
        except KeyDecodeError:
            raise
        except Exception as exc:
            raise KeyDecodeError(
                f"Table {table.name!r}: cannot decode the windowed key {data!r}: {exc}",
                topic=topic.get_topic_name(),
            ) from exc


def not_windowed(table: Table) -> ImproperlyConfigured:
    """The error for a window operation on a table that has no window."""
    return ImproperlyConfigured(
        f"Table {table.name!r} is not windowed; use .tumbling(), .hopping(), "
        ".sliding() or .using_window()."
    )
