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
    Iterator,
    MutableMapping,
)

from ..exceptions import ImproperlyConfigured, TableWriteError
from ..stores import Store, by_url
from ..streams import _current_stream

if TYPE_CHECKING:
    from ..app.base import App
    from ..topics import Topic
    from ..types import RecordMetadata

__all__ = ["GlobalTable", "SetTable", "Table"]

#: Marks a key deleted in the pending changelog writes (sent as a tombstone).
DELETED = object()
#: What a store returns for a missing key (its MISSING means "raise").
_ABSENT = object()


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
        self.app = app
        self.name = name
        self.default = default
        self.key_type = key_type
        self.value_type = value_type
        self.partitions = partitions
        self.help = help or ""
        self.recovery_buffer_size = recovery_buffer_size
        self.standby_buffer_size = standby_buffer_size
        self.on_changelog_event = on_changelog_event
        self.on_recover = on_recover
        self.store_url = store
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer
        self._changelog_topic = changelog_topic
        self._store: Store | None = None
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
                decode_key=topic.decode_key,
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
        return self.store.find_partition(key)

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
        return self.store.keys()

    def __len__(self) -> int:
        return self.store.count()

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        """Every local ``(key, value)``, without a lookup per key."""
        return self.store.items()

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return (value for _, value in self.store.items())

    def as_dict(self) -> dict[Any, Any]:
        return dict(self.store.items())

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
        self, partition: int, records: list[Any], last_offset: int
    ) -> None:
        """Apply changelog records (recovery): raw key/value bytes, None = delete."""
        self.store.apply_changelog(
            partition, [(m.key, m.value) for m in records], last_offset
        )


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
