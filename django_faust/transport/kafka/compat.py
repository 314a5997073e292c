"""Every use of aiokafka beyond its documented API, in one place.

aiokafka documents its clients (`aiokafka.AIOKafkaConsumer`,
`aiokafka.AIOKafkaProducer`, `aiokafka.admin.AIOKafkaAdminClient`), its
structs, errors and helpers. The driver needs a little more, listed here
with the reason and the aiokafka versions it was checked against, so that
an upgrade of aiokafka means reading this one module (and running
``tests/unit/test_kafka_compat.py``, which fails if any of it moved)
rather than the whole driver. ``setup.py`` bounds aiokafka below the next
minor version for the same reason.

Checked against: aiokafka 0.14.0 (the bound is ``>=0.14,<0.15``). The
metadata request below uses the version-negotiating request classes of
``aiokafka.protocol``, which older releases do not have.

Nothing else in the package may import from aiokafka's internal modules
(``aiokafka.coordinator``, ``aiokafka.protocol``, ``aiokafka.partitioner``,
``aiokafka.client``) or touch an underscore attribute of an aiokafka object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The consumer-protocol structs and the assignor base class: a custom
# ``partition_assignment_strategy`` (which aiokafka documents as accepted)
# must subclass AbstractPartitionAssignor and speak these structs, but they
# live in aiokafka's internal ``coordinator`` package. 0.14.
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import UnknownTopicOrPartitionError

# Kafka's default partitioner for keyed messages (murmur2 of the key). The
# memory transport uses it so a key lands on the same partition number as on
# a real cluster. ``aiokafka.partitioner`` is not documented. 0.14.
from aiokafka.partitioner import murmur2

# A metadata request that may not auto-create the topic it asks about.
# aiokafka's public lookups (``partitions_for``) allow auto-creation, and
# brokers with ``auto.create.topics.enable`` (Tansu always) would create a
# topic with the broker's default partition count while we only ask. 0.14's
# request class negotiates the version (v4+ carries the flag).
from aiokafka.protocol.metadata import MetadataRequest

if TYPE_CHECKING:
    import aiokafka

__all__ = [
    "AbstractPartitionAssignor",
    "ConsumerProtocolMemberAssignment",
    "ConsumerProtocolMemberMetadata",
    "created_topic_errors",
    "known_partitions",
    "metadata_request",
    "murmur2",
    "partition_for",
    "partitions_without_creating",
    "probe",
    "wait_on_metadata",
]


def partition_for(
    producer: aiokafka.AIOKafkaProducer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None = None,
) -> int:
    """The partition the producer would send to (its configured partitioner).

    Why: the driver builds batches itself (`create_batch`/`send_batch`, one
    broker future per batch) and must group messages by partition first;
    ``send()`` would pick the partition internally. Uses
    ``AIOKafkaProducer._partition(topic, partition, key, value,
    serialized_key, serialized_value)`` (checked on aiokafka 0.14), which also
    checks an explicit ``partition`` exists. The topic's metadata must be
    known (`wait_on_metadata`).
    """
    return int(producer._partition(topic, partition, None, None, key, value))


async def wait_on_metadata(producer: aiokafka.AIOKafkaProducer, topic: str) -> set[int]:
    """Fetch ``topic``'s metadata if not known yet; its partition numbers.

    Why: `partition_for` needs the topic in the producer's cluster metadata,
    which ``send()`` ensures internally before partitioning. Uses
    ``AIOKafkaClient._wait_on_metadata(topic)`` through the producer's
    ``client`` attribute (checked on aiokafka 0.14). Raises aiokafka's
    ``UnknownTopicOrPartitionError`` (after the request timeout) when the
    topic does not exist and cannot be created.
    """
    partitions = await producer.client._wait_on_metadata(topic)
    return set(partitions or ())


def known_partitions(producer: aiokafka.AIOKafkaProducer, topic: str) -> set[int]:
    """``topic``'s partition numbers in the producer's cached metadata.

    Why: looking the count up once per drained round without a request.
    Uses the producer's ``client.cluster`` (a ``ClusterMetadata``; aiokafka
    0.14). Empty when the topic is not (or no longer) known.
    """
    return set(producer.client.cluster.partitions_for_topic(topic) or ())


def metadata_request(topic: str) -> Any:
    """A metadata request for one topic that does not auto-create it."""
    return MetadataRequest([topic], allow_auto_topic_creation=False)


async def partitions_without_creating(
    producer: aiokafka.AIOKafkaProducer, topic: str
) -> set[int]:
    """The partition numbers of ``topic``, or an empty set if it does not exist.

    Why: see `MetadataRequest` above. Sends `metadata_request` with the
    producer's ``client`` (``get_random_node``, ``force_metadata_update``,
    ``send`` of ``AIOKafkaClient``: public names, undocumented; aiokafka
    0.14) and reads the response's ``topics`` as ``to_object()`` returns
    them.
    """
    client = producer.client
    node = client.get_random_node()
    if node is None:
        await client.force_metadata_update()
        node = client.get_random_node()
    response = await client.send(node, metadata_request(topic))
    for info in response.to_object()["topics"]:
        if info["topic"] != topic:
            continue
        if info["error_code"] == UnknownTopicOrPartitionError.errno:
            return set()
        return {p["partition"] for p in info["partitions"]}
    return set()


async def probe(producer: aiokafka.AIOKafkaProducer) -> None:
    """Ask a broker for the metadata of no topic; raise if none answers.

    Why: aiokafka reconnects by itself and says nothing public about being
    connected; the worker's readiness and its one log line per outage need
    to know. Uses the producer's ``client`` (``get_random_node``,
    ``force_metadata_update``, ``send`` of ``AIOKafkaClient``, as
    `partitions_without_creating` does; aiokafka 0.14), so SSL and SASL
    settings apply to the probe too.
    """
    client = producer.client
    node = client.get_random_node()
    if node is None:
        await client.force_metadata_update()
        node = client.get_random_node()
        if node is None:
            raise ConnectionError("no broker known from the bootstrap servers")
    await client.send(node, MetadataRequest([], allow_auto_topic_creation=False))


def created_topic_errors(response: Any) -> list[tuple[str, int, str]]:
    """``(topic, error code, message)`` of an admin ``create_topics`` answer.

    Why: ``AIOKafkaAdminClient.create_topics`` returns the raw protocol
    response rather than a result per topic; its ``topic_errors`` rows are
    ``(topic, code)`` in v0 and ``(topic, code, message)`` from v1 on
    (checked on aiokafka 0.14).
    """
    errors = []
    for name, code, *rest in response.topic_errors:
        errors.append((name, code, rest[0] if rest and rest[0] else ""))
    return errors
