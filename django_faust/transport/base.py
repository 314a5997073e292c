"""What every transport driver provides, and the logic they share.

A driver implements a handful of primitives (fetch many, commit offsets,
subscribe, pause/resume, send, create a topic). Everything that decides
*correctness* lives here, once, for every driver: turning fetches into
tracked batches, committing only acknowledged offsets (after flushing what
the producer holds), and handling revocation and assignment.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from mode import Service

from ..events import Batch
from ..types import TP, MessageT, RecordMetadata
from .acks import PartitionTracker

if TYPE_CHECKING:
    from ..app.base import App

__all__ = ["Consumer", "PartitionReader", "Producer", "Transport"]

logger = logging.getLogger(__name__)


class Producer(Service, abc.ABC):
    """Sends messages to the broker and declares topics."""

    mundane_level = "debug"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.app = transport.app
        super().__init__()

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
    ) -> asyncio.Future[RecordMetadata]:
        """Accept a message for sending; the future resolves on delivery."""

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
    ) -> asyncio.Future[RecordMetadata]:
        """Like `send`, without awaiting: usable from sync code in the loop."""

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
    their rebalance hooks, and implement the abstract primitives.
    """

    mundane_level = "debug"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.app = transport.app
        self.trackers: dict[TP, PartitionTracker] = {}
        self._fetching = asyncio.Event()
        self._fetching.set()
        self._commit_lock = asyncio.Lock()
        #: Set once the first assignment arrived (the group leader is known).
        self.assigned = asyncio.Event()
        self.messages_received = 0
        self.commits = 0
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

    # -- lifecycle ------------------------------------------------------------

    async def on_start(self) -> None:
        await self.subscribe(self.app.conductor.topic_names())

    @Service.task
    async def _fetcher(self) -> None:
        conductor = self.app.conductor
        trackers = self.trackers
        while not self.should_stop:
            if not self._fetching.is_set():
                await self._fetching.wait()
                continue
            records = await self.getmany(timeout=1.0)
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
                conductor.deliver(batch)

    @Service.task
    async def _committer(self) -> None:
        # Every COMMIT_INTERVAL, and as soon as BROKER_COMMIT_EVERY messages
        # were processed since the last commit.
        interval = self.app.conf.commit_interval
        while not self.should_stop:
            await self.wait_first(self._commit_due.wait(), timeout=interval)
            if self.should_stop:
                break
            self._commit_due.clear()
            self._processed_since_commit = 0
            try:
                await self.commit()
            except Exception as exc:
                logger.error("Commit failed (will retry): %r", exc, exc_info=exc)

    def _on_acked(self, count: int) -> None:
        self._processed_since_commit += count
        if self._processed_since_commit >= self.app.conf.broker_commit_every:
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

        The producer is flushed first: anything the processed events sent
        (results, repartitioned events, changelog records) reaches the broker
        before the offsets that produced it are committed.
        """
        async with self._commit_lock:
            offsets = self.committable(tps)
            if not offsets:
                return False
            # Table changes first: the changelog must hold them before the
            # offsets of the events that made them are committed.
            await self.app.tables.flush()
            producer = self.app._producer
            if producer is not None and producer.started:
                await producer.flush()
            await self._commit_offsets(offsets)
            for tp, offset in offsets.items():
                tracker = self.trackers.get(tp)
                if tracker is not None:
                    tracker.committed = offset
            self.commits += 1
            self.app.monitor.on_commit(offsets)
            return True

    # -- rebalancing --------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Give up partitions: stop handing their events out, commit, forget."""
        if not revoked:
            return
        self.app.conductor.revoke(revoked)
        try:
            await self.commit(revoked)
        except Exception as exc:
            logger.error(
                "Commit on revoke of %s failed: %r", sorted(revoked), exc, exc_info=exc
            )
        for tp in revoked:
            tracker = self.trackers.pop(tp, None)
            if tracker is not None:
                tracker.revoke()
        await self.app.on_partitions_revoked.send(revoked)

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        """Take on partitions, resuming from their committed offsets.

        Tables are recovered here, before the fetch loop hands out a single
        event of the new assignment.
        """
        passive = self.app.conductor.passive
        changelogs = [tp for tp in assigned if tp.topic in passive]
        if changelogs:
            self.pause(*changelogs)
        await self.app.tables.on_partitions_assigned(
            assigned, self.standby_assignment()
        )
        for tp in assigned:
            if tp.topic in passive:
                continue
            if tp not in self.trackers:
                self.trackers[tp] = PartitionTracker(
                    tp, await self.committed(tp), self._on_acked
                )
        self.assigned.set()
        await self.app.on_partitions_assigned.send(assigned)


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

    @abc.abstractmethod
    def highwater(self, tp: TP) -> int | None:
        """The end of the partition as last seen (None: not known yet)."""

    @abc.abstractmethod
    def position(self, tp: TP) -> int:
        """The next offset this reader will return for ``tp``."""

    @abc.abstractmethod
    async def stop(self) -> None: ...


class Transport(abc.ABC):
    """A broker driver: builds the consumer and producer for an app."""

    driver_name = "base"
    default_port: int | None = None

    def __init__(self, url: str, app: App) -> None:
        self.url = url
        self.app = app

    @abc.abstractmethod
    def create_consumer(self) -> Consumer: ...

    @abc.abstractmethod
    def create_producer(self) -> Producer: ...

    @abc.abstractmethod
    def create_reader(self, offsets: Mapping[TP, int]) -> PartitionReader: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
