"""Tables: dict-like state, partitioned like the stream that updates it.

A table is written only while an agent processes an event, and only by an
agent with ``concurrency=1``: each write belongs to the event, and so to the
partition, that caused it. The table keeps its data in a `Store` (memory or
RocksDB) split by that partition, and records every change in the compacted
changelog topic ``<app_id>-<table>-changelog`` on the same partition number,
so whichever worker is given the partition can rebuild it.

Changelog writes are coalesced per key between commits (only the last value
of a key is sent) and flushed before the source offsets that produced them
are committed: a restart never loses a change, and at most replays the
events processed since the last commit.
"""

from __future__ import annotations

import asyncio
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Iterable,
    Iterator,
    MutableMapping,
    Sequence,
)

from ..exceptions import ImproperlyConfigured, KeyDecodeError, TableWriteError
from ..serializers import codecs
from ..stores import Store, by_url
from ..streams import _current_stream
from ..windows import (
    HoppingWindow,
    Seconds,
    SlidingWindow,
    TumblingWindow,
    Window,
    WindowRange,
)
from .wrappers import WindowWrapper

if TYPE_CHECKING:
    from ..app.base import App
    from ..topics import Topic
    from ..types import RecordMetadata

__all__ = ["GlobalTable", "SetTable", "Table"]

#: Marks a key deleted in the pending changelog writes (sent as a tombstone).
DELETED = object()
#: What a store returns for a missing key (its MISSING means "raise").
_ABSENT = object()


def _as_tuples(value: Any) -> Any:
    """``value`` with every list turned into a tuple, however deep."""
    if isinstance(value, list):
        return tuple(_as_tuples(item) for item in value)
    return value


class Table(MutableMapping[Any, Any]):
    """A named, partitioned, dict-like table (``app.Table("counts", default=int)``).

    With ``default``, reading a missing key inside a stream event stores and
    returns ``default()`` (like `collections.defaultdict`); outside an event
    it only returns it. Without ``default`` a missing key raises `KeyError`.
    A value changed in place (``table[k].append(x)``) must be assigned back
    (``table[k] = value``) to reach the changelog.
    """

    #: Global tables hold every partition on every worker.
    is_global = False

    #: The windows of a windowed table (see `using_window`), else None.
    window: Window | None = None
    # Windowed tables only, made by `using_window`:
    #: The latest timestamp written, by partition; expiry is relative to it.
    _latest_timestamps: dict[int, float]
    #: partition -> window start -> keys with that window; lets expiry find
    #: expired windows without reading the store. Kept only with ``expires``.
    _window_keys: dict[int, dict[float, set[Any]]]

    def __init__(
        self,
        app: App,
        *,
        name: str,
        default: Callable[[], Any] | None = None,
        key_type: Any = None,
        value_type: Any = None,
        partitions: int | None = None,
        help: str | None = None,
        changelog_topic: Topic | None = None,
        recovery_buffer_size: int = 1000,
        standby_buffer_size: int | None = None,
        on_changelog_event: Callable[[Any], Any] | None = None,
        on_recover: Callable[[], Any] | None = None,
        store: str | None = None,
        key_serializer: Any = "json",
        value_serializer: Any = "json",
    ) -> None:
        if not name or not isinstance(name, str):
            raise ImproperlyConfigured(f"A table needs a name, got {name!r}.")
        if default is not None and not callable(default):
            raise ImproperlyConfigured(
                f"Table {name!r}: default must be callable (like int or list), "
                f"got {default!r}."
            )
        if recovery_buffer_size < 1:
            raise ImproperlyConfigured(
                f"Table {name!r}: recovery_buffer_size must be at least 1."
            )
        if standby_buffer_size is not None and standby_buffer_size < 1:
            raise ImproperlyConfigured(
                f"Table {name!r}: standby_buffer_size must be at least 1."
            )
        self.app = app
        self.name = name
        self.default = default
        self.key_type = key_type
        self.value_type = value_type
        self.partitions = partitions
        self.help = help or ""
        self.recovery_buffer_size = recovery_buffer_size
        #: Changelog messages a standby copy writes at a time.
        self.standby_buffer_size = standby_buffer_size or recovery_buffer_size
        self.on_changelog_event = on_changelog_event
        self.on_recover = on_recover
        self.store_url = store
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer
        self._changelog_topic = changelog_topic
        self._store: Store | None = None
        #: Partitions this worker serves; None until the first assignment
        #: (and always for global tables): every local partition.
        self.active_partitions: set[int] | None = None
        #: Changes since the last flush: partition -> key -> value (or DELETED).
        self._pending: dict[int, dict[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # A table is one named thing, not a value: compare and hash by identity
    # (Mapping would compare contents, and make tables unhashable).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    # -- the parts, built on first use ----------------------------------------

    @property
    def changelog_topic(self) -> Topic:
        """The compacted topic every change is recorded in."""
        if self._changelog_topic is None:
            self._changelog_topic = self.app.topic(
                f"{self.app.conf.id}-{self.name}-changelog",
                key_type=self.key_type,
                value_type=self.value_type,
                key_serializer=self.key_serializer,
                value_serializer=self.value_serializer,
                partitions=self.partitions,
                compacting=True,
                internal=True,
            )
        return self._changelog_topic

    @property
    def changelog_topic_name(self) -> str:
        return self.changelog_topic.get_topic_name()

    @property
    def store(self) -> Store:
        """Where the data lives; keys and values as the changelog encodes them."""
        if self._store is None:
            conf = self.app.conf
            url = self.store_url or conf.store
            topic = self.changelog_topic
            self._store = by_url(url)(
                url,
                self.name,
                directory=conf.appdir / "tables",
                encode_key=topic.encode_key,
                decode_key=(
                    topic.decode_key if self.window is None else self._decode_window_key
                ),
                encode_value=topic.encode_value,
                decode_value=topic.decode_value,
            )
        return self._store

    # -- which partition --------------------------------------------------------

    def _write_partition(self) -> int:
        stream = _current_stream.get()
        if stream is None or stream._message is None:
            raise TableWriteError(
                f"Table {self.name!r} can only be changed while an agent processes "
                "a stream event (inside 'async for ... in stream'); each change "
                "belongs to the event that caused it."
            )
        if stream.concurrency > 1:
            raise TableWriteError(
                f"Table {self.name!r} cannot be changed by an agent with "
                f"concurrency={stream.concurrency}: events would be applied out "
                "of order. Use concurrency=1 for agents that write tables."
            )
        partition: int = stream._message.partition
        return partition

    def _read_partition(self, key: Any) -> int | None:
        """The event's partition inside an event, else wherever the key is."""
        stream = _current_stream.get()
        if stream is not None and stream._message is not None:
            partition: int = stream._message.partition
            return partition
        found = self.store.find_partition(key)
        active = self.active_partitions
        if found is not None and active is not None and found not in active:
            return None  # a standby copy: the key is served by its owner
        return found

    def _partitions(self) -> Sequence[int | None]:
        """The partitions this worker serves (all local ones when unknown)."""
        active = self.active_partitions
        if active is None:
            return [None]
        return sorted(active)

    # -- mapping ------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        partition = self._read_partition(key)
        if partition is not None:
            value = self.store.get(partition, key, _ABSENT)
            if value is not _ABSENT:
                return value
        if self.default is None:
            raise KeyError(key)
        value = self.default()
        stream = _current_stream.get()
        if stream is not None and stream._message is not None:
            self[key] = value
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        partition = self._write_partition()
        self.store.set(partition, key, value)
        pending = self._pending.get(partition)
        if pending is None:
            pending = self._pending[partition] = {}
        pending[key] = value

    def __delitem__(self, key: Any) -> None:
        partition = self._write_partition()
        self.store.delete(partition, key)
        self._pending.setdefault(partition, {})[key] = DELETED

    def __contains__(self, key: object) -> bool:
        partition = self._read_partition(key)
        return partition is not None and self.store.contains(partition, key)

    def __iter__(self) -> Iterator[Any]:
        for partition in self._partitions():
            yield from self.store.keys(partition)

    def __len__(self) -> int:
        return sum(self.store.count(p) for p in self._partitions())

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        """Every ``(key, value)`` this worker serves, without a lookup per key."""
        for partition in self._partitions():
            yield from self.store.items(partition)

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return (value for _, value in self.items())

    def as_dict(self) -> dict[Any, Any]:
        return dict(self.items())

    # -- changelog -----------------------------------------------------------------

    def pending_changes(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def send_changelog(self) -> list[tuple[int, asyncio.Future[RecordMetadata]]]:
        """Send the coalesced changes since the last call; their futures.

        The caller flushes the producer, then records the offsets with
        `changelog_delivered` before committing the source offsets.
        """
        pending, self._pending = self._pending, {}
        if not pending:
            return []
        producer = self.app.producer
        topic = self.changelog_topic
        name = topic.get_topic_name()
        sent = []
        for partition, changes in pending.items():
            for key, value in changes.items():
                fut = producer.send_soon(
                    name,
                    topic.encode_key(key),
                    None if value is DELETED else topic.encode_value(value),
                    partition=partition,
                )
                sent.append((partition, fut))
        return sent

    def changelog_delivered(self, offsets: dict[int, int]) -> None:
        """The changelog holds everything up to these offsets: persist that."""
        store = self.store
        for partition, offset in offsets.items():
            store.set_persisted_offset(partition, offset)
        store.flush()

    def apply_changelog(
        self, partition: int, records: list[Any], buffer_size: int | None = None
    ) -> None:
        """Apply changelog messages (recovery, standbys): raw bytes, None = delete.

        They go to the store ``buffer_size`` at a time (all at once by
        default), each write batch with the offset of its last message, so
        that a crash mid-way keeps what was written and its offset together.
        """
        size = buffer_size or len(records) or 1
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            self.store.apply_changelog(
                partition, [(m.key, m.value) for m in chunk], chunk[-1].offset
            )

    # -- windowed tables -----------------------------------------------------------

    def tumbling(self, size: Seconds, expires: Seconds | None = None) -> WindowWrapper:
        """Keep values per back-to-back window of ``size`` seconds."""
        return self.using_window(TumblingWindow(size, expires))

    def hopping(
        self, size: Seconds, step: Seconds, expires: Seconds | None = None
    ) -> WindowWrapper:
        """Keep values per window of ``size`` seconds, one starting every ``step``."""
        return self.using_window(HoppingWindow(size, step, expires))

    def sliding(
        self, before: Seconds, after: Seconds, expires: Seconds | None = None
    ) -> WindowWrapper:
        """Keep values per window around each event's time."""
        return self.using_window(SlidingWindow(before, after, expires))

    def using_window(self, window: Window) -> WindowWrapper:
        """Make this a windowed table; the wrapper to read and write it through.

        Values are stored under ``(key, window_start)``, one entry and one
        changelog record per key and window. A table has one kind of
        window: its stored keys only make sense for that window, so asking
        for another is refused (declare another table instead).
        """
        if self.window is None:
            self.window = window
            self._latest_timestamps = {}
            self._window_keys = {}
            if self._store is not None:
                self._store.decode_key = self._decode_window_key
        elif repr(self.window) != repr(window):
            raise ImproperlyConfigured(
                f"Table {self.name!r} is already windowed by {self.window!r}; it "
                f"cannot also use {window!r}. Declare another table."
            )
        return WindowWrapper(self)

    def _window_or_error(self) -> Window:
        if self.window is None:
            raise ImproperlyConfigured(
                f"Table {self.name!r} is not windowed; use .tumbling(), "
                ".hopping() or .sliding()."
            )
        return self.window

    def _live_windows(self, partition: int, timestamp: float) -> list[WindowRange]:
        """The unexpired windows containing ``timestamp``; notes the timestamp.

        A window that has already expired is left out rather than written
        again: it would come back with only the late events in it, and
        expire again at the next cleanup.
        """
        window = self._window_or_error()
        latest = self._latest_timestamps.get(partition)
        if latest is None or timestamp > latest:
            latest = self._latest_timestamps[partition] = timestamp
        return [r for r in window.ranges(timestamp) if not window.stale(r, latest)]

    def _window_value(self, partition: int | None, key: Any, start: float) -> Any:
        """The value of one window; ``default()`` or KeyError when missing."""
        if partition is not None:
            value = self.store.get(partition, (key, start), _ABSENT)
            if value is not _ABSENT:
                return value
        if self.default is None:
            raise KeyError(key)
        return self.default()

    def _set_window(self, partition: int, key: Any, start: float, value: Any) -> None:
        stored = (key, start)
        self.store.set(partition, stored, value)
        self._pending.setdefault(partition, {})[stored] = value
        window = self.window
        if window is not None and window.expires is not None:
            starts = self._window_keys.setdefault(partition, {})
            keys = starts.get(start)
            if keys is None:
                keys = starts[start] = set()
            keys.add(key)

    def _apply_window_op(
        self, key: Any, op: Callable[[Any, Any], Any], value: Any, timestamp: float
    ) -> None:
        """``window = op(window, value)`` for each live window of ``timestamp``."""
        partition = self._write_partition()
        starts = [r.start for r in self._live_windows(partition, timestamp)]
        # Every result first: an error leaves no window half updated.
        results = [
            op(self._window_value(partition, key, start), value) for start in starts
        ]
        for start, result in zip(starts, results, strict=True):
            self._set_window(partition, key, start, result)

    def _set_windowed(self, key: Any, value: Any, timestamp: float) -> None:
        partition = self._write_partition()
        for window_range in self._live_windows(partition, timestamp):
            self._set_window(partition, key, window_range.start, value)

    def _del_windowed(self, key: Any, timestamp: float) -> None:
        partition = self._write_partition()
        for window_range in self._window_or_error().ranges(timestamp):
            self._delete_in(partition, (key, window_range.start))

    def _windowed_get(self, key: Any, timestamp: float) -> Any:
        """The value of the latest window containing ``timestamp``; no write."""
        start = self._window_or_error().current(timestamp).start
        return self._window_value(self._read_partition((key, start)), key, start)

    def _windowed_contains(self, key: Any, timestamp: float) -> bool:
        start = self._window_or_error().current(timestamp).start
        return (key, start) in self

    def _delete_in(self, partition: int, key: Any) -> bool:
        """Delete ``key`` from ``partition`` and send a tombstone; False if absent.

        For the table's own housekeeping (expiring windows), which runs
        outside any event and so names the partition itself. The tombstone
        goes with the other pending changes: flushed before the next commit.
        """
        try:
            self.store.delete(partition, key)
        except KeyError:
            return False
        self._pending.setdefault(partition, {})[key] = DELETED
        return True

    def expire_windows(
        self, partitions: Iterable[int] | None = None, *, rescan: bool = False
    ) -> int:
        """Delete the expired windows of ``partitions``; how many were deleted.

        A window has expired when it ended more than ``expires`` seconds
        before the latest timestamp written in its partition; each one is
        deleted from the store and tombstoned in the changelog.
        ``partitions`` defaults to those the table has written windows to.

        ``rescan`` reads the partitions from the store first, to learn the
        windows this process did not write itself: after a recovery the
        store holds windows from the changelog. The latest timestamp of a
        recovered partition is taken to be the least its newest window
        implies (the start of it, or the event time for sliding windows), so
        expiry after a restart may lag a little, never run ahead.
        """
        window = self.window
        if window is None or window.expires is None:
            return 0
        for gone in set(self._window_keys) - self.store.partitions():
            # Assigned away: its windows are another worker's to expire.
            del self._window_keys[gone]
        if partitions is None:
            partitions = set(self._window_keys)
        expired = 0
        for partition in sorted(partitions):
            if rescan:
                self._index_windows(partition)
            latest = self._latest_timestamps.get(partition)
            starts = self._window_keys.get(partition)
            if latest is None or not starts:
                continue
            # Windows of one table all have the same length: the oldest
            # start ends first, so stop at the first window still alive.
            for start in sorted(starts):
                if not window.stale(start, latest):
                    break
                for key in starts.pop(start):
                    expired += self._delete_in(partition, (key, start))
        return expired

    def _index_windows(self, partition: int) -> None:
        """Rebuild ``partition``'s window index (and latest time) from the store."""
        window = self._window_or_error()
        starts: dict[float, set[Any]] = {}
        for stored in self.store.keys(partition):
            if isinstance(stored, tuple) and len(stored) == 2:
                key, start = stored
                if isinstance(start, float):
                    starts.setdefault(start, set()).add(key)
        self._window_keys[partition] = starts
        if starts:
            newest = max(starts)
            if isinstance(window, SlidingWindow):
                newest += window.before  # the window's own event time
            latest = self._latest_timestamps.get(partition)
            if latest is None or newest > latest:
                self._latest_timestamps[partition] = newest

    def _decode_window_key(self, data: bytes | None) -> Any:
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
        topic = self.changelog_topic
        codec = codecs.get_codec(self.key_serializer or "json")
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
                f"Table {self.name!r}: cannot decode the windowed key {data!r}: {exc}",
                topic=topic.get_topic_name(),
            ) from exc


class GlobalTable(Table):
    """A table every worker holds completely, following every partition.

    Any worker may read any key; writes still belong to the event's
    partition.
    """

    is_global = True


class SetTable(Table):
    """A table of sets: ``table.add(key, member)``, ``table.discard(...)``."""

    def __init__(self, app: App, *, name: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", set)
        kwargs.setdefault("value_type", set)
        super().__init__(app, name=name, **kwargs)

    def add(self, key: Any, member: Any) -> None:
        members = set(self[key])
        members.add(member)
        self[key] = members

    def discard(self, key: Any, member: Any) -> None:
        members = set(self[key])
        members.discard(member)
        self[key] = members
