"""What every transport driver provides, and the logic they share.

A driver implements a handful of primitives (fetch many, commit offsets,
subscribe, pause/resume, send, create a topic). Everything that decides
*correctness* lives here, once, for every driver: turning fetches into
tracked batches, committing only acknowledged offsets (after the app has
flushed what it holds), and handling revocation and assignment.

The transport never reaches into the app. It reads the app's `Settings`
(the one ``conf`` object the App hands to `Transport`, read-only), and the
consumer does what the app needs at commit and rebalance time through the
`ConsumerCallbacks` the App builds for it (``App.consumer_callbacks()``).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from mode import Service

from ..events import Batch
from ..exceptions import DeliveryError, TransactionError
from ..types import TP, MessageT, RecordMetadata
from .acks import PartitionTracker

if TYPE_CHECKING:
    from ..conf import Settings

__all__ = [
    "Consumer",
    "ConsumerCallbacks",
    "PartitionReader",
    "Producer",
    "RecordColumns",
    "SendReport",
    "Transport",
]

logger = logging.getLogger(__name__)


async def _nothing(*args: Any) -> None:
    """The default of an optional async callback: nothing to do."""


def _no_standbys() -> tuple[Collection[str], int]:
    return (), 0


@dataclass(frozen=True)
class ConsumerCallbacks:
    """What the consumer asks of the app, and tells it, at its moments.

    The App builds one (``App.consumer_callbacks()``) and hands it to
    `Transport.create_consumer`; a consumer never touches the app itself.
    Only ``topics`` and ``deliver`` are required: a consumer without tables,
    signals or a monitor (a test's) leaves the rest at their defaults, which
    do nothing.

    One rebalance calls, in order: ``on_rebalance_start``, ``on_revoking``,
    ``finish_in_hand`` and ``on_revoked`` (when something was held),
    ``on_rebalance_return``, ``on_assigning``, ``on_assigned``,
    ``on_rebalance_complete``. Every
    commit calls ``before_commit``, then commits, then ``after_commit``.
    """

    #: The topics the consumer group must subscribe to (read at start; the
    #: app calls `Consumer.subscribe` itself when they change).
    topics: Callable[[], Iterable[str]]
    #: Hand a fetched batch (already tracked for acks) to its readers.
    deliver: Callable[[Batch], None]
    #: Once per fetch that handed batches out, never per event: the
    #: worker's housekeeping (closing obsolete database connections).
    between_batches: Callable[[], object] = lambda: None
    #: Topics subscribed for their assignment only (table changelogs): kept
    #: paused and never tracked.
    passive: Callable[[], Collection[str]] = frozenset
    #: Before offsets are committed: make durable what the acked events
    #: produced (tables' changelogs, then the producer's buffer).
    before_commit: Callable[[], Awaitable[None]] = _nothing
    #: PROCESSING_GUARANTEE="exactly_once": commit the offsets *in* the
    #: producer's transaction (with every send made since the last commit)
    #: instead of through the consumer group. None: the consumer commits.
    commit_transaction: Callable[[Mapping[TP, int]], Awaitable[None]] | None = None
    #: Exactly-once: a commit that must happen (partitions are revoked)
    #: cannot: abort the transaction and stop (the app raises the error).
    abort_transaction: Callable[[BaseException], Awaitable[None]] = _nothing
    #: After a commit, with the offsets just committed.
    after_commit: Callable[[Mapping[TP, int]], None] = lambda offsets: None
    #: Partitions being revoked, before their last commit: stop handing out
    #: their buffered events.
    on_revoking: Callable[[set[TP]], object] = lambda revoked: None
    #: Then, still before that commit: let the events of those partitions
    #: that agents hold be finished (bounded), so the commit covers them.
    finish_in_hand: Callable[[set[TP]], Awaitable[Any]] = _nothing
    #: Partitions revoked, committed and forgotten.
    on_revoked: Callable[[set[TP]], Awaitable[Any]] = _nothing
    #: A new assignment (active partitions, standby copies), before a
    #: single event of it is handed out: recover tables here.
    on_assigning: Callable[[set[TP], set[TP]], Awaitable[Any]] = _nothing
    #: The new assignment is taken on (partitions tracked, tables recovered).
    on_assigned: Callable[[set[TP]], Awaitable[Any]] = _nothing
    #: A rebalance began: partitions are about to be revoked.
    on_rebalance_start: Callable[[], Awaitable[Any]] = _nothing
    #: The group's new assignment arrived and the revocation is done; the
    #: assignment's recovery is next.
    on_rebalance_return: Callable[[], Awaitable[Any]] = _nothing
    #: The rebalance is over: recovered, and events flow again.
    on_rebalance_complete: Callable[[], Awaitable[Any]] = _nothing
    #: For the assignor: the changelog topics that get standby copies, and
    #: how many copies of each partition.
    standby_topics: Callable[[], tuple[Collection[str], int]] = _no_standbys
    #: For the assignor: groups of topics to co-partition (None: topics of
    #: equal partition count are kept together).
    copartitioned: Callable[[], Iterable[Collection[str]] | None] | None = None


#: Told how sends went, several at a time: ``report(count, seconds, error)``.
#: A topic hands the producer one (it calls the app's sensors), so that a
#: delivered batch is reported once instead of with a callback per message.
SendReport = Callable[[int, float, "BaseException | None"], None]


class Producer(Service, abc.ABC):
    """Sends messages to the broker and declares topics."""

    mundane_level = "debug"

    #: The first send the broker refused or that timed out, if any. Sticky:
    #: offsets are never committed past a lost send (`check_delivered`).
    delivery_failure: BaseException | None = None

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.conf = transport.conf
        super().__init__()

    def check_delivered(self) -> None:
        """Raise `DeliveryError` if a send was ever lost (called before commits).

        A message accepted and then not delivered (the broker refused it, or
        it outlived BROKER_REQUEST_TIMEOUT during an outage) may be a sink's
        output or a changelog record of an event already acknowledged:
        committing that event's offset would lose it for good.
        """
        failure = self.delivery_failure
        if failure is not None:
            raise DeliveryError(
                f"A message could not be delivered ({failure!r}); no offset is "
                "committed past it. The worker must restart to process the "
                "events again (raise BROKER_REQUEST_TIMEOUT to ride out longer "
                "broker outages)."
            ) from failure

    @abc.abstractmethod
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        report: SendReport | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Accept a message for sending; the future resolves on delivery.

        ``report``, if given, is called once the message was delivered (or
        failed), possibly together with others that have the same ``report``.
        """

    @abc.abstractmethod
    def send_soon(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        report: SendReport | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Like `send`, without awaiting: usable from sync code in the loop."""

    #: Whether sends go in Kafka transactions (PROCESSING_GUARANTEE=
    #: "exactly_once"); drivers without transactions leave it False and
    #: refuse the transaction methods below.
    transactional = False
    #: The transactional id, once `use_transactions` was called.
    transactional_id: str | None = None

    def use_transactions(self, transactional_id: str) -> None:
        """Send in transactions under ``transactional_id`` (before start).

        Only a worker's producer does (``App`` calls it when
        PROCESSING_GUARANTEE is "exactly_once"); a client process's sends
        are plain idempotent ones, visible at once.
        """
        raise NotImplementedError(
            f"The {self.transport.driver_name} transport has no transactions: "
            'PROCESSING_GUARANTEE="exactly_once" cannot be used with it.'
        )

    async def commit_transaction(
        self, offsets: Mapping[TP, int], group_id: str
    ) -> None:
        """Commit the open transaction with ``offsets`` of ``group_id``.

        Every send since the previous commit (results, changelog records) and
        the consumer group's offsets become visible together. A transactional
        producer opens its next transaction at the next send.
        """
        raise NotImplementedError(
            f"The {self.transport.driver_name} transport has no transactions: "
            'PROCESSING_GUARANTEE="exactly_once" cannot be used with it.'
        )

    async def abort_transaction(self) -> None:
        """Abort the open transaction: none of its sends is ever visible."""
        raise NotImplementedError(
            f"The {self.transport.driver_name} transport has no transactions."
        )

    async def send_and_wait(
        self, topic: str, key: bytes | None, value: bytes | None, **kwargs: Any
    ) -> RecordMetadata:
        fut = await self.send(topic, key, value, **kwargs)
        return await fut

    @abc.abstractmethod
    async def flush(self) -> None:
        """Wait until every accepted message was delivered (or failed)."""

    @abc.abstractmethod
    async def create_topic(
        self,
        topic: str,
        *,
        partitions: int,
        replication: int,
        config: Mapping[str, Any] | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        retention: float | None = None,
    ) -> None:
        """Create a topic if it does not exist; never alter an existing one."""

    @abc.abstractmethod
    async def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of a topic (creating nothing)."""


class Consumer(Service, abc.ABC):
    """Fetches batches, hands them to the conductor, and commits acked offsets.

    Drivers call `on_partitions_revoked` and `on_partitions_assigned` from
    their rebalance hooks, and implement the abstract primitives. What the
    app must do at those moments comes in ``callbacks``.
    """

    mundane_level = "debug"

    def __init__(self, transport: Transport, callbacks: ConsumerCallbacks) -> None:
        self.transport = transport
        self.conf = transport.conf
        self.callbacks = callbacks
        #: True from the start of a rebalance until its assignment is taken.
        self.rebalancing = False
        self.trackers: dict[TP, PartitionTracker] = {}
        self._fetching = asyncio.Event()
        self._fetching.set()
        #: Cleared while an exactly-once commit waits for the events in
        #: hand: fetched batches wait (tracked later, never dropped).
        self._delivering = asyncio.Event()
        self._delivering.set()
        #: Exactly-once: why a transaction was aborted (sticky: no commit
        #: follows it in this process).
        self.transaction_failure: BaseException | None = None
        self._commit_lock = asyncio.Lock()
        #: Set once the first assignment arrived (the group leader is known).
        self.assigned = asyncio.Event()
        self.messages_received = 0
        self.commits = 0
        #: The offsets the commit in progress is about to commit.
        self.committing: Mapping[TP, int] = {}
        #: Messages processed since the last commit, and the commit it is due.
        self._processed_since_commit = 0
        self._commit_due = asyncio.Event()
        super().__init__()

    # -- primitives a driver implements ---------------------------------------

    @abc.abstractmethod
    async def subscribe(self, topics: Iterable[str]) -> None:
        """Read exactly these topics (as part of the app's consumer group)."""

    @abc.abstractmethod
    async def getmany(self, timeout: float) -> Mapping[TP, Sequence[MessageT]]:
        """Fetch whatever is ready, waiting up to ``timeout`` seconds."""

    @abc.abstractmethod
    async def _commit_offsets(self, offsets: Mapping[TP, int]) -> None:
        """Store committed offsets for the consumer group."""

    @abc.abstractmethod
    def assignment(self) -> set[TP]:
        """Partitions currently assigned to this consumer."""

    @abc.abstractmethod
    def pause(self, *tps: TP) -> None: ...

    @abc.abstractmethod
    def resume(self, *tps: TP) -> None: ...

    @abc.abstractmethod
    async def committed(self, tp: TP) -> int | None:
        """The committed offset of a partition for our group, if any."""

    @abc.abstractmethod
    def highwater(self, tp: TP) -> int | None:
        """The end of the partition's log as last seen by this consumer."""

    def is_leader(self) -> bool:
        """Whether this member leads the consumer group (runs leader timers)."""
        return True

    def standby_assignment(self) -> set[TP]:
        """Changelog partitions this member keeps a standby copy of."""
        return set()

    def group_assignment(self) -> Any:
        """What the last rebalance said about the whole group (the router's map).

        A `~.kafka.assignor.GroupAssignment`, or None where there is no group
        (one process holds everything).
        """
        return None

    # -- lifecycle ------------------------------------------------------------

    async def on_start(self) -> None:
        await self.subscribe(self.callbacks.topics())

    @Service.task
    async def _fetcher(self) -> None:
        deliver = self.callbacks.deliver
        between_batches = self.callbacks.between_batches
        trackers = self.trackers
        while not self.should_stop:
            if not self._fetching.is_set():
                await self._fetching.wait()
                continue
            records = await self.getmany(timeout=1.0)
            if not self._delivering.is_set():
                # An exactly-once commit is waiting for the events in hand:
                # these come after it (their position is already past them).
                await self._delivering.wait()
            if not self._fetching.is_set():
                # Stopped while the fetch was in flight: hand nothing out.
                continue
            for tp, messages in records.items():
                if not messages:
                    continue
                tracker = trackers.get(tp)
                if tracker is None:
                    # Not (or no longer) ours: never hand it to an agent.
                    logger.debug(
                        "Dropping %d records of unassigned %s", len(messages), tp
                    )
                    continue
                batch = Batch(tp, messages)
                tracker.add(batch)
                self.messages_received += len(messages)
                deliver(batch)
            if records:
                between_batches()

    @Service.task
    async def _committer(self) -> None:
        # Every COMMIT_INTERVAL, and as soon as BROKER_COMMIT_EVERY messages
        # were processed since the last commit.
        interval = self.conf.commit_interval
        while not self.should_stop:
            await self.wait_first(self._commit_due.wait(), timeout=interval)
            if self.should_stop:
                break
            self._commit_due.clear()
            self._processed_since_commit = 0
            try:
                await self.commit()
            except Exception as exc:
                if self.transport.broker_available:
                    logger.error("Commit failed (will retry): %r", exc, exc_info=exc)
                else:  # said once already: the broker is lost
                    logger.debug("Commit failed (will retry): %r", exc)

    def _on_acked(self, count: int) -> None:
        self._processed_since_commit += count
        if self._processed_since_commit >= self.conf.broker_commit_every:
            self._commit_due.set()

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until every fetched event is processed (STREAM_WAIT_EMPTY).

        Used at shutdown once fetching stopped, so the final commit covers
        the events already buffered instead of leaving them to be read again
        after the restart.  False if some were still pending at ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(tracker.pending for tracker in self.trackers.values()):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def stop_fetching(self) -> None:
        """Hand no further batches to streams (first step of shutdown)."""
        self._fetching.clear()

    def resume_fetching(self) -> None:
        self._fetching.set()

    # -- commits -----------------------------------------------------------------

    def committable(self, tps: Iterable[TP] | None = None) -> dict[TP, int]:
        trackers = self.trackers
        chosen = (
            trackers.values()
            if tps is None
            else (trackers[tp] for tp in tps if tp in trackers)
        )
        offsets = {}
        for tracker in chosen:
            offset = tracker.committable()
            if offset is not None:
                offsets[tracker.tp] = offset
        return offsets

    async def commit(self, tps: Iterable[TP] | None = None) -> bool:
        """Commit every offset whose earlier events are all acknowledged.

        ``callbacks.before_commit`` runs first (the app flushes tables'
        changelogs and the producer): anything the processed events sent
        (results, repartitioned events, changelog records) reaches the broker
        before the offsets that produced it are committed. Returns whether
        anything was committed.
        """
        if self.callbacks.commit_transaction is not None:
            return await self._commit_transaction(required=tps is not None)
        async with self._commit_lock:
            offsets = self.committable(tps)
            if not offsets:
                return False
            # Read by the app's tables at ``before_commit``, with nothing
            # processed in between: which changes this commit covers.
            self.committing = offsets
            try:
                await self.callbacks.before_commit()
            finally:
                self.committing = {}
            await self._commit_offsets(offsets)
            self._committed(offsets)
            return True

    def _committed(self, offsets: Mapping[TP, int]) -> None:
        for tp, offset in offsets.items():
            tracker = self.trackers.get(tp)
            if tracker is not None:
                tracker.committed = offset
        self.commits += 1
        self.callbacks.after_commit(offsets)

    async def _commit_transaction(self, required: bool = False) -> bool:
        """Exactly-once: commit every partition's offsets in the transaction.

        The transaction holds whatever was sent since the last commit, for
        every partition at once, so the commit must cover every event that
        sent something: new batches are held back and the events in hand are
        finished first (at most COMMIT_INTERVAL), then the offsets of all
        partitions go in the transaction. When the events do not finish in
        time, nothing is committed this round (the transaction stays open and
        the next commit tries again), unless the commit is ``required``
        (partitions are revoked: their sends cannot wait): then the
        transaction is aborted and `TransactionError` raised. A failed
        transaction commit raises `TransactionError` too: the app aborts the
        transaction and stops, and the next start replays the uncommitted
        events with nothing of their aborted output visible.
        """
        commit = self.callbacks.commit_transaction
        assert commit is not None
        async with self._commit_lock:
            if self.transaction_failure is not None:
                # The events of the aborted transaction are acked here, but
                # their output is gone: committing their offsets would lose it.
                raise TransactionError(
                    "A transaction was aborted: no offset is committed any more "
                    "in this process; the restart replays from the last commit."
                ) from self.transaction_failure
            # Hold new batches back (not stop_fetching(): a batch fetched
            # meanwhile would be dropped, and its events skipped for good).
            self._delivering.clear()
            try:
                if not await self.wait_empty(self.conf.commit_interval):
                    if required:
                        raise TransactionError(
                            "Partitions are revoked while events are still in "
                            f"hand after {self.conf.commit_interval:.1f}s "
                            "(COMMIT_INTERVAL): their transaction is aborted."
                        )
                    logger.debug(
                        "Events still in hand after %.1fs: commit postponed.",
                        self.conf.commit_interval,
                    )
                    return False
                offsets = self.committable()
                self.committing = offsets
                try:
                    await self.callbacks.before_commit()
                finally:
                    self.committing = {}
                # Even with no new offsets: sends of timers and web views are
                # in the transaction too, and become visible now.
                await commit(offsets)
            except Exception as exc:
                self.transaction_failure = exc
                await self.callbacks.abort_transaction(exc)
                raise
            finally:
                self._delivering.set()
            if not offsets:
                return False
            self._committed(offsets)
            return True

    # -- rebalancing --------------------------------------------------------------

    async def rebalance_started(self) -> None:
        """A rebalance began (drivers call it; idempotent until it ends).

        `on_partitions_revoked` calls it, so a driver needs to only where a
        rebalance starts without a revocation step.
        """
        if not self.rebalancing:
            self.rebalancing = True
            await self.callbacks.on_rebalance_start()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Give up partitions: stop handing their events out, commit, forget."""
        await self.rebalance_started()
        if not revoked:
            return
        if self.callbacks.commit_transaction is None:
            self.callbacks.on_revoking(revoked)
        # Agents finish the events they hold of ``revoked`` first, so the
        # commit covers them (under exactly-once their sends are in the
        # transaction); what is still buffered is dropped after it.
        await self.callbacks.finish_in_hand(revoked)
        try:
            await self.commit(revoked)
        except Exception as exc:
            logger.error(
                "Commit on revoke of %s failed: %r", sorted(revoked), exc, exc_info=exc
            )
        if self.callbacks.commit_transaction is not None:
            self.callbacks.on_revoking(revoked)
        for tp in revoked:
            tracker = self.trackers.pop(tp, None)
            if tracker is not None:
                tracker.revoke()
        await self.callbacks.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        """Take on partitions, resuming from their committed offsets.

        Tables are recovered here (``callbacks.on_assigning``), before the
        fetch loop hands out a single event of the new assignment.
        """
        await self.rebalance_started()
        callbacks = self.callbacks
        try:
            await callbacks.on_rebalance_return()
            passive = callbacks.passive()
            changelogs = [tp for tp in assigned if tp.topic in passive]
            if changelogs:
                self.pause(*changelogs)
            await callbacks.on_assigning(assigned, self.standby_assignment())
            for tp in assigned:
                if tp.topic in passive:
                    continue
                if tp not in self.trackers:
                    self.trackers[tp] = PartitionTracker(
                        tp, await self.committed(tp), self._on_acked
                    )
            self.assigned.set()
            await callbacks.on_assigned(assigned)
        finally:
            # A failed assignment ends the rebalance too: the next one starts
            # afresh (and says so).
            self.rebalancing = False
        await callbacks.on_rebalance_complete()


class RecordColumns:
    """Records of one partition read at once, as parallel lists.

    Recovery replays millions of changelog records, and one Python object
    per record (a message) costs more than writing the record to the store:
    a reader that can decode fetched batches straight into lists hands
    those over instead. ``offsets[i]``, ``keys[i]`` and ``values[i]`` are
    record *i*'s (raw bytes; a value of None is a tombstone);
    ``headers[i]`` its ``(name, value)`` header pairs (a sequence, None if
    it has none), and ``headers`` is None when no record has any.
    ``messages`` are the message objects the columns were made of, when
    they were (see `from_messages`).
    """

    __slots__ = ("headers", "keys", "messages", "offsets", "values")

    def __init__(
        self,
        offsets: list[int],
        keys: list[Any],
        values: list[Any],
        headers: list[Any] | None = None,
        messages: list[MessageT] | None = None,
    ) -> None:
        self.offsets = offsets
        self.keys = keys
        self.values = values
        self.headers = headers
        self.messages = messages

    def __len__(self) -> int:
        return len(self.offsets)

    def __repr__(self) -> str:
        span = f"{self.offsets[0]}..{self.offsets[-1]}" if self.offsets else "empty"
        return f"<RecordColumns {len(self)} records, offsets {span}>"

    @classmethod
    def from_messages(cls, messages: Sequence[MessageT]) -> RecordColumns:
        """Columns of ``messages`` (one partition's, in offset order), kept too."""
        headers = [m.headers or None for m in messages]
        return cls(
            [m.offset for m in messages],
            [m.key for m in messages],
            [m.value for m in messages],
            headers if any(headers) else None,
            list(messages),
        )

    def select(self, indexes: Sequence[int]) -> RecordColumns:
        """The records at ``indexes`` (ascending), as columns of their own."""
        offsets, keys, values = self.offsets, self.keys, self.values
        headers, messages = self.headers, self.messages
        return RecordColumns(
            [offsets[i] for i in indexes],
            [keys[i] for i in indexes],
            [values[i] for i in indexes],
            None if headers is None else [headers[i] for i in indexes],
            None if messages is None else [messages[i] for i in indexes],
        )


class PartitionReader(abc.ABC):
    """Reads given partitions from given offsets, outside any consumer group.

    Used where a process needs exactly some partitions and nothing of the
    group's bookkeeping: the reply topic of agent RPC (private to the
    process), and table changelogs during recovery.
    """

    def __init__(self, transport: Transport, offsets: Mapping[TP, int]) -> None:
        self.transport = transport
        self.offsets = dict(offsets)

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def getmany(self, timeout: float) -> list[MessageT]:
        """Messages that arrived since the last call (waits up to timeout)."""

    async def getmany_columns(self, timeout: float) -> dict[TP, RecordColumns]:
        """What `getmany` returns, as `RecordColumns` per partition.

        For reading many records whose message objects are not needed
        (changelog recovery). This default groups `getmany`'s messages (the
        columns keep them); a driver that can decode fetched batches
        without a message per record overrides it. A partition whose
        position moved past records it does not return (transaction
        markers, aborted records) may come with empty columns.
        """
        grouped: dict[TP, list[MessageT]] = {}
        for message in await self.getmany(timeout):
            tp = TP(message.topic, message.partition)
            grouped.setdefault(tp, []).append(message)
        return {tp: RecordColumns.from_messages(ms) for tp, ms in grouped.items()}

    @abc.abstractmethod
    def highwater(self, tp: TP) -> int | None:
        """The end of the partition as last seen (None: not known yet)."""

    @abc.abstractmethod
    def position(self, tp: TP) -> int:
        """The next offset this reader will return for ``tp``."""

    @abc.abstractmethod
    async def stop(self) -> None: ...


class Transport(abc.ABC):
    """A broker driver: builds the consumer and producer for an app.

    It is given the app's settings, never the app: ``conf`` is read (client
    options, timeouts, the group id), not changed.
    """

    driver_name = "base"
    default_port: int | None = None

    def __init__(self, url: str, conf: Settings) -> None:
        self.url = url
        self.conf = conf
        #: Whether the broker answered the last probe (drivers that can lose
        #: it probe it; ``memory://`` cannot). `App.broker_available` and the
        #: readiness check read it.
        self.broker_available = True
        #: ``time.monotonic()`` when the broker was lost, while it is.
        self.broker_lost_at: float | None = None

    def broker_state(self, available: bool, reason: object = None) -> None:
        """Record a probe's outcome; log one line when it changes.

        The consumer and producer log their failed requests quietly while
        the broker is known to be lost, so an outage shows as one line when
        it starts and one when it ends.
        """
        if available == self.broker_available:
            return
        self.broker_available = available
        if not available:
            self.broker_lost_at = time.monotonic()
            logger.warning(
                "Lost the connection to the broker at %s (%s); reconnecting. "
                "Processing resumes when it is back.",
                self.url,
                reason,
            )
            return
        lost_at, self.broker_lost_at = self.broker_lost_at, None
        took = 0.0 if lost_at is None else time.monotonic() - lost_at
        logger.warning(
            "The broker at %s is back after %.1fs; processing resumes.",
            self.url,
            took,
        )

    @abc.abstractmethod
    def create_consumer(self, callbacks: ConsumerCallbacks) -> Consumer: ...

    @abc.abstractmethod
    def create_producer(self) -> Producer: ...

    @abc.abstractmethod
    def create_reader(self, offsets: Mapping[TP, int]) -> PartitionReader: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
