"""The producer of the ``kafka://`` transport, and topic creation.

`send_soon` appends to a local buffer that one background task hands to
aiokafka in batches it builds itself, so sync code running in the loop can
send without a task per message. Topics are created with the admin client,
never altered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import aiokafka
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    for_code,
)

from ...types import RecordMetadata
from ..base import Producer, SendReport
from . import compat
from .config import ms

if TYPE_CHECKING:
    from .transport import AIOKafkaTransport

__all__ = ["BUFFER_HIGH_WATER", "AIOKafkaProducer"]

logger = logging.getLogger(__name__)


#: A message accepted before its topic's partitions were known: topic, key,
#: value, partition, timestamp in ms, headers, the caller's future, and the
#: caller's report. A plain tuple: one is made per such message.
_Unrouted = tuple[
    str,
    "bytes | None",
    "bytes | None",
    "int | None",
    "int | None",
    "list[tuple[str, bytes]]",
    "asyncio.Future[RecordMetadata]",
    "SendReport | None",
]

#: A message in an open batch: the caller's future, its offset relative to
#: the batch's first, and its timestamp in ms (None: the broker's).
_Member = tuple["asyncio.Future[RecordMetadata]", int, "int | None"]

#: The headers of a message without any, as aiokafka's builder wants them.
_NO_HEADERS: list[tuple[str, bytes]] = []

#: Partitions remembered per topic for keys, before the cache starts over.
KEY_CACHE_SIZE = 100_000


class _OpenBatch:
    """The aiokafka batch of one partition that sends are appended to.

    The partition is chosen when a message is accepted, so the message is
    encoded into its batch at once (one pass, as a hand-written aiokafka
    loop does). `reports` counts the members per `SendReport`, so that the
    sensors hear of a delivered batch once.
    """

    __slots__ = ("builder", "members", "opened", "partition", "reports", "topic")

    def __init__(self, topic: str, partition: int, builder: Any) -> None:
        self.topic = topic
        self.partition = partition
        self.builder = builder
        self.members: list[_Member] = []
        #: When its first message was accepted (the latency reported).
        self.opened = time.monotonic()
        self.reports: dict[SendReport, int] = {}


#: Buffered messages at which `send` waits for the buffer to be handed over.
BUFFER_HIGH_WATER = 10_000

#: Seconds between two probes of the broker, and the most one may take.
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 3.0


class AIOKafkaProducer(Producer):
    """Sends through one aiokafka producer; creates topics with the admin client.

    Delivery futures resolve to `RecordMetadata` (``topic``, ``partition``,
    ``offset``, and ``timestamp`` in milliseconds).
    """

    def __init__(self, transport: AIOKafkaTransport) -> None:
        super().__init__(transport)
        self._producer: aiokafka.AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._admin_lock = asyncio.Lock()
        #: Messages waiting for their topic's metadata, in order (see
        #: `send_soon`); while any wait, every message waits behind them.
        self._unrouted: deque[_Unrouted] = deque()
        #: The batch each partition's messages are appended to now.
        self._open: dict[tuple[str, int], _OpenBatch] = {}
        #: Batches that filled up, oldest first, not handed to aiokafka yet.
        self._full: list[_OpenBatch] = []
        #: Messages accepted and not yet taken by the drainer.
        self._pending = 0
        self._buffer_ready = asyncio.Event()
        #: Set each time the drainer takes the buffer over (see `send`).
        self._buffer_taken = asyncio.Event()
        self._drain_lock = asyncio.Lock()
        self._declared: set[str] = set()
        self._known_topics: set[str] = set()
        #: Partition counts of the topics messages are routed for at once.
        self._counts: dict[str, int] = {}
        self._key_partitions: dict[str, dict[bytes, int]] = {}
        #: The partition keyless messages of a topic go to until the
        #: drainer next takes the batches over (sticky, as Kafka's own).
        self._sticky: dict[str, int] = {}
        self._size_limit = self.conf.producer_max_request_size
        self._sender_running = False

    def _client(self) -> aiokafka.AIOKafkaProducer:
        producer = self._producer
        if producer is None:
            raise RuntimeError(
                f"App {self.conf.id}: the Kafka producer is not started."
            )
        return producer

    # -- lifecycle -------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """The arguments of the aiokafka producer, from the app's settings."""
        conf = self.conf
        transport = cast("AIOKafkaTransport", self.transport)
        return {
            **transport.client_options(),
            "acks": conf.producer_acks,
            "compression_type": conf.producer_compression_type,
            "max_batch_size": conf.producer_max_batch_size,
            "max_request_size": conf.producer_max_request_size,
            "linger_ms": ms(conf.producer_linger),
        }

    async def on_start(self) -> None:
        self._producer = aiokafka.AIOKafkaProducer(**self.client_options())
        await self._producer.start()

    async def on_stop(self) -> None:
        await self.flush()

    async def on_shutdown(self) -> None:
        # The drain task is gone: fail what arrived after the last flush
        # rather than leave its senders waiting forever.
        stopped = RuntimeError("The producer stopped before sending.")
        while self._unrouted:
            topic, *_, fut, report = self._unrouted.popleft()
            self._fail(topic, fut, stopped, report)
        for batch in self._take():
            self._batch_failed(batch, stopped)
        producer, self._producer = self._producer, None
        admin, self._admin = self._admin, None
        if producer is not None:
            await producer.stop()
        if admin is not None:
            await admin.close()

    # -- sending ---------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Messages accepted and not yet taken over by the drainer."""
        return self._pending

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
        """Like `send_soon`, but waits while too much is buffered.

        Everything goes through the same per-partition batches, so
        per-partition order holds across `send` and `send_soon`. Below
        `BUFFER_HIGH_WATER` this returns without suspending; above it, it
        waits for the background drainer to take the batches over (see
        `_make_room`), not for the broker.
        """
        fut = self.send_soon(
            topic,
            key,
            value,
            partition=partition,
            timestamp=timestamp,
            headers=headers,
            report=report,
        )
        if self._pending >= BUFFER_HIGH_WATER:
            await self._make_room()
        return fut

    async def _make_room(self) -> None:
        """Wait until fewer than `BUFFER_HIGH_WATER` messages are buffered.

        Draining inline here would hold the sending agent through aiokafka's
        wait for each partition's previous request (a round trip per
        partition); handing the batches to the drainer task lets the agent
        go on while they are in flight. The buffer still holds at most
        about twice the high water: the drainer takes a round only once the
        previous one is handed to aiokafka, and until then senders wait
        here. Stopping, or with no drainer running, drain inline.
        """
        taken = self._buffer_taken
        while self._pending >= BUFFER_HIGH_WATER:
            if self.should_stop or not self._sender_running:
                await self._drain()
                return
            taken.clear()
            self._buffer_ready.set()
            await taken.wait()

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
        """Append the message to its partition's batch; the drainer ships it.

        The partition is chosen here when the topic's partitions are known
        (and nothing waits for metadata ahead of it); otherwise the message
        waits, in order, until the drainer fetched the metadata.
        """
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        timestamp_ms = None if timestamp is None else ms(timestamp)
        client = self._producer
        count = self._counts.get(topic)
        if client is None or count is None or self._unrouted:
            self._unrouted.append(
                (
                    topic,
                    key,
                    value,
                    partition,
                    timestamp_ms,
                    list(headers),
                    fut,
                    report,
                )
            )
            self._pending += 1
        else:
            try:
                chosen = self._route(client, topic, count, key, partition)
            except Exception as exc:
                self._fail(topic, fut, exc, report)
            else:
                self._append(
                    client,
                    topic,
                    chosen,
                    key,
                    value,
                    timestamp_ms,
                    headers,
                    fut,
                    report,
                )
        if not self._buffer_ready.is_set():
            self._buffer_ready.set()
        return fut

    def _route(
        self,
        client: aiokafka.AIOKafkaProducer,
        topic: str,
        count: int,
        key: bytes | None,
        partition: int | None,
    ) -> int:
        """The partition of a message to ``topic``, which has ``count``.

        Keys use the producer's partitioner (Kafka's murmur2), remembered
        per key: keys repeat, and murmur2 is pure Python. Keyless messages
        stick to one partition, picked by the partitioner (at random among
        those with a leader), until its batch is full or the drainer takes
        the batches over: whole batches instead of one message per
        partition each.
        """
        if partition is not None:
            if not 0 <= partition < count:
                raise ValueError(
                    f"Topic {topic!r} has no partition {partition} (it has {count})."
                )
            return partition
        if key is None:
            sticky = self._sticky.get(topic)
            if sticky is None:
                sticky = self._sticky[topic] = compat.partition_for(
                    client, topic, None, None
                )
            return sticky
        known = self._key_partitions.get(topic)
        if known is None:
            known = self._key_partitions[topic] = {}
        chosen = known.get(key)
        if chosen is None:
            if len(known) >= KEY_CACHE_SIZE:
                known.clear()
            chosen = known[key] = compat.partition_for(client, topic, key, None)
        return chosen

    def _append(
        self,
        client: aiokafka.AIOKafkaProducer,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: Sequence[tuple[str, bytes]],
        fut: asyncio.Future[RecordMetadata],
        report: SendReport | None,
    ) -> None:
        """Encode a message into its partition's open batch.

        A full batch waits in `_full` for the drainer and a new one takes
        its place. A message larger than PRODUCER_MAX_REQUEST_SIZE, or than
        an empty batch, fails its future (what aiokafka's ``send()`` checks).
        """
        limit = self._size_limit
        size = len(key or b"") + len(value or b"")
        if headers:
            size += sum(len(n) + len(v or b"") for n, v in headers)
        if size > limit:
            self._fail(
                topic,
                fut,
                MessageSizeTooLargeError(
                    f"The message is {size} bytes, more than "
                    f"PRODUCER_MAX_REQUEST_SIZE ({limit})."
                ),
                report,
            )
            return
        # aiokafka's record builder takes a list, nothing else (and only
        # reads it: the empty one can be shared).
        pairs = list(headers) if headers else _NO_HEADERS
        where = (topic, partition)
        batch = self._open.get(where)
        if batch is None:
            batch = self._open[where] = _OpenBatch(
                topic, partition, client.create_batch()
            )
        timestamp = None if timestamp_ms is None else timestamp_ms / 1000
        try:
            meta = batch.builder.append(
                key=key, value=value, timestamp=timestamp, headers=pairs
            )
            if meta is None and batch.members:
                self._full.append(batch)
                if self._sticky.get(topic) == partition:
                    # Keyless messages move on with each full batch: aiokafka
                    # takes a partition's next batch only once the previous
                    # one is on its way, so filling one partition waits.
                    del self._sticky[topic]
                batch = self._open[where] = _OpenBatch(
                    topic, partition, client.create_batch()
                )
                meta = batch.builder.append(
                    key=key, value=value, timestamp=timestamp, headers=pairs
                )
        except Exception as exc:  # not bytes, say: this message alone fails
            if not batch.members:
                del self._open[where]
            self._fail(topic, fut, exc, report)
            return
        if meta is None:
            # The (now closed) empty batch cannot take anything else.
            del self._open[where]
            self._fail(
                topic,
                fut,
                MessageSizeTooLargeError(
                    f"a message of {size} bytes does not fit in a batch "
                    "(PRODUCER_MAX_BATCH_SIZE)"
                ),
                report,
            )
            return
        batch.members.append((fut, meta.offset, timestamp_ms))
        if report is not None:
            reports = batch.reports
            reports[report] = reports.get(report, 0) + 1
        self._pending += 1

    @Producer.task
    async def _sender(self) -> None:
        """Hand the accepted messages to aiokafka, in the order they came."""
        ready = self._buffer_ready
        self._sender_running = True
        try:
            while not self.should_stop:
                await ready.wait()
                ready.clear()
                await self._drain()
        finally:
            self._sender_running = False
            self._buffer_taken.set()  # senders waiting for room drain inline

    def _has_pending(self) -> bool:
        return bool(self._unrouted or self._open or self._full)

    async def _drain(self) -> None:
        """Hand every batch to aiokafka, routing what waited for metadata.

        Building `create_batch()` batches ourselves gives one broker future
        per batch instead of one per message; each caller's future is
        resolved from its batch (base offset + position in the batch).
        Messages keep their order within a partition. One drainer at a time.
        """
        async with self._drain_lock:
            client = self._client()
            while self._has_pending():
                self._refresh_counts(client)
                await self._route_waiting(client)
                await self._ship_all(client, self._take())

    def _take(self) -> list[_OpenBatch]:
        """Every filled and open batch, oldest first; senders start new ones."""
        batches = self._full
        batches.extend(self._open.values())
        self._full = []
        self._open = {}
        self._sticky.clear()
        self._pending = len(self._unrouted)
        self._buffer_taken.set()
        return batches

    def _refresh_counts(self, client: aiokafka.AIOKafkaProducer) -> None:
        """Follow partition count changes in the producer's metadata.

        Once per round and topic: a topic that grew gets its keys routed
        anew; one that vanished from the metadata routes through the
        drainer again (which fetches it).
        """
        for topic, count in list(self._counts.items()):
            now = len(compat.known_partitions(client, topic))
            if now == count:
                continue
            self._key_partitions.pop(topic, None)
            self._sticky.pop(topic, None)
            if now:
                self._counts[topic] = now
            else:
                del self._counts[topic]

    async def _route_waiting(self, client: aiokafka.AIOKafkaProducer) -> None:
        """Route the messages that waited for their topic's metadata.

        In order, and before anything sent after them: senders append here
        as long as anything waits. A message whose topic cannot be found
        fails alone. Cancelled while fetching, the rest keeps waiting.
        """
        waiting = self._unrouted
        while waiting:
            topic, key, value, partition, timestamp_ms, headers, fut, report = waiting[
                0
            ]
            count = self._counts.get(topic)
            if count is None:
                try:
                    count = await self._partition_count(client, topic)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    waiting.popleft()
                    self._pending -= 1
                    self._fail(topic, fut, exc, report)
                    continue
                self._counts[topic] = count
                continue  # more may wait now, behind the first
            waiting.popleft()
            self._pending -= 1
            try:
                chosen = self._route(client, topic, count, key, partition)
            except Exception as exc:
                self._fail(topic, fut, exc, report)
                continue
            self._append(
                client, topic, chosen, key, value, timestamp_ms, headers, fut, report
            )

    async def _partition_count(
        self, client: aiokafka.AIOKafkaProducer, topic: str
    ) -> int:
        """How many partitions ``topic`` has, fetching its metadata if needed."""
        if topic not in self._known_topics:
            await compat.wait_on_metadata(client, topic)
            self._known_topics.add(topic)
        partitions = compat.known_partitions(client, topic)
        if not partitions:
            partitions = await compat.wait_on_metadata(client, topic)
        return len(partitions)

    async def _ship_all(
        self, client: aiokafka.AIOKafkaProducer, batches: list[_OpenBatch]
    ) -> None:
        """Hand ``batches`` to aiokafka in order.

        Cancelled, the batches not handed over yet go back first in line.
        """
        for index, batch in enumerate(batches):
            try:
                await self._ship(client, batch)
            except asyncio.CancelledError:
                rest = batches[index:]
                self._full[:0] = rest
                self._pending += sum(len(b.members) for b in rest)
                raise

    async def _ship(self, client: aiokafka.AIOKafkaProducer, batch: _OpenBatch) -> None:
        batch.builder.close()
        try:
            delivery = await client.send_batch(
                batch.builder, batch.topic, partition=batch.partition
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lost(exc)
            self._batch_failed(batch, exc)
            return
        delivery.add_done_callback(functools.partial(self._batch_delivered, batch))

    def _batch_delivered(
        self, batch: _OpenBatch, delivery: asyncio.Future[Any]
    ) -> None:
        """Resolve every caller's future of a delivered (or failed) batch."""
        if delivery.cancelled():
            for fut, _, _ in batch.members:
                if not fut.done():
                    fut.cancel()
            return
        exc = delivery.exception()
        if exc is not None:
            self._lost(exc)
            self._batch_failed(batch, exc)
            return
        topic, partition = batch.topic, batch.partition
        delivered = delivery.result()
        if delivered is None:  # PRODUCER_ACKS=0: sent, offsets unknown
            for fut, _, timestamp_ms in batch.members:
                if not fut.done():
                    fut.set_result(RecordMetadata(topic, partition, -1, timestamp_ms))
        else:
            base = delivered.offset
            for fut, relative, timestamp_ms in batch.members:
                if not fut.done():
                    fut.set_result(
                        RecordMetadata(topic, partition, base + relative, timestamp_ms)
                    )
        self._report(batch, None)

    def _batch_failed(self, batch: _OpenBatch, exc: BaseException) -> None:
        """Fail every caller's future of ``batch`` (logged once for all)."""
        logger.error(
            "Sending %d message(s) to topic %r failed: %r",
            len(batch.members),
            batch.topic,
            exc,
        )
        for fut, _, _ in batch.members:
            if not fut.done():
                fut.set_exception(exc)
        self._report(batch, exc)

    @staticmethod
    def _report(batch: _OpenBatch, error: BaseException | None) -> None:
        if not batch.reports:
            return
        seconds = time.monotonic() - batch.opened
        for report, count in batch.reports.items():
            try:
                report(count, seconds, error)
            except Exception:
                logger.exception("Reporting sends to %r failed", batch.topic)

    def _lost(self, exc: BaseException) -> None:
        """The broker did not take a batch: no commit may pass it."""
        if self.delivery_failure is None:
            self.delivery_failure = exc

    @Producer.task
    async def _watch_broker(self) -> None:
        """Probe the broker every second; the transport logs each change once."""
        transport = self.transport
        timeout = min(PROBE_TIMEOUT, self.conf.broker_request_timeout)
        while not self.should_stop:
            await self.sleep(PROBE_INTERVAL)
            producer = self._producer
            if producer is None or self.should_stop:
                continue
            try:
                await asyncio.wait_for(compat.probe(producer), timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                transport.broker_state(False, repr(exc))
            else:
                transport.broker_state(True)

    def _fail(
        self,
        topic: str,
        fut: asyncio.Future[RecordMetadata],
        exc: BaseException,
        report: SendReport | None = None,
    ) -> None:
        logger.error("Sending to topic %r failed: %r", topic, exc)
        if not fut.done():
            fut.set_exception(exc)
        if report is not None:
            report(1, 0.0, exc)

    async def flush(self) -> None:
        if self._producer is None:
            return
        await self._drain()
        await self._producer.flush()

    # -- topics ----------------------------------------------------------------

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
        if topic in self._declared:
            return
        configs = {str(k): str(v) for k, v in (config or {}).items()}
        policies = [
            policy
            for policy, wanted in (("compact", compacting), ("delete", deleting))
            if wanted
        ]
        if policies:
            configs.setdefault("cleanup.policy", ",".join(policies))
        if retention is not None:
            configs.setdefault("retention.ms", str(ms(retention)))
        admin = await self._admin_client()
        response = await admin.create_topics(
            [NewTopic(topic, partitions, replication, topic_configs=configs)]
        )
        for name, code, message in compat.created_topic_errors(response):
            if code == 0:
                logger.info(
                    "Created topic %r (partitions=%d, replication=%d, config=%r)",
                    name,
                    partitions,
                    replication,
                    configs,
                )
            elif code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"Could not create topic {name!r}: {message}")
        self._declared.add(topic)

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._admin_lock:
            if self._admin is None:
                transport = cast("AIOKafkaTransport", self.transport)
                admin = AIOKafkaAdminClient(**transport.client_options())
                await admin.start()
                self._admin = admin
            return self._admin

    async def partitions_for(self, topic: str) -> set[int]:
        # Never auto-creates the topic (see compat.partitions_without_creating).
        return await compat.partitions_without_creating(self._client(), topic)
