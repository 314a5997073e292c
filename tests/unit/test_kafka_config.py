"""The Kafka driver's configuration and partition assignor, without a broker."""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from django_faust.testing import make_app
from django_faust.transport import kafka as driver
from django_faust.transport.assignment import assign_partitions, assign_standbys
from django_faust.transport.kafka import (
    PartitionAssignor,
    bootstrap_servers,
    credentials_options,
)
from django_faust.transport.kafka.assignor import USER_DATA_VERSION
from django_faust.transport.kafka.consumer import DEFAULT_MAX_POLL_RECORDS
from django_faust.types import TP

# -- URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("kafka://k1:9093", ["k1:9093"]),
        ("kafka://k1:9093;k2", ["k1:9093", "k2:9092"]),
        ("aiokafka://k1,k2:1234", ["k1:9092", "k2:1234"]),
        ("kafka://[::1]:9093", ["[::1]:9093"]),
        ("kafka://", ["localhost:9092"]),
    ],
)
def test_bootstrap_servers(url: str, servers: list[str]) -> None:
    assert bootstrap_servers(url) == servers


# -- credentials ------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=django-faust-test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_no_credentials_means_plaintext() -> None:
    assert credentials_options(None) == {"security_protocol": "PLAINTEXT"}
    assert credentials_options({}) == {"security_protocol": "PLAINTEXT"}


def test_ssl_with_ca_and_client_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    options = credentials_options(
        {
            "SECURITY_PROTOCOL": "SSL",
            "CAFILE": str(cert),
            "CERTFILE": str(cert),
            "KEYFILE": str(key),
        }
    )
    assert options.keys() == {"security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    subjects = [dict(x[0] for x in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "django-faust-test"} in subjects


def test_ssl_without_cafile_uses_the_system_store() -> None:
    options = credentials_options({"SECURITY_PROTOCOL": "SSL"})
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_missing_certificate_file_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises((FileNotFoundError, ssl.SSLError)):
        credentials_options({"CAFILE": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl(mechanism: str) -> None:
    options = credentials_options(
        {
            "SECURITY_PROTOCOL": "SASL_SSL",
            "SASL_MECHANISM": mechanism,
            "USERNAME": "alice",
            "PASSWORD": "s3cret",
        }
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "alice"
    assert options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_has_no_tls() -> None:
    options = credentials_options(
        {"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "USERNAME": "u", "PASSWORD": "p"}
    )
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }


def test_protocol_defaults_like_the_settings() -> None:
    options = credentials_options({"USERNAME": "u", "PASSWORD": "p"})
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "PLAIN"


# -- client options from settings -------------------------------------------------


async def test_settings_reach_every_client() -> None:
    app = make_app(
        "shop",
        broker="kafka://k1:9093;k2:9094",
        broker_client_id="shop-worker",
        broker_credentials={
            "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SASL_MECHANISM": "SCRAM-SHA-512",
            "USERNAME": "u",
            "PASSWORD": "p",
        },
        broker_session_timeout=6,
        broker_heartbeat_interval=2,
        broker_request_timeout=20,
        broker_max_poll_interval=120,
        consumer_max_fetch_size=2 * 1024**2,
        consumer_auto_offset_reset="latest",
        producer_linger=0.01,
        producer_max_batch_size=65536,
        producer_acks=1,
        producer_compression_type="gzip",
        web_enabled=True,
        web_host="worker-1.internal",
        web_port=6067,
    )
    transport = app.transport
    assert isinstance(transport, driver.AIOKafkaTransport)
    common = {
        "bootstrap_servers": ["k1:9093", "k2:9094"],
        "client_id": "shop-worker",
        "request_timeout_ms": 20000,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }
    assert transport.client_options() == common

    consumer = app.consumer
    assert isinstance(consumer, driver.AIOKafkaConsumer)
    options = consumer.client_options()
    assert options.items() >= common.items()
    assert options["group_id"] == "shop"
    assert options["enable_auto_commit"] is False
    assert options["auto_offset_reset"] == "latest"
    assert options["session_timeout_ms"] == 6000
    assert options["heartbeat_interval_ms"] == 2000
    assert options["max_poll_interval_ms"] == 120000
    assert options["max_poll_records"] == DEFAULT_MAX_POLL_RECORDS
    assert options["max_partition_fetch_bytes"] == 2 * 1024**2
    assert options["isolation_level"] == "read_uncommitted"
    [assignor] = options["partition_assignment_strategy"]
    assert isinstance(assignor, PartitionAssignor)
    assert assignor.url == "http://worker-1.internal:6067/"

    producer = app.producer
    assert isinstance(producer, driver.AIOKafkaProducer)
    options = producer.client_options()
    assert options.items() >= common.items()
    assert options["acks"] == 1
    assert options["linger_ms"] == 10
    assert options["max_batch_size"] == 65536
    assert options["compression_type"] == "gzip"


async def test_max_poll_records_setting() -> None:
    app = make_app(broker="kafka://k1", broker_max_poll_records=100)
    assert app.consumer.client_options()["max_poll_records"] == 100


# -- assignment -------------------------------------------------------------------


def owners(assignment: dict[str, dict[str, list[int]]]) -> dict[TP, str]:
    found: dict[TP, str] = {}
    for member, topics in assignment.items():
        for topic, partitions in topics.items():
            for p in partitions:
                assert TP(topic, p) not in found, "assigned twice"
                found[TP(topic, p)] = member
    return found


def test_equal_partition_counts_are_co_partitioned() -> None:
    subscriptions = {m: {"orders", "orders-changelog", "audit"} for m in "abc"}
    counts = {"orders": 6, "orders-changelog": 6, "audit": 2}
    owner = owners(assign_partitions(subscriptions, counts))
    assert len(owner) == 14
    for p in range(6):
        assert owner[TP("orders", p)] == owner[TP("orders-changelog", p)]
    load = {m: list(owner.values()).count(m) for m in "abc"}
    assert max(load.values()) - min(load.values()) <= 2
    # Round-robin: the six co-partitioned pairs are spread 2/2/2.
    pairs = [owner[TP("orders", p)] for p in range(6)]
    assert sorted(pairs) == ["a", "a", "b", "b", "c", "c"]


def test_assignment_is_deterministic() -> None:
    counts = {"t1": 5, "t2": 3, "t3": 5}
    first = assign_partitions(
        {"m2": {"t1", "t2", "t3"}, "m1": {"t3", "t1", "t2"}}, counts
    )
    second = assign_partitions(
        {"m1": {"t1", "t2", "t3"}, "m2": {"t2", "t3", "t1"}}, counts
    )
    assert first == second


def test_only_subscribers_get_a_topic() -> None:
    assignment = assign_partitions(
        {"a": {"shared", "only-a"}, "b": {"shared"}}, {"shared": 4, "only-a": 4}
    )
    owner = owners(assignment)
    assert {owner[TP("only-a", p)] for p in range(4)} == {"a"}
    # Balanced by load: "a" is busy with its own topic, "b" takes the rest.
    assert {owner[TP("shared", p)] for p in range(4)} == {"b"}


def test_unknown_topics_and_members_without_work() -> None:
    assignment = assign_partitions(
        {"a": {"t", "missing"}, "b": {"t"}, "c": {"t"}}, {"t": 2}
    )
    assert assignment == {"a": {"t": [0]}, "b": {"t": [1]}, "c": {}}


def test_declared_groups_with_different_counts_fall_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscriptions = {m: {"src", "table-changelog", "other"} for m in "ab"}
    counts = {"src": 4, "table-changelog": 8, "other": 4}
    with caplog.at_level(logging.ERROR, logger="django_faust.transport.assignment"):
        owner = owners(
            assign_partitions(subscriptions, counts, [{"src", "table-changelog"}])
        )
    assert len(owner) == 16
    [record] = caplog.records
    message = record.getMessage()
    assert "src" in message and "table-changelog" in message
    assert "src=4" in message and "table-changelog=8" in message


def test_declared_groups_are_the_only_co_partitioned_ones() -> None:
    subscriptions = {m: {"src", "changelog", "x"} for m in "ab"}
    counts = {"src": 4, "changelog": 4, "x": 4}
    owner = owners(assign_partitions(subscriptions, counts, [("src", "changelog")]))
    for p in range(4):
        assert owner[TP("src", p)] == owner[TP("changelog", p)]
    assert len(owner) == 12


#: A table's source and changelog, six partitions, two on each of a, b, c.
TABLE_TOPICS = {"src", "src-changelog"}
TABLE_COUNTS = {"src": 6, "src-changelog": 6}
SETTLED = {
    "a": {"src": [0, 1], "src-changelog": [0, 1]},
    "b": {"src": [2, 3], "src-changelog": [2, 3]},
    "c": {"src": [4, 5], "src-changelog": [4, 5]},
}


def test_a_rebalance_moves_only_what_the_balance_needs() -> None:
    topics, counts, before = TABLE_TOPICS, TABLE_COUNTS, SETTLED
    same = assign_partitions(dict.fromkeys("abc", topics), counts, previous=before)
    assert same == before
    # A fourth member takes one partition (with its changelog) from one
    # member; nothing else moves.
    after = owners(
        assign_partitions(dict.fromkeys("abcd", topics), counts, previous=before)
    )
    moved = {tp for tp, m in after.items() if m != owners(before)[tp]}
    assert len(moved) == 2 and {tp.partition for tp in moved} == {5}
    assert {after[TP("src", p)] for p in range(6)} == set("abcd")


def test_partitions_of_a_member_that_left_go_to_their_warm_copies() -> None:
    topics, counts, before = TABLE_TOPICS, TABLE_COUNTS, SETTLED
    # b keeps a standby copy of a's partition 1, c of a's partition 0.
    warm = {"b": {"src-changelog": [1]}, "c": {"src-changelog": [0]}}
    owner = owners(
        assign_partitions(
            dict.fromkeys("bc", topics), counts, previous=before, warm=warm
        )
    )
    assert owner[TP("src", 1)] == owner[TP("src-changelog", 1)] == "b"
    assert owner[TP("src", 0)] == owner[TP("src-changelog", 0)] == "c"
    # Without the copies, round-robin order would have swapped them.
    cold = owners(
        assign_partitions(dict.fromkeys("bc", topics), counts, previous=before)
    )
    assert cold[TP("src", 0)] == "b"


def test_standbys_stay_on_members_that_have_a_copy() -> None:
    active = {"a": {"log": [0, 1]}, "b": {}, "c": {}}
    fresh = assign_standbys(active, {"log"}, replicas=1)
    assert fresh == {"a": {}, "b": {"log": [0]}, "c": {"log": [1]}}
    warm = {"c": {"log": [0]}, "b": {"log": [1]}}
    kept = assign_standbys(active, {"log"}, replicas=1, warm=warm)
    assert kept == {"a": {}, "b": {"log": [1]}, "c": {"log": [0]}}


def test_the_kafka_assignor_is_sticky_across_rebalances() -> None:
    cluster = FakeCluster({"t": 6})
    assignors = {m: PartitionAssignor(f"http://{m}:6066/") for m in ("m1", "m2")}
    rebalance(assignors, {"t"}, cluster)
    first = {m: a.group.partitions[m] for m, a in assignors.items()}
    assert first["m1"] == {TP("t", p) for p in (0, 2, 4)}
    assignors["m3"] = PartitionAssignor("http://m3:6066/")
    rebalance(assignors, {"t"}, cluster)
    group = assignors["m1"].group.partitions
    # The newcomer took one partition from each; the others stayed.
    assert group["m1"] < first["m1"] and group["m2"] < first["m2"]
    assert len(group["m3"]) == 2


class FakeCluster:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        n = self.counts.get(topic)
        return None if n is None else set(range(n))


def rebalance(
    assignors: dict[str, PartitionAssignor], topics: set[str], cluster: Any
) -> None:
    """What the group protocol does: metadata in, leader assigns, all learn."""
    members = {
        member: ConsumerProtocolMemberMetadata.decode(
            assignor.metadata(topics).encode()
        )
        for member, assignor in assignors.items()
    }
    leader = assignors[sorted(assignors)[-1]]
    result = leader.assign(cluster, members)
    for member, assignment in result.items():
        decoded = ConsumerProtocolMemberAssignment.decode(assignment.encode())
        assignors[member].on_assignment(decoded)


def test_members_learn_leader_urls_and_partitions() -> None:
    assignors = {
        "member-1": PartitionAssignor("http://w1:6066/"),
        "member-2": PartitionAssignor("http://w2:6066/"),
    }
    rebalance(assignors, {"a", "b"}, FakeCluster({"a": 4, "b": 4}))
    groups = {member: assignor.group for member, assignor in assignors.items()}
    assert [g.is_leader for g in groups.values()] == [False, True]
    for member, group in groups.items():
        assert group.member_id == member
        assert group.leader_id == "member-2"
        assert group.urls == {
            "member-1": "http://w1:6066/",
            "member-2": "http://w2:6066/",
        }
        assert group.partitions == groups["member-1"].partitions
        for tp in group.partitions[member]:
            assert group.url_for(tp) == group.urls[member]
    everything = groups["member-1"].partitions.values()
    assert frozenset().union(*everything) == {TP(t, p) for t in "ab" for p in range(4)}


def test_metadata_is_versioned_json() -> None:
    metadata = PartitionAssignor("http://w:1/").metadata({"b", "a"})
    assert metadata.subscription == ["a", "b"]
    data = json.loads(metadata.user_data)
    assert data["version"] == USER_DATA_VERSION
    assert data["url"] == "http://w:1/"


def test_foreign_user_data_is_tolerated(caplog: pytest.LogCaptureFixture) -> None:
    assignor = PartitionAssignor("http://w:1/")
    members = {
        "us": ConsumerProtocolMemberMetadata.decode(assignor.metadata({"t"}).encode()),
        "them": ConsumerProtocolMemberMetadata(0, ["t"], b"\x00garbage"),
    }
    result = assignor.assign(FakeCluster({"t": 2}), members)
    assignor.on_assignment(result["us"])
    assert assignor.group.is_leader
    assert assignor.group.urls == {"us": "http://w:1/"}
    assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [], b"not json"))
    assert not assignor.group.is_leader
    assert assignor.group.partitions == {}
