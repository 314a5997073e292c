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
from ..base import Producer
from . import compat
from .config import ms

if TYPE_CHECKING:
    from .transport import AIOKafkaTransport

__all__ = ["BUFFER_HIGH_WATER", "AIOKafkaProducer"]

logger = logging.getLogger(__name__)


#: A `send_soon` message waiting in the local buffer: topic, key, value,
#: partition, timestamp in ms, headers, and the future handed to the caller.
#: A plain tuple: one is made per message.
_Pending = tuple[
    str,
    "bytes | None",
    "bytes | None",
    "int | None",
    "int | None",
    "list[tuple[str, bytes]] | None",
    "asyncio.Future[RecordMetadata]",
]


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
        self._buffer: deque[_Pending] = deque()
        self._buffer_ready = asyncio.Event()
        #: Set each time the drainer takes the buffer over (see `send`).
        self._buffer_taken = asyncio.Event()
        self._drain_lock = asyncio.Lock()
        self._declared: set[str] = set()
        self._known_topics: set[str] = set()
        self._partition_cache: dict[str, tuple[int, dict[bytes, int]]] = {}
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
        while self._buffer:
            topic, *_, fut = self._buffer.popleft()
            self._fail(topic, fut, RuntimeError("The producer stopped before sending."))
        producer, self._producer = self._producer, None
        admin, self._admin = self._admin, None
        if producer is not None:
            await producer.stop()
        if admin is not None:
            await admin.close()

    # -- sending ---------------------------------------------------------------

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
        """Like `send_soon`, but waits while too much is buffered.

        Everything goes through the one local buffer, so per-partition order
        holds across `send` and `send_soon`, and both get batched. Below
        `BUFFER_HIGH_WATER` this returns without suspending; above it, it
        waits for the background drainer to take the buffer over (see
        `_make_room`), not for the broker.
        """
        fut = self.send_soon(
            topic, key, value, partition=partition, timestamp=timestamp, headers=headers
        )
        if len(self._buffer) >= BUFFER_HIGH_WATER:
            await self._make_room()
        return fut

    async def _make_room(self) -> None:
        """Wait until the buffer is below `BUFFER_HIGH_WATER` again.

        Draining inline here would hold the sending agent through aiokafka's
        wait for each partition's previous request (a round trip per
        partition); handing the buffer to the drainer task lets the agent go
        on while that batch is in flight. The buffer still holds at most
        about twice the high water: the drainer takes a round only once the
        previous one is handed to aiokafka, and until then senders wait
        here. Stopping, or with no drainer running, drain inline.
        """
        buffer = self._buffer
        taken = self._buffer_taken
        while len(buffer) >= BUFFER_HIGH_WATER:
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
    ) -> asyncio.Future[RecordMetadata]:
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self._buffer.append(
            (
                topic,
                key,
                value,
                partition,
                None if timestamp is None else ms(timestamp),
                list(headers) if headers else None,
                fut,
            )
        )
        if not self._buffer_ready.is_set():
            self._buffer_ready.set()
        return fut

    @Producer.task
    async def _sender(self) -> None:
        """Hand `send_soon` messages to aiokafka, in the order they came."""
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

    async def _drain(self) -> None:
        """Move the local buffer into aiokafka, one batch per partition.

        Building `create_batch()` batches ourselves gives one broker future
        per batch instead of one per message; each caller's future is
        resolved from its batch (base offset + position in the batch).
        Messages keep their order within a partition. One drainer at a time.
        """
        async with self._drain_lock:
            buffer = self._buffer
            client = self._client()
            while buffer:
                items = list(buffer)
                buffer.clear()
                self._buffer_taken.set()
                groups: dict[tuple[str, int], list[_Pending]] = {}
                # Partition counts, looked up once per topic and round.
                counts: dict[str, int] = {}
                for position, item in enumerate(items):
                    topic, key, value, partition = item[0], item[1], item[2], item[3]
                    try:
                        count = counts.get(topic)
                        if count is None:
                            count = counts[topic] = await self._partition_count(
                                client, topic
                            )
                        if partition is None and key is not None:
                            partition = self._partition_for_key(
                                client, topic, key, count
                            )
                        else:
                            partition = compat.partition_for(
                                client, topic, key, value, partition
                            )
                    except asyncio.CancelledError:
                        # Nothing of this round was handed over yet except the
                        # groups below: put everything back, in order.
                        buffer.extendleft(reversed(items[position:]))
                        for group in reversed(list(groups.values())):
                            buffer.extendleft(reversed(group))
                        raise
                    except Exception as exc:
                        self._fail(topic, item[6], exc)
                        continue
                    groups.setdefault((topic, partition), []).append(item)
                for (topic, partition), group in groups.items():
                    await self._send_group(client, topic, partition, group)

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

    def _partition_for_key(
        self, client: aiokafka.AIOKafkaProducer, topic: str, key: bytes, count: int
    ) -> int:
        """Kafka's partition for a key, remembered per topic and size.

        Keys repeat (accounts, users), and the partitioner is a pure-Python
        murmur2 per message; the cache is dropped when it grows large or the
        topic's partition count (``count``) changes.
        """
        cache = self._partition_cache.get(topic)
        if cache is None or cache[0] != count or len(cache[1]) > 100_000:
            cache = self._partition_cache[topic] = (count, {})
        known = cache[1]
        partition = known.get(key)
        if partition is None:
            partition = known[key] = compat.partition_for(client, topic, key, None)
        return partition

    async def _send_group(
        self,
        client: aiokafka.AIOKafkaProducer,
        topic: str,
        partition: int,
        group: list[_Pending],
    ) -> None:
        batch = client.create_batch()
        members: list[tuple[asyncio.Future[RecordMetadata], int, int | None]] = []
        limit = self.conf.producer_max_request_size
        for item in group:
            _, key, value, _, timestamp_ms, headers, fut = item
            size = len(key or b"") + len(value or b"")
            if headers:
                size += sum(len(n) + len(v or b"") for n, v in headers)
            if size > limit:
                # What aiokafka's send() checks per message: refuse it here.
                self._fail(
                    topic,
                    fut,
                    MessageSizeTooLargeError(
                        f"The message is {size} bytes, more than "
                        f"PRODUCER_MAX_REQUEST_SIZE ({limit})."
                    ),
                )
                continue
            timestamp = None if timestamp_ms is None else timestamp_ms / 1000
            meta = batch.append(
                key=key, value=value, timestamp=timestamp, headers=headers or []
            )
            if meta is None and members:
                await self._ship(client, batch, topic, partition, members)
                batch, members = client.create_batch(), []
                meta = batch.append(
                    key=key, value=value, timestamp=timestamp, headers=headers or []
                )
            if meta is None:
                self._fail(
                    topic,
                    fut,
                    MessageSizeTooLargeError(
                        f"a message of {len(value or b'') + len(key or b'')} bytes "
                        "does not fit in a batch (PRODUCER_MAX_BATCH_SIZE)"
                    ),
                )
                batch = client.create_batch()
                continue
            members.append((fut, meta.offset, timestamp_ms))
        if members:
            await self._ship(client, batch, topic, partition, members)

    async def _ship(
        self,
        client: aiokafka.AIOKafkaProducer,
        batch: Any,
        topic: str,
        partition: int,
        members: list[tuple[asyncio.Future[RecordMetadata], int, int | None]],
    ) -> None:
        batch.close()
        try:
            delivery = await client.send_batch(batch, topic, partition=partition)
        except Exception as exc:
            self._lost(exc)
            for fut, _, _ in members:
                self._fail(topic, fut, exc)
            return
        delivery.add_done_callback(
            functools.partial(self._batch_delivered, topic, partition, members)
        )

    def _batch_delivered(
        self,
        topic: str,
        partition: int,
        members: list[tuple[asyncio.Future[RecordMetadata], int, int | None]],
        delivery: asyncio.Future[Any],
    ) -> None:
        """Resolve every caller's future of a delivered (or failed) batch."""
        if delivery.cancelled():
            for fut, _, _ in members:
                if not fut.done():
                    fut.cancel()
            return
        exc = delivery.exception()
        if exc is not None:
            self._lost(exc)
            for fut, _, _ in members:
                self._fail(topic, fut, exc)
            return
        base = delivery.result().offset
        for fut, relative, timestamp_ms in members:
            if not fut.done():
                fut.set_result(
                    RecordMetadata(topic, partition, base + relative, timestamp_ms)
                )

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
        self, topic: str, fut: asyncio.Future[RecordMetadata], exc: BaseException
    ) -> None:
        logger.error("Sending to topic %r failed: %r", topic, exc)
        if not fut.done():
            fut.set_exception(exc)

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
