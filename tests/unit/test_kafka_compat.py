"""aiokafka's private API, as `django_faust.transport.kafka.compat` uses it.

Each test pins one thing the driver needs from aiokafka beyond its
documented API. When aiokafka moves or changes one of them, the test that
fails names it; the fix goes in ``compat.py`` (and the version bound in
``setup.py``), nowhere else.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import aiokafka
import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import CreateTopicsResponse_v0, CreateTopicsResponse_v1
from aiokafka.protocol.metadata import MetadataRequest_v4, MetadataResponse_v0

from django_faust.transport.kafka import PartitionAssignor, compat
from django_faust.transport.memory import partition_for_key

PACKAGE = Path(compat.__file__).resolve().parents[2]


def test_the_producer_partitioner_takes_the_arguments_compat_passes() -> None:
    params = list(inspect.signature(aiokafka.AIOKafkaProducer._partition).parameters)
    assert params == [
        "self",
        "topic",
        "partition",
        "key",
        "value",
        "serialized_key",
        "serialized_value",
    ]


def test_the_client_waits_on_metadata_of_one_topic() -> None:
    wait = AIOKafkaClient._wait_on_metadata
    assert inspect.iscoroutinefunction(wait)
    assert list(inspect.signature(wait).parameters) == ["self", "topic"]
    for name in ("get_random_node", "force_metadata_update", "send"):
        assert callable(getattr(AIOKafkaClient, name)), name


def _metadata(partitions: int) -> MetadataResponse_v0:
    return MetadataResponse_v0(
        brokers=[(0, "127.0.0.1", 9092)],
        topics=[(0, "orders", [(0, p, 0, [0], [0]) for p in range(partitions)])],
    )


async def test_partition_for_is_kafkas_partition_of_the_key() -> None:
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    try:
        producer.client.cluster.update_metadata(_metadata(6))
        assert compat.known_partitions(producer, "orders") == set(range(6))
        assert compat.known_partitions(producer, "unknown") == set()
        for key in (b"alice", b"bob", b"21", b"a-little-bit-long-string"):
            expected = partition_for_key(key, 6)
            assert compat.partition_for(producer, "orders", key, None) == expected
        assert compat.partition_for(producer, "orders", b"k", b"v", partition=4) == 4
        with pytest.raises(AssertionError):
            compat.partition_for(producer, "orders", b"k", b"v", partition=9)
    finally:
        await producer.stop()


def test_murmur2_is_kafkas_hash() -> None:
    # Kafka's own test vectors (its Utils.murmur2), as unsigned 32-bit ints.
    assert compat.murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert compat.murmur2(b"foobar") == -790332482 & 0xFFFFFFFF
    assert compat.murmur2(b"abc") == 479470107


def test_the_metadata_request_never_creates_the_topic() -> None:
    request = compat.metadata_request("orders").build(MetadataRequest_v4)
    assert request.topics == ["orders"]
    assert request.allow_auto_topic_creation is False


def test_created_topic_errors_reads_every_response_version() -> None:
    v0 = CreateTopicsResponse_v0(topic_errors=[("a", 0), ("b", 36)])
    assert compat.created_topic_errors(v0) == [("a", 0, ""), ("b", 36, "")]
    v1 = CreateTopicsResponse_v1(topic_errors=[("a", 0, None), ("b", 36, "exists")])
    assert compat.created_topic_errors(v1) == [("a", 0, ""), ("b", 36, "exists")]


def test_the_assignor_speaks_the_consumer_protocol_structs() -> None:
    assert issubclass(PartitionAssignor, compat.AbstractPartitionAssignor)
    metadata = PartitionAssignor("http://w:1/").metadata({"t"})
    assert isinstance(metadata, compat.ConsumerProtocolMemberMetadata)
    decoded = compat.ConsumerProtocolMemberMetadata.decode(metadata.encode())
    assert decoded.subscription == ["t"]
    Assignment = compat.ConsumerProtocolMemberAssignment.Assignment
    assignment = compat.ConsumerProtocolMemberAssignment(0, [Assignment("t", [1])], b"")
    assert assignment.partitions() == [aiokafka.TopicPartition("t", 1)]


def test_no_other_module_touches_aiokafka_internals() -> None:
    """compat.py is the one place: the driver's other modules stay public."""
    internal = (
        "aiokafka.coordinator",
        "aiokafka.protocol",
        "aiokafka.partitioner",
        "aiokafka.client",
    )
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "compat.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                internal
            ):
                offenders.append(f"{path.name}: from {node.module}")
            if isinstance(node, ast.Attribute) and node.attr in {
                "_partition",
                "_metadata",
                "_wait_on_metadata",
            }:
                offenders.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert not offenders, offenders
