"""The ``kafka://`` transport, on aiokafka.

The driver only translates: the engine's primitives (fetch many, commit,
subscribe, pause, send, create a topic) become aiokafka calls, and
aiokafka's rebalance callbacks become the engine's. What to commit and when
is decided in `base.Consumer`, for every driver alike.

Three things are ours rather than aiokafka's defaults:

* `PartitionAssignor`, the group's partition assignor: it keeps partition
  *p* of topics with the same partition count on one worker (a table's
  changelog partition stays with its source partition) and tells every
  member which worker owns what and at which web URL.
* `send_soon` appends to a local buffer that one background task hands to
  aiokafka, so sync code running in the loop can send without a task per
  message.
* Topics are created with the admin client, never altered.

aiokafka's records pass through untouched: ``ConsumerRecord`` has the
attributes the engine reads (its ``timestamp`` is in milliseconds).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import aiokafka
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import (
    ConsumerStoppedError,
    IllegalStateError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition

from ..exceptions import ImproperlyConfigured
from ..types import TP, MessageT, RecordMetadata
from ..utils.urls import parse_url
from .assignment import assign_partitions, assign_standbys, by_topic
from .base import Consumer, PartitionReader, Producer, Transport

if TYPE_CHECKING:
    from aiokafka.cluster import ClusterMetadata

    from ..app.base import App

__all__ = [
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "AIOKafkaTransport",
    "GroupAssignment",
    "PartitionAssignor",
    "assign_partitions",
    "bootstrap_servers",
    "credentials_options",
]

logger = logging.getLogger(__name__)

#: Records one fetch hands to the engine when BROKER_MAX_POLL_RECORDS is unset.
DEFAULT_MAX_POLL_RECORDS = 2000
#: Version of the JSON our assignor puts in the group protocol's user data.
USER_DATA_VERSION = 1


# -- connection settings -------------------------------------------------------


def bootstrap_servers(url: str) -> list[str]:
    """``kafka://k1:9092;k2`` as aiokafka's ``["k1:9092", "k2:9092"]``."""
    parsed = parse_url(url)
    servers = []
    for host, port in parsed.hosts:
        name = f"[{host}]" if ":" in host else host
        servers.append(f"{name}:{port or 9092}")
    return servers or ["localhost:9092"]


def credentials_options(credentials: Mapping[str, str] | None) -> dict[str, Any]:
    """aiokafka's security arguments for a BROKER_CREDENTIALS dict.

    TLS uses an `ssl.SSLContext` built by aiokafka's ``create_ssl_context``
    (the system's CA certificates unless CAFILE is given; CERTFILE/KEYFILE
    for client certificates). SASL passes the user name and password, which
    aiokafka uses for PLAIN and SCRAM alike.
    """
    if not credentials:
        return {"security_protocol": "PLAINTEXT"}
    protocol = credentials.get("SECURITY_PROTOCOL") or (
        "SASL_SSL" if "USERNAME" in credentials else "SSL"
    )
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=credentials.get("CAFILE"),
            certfile=credentials.get("CERTFILE"),
            keyfile=credentials.get("KEYFILE"),
        )
    if protocol.startswith("SASL_"):
        try:
            options["sasl_plain_username"] = credentials["USERNAME"]
            options["sasl_plain_password"] = credentials["PASSWORD"]
        except KeyError as exc:
            raise ImproperlyConfigured(
                f'FAUST["BROKER_CREDENTIALS"][{exc.args[0]!r}] is required when '
                f"SECURITY_PROTOCOL is {protocol!r}."
            ) from None
        options["sasl_mechanism"] = credentials.get("SASL_MECHANISM") or "PLAIN"
    return options


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


# -- partition assignment ------------------------------------------------------


@dataclass(frozen=True)
class GroupAssignment:
    """What the last rebalance told this member about the whole group.

    ``urls`` maps member id -> web URL, ``partitions`` member id -> the
    partitions it owns: enough for the router to send a request for a key
    to the worker that holds it, and for `is_leader`.
    """

    member_id: str | None = None
    leader_id: str | None = None
    urls: Mapping[str, str] = field(default_factory=dict)
    partitions: Mapping[str, frozenset[TP]] = field(default_factory=dict)
    #: member id -> changelog partitions it keeps a standby copy of.
    standbys: Mapping[str, frozenset[TP]] = field(default_factory=dict)

    @property
    def is_leader(self) -> bool:
        return self.member_id is not None and self.member_id == self.leader_id

    @functools.cached_property
    def owners(self) -> dict[TP, str]:
        """Partition -> the member id that owns it."""
        return {tp: m for m, tps in self.partitions.items() for tp in tps}

    def url_for(self, tp: TP) -> str | None:
        """The web URL of the worker that owns ``tp``, if known."""
        owner = self.owners.get(tp)
        return None if owner is None else self.urls.get(owner)


class PartitionAssignor(AbstractPartitionAssignor):
    """The group's assignor: co-partitioned assignment, and who is where.

    Member metadata carries, as JSON in the user data::

        {"version": 1, "url": "http://host:6066/", "token": "<random hex>",
         "owned": {topic: [p, ...]}, "standby": {topic: [p, ...]}}

    ``owned`` and ``standby`` are what the member was given at the last
    rebalance, so that the assignment can be sticky (see
    `~django_faust.transport.assignment`). The elected leader recognises its
    own member id by its token, runs `assign_partitions`, and sends every
    member in its assignment's user data::

        {"version": 1, "member": "<that member's id>", "leader": "<id>",
         "urls": {member: url}, "assignments": {member: {topic: [p, ...]}}}

    Readers accept any version >= 1 and read only the keys they know, so a
    later version may add keys; removing or changing one needs a new version.
    """

    name = "django-faust"
    version = 0  # of Kafka's consumer protocol structs, not of our JSON

    def __init__(
        self,
        url: str,
        copartitioned: Callable[[], Iterable[Collection[str]] | None] | None = None,
        standby: Callable[[], tuple[Collection[str], int]] | None = None,
    ) -> None:
        self.url = url
        self.copartitioned = copartitioned
        self.standby = standby
        self.token = uuid.uuid4().hex
        self.group = GroupAssignment()

    def metadata(  # type: ignore[override]
        self, topics: Iterable[str]
    ) -> ConsumerProtocolMemberMetadata:
        me = self.group.member_id or ""
        user_data = {
            "version": USER_DATA_VERSION,
            "url": self.url,
            "token": self.token,
            "owned": by_topic(self.group.partitions.get(me)),
            "standby": by_topic(self.group.standbys.get(me)),
        }
        return ConsumerProtocolMemberMetadata(
            self.version, sorted(topics), _dump(user_data)
        )

    def assign(  # type: ignore[override]
        self,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        subscriptions = {m: set(meta.subscription) for m, meta in members.items()}
        infos = {
            m: _load(meta.user_data, "member metadata") for m, meta in members.items()
        }
        counts: dict[str, int] = {}
        for topic in sorted({t for topics in subscriptions.values() for t in topics}):
            partitions = cluster.partitions_for_topic(topic)
            if partitions is None:
                logger.warning(
                    "No partition metadata for topic %r: not assigned", topic
                )
                continue
            counts[topic] = len(partitions)
        declared = self.copartitioned() if self.copartitioned is not None else None
        owned = {m: _partitions_in(info.get("owned")) for m, info in infos.items()}
        # Table data a member has: what it owned, and its standby copies.
        warm: dict[str, dict[str, list[int]]] = {}
        for m, info in infos.items():
            warm[m] = {topic: list(parts) for topic, parts in owned[m].items()}
            for topic, parts in _partitions_in(info.get("standby")).items():
                warm[m].setdefault(topic, []).extend(parts)
        table = assign_partitions(
            subscriptions, counts, declared, previous=owned, warm=warm
        )
        standby_topics, replicas = (
            self.standby() if self.standby is not None else ((), 0)
        )
        standbys = assign_standbys(table, standby_topics, replicas, warm=warm)

        leaders = [m for m in sorted(members) if infos[m].get("token") == self.token]
        leader = leaders[0] if leaders else None
        if leader is None:
            logger.warning(
                "Assigning partitions, but did not find myself among %s",
                sorted(members),
            )
        urls = {
            m: info["url"]
            for m, info in infos.items()
            if isinstance(info.get("url"), str)
        }
        shared = {
            "version": USER_DATA_VERSION,
            "leader": leader,
            "urls": urls,
            "assignments": table,
            "standbys": standbys,
        }
        Assignment = ConsumerProtocolMemberAssignment.Assignment
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version,
                [
                    Assignment(topic, parts)
                    for topic, parts in sorted(table[member].items())
                ],
                _dump({**shared, "member": member}),
            )
            for member in members
        }

    def on_assignment(  # type: ignore[override]
        self, assignment: ConsumerProtocolMemberAssignment
    ) -> None:
        info = _load(assignment.user_data, "assignment")
        tables = info.get("assignments")
        partitions: dict[str, frozenset[TP]] = {}
        if isinstance(tables, dict):
            for member, topics in tables.items():
                partitions[member] = frozenset(
                    TP(topic, p) for topic, parts in topics.items() for p in parts
                )
        standbys: dict[str, frozenset[TP]] = {}
        copies = info.get("standbys")
        if isinstance(copies, dict):
            for member, topics in copies.items():
                standbys[member] = frozenset(
                    TP(topic, p) for topic, parts in topics.items() for p in parts
                )
        urls = info.get("urls")
        self.group = GroupAssignment(
            member_id=info.get("member"),
            leader_id=info.get("leader"),
            urls=dict(urls) if isinstance(urls, dict) else {},
            partitions=partitions,
            standbys=standbys,
        )


def _partitions_in(data: Any) -> dict[str, list[int]]:
    """Read back `_by_topic`'s form; anything malformed counts as nothing."""
    if not isinstance(data, dict):
        return {}
    return {
        topic: [p for p in parts if isinstance(p, int)]
        for topic, parts in data.items()
        if isinstance(topic, str) and isinstance(parts, list)
    }


def _dump(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _load(data: bytes | None, what: str) -> dict[str, Any]:
    """Decode our user data; anything unreadable counts as empty."""
    if not data:
        return {}
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        logger.warning(
            "Ignoring %s user data that is not our JSON: %r", what, data[:80]
        )
        return {}
    if not isinstance(info, dict) or not isinstance(info.get("version"), int):
        logger.warning("Ignoring %s user data without a version: %r", what, data[:80])
        return {}
    if info["version"] < USER_DATA_VERSION:
        return {}
    return info


# -- consumer ------------------------------------------------------------------


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
    """

    def __init__(self, transport: AIOKafkaTransport) -> None:
        super().__init__(transport)
        conf = self.app.conf
        self.group_id = conf.id
        self.assignor = PartitionAssignor(
            f"http://{conf.web_host}:{conf.web_port}/",
            getattr(self.app, "assignor_copartitioned_groups", None),
            self.app.tables.standby_topics,
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
            raise RuntimeError(f"{self.app.label}: the Kafka consumer is not started.")
        return consumer

    # -- lifecycle -------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """The arguments of the aiokafka consumer, from the app's settings."""
        conf = self.app.conf
        transport = cast(AIOKafkaTransport, self.transport)
        return {
            **transport.client_options(),
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": conf.consumer_auto_offset_reset,
            "partition_assignment_strategy": (self.assignor,),
            "session_timeout_ms": _ms(conf.broker_session_timeout),
            "heartbeat_interval_ms": _ms(conf.broker_heartbeat_interval),
            "max_poll_interval_ms": _ms(conf.broker_max_poll_interval),
            "max_poll_records": self.max_poll_records,
            "max_partition_fetch_bytes": conf.consumer_max_fetch_size,
            "isolation_level": "read_uncommitted",
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
                self._ready.set()  # no assignment will follow

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
            elif self.app.conf.consumer_auto_offset_reset == "earliest":
                await consumer.seek_to_beginning(ktp)
            else:
                consumer.seek(ktp, batch[0].offset)

    async def _fetch(
        self, consumer: aiokafka.AIOKafkaConsumer, timeout: float
    ) -> Mapping[TP, Sequence[MessageT]]:
        try:
            records = await consumer.getmany(
                timeout_ms=_ms(timeout), max_records=self.max_poll_records
            )
        except ConsumerStoppedError:
            return {}
        except KafkaError as exc:
            if not exc.retriable:
                raise
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


# -- producer ------------------------------------------------------------------


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
        self._drain_lock = asyncio.Lock()
        self._declared: set[str] = set()
        self._known_topics: set[str] = set()
        self._partition_cache: dict[str, tuple[int, dict[bytes, int]]] = {}

    def _client(self) -> aiokafka.AIOKafkaProducer:
        producer = self._producer
        if producer is None:
            raise RuntimeError(f"{self.app.label}: the Kafka producer is not started.")
        return producer

    # -- lifecycle -------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """The arguments of the aiokafka producer, from the app's settings."""
        conf = self.app.conf
        transport = cast(AIOKafkaTransport, self.transport)
        return {
            **transport.client_options(),
            "acks": conf.producer_acks,
            "compression_type": conf.producer_compression_type,
            "max_batch_size": conf.producer_max_batch_size,
            "max_request_size": conf.producer_max_request_size,
            "linger_ms": _ms(conf.producer_linger),
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
        holds across `send` and `send_soon`, and both get batched.
        """
        fut = self.send_soon(
            topic, key, value, partition=partition, timestamp=timestamp, headers=headers
        )
        if len(self._buffer) >= BUFFER_HIGH_WATER:
            await self._drain()
        return fut

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
                None if timestamp is None else _ms(timestamp),
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
        while not self.should_stop:
            await ready.wait()
            ready.clear()
            await self._drain()

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
                            partition = client._partition(
                                topic, partition, None, None, key, value
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
            await client.client._wait_on_metadata(topic)
            self._known_topics.add(topic)
        partitions = client._metadata.partitions_for_topic(topic)
        if not partitions:
            partitions = await client.client._wait_on_metadata(topic)
        return len(partitions or ())

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
            partition = known[key] = client._partition(
                topic, None, None, None, key, None
            )
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
        limit = self.app.conf.producer_max_request_size
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
            for fut, _, _ in members:
                self._fail(topic, fut, exc)
            return
        base = delivery.result().offset
        for fut, relative, timestamp_ms in members:
            if not fut.done():
                fut.set_result(
                    RecordMetadata(topic, partition, base + relative, timestamp_ms)
                )

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
            configs.setdefault("retention.ms", str(_ms(retention)))
        admin = await self._admin_client()
        response = await admin.create_topics(
            [NewTopic(topic, partitions, replication, topic_configs=configs)]
        )
        for name, code, *rest in response.topic_errors:
            if code == 0:
                logger.info(
                    "Created topic %r (partitions=%d, replication=%d, config=%r)",
                    name,
                    partitions,
                    replication,
                    configs,
                )
            elif code != TopicAlreadyExistsError.errno:
                message = rest[0] if rest and rest[0] else ""
                raise for_code(code)(f"Could not create topic {name!r}: {message}")
        self._declared.add(topic)

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._admin_lock:
            if self._admin is None:
                transport = cast(AIOKafkaTransport, self.transport)
                admin = AIOKafkaAdminClient(**transport.client_options())
                await admin.start()
                self._admin = admin
            return self._admin

    async def partitions_for(self, topic: str) -> set[int]:
        # A metadata request that may not auto-create the topic (aiokafka's
        # own lookups allow it, and Tansu always auto-creates).
        client = self._client().client
        node = client.get_random_node()
        if node is None:
            await client.force_metadata_update()
            node = client.get_random_node()
        request = MetadataRequest([topic], allow_auto_topic_creation=False)
        response = await client.send(node, request)
        for info in response.to_object()["topics"]:
            if info["topic"] != topic:
                continue
            if info["error_code"] == UnknownTopicOrPartitionError.errno:
                return set()
            return {p["partition"] for p in info["partitions"]}
        return set()


# -- transport -----------------------------------------------------------------


class AIOKafkaPartitionReader(PartitionReader):
    """Reads chosen partitions from chosen offsets with a group-less consumer.

    "Caught up" is decided with the fetch responses' high watermark, which
    is right on every broker (the test broker's ``end_offsets()`` is not).
    """

    def __init__(self, transport: AIOKafkaTransport, offsets: Mapping[TP, int]) -> None:
        super().__init__(transport, offsets)
        self._consumer: aiokafka.AIOKafkaConsumer | None = None
        self._positions = dict(self.offsets)

    async def start(self) -> None:
        transport = cast(AIOKafkaTransport, self.transport)
        consumer = aiokafka.AIOKafkaConsumer(
            **transport.client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=DEFAULT_MAX_POLL_RECORDS,
        )
        await consumer.start()
        tps = {
            TopicPartition(tp.topic, tp.partition): o for tp, o in self.offsets.items()
        }
        consumer.assign(list(tps))
        for tp, offset in tps.items():
            consumer.seek(tp, offset)
        self._consumer = consumer

    def _client(self) -> aiokafka.AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("The partition reader is not started.")
        return self._consumer

    async def getmany(self, timeout: float) -> list[MessageT]:
        records = await self._client().getmany(timeout_ms=int(timeout * 1000))
        out: list[MessageT] = []
        for ktp, messages in records.items():
            if messages:
                self._positions[TP(ktp.topic, ktp.partition)] = messages[-1].offset + 1
                out.extend(messages)
        return out

    def highwater(self, tp: TP) -> int | None:
        return self._client().highwater(TopicPartition(tp.topic, tp.partition))

    def position(self, tp: TP) -> int:
        return self._positions[tp]

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


class AIOKafkaTransport(Transport):
    """``kafka://host:port;host:port`` (also ``aiokafka://``)."""

    driver_name = "aiokafka"
    default_port = 9092

    def __init__(self, url: str, app: App) -> None:
        super().__init__(url, app)
        self.bootstrap_servers = bootstrap_servers(url)
        self._security: dict[str, Any] | None = None

    def client_options(self) -> dict[str, Any]:
        """Arguments every aiokafka client of this app takes."""
        conf = self.app.conf
        if self._security is None:
            # Built once: the SSL context reads certificate files.
            self._security = credentials_options(conf.broker_credentials)
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": conf.broker_client_id,
            "request_timeout_ms": _ms(conf.broker_request_timeout),
            **self._security,
        }

    def create_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(self)

    def create_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(self)

    def create_reader(self, offsets: Mapping[TP, int]) -> AIOKafkaPartitionReader:
        return AIOKafkaPartitionReader(self, offsets)
