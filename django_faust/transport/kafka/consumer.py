"""The consumer group member of the ``kafka://`` transport.

It only translates: the engine's primitives (fetch many, commit, subscribe,
pause) become aiokafka calls, and aiokafka's rebalance callbacks become the
engine's. What to commit and when is decided in `..base.Consumer`, for
every driver alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import aiokafka
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition

from ...types import TP, MessageT
from ..base import Consumer, ConsumerCallbacks
from .assignor import GroupAssignment, PartitionAssignor
from .config import ms

if TYPE_CHECKING:
    from .transport import AIOKafkaTransport

__all__ = ["DEFAULT_MAX_POLL_RECORDS", "AIOKafkaConsumer"]

logger = logging.getLogger(__name__)

#: Records one fetch hands to the engine when BROKER_MAX_POLL_RECORDS is unset.
DEFAULT_MAX_POLL_RECORDS = 2000


class _RebalanceListener(ConsumerRebalanceListener):
    """Hands aiokafka's rebalance callbacks to the engine's consumer."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.consumer._revoked({TP(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.consumer._assigned({TP(tp.topic, tp.partition) for tp in assigned})


class AIOKafkaConsumer(Consumer):
    """A member of the app's consumer group (``group_id`` is the app id).

    Offsets are never auto-committed: the engine commits what was acked.
    The assignor learns the standby topics and co-partitioned groups from
    the ``callbacks``, like everything else the consumer needs of the app.
    """

    def __init__(
        self, transport: AIOKafkaTransport, callbacks: ConsumerCallbacks
    ) -> None:
        super().__init__(transport, callbacks)
        conf = self.conf
        self.group_id = conf.id
        self.assignor = PartitionAssignor(
            # The URL the router forwards to; none when this worker serves no web.
            f"http://{conf.web_host}:{conf.web_port}/" if conf.web_enabled else None,
            callbacks.copartitioned,
            callbacks.standby_topics,
        )
        self.max_poll_records = conf.broker_max_poll_records or DEFAULT_MAX_POLL_RECORDS
        self._consumer: aiokafka.AIOKafkaConsumer | None = None
        self._listener = _RebalanceListener(self)
        self._topics: frozenset[str] = frozenset()
        self._subscribe_lock = asyncio.Lock()
        self._committed_now: dict[TP, int | None] | None = None
        #: Clear while a rebalance is handled; bumped by every assignment.
        self._ready = asyncio.Event()
        self._ready.set()
        self._generation = 0

    def _client(self) -> aiokafka.AIOKafkaConsumer:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError(
                f"App {self.conf.id}: the Kafka consumer is not started."
            )
        return consumer

    # -- lifecycle -------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """The arguments of the aiokafka consumer, from the app's settings."""
        conf = self.conf
        transport = cast("AIOKafkaTransport", self.transport)
        return {
            **transport.client_options(),
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": conf.consumer_auto_offset_reset,
            "partition_assignment_strategy": (self.assignor,),
            "session_timeout_ms": ms(conf.broker_session_timeout),
            "heartbeat_interval_ms": ms(conf.broker_heartbeat_interval),
            "max_poll_interval_ms": ms(conf.broker_max_poll_interval),
            "max_poll_records": self.max_poll_records,
            "max_partition_fetch_bytes": conf.consumer_max_fetch_size,
            "isolation_level": transport.isolation_level,
        }

    async def on_start(self) -> None:
        self._consumer = aiokafka.AIOKafkaConsumer(**self.client_options())
        await self._consumer.start()
        await super().on_start()

    async def on_shutdown(self) -> None:
        # After the fetcher and committer tasks are gone (the app committed
        # already): leave the group, so others take over at once.
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    # -- subscriptions and rebalancing -----------------------------------------

    async def subscribe(self, topics: Iterable[str]) -> None:
        topics = frozenset(topics)
        async with self._subscribe_lock:
            consumer = self._consumer
            if topics == self._topics or consumer is None or self.should_stop:
                # Unchanged, or stopping (agents unsubscribe as they stop).
                return
            # Changing the subscription drops aiokafka's current assignment at
            # once, after which its offsets can no longer be committed: give
            # the partitions up (commit what is acked) first, as a rebalance
            # would.
            await self._revoked(self.assignment())
            self._topics = topics
            if topics:
                consumer.subscribe(topics=sorted(topics), listener=self._listener)
            else:
                consumer.unsubscribe()
                self._ready.set()  # no assignment will follow: this is it
                await self.on_partitions_assigned(set())

    async def _revoked(self, revoked: set[TP]) -> None:
        # From here until the new assignment is recovered, nothing fetched is
        # handed out (see getmany).
        self._ready.clear()
        # Only what the engine still holds: `subscribe` may have let go first.
        await self.on_partitions_revoked({tp for tp in revoked if tp in self.trackers})

    async def _assigned(self, assigned: set[TP]) -> None:
        self._ready.clear()
        self._generation += 1
        try:
            await self._assign(assigned)
        finally:
            self._ready.set()

    async def _assign(self, assigned: set[TP]) -> None:
        consumer = self._client()
        tps = sorted(assigned)
        # One request per partition (the only public API), sent concurrently.
        answers = await asyncio.gather(
            *(consumer.committed(TopicPartition(tp.topic, tp.partition)) for tp in tps),
            return_exceptions=True,
        )
        committed: dict[TP, int | None] = {}
        for tp, answer in zip(tps, answers, strict=True):
            if isinstance(answer, BaseException):
                # aiokafka finds the position itself; the tracker just starts
                # without a known commit, which only costs a redundant commit.
                logger.warning("Could not read committed offset of %s: %r", tp, answer)
                committed[tp] = None
                continue
            committed[tp] = answer
            # No committed offset: aiokafka applies CONSUMER_AUTO_OFFSET_RESET.
            if answer is not None:
                consumer.seek(TopicPartition(tp.topic, tp.partition), answer)
        self._committed_now = committed
        try:
            await self.on_partitions_assigned(assigned)
        finally:
            self._committed_now = None

    def is_leader(self) -> bool:
        return self._consumer is not None and self.assignor.group.is_leader

    def group_assignment(self) -> GroupAssignment:
        return self.assignor.group

    def standby_assignment(self) -> set[TP]:
        group = self.assignor.group
        if group.member_id is None:
            return set()
        return set(group.standbys.get(group.member_id, frozenset()))

    @property
    def group(self) -> GroupAssignment:
        """Members, their web URLs and partitions, as of the last rebalance."""
        return self.assignor.group

    # -- fetching and committing -----------------------------------------------

    async def getmany(self, timeout: float) -> Mapping[TP, Sequence[MessageT]]:
        """Fetched batches, never while a rebalance is being handled.

        aiokafka runs the rebalance listener in its coordinator task and may
        return records from ``getmany`` meanwhile. Records fetched across a
        rebalance (it started or finished during the call) are given back:
        the positions go back to the committed offsets the new assignment
        starts from, and nothing is handed out until the assignment,
        including table recovery, is complete.
        """
        consumer = self._consumer
        if consumer is None:
            await asyncio.sleep(timeout)
            return {}
        if not self._ready.is_set():
            await self._ready.wait()
        generation = self._generation
        records = await self._fetch(consumer, timeout)
        if generation != self._generation or not self._ready.is_set():
            await self._ready.wait()
            await self._rewind(records)
            return {}
        return records

    async def _rewind(self, records: Mapping[TP, Sequence[MessageT]]) -> None:
        consumer = self._client()
        assigned = consumer.assignment()
        for tp, batch in records.items():
            ktp = TopicPartition(tp.topic, tp.partition)
            if ktp not in assigned or not batch:
                continue
            tracker = self.trackers.get(tp)
            committed = tracker.committed if tracker is not None else None
            if committed is not None:
                consumer.seek(ktp, committed)
            elif self.conf.consumer_auto_offset_reset == "earliest":
                await consumer.seek_to_beginning(ktp)
            else:
                consumer.seek(ktp, batch[0].offset)

    async def _fetch(
        self, consumer: aiokafka.AIOKafkaConsumer, timeout: float
    ) -> Mapping[TP, Sequence[MessageT]]:
        try:
            records = await consumer.getmany(
                timeout_ms=ms(timeout), max_records=self.max_poll_records
            )
        except ConsumerStoppedError:
            return {}
        except KafkaError as exc:
            if not exc.retriable:
                raise
            if self.transport.broker_available:
                logger.warning("Fetching from Kafka failed, retrying: %r", exc)
            await asyncio.sleep(min(timeout, 1.0))
            return {}
        if not records:
            return {}
        return {TP(tp.topic, tp.partition): batch for tp, batch in records.items()}

    async def _commit_offsets(self, offsets: Mapping[TP, int]) -> None:
        await self._client().commit(
            {TopicPartition(tp.topic, tp.partition): o for tp, o in offsets.items()}
        )

    async def committed(self, tp: TP) -> int | None:
        if self._committed_now is not None and tp in self._committed_now:
            return self._committed_now[tp]
        offset = await self._client().committed(TopicPartition(tp.topic, tp.partition))
        return cast("int | None", offset)

    # -- partitions ------------------------------------------------------------

    def assignment(self) -> set[TP]:
        consumer = self._consumer
        if consumer is None:
            return set()
        return {TP(tp.topic, tp.partition) for tp in consumer.assignment()}

    def highwater(self, tp: TP) -> int | None:
        """The log end offset from the last fetch response (None before one).

        Not ``end_offsets()``: this is what the broker said the partition's
        high watermark was when it last sent us data.
        """
        consumer = self._consumer
        if consumer is None:
            return None
        try:
            return cast(
                "int | None", consumer.highwater(TopicPartition(tp.topic, tp.partition))
            )
        except (AssertionError, IllegalStateError, AttributeError):
            return None  # not (or no longer) assigned

    def pause(self, *tps: TP) -> None:
        self._set_paused(tps, paused=True)

    def resume(self, *tps: TP) -> None:
        self._set_paused(tps, paused=False)

    def _set_paused(self, tps: Iterable[TP], *, paused: bool) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        parts = [
            TopicPartition(tp.topic, tp.partition)
            for tp in tps
            if (tp.topic, tp.partition) in assigned
        ]
        if parts:
            (consumer.pause if paused else consumer.resume)(*parts)
