"""The TableManager: the app's tables, their changelogs, and recovery.

- Before any source offset is committed, `flush` sends every table's
  coalesced changes to its changelog (each record naming its source event)
  and waits for the broker; after the commit, `checkpoint` has the stores
  persist the changes the commit covers with their changelog offsets (so a
  restart replays only what is new, and never an uncommitted event's change).
- Recovery, standby copies and global tables apply a changelog record only
  once the consumer group has committed its source event's offset: the
  events a dead worker did not commit are processed again, and count once.
- When partitions are assigned, `on_partitions_assigned` rebuilds the
  tables' partitions from their changelogs, from the offset each store has
  persisted, before the consumer hands the agents a single new event; it
  reports progress in the log and to the Monitor.
- Changelog topics are part of the consumer group's subscription, so the
  assignor gives a worker partition *p* of a changelog together with
  partition *p* of its source; the main consumer never reads them (they are
  paused), recovery reads them with a reader of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from mode import Service

from ..exceptions import ImproperlyConfigured
from ..transport.base import RecordColumns
from ..types import TP
from .table import SOURCE_HEADER, Table, source_of

if TYPE_CHECKING:
    from ..app.base import App

__all__ = ["TableManager"]

logger = logging.getLogger(__name__)

#: Seconds between recovery progress lines.
PROGRESS_EVERY = 1.0
#: Seconds between lookups of the group's committed offsets by followers
#: (standby copies, global tables) holding records of uncommitted events.
COMMITTED_REFRESH = 0.5


class TableManager(Service, Mapping[str, Table]):
    """Tables by name; declaring the same name twice is an error."""

    mundane_level = "debug"

    def __init__(self, app: App) -> None:
        self.app = app
        self._tables: dict[str, Table] = {}
        self._origins: dict[str, str] = {}
        self._flush_lock = asyncio.Lock()
        #: (table, partition) -> {"done": n, "left": n} during recovery.
        self.recovery: dict[tuple[str, int], dict[str, int]] = {}
        self.recovered = asyncio.Event()
        #: Changelog records replayed by the last recovery (and in total).
        self.last_recovered = 0
        self.total_recovered = 0
        self._global_follower: asyncio.Future[None] | None = None
        #: Set once the global tables have read their changelogs to the end.
        self._global_ready = asyncio.Event()
        self._standby_follower: asyncio.Future[None] | None = None
        #: Changelog records applied to standby copies (for tests and stats).
        self.standby_applied = 0
        #: Source offsets this worker committed (see `checkpoint`).
        self._committed: dict[TP, int] = {}
        #: Committed source offsets as last looked up by the followers.
        self._seen_committed: dict[TP, int] = {}
        #: Followed changelog records waiting for their sources' commits.
        self._held: dict[TP, list[Any]] = {}
        #: When the followers last looked the committed offsets up.
        self._refreshed = 0.0
        #: Changelog records recovery skipped: their events were not committed.
        self.skipped_uncommitted = 0
        super().__init__()

    # -- registry -------------------------------------------------------------

    def add(self, table: Table) -> Table:
        origin = _caller_module()
        known = self._origins.get(table.name)
        if known is not None and known != origin:
            raise ImproperlyConfigured(
                f"Table {table.name!r} is declared twice (in {known} and "
                f"{origin}); table names must be unique in an app."
            )
        self._tables[table.name] = table
        self._origins[table.name] = origin
        return table

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    @property
    def label(self) -> str:
        return f"TableManager ({len(self._tables)} tables)"

    def _by_changelog(self) -> dict[str, Table]:
        return {t.changelog_topic_name: t for t in self._tables.values()}

    # -- lifecycle ------------------------------------------------------------

    async def on_start(self) -> None:
        if not self._tables or self.app.client_only:
            self.recovered.set()
            return
        conductor = self.app.conductor
        for table in self._tables.values():
            await table.changelog_topic.declare()
            if not table.is_global:
                conductor.add_passive(table.changelog_topic_name)
        if any(t.is_global for t in self._tables.values()):
            self._global_follower = self.add_future(self._follow_global_tables())
        windows = [t.window for t in self._tables.values() if t.window is not None]
        if any(window.expires is not None for window in windows):
            self.add_future(self._expire_windows_periodically())

    async def on_stop(self) -> None:
        for table in self._tables.values():
            table.close()

    # -- changelog ------------------------------------------------------------

    async def flush(self, committing: Mapping[TP, int] | None = None) -> None:
        """Send pending changes and wait for the broker (before a commit).

        ``committing`` are the offsets the commit that follows will commit
        (see `Table.send_changelog`).

        The tombstones of keys that moved between partitions go second, once
        the values they moved with are in the changelog: a crash in between
        leaves a key in two partitions (resolved at recovery), never in none.
        The stores persist the changes only after the commit (`checkpoint`).
        """
        async with self._flush_lock:
            tables = list(self._tables.values())
            delivered: dict[Table, list[Any]] = {t: [] for t in tables}
            committed = {**self._committed, **(committing or {})}
            sent = [(t, t.send_changelog(committed)) for t in tables]
            if any(changes for _, changes in sent):
                await self._delivered(sent, delivered)
            moves = [(t, t.send_moves()) for t in tables]
            if any(changes for _, changes in moves):
                await self._delivered(moves, delivered)
            for table, records in delivered.items():
                if records:
                    table.changelog_delivered(records)

    async def _delivered(
        self,
        sent: list[tuple[Table, list[Any]]],
        delivered: dict[Table, list[Any]],
    ) -> None:
        """Wait for ``sent``; note each change with its changelog offset."""
        await self.app.producer.flush()
        for table, changes in sent:
            out = delivered[table]
            for partition, key, value, source, fut, raw_key, raw_value in changes:
                metadata = await fut  # a failed send fails the commit
                out.append(
                    (partition, metadata.offset, key, value, source, raw_key, raw_value)
                )

    def checkpoint(self, offsets: Mapping[TP, int]) -> None:
        """Offsets were committed: persist the table changes they cover.

        Called after every commit. A store's durable state (RocksDB) then
        holds the effect of committed events only, so that a worker killed
        at any moment comes back with tables that match its committed
        offsets exactly: the events it replays are counted once.
        """
        committed = self._committed
        committed.update(offsets)
        for table in self._tables.values():
            if table._unpersisted:
                table.checkpoint(committed)

    async def _group_committed(self, tp: TP) -> int | None:
        """The consumer group's committed offset of a source partition."""
        consumer = self.app.consumer
        while True:
            try:
                return await consumer.committed(tp)
            except RuntimeError:
                # Not started yet: the global tables' follower may start
                # before the consumer does.
                if self.should_stop:
                    raise
                await asyncio.sleep(0.1)

    async def _refresh_committed(self, tps: Iterable[TP]) -> None:
        for tp in set(tps):
            offset = await self._group_committed(tp)
            if offset is not None:
                self._seen_committed[tp] = offset

    async def _committed_only(
        self, columns: RecordColumns, known: dict[TP, int | None]
    ) -> RecordColumns:
        """``columns`` without the records of uncommitted events (recovery).

        A record whose event's offset is not committed was written by a
        worker that died (or lost the partition) before its commit: the
        event is processed again, so applying the record would count it
        twice. ``known`` caches the committed offsets looked up. Records
        without headers name no event, and count as committed.
        """
        headers = columns.headers
        if headers is None:
            return columns
        kept = []
        # The committed offset of each source partition named, by the raw
        # ``b"<partition>:"`` and topic of the header: no decoding per record.
        committed: dict[tuple[bytes, bytes], int | None] = {}
        for index, record_headers in enumerate(headers):
            raw = _raw_source_in(record_headers) if record_headers else None
            if raw is not None:
                partition, offset, topic = raw.split(b":", 2)
                named = (partition, topic)
                if named in committed:
                    upto = committed[named]
                else:
                    tp = TP(topic.decode(), int(partition))
                    if tp not in known:
                        known[tp] = await self._group_committed(tp)
                    upto = committed[named] = known[tp]
                if upto is None or int(offset) >= upto:
                    self.skipped_uncommitted += 1
                    continue
            kept.append(index)
        return columns if len(kept) == len(headers) else columns.select(kept)

    # -- rebalancing ----------------------------------------------------------

    def standby_topics(self) -> tuple[set[str], int]:
        """Changelogs that get standby copies, and how many (for the assignor)."""
        topics = {
            t.changelog_topic_name for t in self._tables.values() if not t.is_global
        }
        return topics, self.app.conf.table_standby_replicas

    async def on_partitions_assigned(
        self, assigned: set[TP], standby: set[TP] | None = None
    ) -> None:
        """Rebuild the assigned table partitions before agents see events.

        Partitions this worker keeps as standby stay in their stores and are
        followed in the background; a later failover that makes one of them
        active recovers only what the standby had not applied yet. Global
        tables are read to their end first, once, after a start.
        """
        await self._wait_global_tables()
        tables = self._by_changelog()
        if not tables:
            return
        await self._stop_standby_follower()
        mine: dict[Table, set[int]] = defaultdict(set)
        copies: dict[TP, Table] = {}
        for tp in assigned:
            table = tables.get(tp.topic)
            if table is not None and not table.is_global:
                mine[table].add(tp.partition)
        for tp in standby or ():
            table = tables.get(tp.topic)
            if table is not None and not table.is_global:
                copies[tp] = table
        for table in tables.values():
            if table.is_global:
                continue
            table.active_partitions = set(mine.get(table, set()))
            keep = mine.get(table, set()) | {
                tp.partition for tp, t in copies.items() if t is table
            }
            for partition in table.store.partitions() - keep:
                table.forget_partition(partition)
                table.store.rollback(partition)
                table.store.drop_partition(partition)
        # Progress shown for partitions assigned away would never change.
        for name, partition in list(self.recovery):
            table = self._tables.get(name)
            if table is None or table.is_global:
                continue
            if partition not in (table.active_partitions or ()):
                del self.recovery[(name, partition)]
        await self.recover(
            {
                TP(table.changelog_topic_name, p): table
                for table, partitions in mine.items()
                for p in partitions
            }
        )
        if copies:
            self._standby_follower = self.add_future(self._follow_standbys(copies))

    async def _stop_standby_follower(self) -> None:
        follower, self._standby_follower = self._standby_follower, None
        if follower is not None and not follower.done():
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        # The next follower reads again from what the stores persisted.
        tables = self._by_changelog()
        for tp in list(self._held):
            table = tables.get(tp.topic)
            if table is None or not table.is_global:
                del self._held[tp]

    async def _follow_standbys(self, copies: Mapping[TP, Table]) -> None:
        """Keep standby table partitions in step with their changelogs."""
        reader = self.app.transport.create_reader(_start_offsets(copies))
        await reader.start()
        logger.info("Following %d standby table partition(s).", len(copies))
        try:
            while not self.should_stop:
                self.standby_applied += await self._apply_next(reader, copies, 1.0)
        finally:
            await reader.stop()

    async def recover(self, wanted: Mapping[TP, Table]) -> None:
        """Replay changelog partitions into their stores, from their offsets."""
        if not wanted:
            self.recovered.set()
            return
        self.recovered.clear()
        offsets = _start_offsets(wanted)
        reader = self.app.transport.create_reader(offsets)
        await reader.start()
        started = time.monotonic()
        total = 0
        try:
            total = await self._replay(reader, wanted, offsets)
        finally:
            await reader.stop()
        elapsed = time.monotonic() - started
        self.last_recovered = total
        self.total_recovered += total
        logger.info(
            "Recovered %d table partition(s): %d changelog records in %.2fs.",
            len(wanted),
            total,
            elapsed,
        )
        # Windows that expired while the partition was away (or before a
        # restart) come back with the changelog: delete them now.
        recovered: dict[Table, set[int]] = defaultdict(set)
        for tp, table in wanted.items():
            recovered[table].add(tp.partition)
        for table in recovered:
            table.resolve_duplicates()
        self._expire_windows(recovered)
        for table in set(wanted.values()):
            if table.on_recover is not None:
                result = table.on_recover()
                if inspect.isawaitable(result):
                    await result
        self.recovered.set()

    async def _replay(
        self, reader: Any, wanted: Mapping[TP, Table], offsets: Mapping[TP, int]
    ) -> int:
        """Read ``wanted`` to their ends; records of uncommitted events skipped."""
        known: dict[TP, int | None] = {}
        left = set(wanted)
        with_messages = any(t.on_changelog_event is not None for t in wanted.values())
        total = 0
        last_report = time.monotonic()
        while True:
            for tp in list(left):
                highwater = reader.highwater(tp)
                if highwater is not None and reader.position(tp) >= highwater:
                    left.discard(tp)
            if not left:
                self._report_progress(reader, wanted, offsets, wanted, log=False)
                return total
            if with_messages:
                # A table wants every record as a message: read messages.
                fetched = _columns_by_partition(await reader.getmany(timeout=0.5))
            else:
                fetched = await reader.getmany_columns(timeout=0.5)
            for tp, columns in fetched.items():
                table = wanted.get(tp)
                if table is None or not columns.offsets:
                    continue
                last = columns.offsets[-1]
                columns = await self._committed_only(columns, known)
                table.apply_changelog(
                    tp.partition, columns, table.recovery_buffer_size, last
                )
                if table.on_changelog_event is not None:
                    for record in columns.messages or ():
                        result = table.on_changelog_event(record)
                        if inspect.isawaitable(result):
                            await result
                total += len(columns)
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY:
                last_report = now
                self._report_progress(reader, wanted, offsets, left, log=True)

    def _report_progress(
        self,
        reader: Any,
        wanted: Mapping[TP, Table],
        offsets: Mapping[TP, int],
        partitions: Iterable[TP],
        *,
        log: bool,
    ) -> None:
        """Records done and left for ``partitions``, in the log and the monitor."""
        for tp in sorted(partitions):
            position = reader.position(tp)
            highwater = reader.highwater(tp) or position
            done = position - offsets[tp]
            remaining = max(0, highwater - position)
            name = wanted[tp].name
            self.recovery[(name, tp.partition)] = {"done": done, "left": remaining}
            if log:
                logger.info(
                    "Recovering table %r partition %d: %d records done, %d left",
                    name,
                    tp.partition,
                    done,
                    remaining,
                )
        self.app.sensors.on_recovery_progress(self.recovery)

    async def _follow_global_tables(self) -> None:
        """Global tables: recover every partition, then keep following."""
        producer = await self.app.maybe_start_producer()
        wanted: dict[TP, Table] = {}
        for table in self._tables.values():
            if table.is_global:
                name = table.changelog_topic_name
                for p in await producer.partitions_for(name):
                    wanted[TP(name, p)] = table
        offsets = _start_offsets(wanted)
        reader = self.app.transport.create_reader(offsets)
        await reader.start()
        tables = set(wanted.values())
        try:
            await self._replay(reader, wanted, offsets)
            for table in tables:
                table.resolve_duplicates()
            self._global_ready.set()
            while not self.should_stop:
                if await self._apply_next(reader, wanted, 1.0):
                    for table in tables:
                        table.resolve_duplicates()
        finally:
            await reader.stop()

    async def _apply_next(
        self, reader: Any, following: Mapping[TP, Table], timeout: float
    ) -> int:
        """Apply the next fetch of a followed changelog (standbys, global tables).

        A record whose event's offset is not committed yet waits, and the
        later records of its partition with it (order matters), until the
        group's committed offset passes it: a copy never holds the effect
        of an event that may be processed again. Writes
        ``standby_buffer_size`` records at a time; returns how many.
        """
        held = self._held
        fetched = _by_partition(await reader.getmany(timeout=timeout))
        now = time.monotonic()
        if held and now - self._refreshed >= COMMITTED_REFRESH:
            self._refreshed = now
            await self._refresh_committed(_sources_of(held))
        applied = 0
        for tp in set(fetched) | set(held):
            table = following.get(tp)
            if table is None:
                continue
            records = held.pop(tp, []) + fetched.get(tp, [])
            ready = self._ready_prefix(records)
            if ready < len(records):
                held[tp] = records[ready:]
            if ready:
                table.apply_changelog(
                    tp.partition, records[:ready], table.standby_buffer_size
                )
                applied += ready
        return applied

    def _ready_prefix(self, records: list[Any]) -> int:
        """How many of ``records`` (from the first) have committed sources."""
        committed = self._seen_committed
        for index, record in enumerate(records):
            source = source_of(record)
            if (
                source is not None
                and committed.get(TP(source[0], source[1]), -1) <= source[2]
            ):
                return index
        return len(records)

    async def _wait_global_tables(self) -> None:
        """Wait until the global tables have caught up with their changelogs.

        So that agents never see an event while a global table still lacks
        what was written before this worker started. If following fails,
        its error is the service's, and agents go ahead.
        """
        follower = self._global_follower
        if follower is None or self._global_ready.is_set():
            return
        ready: asyncio.Future[Any] = asyncio.ensure_future(self._global_ready.wait())
        waiters: set[asyncio.Future[Any]] = {ready, follower}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()

    # -- windowed tables --------------------------------------------------------

    async def _expire_windows_periodically(self) -> None:
        """Delete expired windows every ``TABLE_CLEANUP_INTERVAL`` seconds."""
        interval = self.app.conf.table_cleanup_interval
        while not self.should_stop:
            await self.sleep(interval)
            if not self.should_stop:
                self._expire_windows()

    def _expire_windows(
        self, partitions: Mapping[Table, set[int]] | None = None
    ) -> int:
        """Expire windows of every windowed table, or of these table partitions.

        With ``partitions`` (just recovered) the tables read them from the
        store first. A failure is logged, not raised: expiry is
        housekeeping, and retried at the next interval.
        """
        total = 0
        for table in self._tables.values():
            if table.window is None:
                continue
            if partitions is not None and table not in partitions:
                continue
            try:
                if partitions is None:
                    expired = table.expire_windows(self._writable_partitions(table))
                else:
                    expired = table.expire_windows(partitions[table], rescan=True)
            except Exception:
                logger.exception("Expiring windows of table %r failed", table.name)
                continue
            if expired:
                logger.debug(
                    "Table %r: %d expired window(s) deleted", table.name, expired
                )
            total += expired
        return total

    def _writable_partitions(self, table: Table) -> set[int] | None:
        """The partitions of ``table`` this worker writes, so may expire.

        Not the standby copies it keeps: their windows are the active
        worker's to expire (the tombstones then reach the copies). None for
        a global table: the table expires the partitions it wrote to.
        """
        if table.is_global:
            return None
        name = table.changelog_topic_name
        return {
            tp.partition for tp in self.app.consumer.assignment() if tp.topic == name
        }

    def reset(self) -> list[str]:
        """Wipe every table's local data (the next start recovers them)."""
        names = []
        for table in self._tables.values():
            table.store.reset()
            names.append(table.name)
        return names

    def describe(self) -> Iterable[dict[str, Any]]:
        for table in self._tables.values():
            yield {
                "name": table.name,
                "kind": type(table).__name__,
                "changelog": table.changelog_topic_name,
                "store": table.store_url or self.app.conf.store,
                "default": getattr(table.default, "__name__", repr(table.default)),
                "help": table.help,
            }


def _start_offsets(wanted: Mapping[TP, Table]) -> dict[TP, int]:
    """Where to read each changelog partition from: after what its store has."""
    offsets = {}
    for tp, table in wanted.items():
        persisted = table.store.persisted_offset(tp.partition)
        offsets[tp] = 0 if persisted is None else persisted + 1
    return offsets


def _by_partition(messages: Iterable[Any]) -> dict[TP, list[Any]]:
    """Fetched changelog messages, grouped by partition in their order."""
    by_tp: dict[TP, list[Any]] = defaultdict(list)
    for message in messages:
        by_tp[TP(message.topic, message.partition)].append(message)
    return by_tp


def _columns_by_partition(messages: Iterable[Any]) -> dict[TP, RecordColumns]:
    """Fetched changelog messages as columns per partition (messages kept)."""
    return {
        tp: RecordColumns.from_messages(records)
        for tp, records in _by_partition(messages).items()
    }


def _raw_source_in(headers: Iterable[tuple[str, bytes]]) -> bytes | None:
    """The raw `SOURCE_HEADER` of a record's headers (see `source_of`)."""
    for name, raw in headers:
        if name == SOURCE_HEADER:
            return raw
    return None


def _sources_of(held: Mapping[TP, list[Any]]) -> set[TP]:
    """The source partitions the first waiting record of each partition names."""
    tps = set()
    for records in held.values():
        source = source_of(records[0])
        if source is not None:
            tps.add(TP(source[0], source[1]))
    return tps


def _caller_module() -> str:
    """The module that declared a table (to tell re-imports from clashes)."""
    frame = sys._getframe(3)
    return str(frame.f_globals.get("__name__", "?"))
