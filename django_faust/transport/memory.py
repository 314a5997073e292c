"""The ``memory://`` transport: a faithful stand-in for Kafka in one process.

Topics have partitions and append-only logs with growing offsets; keys go to
partitions with Kafka's own partitioner (murmur2), so a key lands on the same
partition number here as on a real cluster. Consumer groups remember
committed offsets and split partitions between their members, revoking and
assigning the way Kafka's eager rebalance protocol does.

Everything lives in a `MemoryBroker` per URL (``memory://`` and
``memory://name`` are different brokers), for the lifetime of the process.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..exceptions import ImproperlyConfigured, TransactionError
from ..types import TP, Message, MessageT, RecordMetadata
from .assignment import assign_partitions, assign_standbys, by_topic
from .base import (
    Consumer,
    ConsumerCallbacks,
    PartitionReader,
    Producer,
    SendReport,
    Transport,
)
from .kafka.compat import murmur2

if TYPE_CHECKING:
    from ..conf import Settings

__all__ = ["MemoryBroker", "MemoryTransport", "get_broker", "reset_brokers"]

logger = logging.getLogger(__name__)

_brokers: dict[str, MemoryBroker] = {}


def get_broker(url: str) -> MemoryBroker:
    """The process-wide broker for a ``memory://`` URL."""
    name = url.split("://", 1)[-1].strip("/")
    broker = _brokers.get(name)
    if broker is None:
        broker = _brokers[name] = MemoryBroker(name)
    return broker


def reset_brokers() -> None:
    """Forget every memory broker (for tests)."""
    _brokers.clear()


def partition_for_key(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for keyed messages."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class MemoryBroker:
    """Topics, logs, committed offsets and group membership, in memory."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.logs: dict[str, list[list[Message]]] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.committed: dict[tuple[str, TP], int] = {}
        self.groups: dict[str, list[MemoryConsumer]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._round_robin: dict[str, itertools.count[int]] = {}
        self.default_partitions = 8
        #: Transactions: the epoch of each transactional id (a newer producer
        #: with the same id fences the older), the offsets each open
        #: transaction wrote, and the offsets of aborted records.
        self._epochs: dict[str, int] = {}
        self._open: dict[str, list[tuple[TP, int]]] = {}
        self._open_first: dict[TP, dict[str, int]] = {}
        self.aborted: dict[TP, set[int]] = {}
        self.transactions_committed = 0
        self.transactions_aborted = 0

    # -- topics ----------------------------------------------------------------

    def create_topic(
        self, topic: str, partitions: int, config: Mapping[str, Any] | None = None
    ) -> bool:
        """Create a topic; returns False when it already existed."""
        if topic in self.logs:
            return False
        if partitions < 1:
            raise ImproperlyConfigured(
                f"Topic {topic!r} needs at least one partition, got {partitions}."
            )
        self.logs[topic] = [[] for _ in range(partitions)]
        self.configs[topic] = dict(config or {})
        # Like Kafka, only groups that read the new topic rebalance.
        for group_id, members in list(self.groups.items()):
            if any(topic in m.topics for m in members):
                self._rebalance(group_id)
        return True

    def partitions(self, topic: str) -> int:
        return len(self.logs.get(topic, ()))

    def end_offset(self, tp: TP) -> int:
        logs = self.logs.get(tp.topic)
        if logs is None or tp.partition >= len(logs):
            return 0
        return len(logs[tp.partition])

    # -- producing ---------------------------------------------------------------

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        transaction: tuple[str, int] | None = None,
    ) -> RecordMetadata:
        """Append a record; ``transaction`` is (transactional id, epoch).

        A transactional record is in the log at once (it has its offset, as
        on Kafka) but ``read_committed`` readers see it only once its
        transaction commits, and never once it aborts.
        """
        if transaction is not None:
            self._check_epoch(*transaction)
        logs = self.logs.get(topic)
        if logs is None:
            # Like Kafka's auto.create.topics.enable.
            self.create_topic(topic, self.default_partitions)
            logs = self.logs[topic]
        n = len(logs)
        if partition is None:
            if key is None:
                counter = self._round_robin.setdefault(topic, itertools.count())
                partition = next(counter) % n
            else:
                partition = partition_for_key(key, n)
        elif not 0 <= partition < n:
            raise ValueError(
                f"Topic {topic!r} has {n} partitions; partition {partition} "
                "does not exist."
            )
        log = logs[partition]
        # Milliseconds since the epoch, as Kafka records carry.
        ts = int((timestamp if timestamp is not None else time.time()) * 1000)
        log.append(
            Message(topic, partition, len(log), ts, key, value, tuple(headers or ()))
        )
        if transaction is not None:
            tp = TP(topic, partition)
            self._open.setdefault(transaction[0], []).append((tp, len(log) - 1))
            self._open_first.setdefault(tp, {}).setdefault(transaction[0], len(log) - 1)
        self._wake()
        return RecordMetadata(topic, partition, len(log) - 1, ts)

    # -- transactions ------------------------------------------------------------

    def init_transactions(self, transactional_id: str) -> int:
        """Register a producer for ``transactional_id``; returns its epoch.

        As Kafka's InitProducerId: the id's open transaction (a crashed or
        zombie producer's) is aborted, and the older producer is fenced.
        """
        self._end(transactional_id, commit=False)
        epoch = self._epochs.get(transactional_id, -1) + 1
        self._epochs[transactional_id] = epoch
        return epoch

    def _check_epoch(self, transactional_id: str, epoch: int) -> None:
        if self._epochs.get(transactional_id) != epoch:
            raise TransactionError(
                f"Producer of transactional id {transactional_id!r} (epoch "
                f"{epoch}) is fenced: a newer one took the id over."
            )

    def commit_transaction(
        self,
        transactional_id: str,
        epoch: int,
        offsets: Mapping[TP, int] | None = None,
        group_id: str | None = None,
    ) -> None:
        """Make the transaction's records and the group's offsets visible."""
        self._check_epoch(transactional_id, epoch)
        if offsets and group_id is not None:
            for tp, offset in offsets.items():
                self.committed[(group_id, tp)] = offset
        self._end(transactional_id, commit=True)

    def abort_transaction(self, transactional_id: str, epoch: int) -> None:
        """Hide the transaction's records from ``read_committed`` readers."""
        self._check_epoch(transactional_id, epoch)
        self._end(transactional_id, commit=False)

    def _end(self, transactional_id: str, *, commit: bool) -> None:
        written = self._open.pop(transactional_id, None)
        if written is None:
            return
        for tp, offset in written:
            if not commit:
                self.aborted.setdefault(tp, set()).add(offset)
            firsts = self._open_first.get(tp)
            if firsts is not None:
                firsts.pop(transactional_id, None)
        if commit:
            self.transactions_committed += 1
        else:
            self.transactions_aborted += 1
        self._wake()

    def stable_offset(self, tp: TP) -> int:
        """The last stable offset: no open transaction wrote before it."""
        firsts = self._open_first.get(tp)
        if firsts:
            return min(firsts.values())
        return self.end_offset(tp)

    def read_committed(
        self, tp: TP, offset: int, max_records: int
    ) -> tuple[list[Message], int]:
        """Committed records from ``offset``, and the position after them.

        Stops at the last stable offset and skips aborted records, as a
        Kafka consumer with ``isolation_level="read_committed"`` does.
        """
        end = self.stable_offset(tp)
        if offset >= end:
            return [], offset
        aborted = self.aborted.get(tp, ())
        window = self.read(tp, offset, min(max_records, end - offset))
        if not window:
            return [], offset
        position = window[-1].offset + 1
        if aborted:
            window = [m for m in window if m.offset not in aborted]
        return window, position

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_for_data(self, timeout: float) -> None:
        """Wait until something is appended (or ``timeout`` passes).

        `asyncio.wait`, not `asyncio.wait_for`: on Python 3.11 the latter can
        swallow a cancellation that arrives as the future completes, which
        left cancelled readers looping forever.
        """
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait({fut}, timeout=timeout)
        finally:
            if not fut.done():
                fut.cancel()

    def read(self, tp: TP, offset: int, max_records: int) -> list[Message]:
        logs = self.logs.get(tp.topic)
        if logs is None or tp.partition >= len(logs):
            return []
        return logs[tp.partition][offset : offset + max_records]

    # -- consumer groups -----------------------------------------------------------

    def join(self, consumer: MemoryConsumer) -> None:
        members = self.groups.setdefault(consumer.group_id, [])
        if consumer not in members:
            members.append(consumer)
        self._rebalance(consumer.group_id)

    def leave(self, consumer: MemoryConsumer) -> None:
        members = self.groups.get(consumer.group_id, [])
        if consumer in members:
            members.remove(consumer)
            self._rebalance(consumer.group_id)

    def _rebalance(self, group_id: str) -> None:
        """Assign as the Kafka assignor does, standbys included."""
        members = self.groups.get(group_id, [])
        ids = {f"{i:06d}": m for i, m in enumerate(members)}
        subscriptions = {
            mid: {t for t in m.topics if t in self.logs} for mid, m in ids.items()
        }
        counts = {
            t: self.partitions(t) for subs in subscriptions.values() for t in subs
        }
        owned = {mid: by_topic(m._assignment) for mid, m in ids.items()}
        warm = {mid: by_topic(m._assignment | m._standbys) for mid, m in ids.items()}
        active = assign_partitions(subscriptions, counts, previous=owned, warm=warm)
        standbys: dict[str, dict[str, list[int]]] = {mid: {} for mid in ids}
        if members:
            # The first member decides, as a Kafka group's leader does.
            topics, replicas = members[0].callbacks.standby_topics()
            standbys = assign_standbys(active, topics, replicas, warm=warm)
        for mid, member in ids.items():
            member._set_assignment(
                {TP(t, p) for t, ps in active[mid].items() for p in ps},
                {TP(t, p) for t, ps in standbys[mid].items() for p in ps},
            )
        self._wake()


class MemoryConsumer(Consumer):
    """A group member reading from a `MemoryBroker`."""

    def __init__(
        self, transport: MemoryTransport, callbacks: ConsumerCallbacks
    ) -> None:
        super().__init__(transport, callbacks)
        self.broker = transport.broker
        self.group_id = self.conf.id
        self.topics: set[str] = set()
        self._assignment: set[TP] = set()
        self._target: set[TP] | None = None
        self._positions: dict[TP, int] = {}
        self._paused: set[TP] = set()
        self._leader = False
        self._standbys: set[TP] = set()
        self.read_committed = self.conf.processing_guarantee == "exactly_once"

    async def subscribe(self, topics: Iterable[str]) -> None:
        if self.should_stop:
            return  # a consumer that left its group never rejoins it
        self.topics = set(topics)
        for topic in self.topics:
            if topic not in self.broker.logs:
                self.broker.create_topic(topic, self.conf.topic_partitions)
        # The group rebalances now; like Kafka's poll(), this member applies
        # its new assignment inside the fetch loop, never concurrently with it.
        self.broker.join(self)

    def _set_assignment(self, tps: set[TP], standbys: set[TP] | None = None) -> None:
        self._target = set(tps)
        self._standbys = set(standbys or ())
        members = self.broker.groups.get(self.group_id, [])
        self._leader = bool(members) and members[0] is self

    async def _maybe_rebalance(self) -> None:
        target = self._target
        if target is None:
            return
        self._target = None
        # Eager protocol, as Kafka's default: revoke everything, then assign.
        previous = self._assignment
        self._assignment = set()
        await self.on_partitions_revoked(previous)
        self._assignment = target
        for tp in target:
            committed = self.broker.committed.get((self.group_id, tp))
            if committed is None:
                if self.conf.consumer_auto_offset_reset == "latest":
                    committed = self.broker.end_offset(tp)
                else:
                    committed = 0
            self._positions[tp] = committed
        for tp in list(self._positions):
            if tp not in target:
                del self._positions[tp]
        self._paused &= target
        await self.on_partitions_assigned(target)

    async def getmany(self, timeout: float) -> Mapping[TP, Sequence[Message]]:
        await self._maybe_rebalance()
        max_records = self.conf.broker_max_poll_records or 500
        records = self._read(max_records)
        if not records:
            await self.broker.wait_for_data(timeout)
            await self._maybe_rebalance()
            records = self._read(max_records)
        return records

    def _read(self, max_records: int) -> dict[TP, list[Message]]:
        out: dict[TP, list[Message]] = {}
        budget = max_records
        broker = self.broker
        for tp in sorted(self._assignment):
            if budget <= 0:
                break
            if tp in self._paused:
                continue
            position = self._positions.get(tp, 0)
            if self.read_committed:
                messages, after = broker.read_committed(tp, position, budget)
            else:
                messages = broker.read(tp, position, budget)
                after = position + len(messages)
            self._positions[tp] = after
            if messages:
                out[tp] = messages
                budget -= len(messages)
        return out

    async def _commit_offsets(self, offsets: Mapping[TP, int]) -> None:
        for tp, offset in offsets.items():
            self.broker.committed[(self.group_id, tp)] = offset

    async def committed(self, tp: TP) -> int | None:
        return self.broker.committed.get((self.group_id, tp))

    def assignment(self) -> set[TP]:
        return set(self._assignment)

    def highwater(self, tp: TP) -> int | None:
        if self.read_committed:
            return self.broker.stable_offset(tp)
        return self.broker.end_offset(tp)

    def pause(self, *tps: TP) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TP) -> None:
        self._paused.difference_update(tps)
        self.broker._wake()

    def position(self, tp: TP) -> int | None:
        return self._positions.get(tp)

    def is_leader(self) -> bool:
        return self._leader

    def standby_assignment(self) -> set[TP]:
        return set(self._standbys)

    async def on_stop(self) -> None:
        await super().on_stop()
        self.broker.leave(self)


class MemoryProducer(Producer):
    """Appends straight to the broker's logs: delivery is immediate."""

    #: Usable from whichever event loop calls it (see ``client.py``).
    binds_to_loop = False

    def __init__(self, transport: MemoryTransport) -> None:
        super().__init__(transport)
        self.broker = transport.broker
        self.messages_sent = 0
        self._transaction: tuple[str, int] | None = None

    def use_transactions(self, transactional_id: str) -> None:
        self.transactional = True
        self.transactional_id = transactional_id

    async def on_start(self) -> None:
        if self.transactional_id is not None:
            epoch = self.broker.init_transactions(self.transactional_id)
            self._transaction = (self.transactional_id, epoch)

    async def commit_transaction(
        self, offsets: Mapping[TP, int], group_id: str
    ) -> None:
        transaction = self._require_transaction()
        self.broker.commit_transaction(*transaction, offsets, group_id)

    async def abort_transaction(self) -> None:
        self.broker.abort_transaction(*self._require_transaction())

    def _require_transaction(self) -> tuple[str, int]:
        if self._transaction is None:
            raise RuntimeError(
                "This producer does not send in transactions (or is not started)."
            )
        return self._transaction

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
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        try:
            _check_bytes(topic, "key", key)
            _check_bytes(topic, "value", value)
            if self.transactional and self._transaction is None:
                raise RuntimeError("The transactional producer is not started.")
            metadata = self.broker.append(
                topic, key, value, partition, timestamp, headers, self._transaction
            )
        except Exception as exc:
            logger.error("Sending to topic %r failed: %r", topic, exc)
            fut.set_exception(exc)
            if report is not None:
                report(1, 0.0, exc)
        else:
            self.messages_sent += 1
            fut.set_result(metadata)
            if report is not None:
                report(1, 0.0, None)
        return fut

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
        fut = self.send_soon(
            topic,
            key,
            value,
            partition=partition,
            timestamp=timestamp,
            headers=headers,
            report=report,
        )
        if fut.exception() is not None:
            # Raise here, like a real producer that refuses a bad message.
            raise fut.exception()  # type: ignore[misc]
        return fut

    async def flush(self) -> None:
        return None

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
        config = dict(config or {})
        if compacting:
            config.setdefault("cleanup.policy", "compact")
        if retention is not None:
            config.setdefault("retention.ms", int(retention * 1000))
        self.broker.create_topic(topic, partitions, config)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.broker.partitions(topic)))


def _check_bytes(topic: str, what: str, data: Any) -> None:
    if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"Sending to topic {topic!r}: the {what} must be bytes after "
            f"serialization, got {type(data).__name__}."
        )


class MemoryPartitionReader(PartitionReader):
    """Reads chosen memory partitions from chosen offsets."""

    def __init__(self, transport: MemoryTransport, offsets: Mapping[TP, int]) -> None:
        super().__init__(transport, offsets)
        self.broker = transport.broker
        self._positions = dict(self.offsets)
        self.read_committed = transport.conf.processing_guarantee == "exactly_once"

    async def start(self) -> None:
        return None

    async def getmany(self, timeout: float) -> list[MessageT]:
        messages = self._read()
        if not messages:
            await self.broker.wait_for_data(timeout)
            messages = self._read()
        return messages

    def _read(self) -> list[MessageT]:
        out: list[MessageT] = []
        for tp, position in self._positions.items():
            if self.read_committed:
                batch, after = self.broker.read_committed(tp, position, 10_000)
            else:
                batch = self.broker.read(tp, position, 10_000)
                after = position + len(batch)
            self._positions[tp] = after
            out.extend(batch)
        return out

    def highwater(self, tp: TP) -> int | None:
        if self.read_committed:
            return self.broker.stable_offset(tp)
        return self.broker.end_offset(tp)

    def position(self, tp: TP) -> int:
        return self._positions[tp]

    async def stop(self) -> None:
        return None


class MemoryTransport(Transport):
    """``memory://``: one process, no broker to install."""

    driver_name = "memory"

    def __init__(self, url: str, conf: Settings) -> None:
        super().__init__(url, conf)
        self.broker = get_broker(url)
        self.broker.default_partitions = conf.topic_partitions

    def create_consumer(self, callbacks: ConsumerCallbacks) -> MemoryConsumer:
        return MemoryConsumer(self, callbacks)

    def create_producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    def create_reader(self, offsets: Mapping[TP, int]) -> MemoryPartitionReader:
        return MemoryPartitionReader(self, offsets)
