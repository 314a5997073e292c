from __future__ import annotations

import re

import pytest

from django_faust.utils.urls import ParsedURL, parse_url


def test_single_kafka_host_with_port() -> None:
    url = parse_url("kafka://broker.example.com:9093")
    assert url.scheme == "kafka"
    assert url.hosts == [("broker.example.com", 9093)]
    assert (url.host, url.port) == ("broker.example.com", 9093)
    assert url.path == ""
    assert url.query == {}


@pytest.mark.parametrize("scheme", ["kafka", "aiokafka"])
def test_kafka_port_defaults_to_9092(scheme: str) -> None:
    assert parse_url(f"{scheme}://k1").hosts == [("k1", 9092)]


def test_other_schemes_have_no_default_port() -> None:
    assert parse_url("custom://host").hosts == [("host", None)]


@pytest.mark.parametrize(
    "text",
    [
        "kafka://h1:9092;h2:9093;h3",
        "kafka://h1:9092,h2:9093,h3",
        "kafka://h1:9092; h2:9093 ,h3",
    ],
)
def test_multiple_hosts(text: str) -> None:
    assert parse_url(text).hosts == [("h1", 9092), ("h2", 9093), ("h3", 9092)]


def test_kafka_without_hosts_leaves_the_choice_to_the_driver() -> None:
    url = parse_url("kafka://")
    assert url.hosts == []
    assert url.host is None
    assert url.port is None


def test_memory() -> None:
    assert parse_url("memory://") == ParsedURL(scheme="memory")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("rocksdb://", ""),
        ("rocksdb:///var/lib/faust", "/var/lib/faust"),
        ("rocksdb://data/tables", "data/tables"),
        ("rocksdb://data/with%20space", "data/with space"),
    ],
)
def test_rocksdb_path(text: str, path: str) -> None:
    url = parse_url(text)
    assert url.scheme == "rocksdb"
    assert url.hosts == []
    assert url.path == path


def test_query_parameters() -> None:
    url = parse_url("kafka://k1:9092/?client=web&flag")
    assert url.path == "/"
    assert url.query == {"client": "web", "flag": ""}


def test_scheme_is_case_insensitive() -> None:
    assert parse_url("KAFKA://k1").scheme == "kafka"


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_url("  kafka://k1:9092\n").hosts == [("k1", 9092)]


def test_ipv6_hosts() -> None:
    url = parse_url("kafka://[::1]:9093;[fe80::1]")
    assert url.hosts == [("::1", 9093), ("fe80::1", 9092)]
    assert str(url) == "kafka://[::1]:9093;[fe80::1]:9092"


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("kafka://h1,h2:9093", "kafka://h1:9092;h2:9093"),
        ("memory://", "memory://"),
        ("rocksdb:///srv/data", "rocksdb:///srv/data"),
        ("kafka://k/?a=1", "kafka://k:9092/?a=1"),
    ],
)
def test_str_gives_a_normal_form_that_parses_the_same(text: str, normal: str) -> None:
    assert str(parse_url(text)) == normal
    assert parse_url(normal) == parse_url(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must start with a scheme"),
        ("localhost:9092", "must start with a scheme"),
        ("kafka:/k1", "must start with a scheme"),
        ("1kafka://k1", "invalid scheme '1kafka'"),
        ("kaf ka://k1", "invalid scheme"),
        ("kafka://h1;;h2", "empty host"),
        ("kafka://h1;", "empty host"),
        ("kafka://k1:abc", "invalid port 'abc'"),
        ("kafka://k1:", "invalid port ''"),
        ("kafka://k1:0", "outside the range 1-65535"),
        ("kafka://k1:65536", "outside the range 1-65535"),
        ("kafka://k1:9092:9093", "invalid port '9092:9093'"),
        ("kafka://bad host:9092", "invalid host name 'bad host'"),
        ("kafka://user:secret@k1", "user information"),
        ("kafka://[::1", "unclosed '['"),
        ("kafka://[not-ipv6]:9092", "invalid IPv6 address"),
        ("kafka://[::1]9092", "unexpected text"),
        ("kafka://k1#frag", "fragment"),
    ],
)
def test_garbage_raises_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parse_url(text)
    # The message quotes the URL, so the user can find it.
    assert repr(text) in str(info.value)


def test_non_string_raises_type_error() -> None:
    with pytest.raises(TypeError, match="must be a string, not int"):
        parse_url(9092)  # type: ignore[arg-type]
