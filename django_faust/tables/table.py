"""Tables: dict-like state, partitioned like the stream that updates it.

A table is written only while an agent processes an event, and only by an
agent with ``concurrency=1``: each write belongs to the event, and so to the
partition, that caused it. The table keeps its data in a `Store` (memory or
RocksDB) split by that partition, and records every change in the compacted
changelog topic ``<app_id>-<table>-changelog`` on the same partition number,
so whichever worker is given the partition can rebuild it.

A key lives in exactly one partition on a worker. Reads find it in any
partition the worker serves (the event's own first, which is where the key
of a co-partitioned stream always is) and never write. A write goes to the
event's partition; a key found in another partition moves there, with a
tombstone in the old partition's changelog, and the first move of a table
logs a warning naming the missing ``group_by``. After a recovery, a key
found in two served partitions is kept once (`Table.resolve_duplicates`).

Changelog writes are coalesced per key between commits (only the last value
of a key is sent) and flushed before the source offsets that produced them
are committed: a restart never loses a change, and at most replays the
events processed since the last commit. Each record names its source event
(`SOURCE_HEADER`), so that recovery can leave out the records of events
that were never committed and are processed again: tables count every
event once, even across a SIGKILL (see docs/tables.rst, "Exact tables").
The tombstones of moves are sent once the values they moved with are in
the changelog.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)

from ..exceptions import ImproperlyConfigured, TableWriteError
from ..stores import Store, by_url
from ..streams import current_message, current_stream
from ..transport.base import RecordColumns
from ..types import TP
from ..windows import (
    HoppingWindow,
    Seconds,
    SlidingWindow,
    TumblingWindow,
    Window,
)
from .windowing import TableWindows
from .wrappers import WindowWrapper

if TYPE_CHECKING:
    from ..app.base import App
    from ..topics import Topic
    from ..types import RecordMetadata

    #: What `Table.send_changelog` sent: ``(partition, key, value or
    #: DELETED, source, future of the delivery, key bytes, value bytes)``.
    SentChange = tuple[
        int,
        Any,
        Any,
        "Source | None",
        asyncio.Future[RecordMetadata],
        bytes | None,
        bytes | None,
    ]

__all__ = ["GlobalTable", "Listener", "SetGlobalTable", "SetTable", "Table"]


#: A change in the changelog not yet checkpointed: ``(changelog offset, key,
#: value or DELETED, source, key bytes, value bytes)``.
_Delivered = tuple[int, Any, Any, "Source | None", bytes | None, bytes | None]


def _first(entry: tuple[Any, ...]) -> Any:
    return entry[0]


logger = logging.getLogger(__name__)

#: Marks a key deleted in the pending changelog writes (sent as a tombstone).
DELETED = object()
#: What a store returns for a missing key (its MISSING means "raise").
_ABSENT = object()
#: A change listener: ``listener(table, key, value)``, value None if deleted.
Listener = Callable[["Table", Any, Any], None]
#: The changelog header naming the process that wrote a global table record.
WRITER_HEADER = "django-faust-writer"
#: The changelog header naming the source event of a record:
#: ``b"<partition>:<offset>:<topic>"`` (see `source_of`).
SOURCE_HEADER = "django-faust-source"

#: A changelog record's source event: ``(topic, partition, offset)``.
Source = tuple[str, int, int]


def source_header(message: Any) -> tuple[str, bytes]:
    """The `SOURCE_HEADER` of a change made while processing ``message``."""
    return (
        SOURCE_HEADER,
        f"{message.partition}:{message.offset}:{message.topic}".encode(),
    )


def source_of(record: Any) -> Source | None:
    """The source event named by a changelog record's header, or None.

    None for records written outside an event (window expiry, duplicates
    resolved after a recovery) and by versions that wrote no such header:
    those always count as committed.
    """
    for name, raw in record.headers or ():
        if name == SOURCE_HEADER:
            partition, offset, topic = raw.decode().split(":", 2)
            return topic, int(partition), int(offset)
    return None


def _applied_keys(keys: list[Any], values: list[Any]) -> Iterable[Any]:
    """The keys of changelog records that are not tombstones.

    All of them when there is no tombstone (found by a scan in C): no
    Python step per record for the commonest changelog.
    """
    if None not in values:
        return keys
    return [k for k, v in zip(keys, values, strict=True) if v is not None]


class Table(MutableMapping[Any, Any]):
    """A named, partitioned, dict-like table (``app.Table("counts", default=int)``).

    A key lives in one partition on a worker. Writes go to the partition of
    the event being processed (a key found in another partition moves
    there); reads inside an event look in the event's partition, then in
    the other partitions this worker serves. With ``default``, reading a
    missing key returns ``default()`` without storing it (reads never
    write): ``table[k] += 1`` stores the sum. Without ``default`` a missing
    key raises `KeyError`. A value changed in place (``table[k].append(x)``)
    must be assigned back (``table[k] = value``) to reach the changelog.
    """

    #: Global tables hold every partition on every worker.
    is_global = False

    #: The window bookkeeping of a windowed table (see `using_window`).
    windows: TableWindows | None = None

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
        self._active: set[int] | None = None
        #: The same, sorted: the order other partitions are asked for a key.
        self._active_order: tuple[int, ...] | None = None
        #: Changes since the last flush: partition -> key -> value (or DELETED).
        self._pending: dict[int, dict[Any, Any]] = {}
        #: The event (message) that made each pending change, for the
        #: changelog's `SOURCE_HEADER`: partition -> key -> message.
        self._sources: dict[int, dict[Any, Any]] = {}
        #: The value a pending key had before the event that changed it
        #: last, with that earlier event: partition -> key -> (value,
        #: message). Sent before the latest value when the commit covers
        #: the earlier event only (see `send_changelog`).
        self._priors: dict[int, dict[Any, tuple[Any, Any]]] = {}
        #: Tombstones of keys moved to another partition since the last
        #: flush (sent after `_pending`): partition -> key -> the message
        #: of the event that moved it (None: moved by housekeeping).
        self._moved: dict[int, dict[Any, Any]] = {}
        #: Changes in the changelog whose source offsets are not committed
        #: yet, so not yet checkpointed to the store: partition ->
        #: [(changelog offset, key, value or DELETED, source)], in offset
        #: order (see `checkpoint`).
        self._unpersisted: dict[int, list[_Delivered]] = {}
        #: The highest changelog offset delivered per partition.
        self._delivered: dict[int, int] = {}
        #: Keys to check for a second copy: key -> the partition whose copy
        #: is kept (see `resolve_duplicates`).
        self._duplicates: dict[Any, int] = {}
        #: Served partitions recovery applied records to since the last
        #: `resolve_duplicates`, with the raw keys (if the store wants them).
        self._replayed: dict[int, set[bytes]] = {}
        #: Of those, whether each held nothing before its replay.
        self._fresh: dict[int, bool] = {}
        #: Keys a standby copy holds that another local partition holds too:
        #: partition -> keys. Resolved if the copy becomes served.
        self._suspects: dict[int, set[Any]] = {}
        #: Whether the "not co-partitioned" warning was logged.
        self._warned = False
        #: Marks this process's changelog records of a global table, which
        #: its follower must not apply again (see `apply_changelog`).
        self._writer = (WRITER_HEADER, uuid.uuid4().hex.encode("ascii"))
        #: Called with (table, key, value) after each change (value None:
        #: deleted); see `add_listener`.
        self._listeners: list[Listener] = []

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
                    topic.decode_key
                    if self.windows is None
                    else self.windows.decode_key
                ),
                encode_value=topic.encode_value,
                decode_value=topic.decode_value,
            )
        return self._store

    def close(self) -> None:
        """Close the store, if it was opened (a table never used opens none).

        What was not checkpointed belongs to events whose offsets are not
        committed: it is rolled back, and those events are processed again
        after a start.
        """
        if self._store is not None:
            self._store.rollback()
            self._store.close()

    # -- which partition --------------------------------------------------------

    @property
    def active_partitions(self) -> set[int] | None:
        """Partitions this worker serves; None until the first assignment
        (and always for global tables): every local partition."""
        return self._active

    @active_partitions.setter
    def active_partitions(self, partitions: Iterable[int] | None) -> None:
        if partitions is None:
            self._active = None
            self._active_order = None
        else:
            before = self._active or set()
            self._active = set(partitions)
            self._active_order = tuple(sorted(self._active))
            # Partitions served from now on (standby copies among them) are
            # checked for keys another one holds, with the next recovery
            # (`resolve_duplicates`): whole for a store that compares
            # partitions cheaply, else the keys noted as doubtful.
            for partition in self._active_order:
                if partition not in before:
                    self._replayed.setdefault(partition, set())
                for key in self._suspects.pop(partition, ()):
                    self._duplicates.setdefault(key, partition)

    def write_partition(self) -> int:
        """The partition a change made now belongs to: the event's.

        Raises `TableWriteError` outside a stream event, or in an agent
        with ``concurrency`` above 1.
        """
        partition: int = self._writing_message().partition
        return partition

    def _writing_message(self) -> Any:
        """The message of the event a change made now belongs to (see
        `write_partition`)."""
        stream = current_stream()
        message = None if stream is None else stream.current_message
        if stream is None or message is None:
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
        return message

    def locate(self, key: Any) -> int | None:
        """The partition this worker serves ``key`` from, or None.

        Inside an event the event's partition is asked first (where a
        co-partitioned key always is), then the other partitions this worker
        serves; standby copies never. A key is in at most one of them.
        """
        message = current_message()
        store = self.store
        if message is not None:
            partition: int = message.partition
            if store.contains(partition, key):
                return partition
            return store.find_partition(key, self._active_order, exclude=partition)
        return store.find_partition(key, self._active_order)

    def _partitions(self) -> Sequence[int | None]:
        """The partitions this worker serves (all local ones when unknown)."""
        order = self._active_order
        return [None] if order is None else order

    # -- mapping ------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        store = self.store
        message = current_message()
        if message is not None:
            # The common case first: the key is in the event's partition.
            partition: int = message.partition
            value = store.get(partition, key, _ABSENT)
            if value is not _ABSENT:
                return value
            found = store.find_partition(key, self._active_order, exclude=partition)
        else:
            found = store.find_partition(key, self._active_order)
        if found is not None:
            value = store.get(found, key, _ABSENT)
            if value is not _ABSENT:
                return value
        if self.default is None:
            raise KeyError(key)
        # Not stored: a read never writes (``table[k] += 1`` stores the sum).
        return self.default()

    def __setitem__(self, key: Any, value: Any) -> None:
        message = self._writing_message()
        partition: int = message.partition
        store = self.store
        if not store.contains(partition, key):
            # New here: if it lives in another partition, it moves.
            self._move_out(key, partition, message)
        store.set(partition, key, value)
        pending = self._pending.get(partition)
        if pending is None:
            pending = self._pending[partition] = {}
            sources = self._sources[partition] = {}
        else:
            sources = self._sources[partition]
            previous = sources.get(key)
            if previous is not None and previous is not message:
                priors = self._priors.get(partition)
                if priors is None:
                    priors = self._priors[partition] = {}
                priors[key] = (pending[key], previous)
        pending[key] = value
        sources[key] = message
        moved = self._moved.get(partition)
        if moved:
            moved.pop(key, None)
        if self._listeners:
            self._notify(key, value)

    def _note_prior(self, partition: int, key: Any, value: Any, message: Any) -> None:
        priors = self._priors.get(partition)
        if priors is None:
            priors = self._priors[partition] = {}
        priors[key] = (value, message)

    def __delitem__(self, key: Any) -> None:
        message = self._writing_message()
        partition: int = message.partition
        store = self.store
        if not store.contains(partition, key):
            other = store.find_partition(key, self._active_order, exclude=partition)
            if other is None:
                raise KeyError(key)
            self._warn_not_copartitioned(key, other, partition)
            partition = other
        store.delete(partition, key)
        pending = self._pending.setdefault(partition, {})
        sources = self._sources.setdefault(partition, {})
        previous = sources.get(key)
        if previous is not None and previous is not message:
            self._note_prior(partition, key, pending[key], previous)
        pending[key] = DELETED
        sources[key] = message
        moved = self._moved.get(partition)
        if moved:
            moved.pop(key, None)
        if self._listeners:
            self._notify(key, None)

    def _move_out(self, key: Any, partition: int, message: Any = None) -> None:
        """Delete ``key`` from any other partition it lives in, with a tombstone.

        A write goes to the event's partition, so that the changelog stays
        co-partitioned with the stream; a key written there that lives in
        another partition would otherwise be held twice. The tombstones are
        sent only after the new value is in the changelog (see
        `send_changelog`): a crash in between can leave the key in both
        changelogs, which recovery resolves, but never in neither.
        """
        store = self.store
        order = self._active_order
        while True:
            other = store.find_partition(key, order, exclude=partition)
            if other is None:
                break
            self._warn_not_copartitioned(key, other, partition)
            store.delete(other, key)
            pending = self._pending.get(other)
            if pending and key in pending:
                # Its pending value there may belong to a committed event:
                # it is sent (if so) before the tombstone.
                value = pending.pop(key)
                source = self._sources[other].pop(key, None)
                if source is not None:
                    self._note_prior(other, key, value, source)
            self._moved.setdefault(other, {})[key] = message
        active = self._active
        if active is not None:
            # A standby copy is another worker's to change; if it holds the
            # key too, that is checked should the copy become served here.
            for copy in store.partitions() - active:
                if copy != partition and store.contains(copy, key):
                    self._suspects.setdefault(copy, set()).add(key)

    def _warn_not_copartitioned(self, key: Any, held: int, written: int) -> None:
        if self._warned:
            return
        self._warned = True
        logger.warning(
            "Table %r: key %r lives in partition %d but was changed by an event "
            "of partition %d; it moves to partition %d (with a tombstone in "
            "partition %d of the changelog). The stream is not partitioned by "
            "the table's key: use stream.group_by(...) on the table's key (or "
            "send the events with it as their key) so that each key is always "
            "changed from one partition. This is logged once per table.",
            self.name,
            key,
            held,
            written,
            written,
            held,
        )

    def __contains__(self, key: object) -> bool:
        return self.locate(key) is not None

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

    def delete_in(self, partition: int, key: Any) -> bool:
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
        self._sources.setdefault(partition, {}).pop(key, None)
        moved = self._moved.get(partition)
        if moved:
            moved.pop(key, None)
        if self._listeners:
            self._notify(key, None)
        return True

    # -- change listeners ----------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(table, key, value)`` after every change of this table.

        ``value`` is None when the key was deleted. Listeners run inside the
        agent's write, so they must be quick and must not block: note the
        change and return (the live views coalesce changes in a dict and
        send them from their own task). A listener that raises is removed,
        with the error logged; the write itself is not affected. A table
        without listeners pays one truth test per write.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``; removing one not added is not an error."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    def _notify(self, key: Any, value: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(self, key, value)
            except Exception:
                logger.exception(
                    "Table %r: change listener %r failed; it is removed.",
                    self.name,
                    listener,
                )
                self.remove_listener(listener)

    # -- changelog -----------------------------------------------------------------

    def pending_changes(self) -> int:
        return sum(len(p) for p in self._pending.values()) + sum(
            len(p) for p in self._moved.values()
        )

    def send_changelog(
        self, committed: Mapping[TP, int] | None = None
    ) -> list[SentChange]:
        """Send the coalesced changes since the last call; what was sent.

        Each record carries the `SOURCE_HEADER` of the event that made the
        change. ``committed`` are the source offsets committed once the
        commit this flush precedes is done: a key last changed by an event
        past them (one still in flight) is sent twice, first with the value
        the earlier event left (its record counts once that event is
        committed), then with the latest. Recovery applies what is
        committed, so a coalesced record never mixes committed and
        uncommitted effects.

        The caller flushes the producer, waits for the futures, then sends
        the tombstones of moved keys (`send_moves`), hands the delivered
        records to `changelog_delivered`, commits the source offsets, and
        then calls `checkpoint`.
        """
        pending, self._pending = self._pending, {}
        sources, self._sources = self._sources, {}
        priors, self._priors = self._priors, {}
        if priors and committed is not None:
            earlier = self._committed_priors(pending, sources, priors, committed)
            if earlier:
                return self._send(*earlier) + self._send(pending, sources)
        return self._send(pending, sources)

    @staticmethod
    def _committed_priors(
        pending: dict[int, dict[Any, Any]],
        sources: dict[int, dict[Any, Any]],
        priors: dict[int, dict[Any, tuple[Any, Any]]],
        committed: Mapping[TP, int],
    ) -> tuple[dict[int, dict[Any, Any]], dict[int, dict[Any, Any]]] | None:
        """The prior values to send first: those of covered events whose key
        was changed since by an event not covered (or moved away)."""

        def covered(message: Any) -> bool:
            tp = TP(message.topic, message.partition)
            return bool(committed.get(tp, -1) > message.offset)

        changes: dict[int, dict[Any, Any]] = {}
        their_sources: dict[int, dict[Any, Any]] = {}
        for partition, keyed in priors.items():
            latest = sources.get(partition) or {}
            values = pending.get(partition) or {}
            for key, (value, message) in keyed.items():
                last = latest.get(key)
                if last is None and key in values:
                    continue  # changed since outside any event: that wins
                if last is not None and covered(last):
                    continue  # the latest value alone is exact
                if covered(message):
                    changes.setdefault(partition, {})[key] = value
                    their_sources.setdefault(partition, {})[key] = message
        return (changes, their_sources) if changes else None

    def send_moves(self) -> list[SentChange]:
        """Send the tombstones of keys that moved to another partition.

        Sent after the changes of `send_changelog` are in the changelog, so
        that a moved key is never missing from both partitions.
        """
        moved, self._moved = self._moved, {}
        return self._send(
            {p: dict.fromkeys(keys, DELETED) for p, keys in moved.items()}, moved
        )

    def _send(
        self,
        changes_by_partition: dict[int, dict[Any, Any]],
        sources_by_partition: dict[int, dict[Any, Any]],
    ) -> list[SentChange]:
        if not changes_by_partition:
            return []
        producer = self.app.producer
        topic = self.changelog_topic
        name = topic.get_topic_name()
        encode_key, encode_value = topic.encode_key, topic.encode_value
        writer = [self._writer] if self.is_global else []
        sent: list[SentChange] = []
        for partition, changes in changes_by_partition.items():
            sources = sources_by_partition.get(partition) or {}
            for key, value in changes.items():
                message = sources.get(key)
                if message is None:
                    source = None
                    headers = writer
                else:
                    source = (message.topic, message.partition, message.offset)
                    headers = [*writer, source_header(message)]
                raw_key = encode_key(key)
                raw_value = None if value is DELETED else encode_value(value)
                fut = producer.send_soon(
                    name, raw_key, raw_value, partition=partition, headers=headers
                )
                sent.append((partition, key, value, source, fut, raw_key, raw_value))
        return sent

    def changelog_delivered(self, delivered: Iterable[tuple[Any, ...]]) -> None:
        """These are in the changelog: ``(partition, offset, key, value,
        source, key bytes, value bytes)``.

        They reach the store's durable state with `checkpoint`, once the
        offsets of the events that made them are committed.
        """
        unpersisted = self._unpersisted
        reached = self._delivered
        for partition, offset, *change in delivered:
            unpersisted.setdefault(partition, []).append((offset, *change))  # type: ignore[arg-type]
            if offset > reached.get(partition, -1):
                reached[partition] = offset

    def checkpoint(self, committed: Mapping[TP, int]) -> None:
        """Persist the delivered changes whose source offsets are committed.

        ``committed`` is the consumer group's committed offset of each
        source partition. A change is checkpointed once its event's offset
        is below it (or it had no event); the others wait for a later
        commit, and so do the later changes of their keys. The store's
        persisted changelog offset is the last delivered one, or, while
        some change waits, the one before the first that waits: after a
        crash the store holds the effect of committed events only, and
        recovery resumes before anything it lacks (re-applying a change
        it has is harmless, as the changelog is replayed in order).
        """
        store = self.store
        for partition, entries in list(self._unpersisted.items()):
            entries.sort(key=_first)
            ready: dict[Any, Any] = {}
            encoded: dict[Any, tuple[bytes | None, bytes | None]] = {}
            waiting: list[_Delivered] = []
            held: set[Any] = set()
            for entry in entries:
                _, key, value, source, raw_key, raw_value = entry
                if key not in held and (
                    source is None
                    or committed.get(TP(source[0], source[1]), -1) > source[2]
                ):
                    ready[key] = None if value is DELETED else value
                    encoded[key] = (raw_key, raw_value)
                else:
                    held.add(key)
                    waiting.append(entry)
            if waiting:
                self._unpersisted[partition] = waiting
                offset = waiting[0][0] - 1
            else:
                del self._unpersisted[partition]
                offset = self._delivered[partition]
            if ready or not waiting:
                store.checkpoint(partition, ready, offset, encoded)

    def unpersisted(self) -> int:
        """Changes in the changelog not yet checkpointed (waiting for commits)."""
        return sum(len(entries) for entries in self._unpersisted.values())

    def forget_partition(self, partition: int) -> None:
        """Forget what waits for commits in ``partition`` (assigned away)."""
        self._unpersisted.pop(partition, None)
        self._delivered.pop(partition, None)

    def apply_changelog(
        self,
        partition: int,
        records: RecordColumns | Sequence[Any],
        buffer_size: int | None = None,
        last_offset: int | None = None,
    ) -> None:
        """Apply changelog records (recovery, standbys): raw bytes, None = delete.

        ``records`` are `RecordColumns` (what recovery reads) or messages,
        in offset order. They go to the store ``buffer_size`` at a time (all
        at once by default), each write batch with the offset of its last
        record, so that a crash mid-way keeps what was written and its
        offset together.

        A global table skips the records this process wrote itself. Records
        applied to a served partition are noted, for
        `resolve_duplicates` to check once the recovery is done; keys a
        standby copy shares with a served partition are noted for when the
        copy becomes served.

        ``last_offset`` is the offset of the last message read, when the
        caller left some out (those of uncommitted source offsets): the
        store's persisted offset moves past them.
        """
        columns = (
            records
            if isinstance(records, RecordColumns)
            else RecordColumns.from_messages(records)
        )
        if last_offset is not None and not columns.offsets:
            self.store.set_persisted_offset(partition, last_offset)
            return
        if self.is_global and columns.headers is not None:
            # This worker's own changes are in its store already, and may be
            # newer than the record: applying it again would step back.
            writer = self._writer
            last = columns.offsets[-1]
            columns = columns.select(
                [i for i, h in enumerate(columns.headers) if not h or writer not in h]
            )
            if not columns.offsets:
                self.store.set_persisted_offset(partition, max(last, last_offset or -1))
                return
        store = self.store
        offsets, keys, values = columns.offsets, columns.keys, columns.values
        active = self._active
        served = active is None or partition in active
        if served:
            replayed = self._replayed.get(partition)
            if replayed is None:
                replayed = self._replayed[partition] = set()
            if store.needs_replayed_keys:
                if partition not in self._fresh:
                    # Held nothing before: its keys are all in ``replayed``.
                    self._fresh[partition] = store.persisted_offset(partition) is None
                replayed.update(_applied_keys(keys, values))
        size = buffer_size or len(offsets) or 1
        for start in range(0, len(offsets), size):
            end = start + size
            store.apply_changelog(
                partition,
                list(zip(keys[start:end], values[start:end], strict=True)),
                offsets[min(end, len(offsets)) - 1],
            )
        if last_offset is not None and last_offset > offsets[-1]:
            store.set_persisted_offset(partition, last_offset)
        if not served and store.needs_replayed_keys and self._active_order:
            # A standby copy: keys it shares with a served partition are
            # checked if it becomes served (a store that compares whole
            # partitions does that then anyway).
            applied = set(_applied_keys(keys, values))
            for key, _ in store.find_shared_keys(
                {partition: applied}, self._active_order
            ):
                self._suspects.setdefault(partition, set()).add(key)

    def resolve_duplicates(self) -> int:
        """Keep each key held by two served partitions in one; how many copies went.

        A key is held twice when it was written from two partitions by two
        workers (a stream not partitioned by the table's key) or when a
        crash cut its move short. Called once the changelog read so far is
        applied (the end of a recovery, each fetch of a global table), not
        per batch: a moved key's old record and its tombstone may come in
        two batches. A replayed copy is kept over one this worker had (it
        is the one just learned), among replayed copies the one of the
        highest partition (so that every worker of a global table chooses
        alike). The others are deleted, with a tombstone in their changelog
        partition (which this worker owns), except for a global table,
        whose every worker resolves on its own.
        """
        replayed, self._replayed = self._replayed, {}
        fresh, self._fresh = self._fresh, {}
        noted, self._duplicates = self._duplicates, {}
        store = self.store
        order: Sequence[int] | None = self._active_order
        if order is None:
            order = sorted(store.partitions())
        if replayed:
            shared = store.find_shared_keys(
                replayed, order, [p for p, empty in fresh.items() if empty]
            )
            for key, partition in shared:
                if noted.get(key, -1) < partition:
                    noted[key] = partition
        resolved = 0
        for key, kept in noted.items():
            holders = [p for p in order if store.contains(p, key)]
            if len(holders) < 2:
                continue
            if kept not in holders:
                kept = holders[-1]
            for other in holders:
                if other == kept:
                    continue
                logger.warning(
                    "Table %r: key %r was in partitions %d and %d of the "
                    "changelog; kept the one of partition %d. A key changed "
                    "from two partitions means the stream is not partitioned "
                    "by the table's key: use stream.group_by(...) on it.",
                    self.name,
                    key,
                    other,
                    kept,
                    kept,
                )
                store.delete(other, key)
                if not self.is_global:
                    self._moved.setdefault(other, {})[key] = None
                resolved += 1
        return resolved

    # -- windowed tables -----------------------------------------------------------

    @property
    def window(self) -> Window | None:
        """The windows of a windowed table (see `using_window`), else None."""
        windows = self.windows
        return None if windows is None else windows.window

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
        ``app.Table(name, window=...)`` does the same.
        """
        if not isinstance(window, Window):
            raise ImproperlyConfigured(
                f"Table {self.name!r}: window must be a window such as "
                f"TumblingWindow(60), got {window!r}."
            )
        if self.windows is None:
            self.windows = TableWindows(self, window)
            if self._store is not None:
                self._store.decode_key = self.windows.decode_key
        elif repr(self.windows.window) != repr(window):
            raise ImproperlyConfigured(
                f"Table {self.name!r} is already windowed by {self.windows.window!r}; "
                f"it cannot also use {window!r}. Declare another table."
            )
        return WindowWrapper(self)

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
        if self.windows is None:
            return 0
        return self.windows.expire(partitions, rescan=rescan)


class GlobalTable(Table):
    """A table every worker holds completely, following every partition.

    Any worker may read any key; writes still belong to the event's
    partition. On every worker it is one dict: a key is held once, whichever
    partition last wrote it.
    """

    is_global = True


class _SetMethods(Table):
    """``add`` and ``discard`` for tables of sets."""

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


class SetTable(_SetMethods):
    """A table of sets: ``table.add(key, member)``, ``table.discard(...)``."""


class SetGlobalTable(_SetMethods, GlobalTable):
    """A global table of sets: every worker holds every key's set."""
