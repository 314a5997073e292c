from __future__ import annotations

import datetime
import pickle
import socket
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from pytest_django import Settings as SettingsWrapper

from django_faust.conf import (
    SETTINGS,
    Problem,
    Settings,
    default_app_id,
    find_problems,
    reference_rst,
)
from django_faust.exceptions import ImproperlyConfigured
from django_faust.utils.urls import parse_url

# The documented defaults, written out rather than read from SETTINGS, so that
# an accidental change to a default fails here.
DEFAULTS: dict[str, Any] = {
    "VERSION": 1,
    "BROKER": "memory://",
    "BROKER_CREDENTIALS": None,
    "BROKER_SESSION_TIMEOUT": 10.0,
    "BROKER_HEARTBEAT_INTERVAL": 3.0,
    "BROKER_REQUEST_TIMEOUT": 30.0,
    "BROKER_MAX_POLL_INTERVAL": 1000.0,
    "BROKER_MAX_POLL_RECORDS": None,
    "BROKER_COMMIT_EVERY": 10000,
    "COMMIT_INTERVAL": 2.8,
    "STORE": "memory://",
    "DATADIR": "{appid}-data",
    "TOPIC_PARTITIONS": 8,
    "TOPIC_REPLICATION_FACTOR": 1,
    "TOPIC_ALLOW_DECLARE": True,
    "KEY_SERIALIZER": "raw",
    "VALUE_SERIALIZER": "json",
    "PROCESSING_GUARANTEE": "at_least_once",
    "STREAM_BUFFER_MAXSIZE": 4096,
    "STREAM_WAIT_EMPTY": False,
    "POISON_POLICY": "dead_letter",
    "WORKER_SHUTDOWN_TIMEOUT": 30.0,
    "CONSUMER_AUTO_OFFSET_RESET": "earliest",
    "CONSUMER_MAX_FETCH_SIZE": 1024**2,
    "PRODUCER_LINGER": 0.005,
    "PRODUCER_MAX_BATCH_SIZE": 16384,
    "PRODUCER_MAX_REQUEST_SIZE": 1_000_000,
    "PRODUCER_ACKS": -1,
    "PRODUCER_COMPRESSION_TYPE": None,
    "PRODUCER_SEND_TIMEOUT": 30.0,
    "CLIENT_START_TIMEOUT": 60.0,
    "CLIENT_STOP_TIMEOUT": 30.0,
    "TABLE_STANDBY_REPLICAS": 1,
    "TABLE_CLEANUP_INTERVAL": 30.0,
    "AGENT_SUPERVISOR": "mode.OneForOneSupervisor",
    "AUTODISCOVER": True,
    "AUTODISCOVER_MODULES": ["agents", "tables", "views"],
    "WEB_ENABLED": True,
    "WEB_PORT": 6066,
    "WEB_BIND": "127.0.0.1",
    "WEB_HOST": "localhost",
    "WEB_EXPOSE_STATS": None,
    "WEB_EXPOSE_METRICS": None,
    "WEB_EXPOSE_HEALTH": True,
    "WEB_EXPOSE_TABLES": None,
    "WEB_PERMISSION": None,
    "TIMEZONE": datetime.UTC,
}
# Defaults computed from other things, tested separately.
COMPUTED = {"APP_ID", "BROKER_CLIENT_ID", "DEAD_LETTER_TOPIC"}


def problems_of(mapping: object) -> list[str]:
    return [str(problem) for problem in find_problems(mapping)]


# Defaults -------------------------------------------------------------------


def test_every_setting_has_a_tested_default_and_help() -> None:
    assert set(SETTINGS) == set(DEFAULTS) | COMPUTED
    for key, setting in SETTINGS.items():
        assert setting.key == key
        assert setting.attr == key.lower()
        assert setting.help.strip(), key


@pytest.mark.parametrize(("key", "expected"), DEFAULTS.items())
def test_defaults(key: str, expected: Any) -> None:
    value = getattr(Settings(id="shop"), key.lower())
    assert value == expected
    assert type(value) is type(expected)


def test_computed_defaults() -> None:
    conf = Settings(id="shop")
    assert conf.app_id == "shop"
    assert conf.id == "shop"
    assert conf.dead_letter_topic == "shop-dead-letters"
    assert conf.broker_client_id.startswith("django-faust-")
    assert conf.broker_client_id != "django-faust-"


def test_app_id_outside_django_defaults_to_django_faust() -> None:
    assert Settings().app_id == "django-faust"


def test_mutable_defaults_are_not_shared() -> None:
    first, second = Settings(), Settings()
    first.autodiscover_modules.append("signals")
    assert second.autodiscover_modules == ["agents", "tables", "views"]
    assert SETTINGS["AUTODISCOVER_MODULES"].get_default() == [
        "agents",
        "tables",
        "views",
    ]


# Django ------------------------------------------------------------------------


def test_from_django_without_faust_uses_defaults(settings: SettingsWrapper) -> None:
    del settings.FAUST
    settings.ROOT_URLCONF = "shop.urls"
    conf = Settings.from_django()
    assert conf.app_id == "shop"
    assert conf.broker == "memory://"
    assert conf.topic_partitions == 8


def test_from_django_with_faust_none_uses_defaults(settings: SettingsWrapper) -> None:
    settings.FAUST = None
    settings.ROOT_URLCONF = "shop.urls"
    assert Settings.from_django() == Settings(id="shop", base_dir=_base_dir())


def _base_dir() -> Path | None:
    from django.conf import settings

    base_dir = getattr(settings, "BASE_DIR", None)
    return Path(base_dir) if base_dir is not None else None


def test_from_django_reads_faust(settings: SettingsWrapper) -> None:
    settings.FAUST = {
        "APP_ID": "shop",
        "BROKER": "kafka://k1:9092;k2:9092",
        "STORE": "rocksdb://",
        "TOPIC_PARTITIONS": 12,
    }
    conf = Settings.from_django()
    assert conf.app_id == "shop"
    assert conf.broker == "kafka://k1:9092;k2:9092"
    assert conf.broker_scheme == "kafka"
    assert conf.store == "rocksdb://"
    assert conf.topic_partitions == 12


def test_from_django_reflects_override_settings_each_call() -> None:
    with override_settings(FAUST={"APP_ID": "one", "TOPIC_PARTITIONS": 2}):
        assert Settings.from_django().topic_partitions == 2
        with override_settings(FAUST={"APP_ID": "two", "TOPIC_PARTITIONS": 3}):
            assert Settings.from_django().app_id == "two"
            assert Settings.from_django().topic_partitions == 3
        assert Settings.from_django().app_id == "one"


def test_app_id_defaults_to_root_urlconf_package(settings: SettingsWrapper) -> None:
    settings.FAUST = {}
    settings.ROOT_URLCONF = "bookshop.urls"
    assert Settings.from_django().app_id == "bookshop"
    assert Settings.from_django().dead_letter_topic == "bookshop-dead-letters"


def test_app_id_falls_back_to_settings_module(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    del settings.ROOT_URLCONF
    settings.SETTINGS_MODULE = "myproject.settings.production"
    assert default_app_id() == "myproject"


def test_app_id_falls_back_to_django_faust(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    del settings.ROOT_URLCONF
    settings.SETTINGS_MODULE = None
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE")
    assert default_app_id() == "django-faust"


def test_explicit_app_id_wins_over_the_project_name(
    settings: SettingsWrapper,
) -> None:
    settings.ROOT_URLCONF = "bookshop.urls"
    settings.FAUST = {"APP_ID": "orders"}
    assert Settings.from_django().app_id == "orders"


def test_from_django_raises_for_invalid_faust(settings: SettingsWrapper) -> None:
    settings.FAUST = {"TOPIC_PARTITIONS": 0}
    with pytest.raises(ImproperlyConfigured, match=r'FAUST\["TOPIC_PARTITIONS"\]'):
        Settings.from_django()


def test_from_django_raises_when_faust_is_not_a_dict(
    settings: SettingsWrapper,
) -> None:
    settings.FAUST = [("BROKER", "memory://")]
    with pytest.raises(ImproperlyConfigured, match="FAUST must be a dict"):
        Settings.from_django()


# Data directory ------------------------------------------------------------


def test_datadir_is_relative_to_django_base_dir(
    settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.BASE_DIR = tmp_path
    settings.FAUST = {"APP_ID": "shop", "VERSION": 3}
    conf = Settings.from_django()
    assert conf.datadir_for("shop") == tmp_path / "shop-data"
    assert conf.datadir_for("other") == tmp_path / "other-data"
    assert conf.appdir == tmp_path / "shop-data" / "v3"


def test_datadir_without_base_dir_is_relative_to_cwd(
    settings: SettingsWrapper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    del settings.BASE_DIR
    settings.FAUST = {"APP_ID": "shop"}
    monkeypatch.chdir(tmp_path)
    assert Settings.from_django().appdir == tmp_path / "shop-data" / "v1"


def test_absolute_datadir_ignores_base_dir(tmp_path: Path) -> None:
    conf = Settings.from_mapping(
        {"APP_ID": "shop", "DATADIR": tmp_path / "state" / "{appid}"},
        base_dir="/elsewhere",
    )
    assert conf.datadir == str(tmp_path / "state" / "{appid}")
    assert conf.appdir == tmp_path / "state" / "shop" / "v1"


def test_datadir_braces_can_be_escaped(tmp_path: Path) -> None:
    conf = Settings(id="shop", datadir="{{literal}}-{appid}", base_dir=tmp_path)
    assert conf.datadir_for("shop") == tmp_path / "{literal}-shop"


# Normalization -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (0.5, 0.5), (datetime.timedelta(minutes=1, milliseconds=500), 60.5)],
)
def test_durations_are_float_seconds(value: Any, seconds: float) -> None:
    conf = Settings(commit_interval=value, table_cleanup_interval=value)
    assert conf.commit_interval == seconds
    assert isinstance(conf.commit_interval, float)
    assert conf.table_cleanup_interval == seconds


def test_producer_linger_may_be_zero() -> None:
    assert Settings(producer_linger=0).producer_linger == 0.0


def test_broker_list() -> None:
    conf = Settings(broker=("kafka://k1:9092;k2", "kafka://k3:9093"))
    assert conf.broker == ["kafka://k1:9092;k2", "kafka://k3:9093"]
    assert [url.hosts for url in conf.broker_urls] == [
        [("k1", 9092), ("k2", 9092)],
        [("k3", 9093)],
    ]
    assert conf.broker_scheme == "kafka"


@pytest.mark.parametrize(
    ("broker", "url"),
    [
        ("kafka://k1;k2", "kafka://k1;k2"),
        (["aiokafka://k1"], "aiokafka://k1"),
        (["kafka://k1", "kafka://k2:9093;k3"], "kafka://k1:9092;k2:9093;k3:9092"),
        (["memory://", "memory://"], "memory://"),
    ],
)
def test_broker_url_is_one_string(broker: Any, url: str) -> None:
    assert Settings(broker=broker).broker_url == url


def test_broker_urls_and_store_url_are_parsed() -> None:
    conf = Settings(broker="aiokafka://k1,k2:9093", store="rocksdb:///srv/tables")
    assert conf.broker_urls == [parse_url("aiokafka://k1,k2:9093")]
    assert conf.broker_scheme == "aiokafka"
    assert conf.store_url.scheme == "rocksdb"
    assert conf.store_url.path == "/srv/tables"


def test_autodiscover_modules_tuple_becomes_list() -> None:
    conf = Settings(autodiscover_modules=("agents", "streams.handlers"))
    assert conf.autodiscover_modules == ["agents", "streams.handlers"]


@pytest.mark.parametrize(
    ("value", "zone"),
    [
        (None, datetime.UTC),
        ("Europe/Oslo", ZoneInfo("Europe/Oslo")),
        (ZoneInfo("Asia/Tokyo"), ZoneInfo("Asia/Tokyo")),
        (datetime.UTC, datetime.UTC),
    ],
)
def test_timezone(value: Any, zone: datetime.tzinfo) -> None:
    assert Settings(timezone=value).timezone == zone


def test_producer_acks_all_means_minus_one() -> None:
    assert Settings(producer_acks="all").producer_acks == -1
    assert Settings(producer_acks=1).producer_acks == 1


def test_explicit_dead_letter_topic() -> None:
    assert Settings(dead_letter_topic="failed").dead_letter_topic == "failed"
    conf = Settings(id="shop", version=4, dead_letter_topic="failed")
    assert conf.dead_letter_topic == "failed"


@pytest.mark.parametrize(
    ("version", "expected"), [(1, "shop"), (2, "shop-v2"), (10, "shop-v10")]
)
def test_version_above_1_is_part_of_the_app_id(version: int, expected: str) -> None:
    # As in Faust: the id names the consumer group and the app's own topics.
    conf = Settings.from_mapping({"APP_ID": "shop", "VERSION": version})
    assert conf.app_id == "shop"
    assert conf.id == expected
    assert conf.dead_letter_topic == f"{expected}-dead-letters"
    assert conf.appdir.name == f"v{version}"


def test_replace_version_moves_the_default_dead_letter_topic() -> None:
    conf = Settings(id="shop").replace(version=2)
    assert (conf.id, conf.dead_letter_topic) == ("shop-v2", "shop-v2-dead-letters")


def test_credentials_defaults_are_filled_in() -> None:
    conf = Settings(broker_credentials={"USERNAME": "shop", "PASSWORD": "s3cret"})
    assert conf.broker_credentials == {
        "USERNAME": "shop",
        "PASSWORD": "s3cret",
        "SECURITY_PROTOCOL": "SASL_SSL",
        "SASL_MECHANISM": "PLAIN",
    }
    tls = Settings(broker_credentials={"CAFILE": "/etc/ca.pem"})
    assert tls.broker_credentials == {
        "CAFILE": "/etc/ca.pem",
        "SECURITY_PROTOCOL": "SSL",
    }


def test_credentials_are_copied() -> None:
    given = {"USERNAME": "shop", "PASSWORD": "s3cret"}
    conf = Settings(broker_credentials=given)
    given["USERNAME"] = "changed"
    assert conf.broker_credentials is not None
    assert conf.broker_credentials["USERNAME"] == "shop"


# Keyword arguments and the Settings object ------------------------------------


def test_keyword_arguments() -> None:
    conf = Settings(id="shop", broker="kafka://k1", topic_partitions=4)
    assert (conf.app_id, conf.broker, conf.topic_partitions) == (
        "shop",
        "kafka://k1",
        4,
    )
    assert Settings(app_id="shop") == Settings(id="shop")


def test_unknown_keyword_suggests_the_lower_case_name() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        Settings(id="shop", topic_partitons=4)
    assert 'Unknown setting topic_partitons; did you mean "topic_partitions"?' in str(
        info.value
    )


def test_keyword_problems_use_keyword_names() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        Settings(web_port=0)
    assert "web_port must be between 1 and 65535, got 0." in str(info.value)
    assert "FAUST" not in str(info.value)


def test_id_and_app_id_together_is_an_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="app_id repeats id"):
        Settings(id="one", app_id="two")


def test_settings_are_read_only() -> None:
    conf = Settings()
    with pytest.raises(AttributeError, match="read-only"):
        conf.topic_partitions = 3  # type: ignore[misc]
    with pytest.raises(AttributeError, match="read-only"):
        conf.anything_else = 3
    with pytest.raises(AttributeError):
        del conf.broker
    assert conf.topic_partitions == 8


def test_replace_recomputes_defaults() -> None:
    conf = Settings(id="shop", topic_partitions=4)
    other = conf.replace(id="orders", broker="kafka://k1")
    assert (other.app_id, other.broker, other.topic_partitions) == (
        "orders",
        "kafka://k1",
        4,
    )
    assert other.dead_letter_topic == "orders-dead-letters"
    assert conf.app_id == "shop"


def test_replace_validates() -> None:
    with pytest.raises(ImproperlyConfigured, match="topic_partitions"):
        Settings().replace(topic_partitions=0)


def test_as_dict_round_trips() -> None:
    conf = Settings.from_mapping(
        {
            "APP_ID": "shop",
            "BROKER": "kafka://k1",
            "TIMEZONE": "Europe/Oslo",
            "BROKER_CREDENTIALS": {"USERNAME": "u", "PASSWORD": "p"},
        }
    )
    assert set(conf.as_dict()) == set(SETTINGS)
    assert conf.validate() == []
    assert Settings.from_mapping(conf.as_dict()) == conf


def test_pickle_round_trips(tmp_path: Path) -> None:
    conf = Settings(id="shop", timezone="Europe/Oslo", base_dir=tmp_path)
    copy = pickle.loads(pickle.dumps(conf))
    assert copy == conf
    assert copy.appdir == conf.appdir


def test_equality() -> None:
    assert Settings(id="a") == Settings(id="a")
    assert Settings(id="a") != Settings(id="b")
    assert Settings(id="a", base_dir="/x") != Settings(id="a", base_dir="/y")


def test_repr_does_not_show_credentials() -> None:
    conf = Settings(broker_credentials={"USERNAME": "u", "PASSWORD": "s3cret"})
    assert "s3cret" not in repr(conf)


def test_building_settings_never_touches_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access while building settings")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    conf = Settings(broker="kafka://kafka.invalid:9092", store="rocksdb://")
    assert conf.broker_urls[0].host == "kafka.invalid"


# Problems -----------------------------------------------------------------------


def test_valid_mapping_has_no_problems() -> None:
    assert find_problems({"APP_ID": "shop", "BROKER": "kafka://k1"}) == []
    assert find_problems({}) == []


def test_unknown_key_suggests_closest_key() -> None:
    assert problems_of({"TOPIC_PARTITONS": 8}) == [
        'Unknown setting FAUST["TOPIC_PARTITONS"]; did you mean "TOPIC_PARTITIONS"?'
    ]
    (problem,) = find_problems({"TOPIC_PARTITONS": 8})
    assert problem == Problem(
        key="TOPIC_PARTITONS",
        kind="unknown",
        message='Unknown setting FAUST["TOPIC_PARTITONS"].',
        hint='Did you mean "TOPIC_PARTITIONS"?',
    )


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("broker", "BROKER"),
        ("web_port", "WEB_PORT"),
        ("WEB-PORT", "WEB_PORT"),
        ("DATA_DIR", "DATADIR"),
        ("TOPIC_PARTITION", "TOPIC_PARTITIONS"),
        ("COMMIT_INTERVALL", "COMMIT_INTERVAL"),
    ],
)
def test_unknown_key_suggestion_ignores_case_and_dashes(
    key: str, suggestion: str
) -> None:
    (problem,) = find_problems({key: 1})
    assert problem.hint == f'Did you mean "{suggestion}"?'


def test_unknown_key_without_anything_close() -> None:
    (problem,) = find_problems({"XYZZY": 1})
    assert problem.message == 'Unknown setting FAUST["XYZZY"].'
    assert "did you mean" not in str(problem).lower()
    assert "django_faust.conf.SETTINGS" in problem.hint


def test_non_string_key() -> None:
    (problem,) = find_problems({3: "x"})
    assert problem.kind == "unknown"
    assert problem.message == "Unknown setting FAUST[3]."


@pytest.mark.parametrize("faust", [["BROKER"], "memory://", 3])
def test_faust_must_be_a_mapping(faust: object) -> None:
    (problem,) = find_problems(faust)
    assert problem.kind == "not_a_mapping"
    assert problem.key is None
    assert problem.message.startswith("FAUST must be a dict of settings, got ")
    assert type(faust).__name__ in problem.message


# One wrongly typed value per setting: (key, value, expected type text).
TYPE_ERRORS: list[tuple[str, Any, str]] = [
    ("APP_ID", 42, "str"),
    ("VERSION", "2", "int"),
    ("BROKER", 9092, "str or list of str"),
    ("BROKER_CLIENT_ID", None, "str"),
    ("BROKER_CREDENTIALS", "user:pass", "dict or None"),
    ("BROKER_SESSION_TIMEOUT", "10s", "a number of seconds"),
    ("BROKER_HEARTBEAT_INTERVAL", None, "a number of seconds"),
    ("BROKER_REQUEST_TIMEOUT", [30], "a number of seconds"),
    ("BROKER_MAX_POLL_INTERVAL", "1000", "a number of seconds"),
    ("BROKER_MAX_POLL_RECORDS", 10.5, "int or None"),
    ("BROKER_COMMIT_EVERY", "10", "int"),
    ("COMMIT_INTERVAL", "2.8", "a number of seconds"),
    ("STORE", None, "str"),
    ("DATADIR", 12, "str or path"),
    ("TOPIC_PARTITIONS", "8", "int"),
    ("TOPIC_REPLICATION_FACTOR", 1.0, "int"),
    ("TOPIC_ALLOW_DECLARE", "yes", "bool"),
    ("KEY_SERIALIZER", b"raw", "str or None"),
    ("VALUE_SERIALIZER", None, "str"),
    ("PROCESSING_GUARANTEE", 1, "str"),
    ("POISON_POLICY", 1, "str"),
    ("WORKER_SHUTDOWN_TIMEOUT", "30", "a number of seconds"),
    ("STREAM_BUFFER_MAXSIZE", 4096.0, "int"),
    ("STREAM_WAIT_EMPTY", 1, "bool"),
    ("CONSUMER_AUTO_OFFSET_RESET", None, "str"),
    ("CONSUMER_MAX_FETCH_SIZE", "1MB", "int"),
    ("PRODUCER_LINGER", "5ms", "a number of seconds"),
    ("PRODUCER_MAX_BATCH_SIZE", None, "int"),
    ("PRODUCER_MAX_REQUEST_SIZE", 1e6, "int"),
    ("PRODUCER_ACKS", 1.0, "int (-1, 0 or 1) or 'all'"),
    ("PRODUCER_COMPRESSION_TYPE", True, "str or None"),
    ("PRODUCER_SEND_TIMEOUT", "30", "a number of seconds"),
    ("CLIENT_START_TIMEOUT", "60", "a number of seconds"),
    ("CLIENT_STOP_TIMEOUT", "30", "a number of seconds"),
    ("TABLE_STANDBY_REPLICAS", "1", "int"),
    ("TABLE_CLEANUP_INTERVAL", None, "a number of seconds"),
    ("AGENT_SUPERVISOR", 3, "a dotted import path (str) or a class"),
    ("AUTODISCOVER", "True", "bool"),
    ("AUTODISCOVER_MODULES", "agents", "list of str"),
    ("WEB_ENABLED", None, "bool"),
    ("WEB_PORT", "6066", "int"),
    ("WEB_BIND", 127, "str"),
    ("WEB_HOST", None, "str"),
    ("WEB_EXPOSE_STATS", "yes", "bool or None"),
    ("WEB_EXPOSE_METRICS", 1, "bool or None"),
    ("WEB_EXPOSE_HEALTH", None, "bool"),
    ("WEB_EXPOSE_TABLES", "no", "bool or None"),
    ("WEB_PERMISSION", 5, "a callable or its dotted import path (str)"),
    ("TIMEZONE", 1, "a time zone name (str), tzinfo or None"),
    ("DEAD_LETTER_TOPIC", 5, "str or None"),
]


def test_type_errors_cover_every_setting() -> None:
    assert [key for key, _, _ in TYPE_ERRORS] == list(SETTINGS)


@pytest.mark.parametrize(("key", "value", "expects"), TYPE_ERRORS)
def test_type_errors(key: str, value: Any, expects: str) -> None:
    (problem,) = find_problems({key: value})
    assert problem.kind == "type"
    assert problem.key == key
    assert problem.message.startswith(f'FAUST["{key}"] must be {expects}')
    assert problem.message.endswith(f", got {value!r} ({type(value).__name__}).")


@pytest.mark.parametrize("key", ["TOPIC_PARTITIONS", "WEB_PORT", "VERSION"])
def test_bool_is_not_accepted_as_int(key: str) -> None:
    (problem,) = find_problems({key: True})
    assert problem.kind == "type"


def test_list_items_are_type_checked() -> None:
    assert problems_of({"AUTODISCOVER_MODULES": ["agents", 3]}) == [
        'FAUST["AUTODISCOVER_MODULES"] must be list of str, but item 1 is 3 (int).'
    ]
    assert problems_of({"BROKER": ["kafka://k1", None]}) == [
        'FAUST["BROKER"] must be str or list of str, but item 1 is None (NoneType).'
    ]


VALUE_ERRORS: list[tuple[str, Any, str]] = [
    ("APP_ID", "my shop", "must be a valid Kafka topic name"),
    ("APP_ID", "", "must be a valid Kafka topic name"),
    ("APP_ID", "x" * 250, "at most 249 characters"),
    ("VERSION", 0, "must be at least 1, got 0"),
    ("BROKER", "redis://localhost", "has unknown scheme 'redis'"),
    ("BROKER", "localhost:9092", "is not a valid URL"),
    ("BROKER", [], "must name at least one URL"),
    ("BROKER", ["kafka://k1", "memory://"], "mixes the schemes kafka, memory"),
    ("BROKER_CLIENT_ID", " ", "must not be empty"),
    ("BROKER_SESSION_TIMEOUT", 0, "greater than 0, got 0.0"),
    ("BROKER_REQUEST_TIMEOUT", -1.5, "greater than 0, got -1.5"),
    ("COMMIT_INTERVAL", float("nan"), "greater than 0, got nan"),
    ("COMMIT_INTERVAL", float("inf"), "greater than 0, got inf"),
    ("COMMIT_INTERVAL", datetime.timedelta(seconds=-1), "got -1.0"),
    ("PRODUCER_LINGER", -0.1, "0 or more, got -0.1"),
    ("BROKER_MAX_POLL_RECORDS", 0, "must be at least 1, got 0"),
    ("BROKER_COMMIT_EVERY", 0, "must be at least 1, got 0"),
    ("STORE", "redis://", "has unknown scheme 'redis'"),
    ("STORE", "kafka://k1", "valid store schemes are: memory, rocksdb"),
    ("DATADIR", "{app}-data", "may only contain the placeholder '{appid}'"),
    ("DATADIR", "{0}", "may only contain the placeholder '{appid}'"),
    ("DATADIR", "data{", "may only contain the placeholder '{appid}'"),
    ("DATADIR", "", "must not be empty"),
    ("TOPIC_PARTITIONS", 0, "must be at least 1, got 0"),
    ("TOPIC_REPLICATION_FACTOR", 0, "must be at least 1, got 0"),
    ("KEY_SERIALIZER", "", "must not be empty"),
    ("VALUE_SERIALIZER", "", "must not be empty"),
    ("PROCESSING_GUARANTEE", "exact", "'at_least_once', 'exactly_once'; got"),
    ("POISON_POLICY", "ignore", "must be one of 'dead_letter', 'skip', 'stop'"),
    ("WORKER_SHUTDOWN_TIMEOUT", 0, "greater than 0, got 0"),
    ("STREAM_BUFFER_MAXSIZE", 0, "must be at least 1, got 0"),
    ("CONSUMER_AUTO_OFFSET_RESET", "smallest", "'earliest', 'latest'; got"),
    ("CONSUMER_MAX_FETCH_SIZE", 0, "must be at least 1, got 0"),
    ("PRODUCER_MAX_BATCH_SIZE", -1, "must be at least 1, got -1"),
    ("PRODUCER_MAX_REQUEST_SIZE", 0, "must be at least 1, got 0"),
    ("PRODUCER_ACKS", 2, "must be one of -1, 0, 1, 'all'; got 2"),
    ("PRODUCER_COMPRESSION_TYPE", "brotli", "'lz4', 'zstd'; got 'brotli'"),
    ("TABLE_STANDBY_REPLICAS", -1, "must be at least 0, got -1"),
    ("TABLE_CLEANUP_INTERVAL", 0, "greater than 0"),
    ("AGENT_SUPERVISOR", "OneForOneSupervisor", "must be a dotted import path"),
    ("AGENT_SUPERVISOR", "mode.One For One", "must be a dotted import path"),
    ("AUTODISCOVER_MODULES", ["agents", "my-agents"], "'my-agents' is not one"),
    ("WEB_PORT", 0, "must be between 1 and 65535, got 0"),
    ("WEB_PORT", 65536, "must be between 1 and 65535, got 65536"),
    ("WEB_BIND", "", "must be a host name or address"),
    ("WEB_HOST", "http://example.com", "must be a host name or address"),
    ("TIMEZONE", "Mars/Olympus_Mons", "must be a time zone name"),
    ("TIMEZONE", "../etc/passwd", "must be a time zone name"),
    ("DEAD_LETTER_TOPIC", "dead letters", "must be a valid Kafka topic name"),
]


@pytest.mark.parametrize(("key", "value", "message"), VALUE_ERRORS)
def test_value_errors(key: str, value: Any, message: str) -> None:
    (problem,) = find_problems({key: value})
    assert problem.kind == "value"
    assert problem.key == key
    assert problem.message.startswith(f'FAUST["{key}"] ')
    assert message in problem.message


def test_choice_errors_suggest_the_closest_choice() -> None:
    assert problems_of({"CONSUMER_AUTO_OFFSET_RESET": "lates"}) == [
        "FAUST[\"CONSUMER_AUTO_OFFSET_RESET\"] must be one of 'earliest', "
        "'latest'; got 'lates'; did you mean 'latest'?"
    ]
    (problem,) = find_problems({"CONSUMER_AUTO_OFFSET_RESET": "none"})
    assert problem.hint == ""


def test_broker_scheme_error_lists_valid_schemes() -> None:
    assert problems_of({"BROKER": "redis://localhost"}) == [
        "FAUST[\"BROKER\"] has unknown scheme 'redis' in 'redis://localhost'; "
        "valid broker schemes are: memory, kafka, aiokafka."
    ]


def test_valid_values_are_accepted() -> None:
    valid = {
        "APP_ID": "shop.orders_v2-eu",
        "BROKER": ["kafka://k1:9092;k2", "kafka://k3"],
        "BROKER_MAX_POLL_RECORDS": 500,
        "STORE": "rocksdb://",
        "DATADIR": Path("/srv/{appid}"),
        "PROCESSING_GUARANTEE": "at_least_once",
        "CONSUMER_AUTO_OFFSET_RESET": "latest",
        "PRODUCER_ACKS": 0,
        "PRODUCER_COMPRESSION_TYPE": "zstd",
        "TABLE_STANDBY_REPLICAS": 0,
        "AGENT_SUPERVISOR": "mode.supervisors:OneForAllSupervisor",
        "AUTODISCOVER_MODULES": [],
        "WEB_PORT": 65535,
        "WEB_BIND": "::",
        "KEY_SERIALIZER": None,
        "TIMEZONE": "UTC",
        "DEAD_LETTER_TOPIC": "shop.failed",
    }
    assert find_problems(valid) == []


def test_agent_supervisor_may_be_a_class() -> None:
    class Supervisor:
        pass

    assert Settings(agent_supervisor=Supervisor).agent_supervisor is Supervisor


def test_heartbeat_must_be_below_session_timeout() -> None:
    assert problems_of({"BROKER_HEARTBEAT_INTERVAL": 10}) == [
        'FAUST["BROKER_HEARTBEAT_INTERVAL"] (10.0) must be less than '
        'FAUST["BROKER_SESSION_TIMEOUT"] (10.0); make it about a third of the '
        "session timeout, so that a few lost heartbeats do not get a healthy "
        "worker evicted."
    ]
    assert find_problems({"BROKER_SESSION_TIMEOUT": 2}) != []
    assert (
        find_problems({"BROKER_SESSION_TIMEOUT": 60, "BROKER_HEARTBEAT_INTERVAL": 10})
        == []
    )


def test_cross_check_is_skipped_when_a_side_is_already_wrong() -> None:
    assert [p.kind for p in find_problems({"BROKER_SESSION_TIMEOUT": "x"})] == ["type"]


# Credentials -----------------------------------------------------------------


def test_valid_credentials() -> None:
    for credentials in [
        {
            "SECURITY_PROTOCOL": "SASL_SSL",
            "SASL_MECHANISM": "SCRAM-SHA-512",
            "USERNAME": "shop",
            "PASSWORD": "s3cret",
            "CAFILE": "/etc/ssl/ca.pem",
        },
        {"SECURITY_PROTOCOL": "SSL", "CERTFILE": "c.pem", "KEYFILE": "k.pem"},
        {"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "USERNAME": "u", "PASSWORD": "p"},
    ]:
        assert find_problems({"BROKER_CREDENTIALS": credentials}) == []


CREDENTIAL_ERRORS: list[tuple[dict[str, Any], str]] = [
    (
        {"USERNAM": "u", "USERNAME": "u", "PASSWORD": "p"},
        'Unknown key FAUST["BROKER_CREDENTIALS"]["USERNAM"]; did you mean "USERNAME"?',
    ),
    (
        {"username": "u"},
        'Unknown key FAUST["BROKER_CREDENTIALS"]["username"]; did you mean "USERNAME"?',
    ),
    (
        {"USERNAME": 7, "PASSWORD": "p"},
        'FAUST["BROKER_CREDENTIALS"]["USERNAME"] must be str, got 7 (int).',
    ),
    (
        {"SECURITY_PROTOCOL": "SASL_TLS", "USERNAME": "u", "PASSWORD": "p"},
        'FAUST["BROKER_CREDENTIALS"]["SECURITY_PROTOCOL"] must be one of '
        "'SASL_SSL', 'SASL_PLAINTEXT', 'SSL', 'PLAINTEXT'; got 'SASL_TLS'.",
    ),
    (
        {"SASL_MECHANISM": "GSSAPI", "USERNAME": "u", "PASSWORD": "p"},
        'FAUST["BROKER_CREDENTIALS"]["SASL_MECHANISM"] must be one of '
        "'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'; got 'GSSAPI'.",
    ),
    (
        {"USERNAME": "u"},
        'FAUST["BROKER_CREDENTIALS"]["PASSWORD"] is required when '
        "SECURITY_PROTOCOL is 'SASL_SSL'.",
    ),
    (
        {"SECURITY_PROTOCOL": "SASL_SSL", "PASSWORD": "p"},
        'FAUST["BROKER_CREDENTIALS"]["USERNAME"] is required when '
        "SECURITY_PROTOCOL is 'SASL_SSL'.",
    ),
    (
        {"SECURITY_PROTOCOL": "SSL", "SASL_MECHANISM": "PLAIN"},
        'FAUST["BROKER_CREDENTIALS"]["SASL_MECHANISM"] is only used with the '
        "SASL_SSL and SASL_PLAINTEXT security protocols, but SECURITY_PROTOCOL "
        "is 'SSL'.",
    ),
    (
        {"SECURITY_PROTOCOL": "PLAINTEXT", "CAFILE": "ca.pem"},
        'FAUST["BROKER_CREDENTIALS"]["CAFILE"] is only used with TLS, but '
        "SECURITY_PROTOCOL is 'PLAINTEXT'.",
    ),
    (
        {"KEYFILE": "k.pem"},
        'FAUST["BROKER_CREDENTIALS"]["KEYFILE"] needs CERTFILE to be set as well.',
    ),
    (
        {"CAFILE": ""},
        'FAUST["BROKER_CREDENTIALS"]["CAFILE"] must not be empty.',
    ),
]


@pytest.mark.parametrize(("credentials", "message"), CREDENTIAL_ERRORS)
def test_credential_errors(credentials: dict[str, Any], message: str) -> None:
    problems = find_problems({"BROKER_CREDENTIALS": credentials})
    assert [str(problem) for problem in problems] == [message]
    assert all(problem.key == "BROKER_CREDENTIALS" for problem in problems)
    assert all(problem.subkey is not None for problem in problems)


def test_password_is_never_shown() -> None:
    (problem,) = find_problems(
        {"BROKER_CREDENTIALS": {"USERNAME": "u", "PASSWORD": b"s3cret"}}
    )
    assert problem.message == (
        'FAUST["BROKER_CREDENTIALS"]["PASSWORD"] must be str, got a value (bytes).'
    )


# Raising -----------------------------------------------------------------------


def test_from_mapping_raises_with_every_problem() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        Settings.from_mapping(
            {"TOPIC_PARTITONS": 8, "WEB_PORT": 0, "STORE": "redis://", "VERSION": "1"}
        )
    text = str(info.value)
    assert text.startswith("Invalid django-faust settings (4 problems):")
    for expected in [
        'Unknown setting FAUST["TOPIC_PARTITONS"]; did you mean "TOPIC_PARTITIONS"?',
        'FAUST["WEB_PORT"] must be between 1 and 65535, got 0.',
        "FAUST[\"STORE\"] has unknown scheme 'redis'",
        "FAUST[\"VERSION\"] must be int, got '1' (str).",
    ]:
        assert expected in text


def test_single_problem_message() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        Settings.from_mapping({"WEB_PORT": 0})
    assert str(info.value) == (
        'Invalid django-faust settings: FAUST["WEB_PORT"] must be between 1 and '
        "65535, got 0."
    )


# Reference documentation --------------------------------------------------------


def test_reference_lists_every_setting_with_help_and_default() -> None:
    text = reference_rst()
    for key, setting in SETTINGS.items():
        assert f"``{key}``\n    :type: {setting.expects}\n" in text
        assert setting.help in text
    assert ":default: 'memory://'" in text
    assert ":default: 8\n" in text
